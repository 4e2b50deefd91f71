//! nftables and iptables, driven through their own tools run inside the
//! namespace: `nft -j -f -` (one atomic transaction per call) and
//! `iptables-restore --noflush -w` (atomic per table). The tools own the
//! encoding, iptables' compat expressions included, so rules written here
//! are the same objects the reference plugins and admins' own tools write.
//! The exception: batches of the per-attachment rules [`nft_netlink`]
//! encodes exactly as nft does go straight to the kernel.

use std::time::Instant;

use crate::addresses::Family;
use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;
use crate::{nft_netlink, process};

/// Applies an nft JSON batch (`{"nftables": [...]}`) in one transaction:
/// over netlink when [`nft_netlink`] encodes every command, else by nft.
pub fn nft_apply(ns: &Netns, batch: &str, deadline: Instant) -> Result<()> {
    if let Some(encoded) = native(batch) {
        return nft_netlink::apply(ns, &encoded.1, deadline).map(drop);
    }
    let nft = process::find_tool("nft")?;
    let output = process::run_tool(ns, &nft, &["-j", "-f", "-"], batch.as_bytes(), deadline)?;
    check("applying an nftables batch", ns, &output)
}

/// The batch, parsed and encoded for netlink, if every command can be.
fn native(batch: &str) -> Option<(serde_json::Value, nft_netlink::Batch)> {
    let value: serde_json::Value = serde_json::from_str(batch).ok()?;
    let encoded = nft_netlink::encode(&value)?;
    Some((value, encoded))
}

/// Applies an nftables JSON batch and returns nft's echo of it (`-e -a`):
/// the same commands, with the handles the kernel gave new objects, which
/// is what undoing the batch needs.
pub fn nft_apply_echo(ns: &Netns, batch: &str, deadline: Instant) -> Result<String> {
    if let Some((value, encoded)) = native(batch) {
        let handles = nft_netlink::apply(ns, &encoded, deadline)?;
        return Ok(nft_netlink::echo(&value, &handles).to_string());
    }
    let nft = process::find_tool("nft")?;
    let output = process::run_tool(ns, &nft, &["-j", "-e", "-a", "-f", "-"], batch.as_bytes(), deadline)?;
    check("applying an nftables batch", ns, &output)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `nft -j list table <family> <table>`, or None when it does not exist.
pub fn nft_list_table(ns: &Netns, family: &str, table: &str, deadline: Instant) -> Result<Option<String>> {
    let nft = process::find_tool("nft")?;
    // The kernel's dumps decoded, when they hold only what nft_netlink
    // decodes: starting nft costs milliseconds, and more the more the
    // namespace's ruleset holds.
    match nft_netlink::list_table(ns, family, table) {
        nft_netlink::Listed::Missing => return Ok(None),
        nft_netlink::Listed::Found(listing) => return Ok(Some(listing.to_string())),
        nft_netlink::Listed::Undecoded => {}
    }
    if table_exists(ns, family, table) == Some(false) {
        return Ok(None);
    }
    let output = process::run_tool(ns, &nft, &["-j", "list", "table", family, table], &[], deadline)?;
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("No such file or directory") {
        return Ok(None);
    }
    check(&format!("listing nftables table {family} {table}"), ns, &output)?;
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// One chain as `nft -j list chain` shows it, with the table object (its
/// handle, [`nft_table_handle`], and the namespace's cookie) put in front
/// as `list table` has it,
/// or None when the table or chain does not exist. Costs what the chain
/// holds: nft asks the kernel for that chain's rules only.
pub fn nft_list_chain(ns: &Netns, family: &str, table: &str, chain: &str, deadline: Instant) -> Result<Option<String>> {
    let nft = process::find_tool("nft")?;
    let handle = match nft_table_handle(ns, family, table) {
        Some(None) => return Ok(None),
        Some(Some(handle)) => Some(handle),
        None => None,
    };
    // The kernel lists one chain; nft reads the whole ruleset to do it.
    let mut listing = match nft_netlink::list_chain(ns, family, table, chain) {
        nft_netlink::Listed::Missing => return Ok(None),
        nft_netlink::Listed::Found(listing) => listing,
        nft_netlink::Listed::Undecoded => {
            let output = process::run_tool(ns, &nft, &["-j", "list", "chain", family, table, chain], &[], deadline)?;
            if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("No such file or directory")
            {
                return Ok(None);
            }
            check(&format!("listing nftables chain {family} {table} {chain}"), ns, &output)?;
            serde_json::from_slice(&output.stdout).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("listing nftables chain {family} {table} {chain} in {}: {e}", ns.label()),
                )
            })?
        }
    };
    if let Some(objects) = listing["nftables"].as_array_mut() {
        let mut object = serde_json::json!({"table": {"family": family, "name": table}});
        if let Some(handle) = handle {
            object["table"]["handle"] = handle.into();
        }
        // Table handles are numbered per namespace; with the namespace's
        // cookie (never reused while the system runs) the pair names one
        // table's lifetime on the node.
        if let Ok(cookie) = ns.cookie() {
            object["table"]["netns-cookie"] = cookie.into();
        }
        let at = objects.iter().take_while(|o| o.get("metainfo").is_some()).count();
        objects.insert(at, object);
    }
    Ok(Some(listing.to_string()))
}

