//! nftables and iptables, driven through their own tools run inside the
//! namespace: `nft -j -f -` (one atomic transaction per call) and
//! `iptables-restore --noflush -w` (atomic per table). The tools own the
//! encoding, iptables' compat expressions included, so rules written here
//! are the same objects the reference plugins and admins' own tools write.

use std::time::Instant;

use crate::addresses::Family;
use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;
use crate::process;

/// Applies an nft JSON batch (`{"nftables": [...]}`) in one transaction.
pub fn nft_apply(ns: &Netns, batch: &str, deadline: Instant) -> Result<()> {
    let nft = process::find_tool("nft")?;
    let output = process::run_tool(ns, &nft, &["-j", "-f", "-"], batch.as_bytes(), deadline)?;
    check("applying an nftables batch", ns, &output)
}

/// `nft -j list table <family> <table>`, or None when it does not exist.
pub fn nft_list_table(ns: &Netns, family: &str, table: &str, deadline: Instant) -> Result<Option<String>> {
    let nft = process::find_tool("nft")?;
    let output = process::run_tool(ns, &nft, &["-j", "list", "table", family, table], &[], deadline)?;
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("No such file or directory") {
        return Ok(None);
    }
    check(&format!("listing nftables table {family} {table}"), ns, &output)?;
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Applies `rules` (iptables-restore lines, without `*table` and `COMMIT`)
/// to `table`, without flushing anything else.
pub fn iptables_restore(ns: &Netns, family: Family, table: &str, rules: &str, deadline: Instant) -> Result<()> {
    let tool = process::find_tool(match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    })?;
    let input = format!("*{table}\n{}\nCOMMIT\n", rules.trim_end());
    let output = process::run_tool(ns, &tool, &["--noflush", "-w"], input.as_bytes(), deadline)?;
    check(&format!("applying {} rules to table {table}", family_tool(family)), ns, &output)
}

/// The rules of `table` in iptables-save format.
pub fn iptables_save(ns: &Netns, family: Family, table: &str, deadline: Instant) -> Result<String> {
    let tool = process::find_tool(match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    })?;
    let output = process::run_tool(ns, &tool, &["-t", table], &[], deadline)?;
    check(&format!("reading {} table {table}", family_tool(family)), ns, &output)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn family_tool(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// A failed tool run becomes an error carrying its stderr; the kind tells
/// a plugin whether to retry (a chain appeared or vanished meanwhile).
fn check(doing: &str, ns: &Netns, output: &process::Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let kind = if text.contains("already exists") || text.contains("File exists") {
        ErrorKind::AlreadyExists
    } else if text.contains("does not exist")
        || text.contains("No chain/target/match")
        || text.contains("Bad rule")
        || text.contains("No such file or directory")
    {
        ErrorKind::NotFound
    } else {
        ErrorKind::Io
    };
    Err(Error::new(kind, format!("{doing} in {}: {text} ({})", ns.label(), output.status)))
}