/// An nftables object whose existence can be asked of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftObject<'a> {
    Table,
    Chain(&'a str),
    Set(&'a str),
}

/// Whether an nftables table exists (NFT_MSG_GETTABLE), or None when the
/// kernel could not say (then nft itself is asked).
fn table_exists(ns: &Netns, family: &str, table: &str) -> Option<bool> {
    nft_object_exists(ns, family, table, NftObject::Table)
}

/// Whether a table, or a chain or set in it, exists: one netlink round trip
/// (NFT_MSG_GET*), or None when the kernel could not say.
pub fn nft_object_exists(ns: &Netns, family: &str, table: &str, object: NftObject<'_>) -> Option<bool> {
    nft_get(ns, family, table, object).map(|reply| reply.is_some())
}

/// A table's handle (NFTA_TABLE_HANDLE), or Some(None) when the table does
/// not exist, or None when the kernel could not say. The kernel numbers
/// tables per namespace and never reuses a number, so a handle names one
/// table's lifetime: a rule handle recorded with it cannot be mistaken for
/// a rule of the same table deleted and made again.
pub fn nft_table_handle(ns: &Netns, family: &str, table: &str) -> Option<Option<u64>> {
    const NFTA_TABLE_HANDLE: u16 = 4;
    let Some(reply) = nft_get(ns, family, table, NftObject::Table)? else { return Some(None) };
    // Attributes follow nlmsghdr (16) and nfgenmsg (4).
    let handle = crate::netlink::find_attribute(reply.get(20..)?, NFTA_TABLE_HANDLE)?;
    Some(Some(u64::from_be_bytes(handle.try_into().ok()?)))
}

/// One NFT_MSG_GET* request: Some(Some(reply)) with the object's NEW*
/// message, Some(None) when it does not exist, None when the kernel could
/// not say.
fn nft_get(ns: &Netns, family: &str, table: &str, object: NftObject<'_>) -> Option<Option<Vec<u8>>> {
    // NFT_MSG_GET* types; the table attribute is 1 for all three kinds, the
    // name attribute 3 for chains (NFTA_CHAIN_NAME) and 2 for sets.
    match object {
        NftObject::Table => nft_netlink::get(ns, family, 1, &[(1, table)]),
        NftObject::Chain(chain) => nft_netlink::get(ns, family, 4, &[(1, table), (3, chain)]),
        NftObject::Set(set) => nft_netlink::get(ns, family, 10, &[(1, table), (2, set)]),
    }
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
