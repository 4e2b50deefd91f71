//! `ipMasq` for bridge and ptp: masquerade a container's traffic leaving its
//! subnet, with the reference's rules, names and comments in both backends,
//! so either implementation can remove what the other set up.
//!
//! iptables (table nat): a chain `CNI-<sha512(net+id)>` holding
//! `-d <subnet> -j ACCEPT` and `! -d <multicast> -j MASQUERADE`, jumped to
//! from POSTROUTING by `-s <ip>`. nftables: table `inet
//! cni_plugins_masquerade`, one `masquerade` rule per address in chain
//! `masq_checks`, commented with hashes of the network and the attachment.
//!
//! Unlike the reference, teardown does not need the container's addresses:
//! it finds the rules by chain name and comment, so DEL after the link or
//! the namespace is gone still cleans up (the reference leaks them, #810).
//!
//! The iptables nat table grows with every attachment on the node, so the
//! common cases do not read it: ADD of a new attachment writes its chain and
//! jump in one restore whose `-N` fails if the chain is there, and DEL with
//! prevResult's addresses deletes exactly those rules in one restore that
//! fails if any is missing. Only then is the table read and edited.

use crate::Attachment;
use crate::error::{Result, internal};
use crate::namespaces::Netns;
use crate::net::IpNet;
use crate::netfilter::{
    self, IptablesTable, NftBatch, NftHandles, NftRule, NftTable, chain_name, comment, edit_iptables, expr, save_string,
};
use crate::types::{ErrorKind, IpFamily};

const NFT_TABLE: &str = "cni_plugins_masquerade";
const NFT_CHAIN: &str = "masq_checks";
/// knftables.CommentLengthMax.
const NFT_COMMENT_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

/// The configured backend; None for the reference's default (iptables
/// unless it is unusable and nftables works), which [`setup`] decides from
/// its first iptables read rather than by a separate probe.
pub fn configured_backend(configured: Option<&str>) -> Result<Option<Backend>> {
    match configured {
        None => Ok(None),
        Some("iptables") => Ok(Some(Backend::Iptables)),
        Some("nftables") => Ok(Some(Backend::Nftables)),
        Some(other) => Err(internal(format!("unknown ipmasq backend {other:?}"))),
    }
}

pub fn iptables_usable(ns: &Netns) -> bool {
    crate::netfilter_capability::iptables_save(ns, IpFamily::Ipv4, "nat").is_ok()
}

pub fn nftables_usable(ns: &Netns) -> bool {
    crate::netfilter_capability::nft_list_table(ns, "inet", NFT_TABLE).is_ok()
}

/// The manifest entries bridge and ptp need for masquerading.
pub const IPTABLES_CHAINS: &str = "CNI-????????????????????????";
pub const NFT_TABLES: &str = "inet cni_plugins_masquerade";

/// Adds what a plugin that routes and masquerades its containers' traffic
/// needs to its manifest: the forwarding sysctls, the masquerade chains and
/// table, and a state directory `/run/cni-wasm/<plugin>` for the lock that
/// serializes netfilter read-modify-writes.
pub fn grant(manifest: &mut crate::Manifest, plugin: &str) {
    manifest.host_sysctls.extend(["net/ipv4/ip_forward".into(), "net/ipv6/conf/all/forwarding".into()]);
    manifest.iptables_chains.push(IPTABLES_CHAINS.into());
    manifest.nft_tables.push(NFT_TABLES.into());
    manifest.state = Some(crate::StateLocation { default_dir: format!("/run/cni-wasm/{plugin}"), config_key: None });
}

pub fn setup(
    ns: &Netns,
    backend: Option<Backend>,
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<()> {
    let Some(first) = ips.first() else { return Ok(()) };
    match backend {
        Some(Backend::Nftables) => setup_nftables(ns, ips, network, ifname, container_id),
        Some(Backend::Iptables) => setup_iptables(ns, ips, network, container_id),
        // iptables unless it fails here and nftables works: a failure is
        // only then told apart by reading the table.
        None => setup_iptables(ns, ips, network, container_id).or_else(|error| {
            match IptablesTable::read(ns, family_of(first), "nat") {
                Err(e) if netfilter::iptables_unusable(&e) && nftables_usable(ns) => {
                    setup_nftables(ns, ips, network, ifname, container_id)
                }
                _ => Err(error),
            }
        }),
    }
}

/// The IP families an attachment's rules can be in: those of its
/// prevResult's addresses, or both when there is no prevResult to go by.
pub fn families_of(prev_result: Option<&crate::CniResult>) -> Vec<IpFamily> {
    let both = [IpFamily::Ipv4, IpFamily::Ipv6];
    let Some(result) = prev_result.filter(|r| !r.ips.is_empty()) else { return both.to_vec() };
    both.into_iter().filter(|f| result.ips.iter().any(|ip| family_of(&IpNet::from_wit(&ip.address)) == *f)).collect()
}

/// Removes the attachment's rules from both backends (as the reference
/// does), for the IP families of `known`'s addresses (both without a
/// result to go by); a backend that is not usable here is skipped.
pub fn teardown(
    ns: &Netns,
    network: &str,
    ifname: &str,
    container_id: &str,
    known: Option<&crate::CniResult>,
) -> Result<()> {
    let mut errors = Vec::new();
    let chain = chain_name(network, container_id, "");
    let addresses: Vec<IpNet> = known.iter().flat_map(|r| &r.ips).map(|ip| IpNet::from_wit(&ip.address)).collect();
    for family in families_of(known) {
        let mine: Vec<&IpNet> = addresses.iter().filter(|ip| family_of(ip) == family).collect();
        if !mine.is_empty() {
            match delete_known(ns, family, network, container_id, &chain, &mine) {
                Ok(()) => continue,
                // No iptables tool here: nothing of this family to remove.
                Err(e) if e.kind == ErrorKind::Unsupported => continue,
                // Not as set up (another ADD's rules, or gone): read and edit.
                Err(_) => {}
            }
        }
        let snapshot = match IptablesTable::read(ns, family, "nat") {
            Ok(snapshot) => snapshot,
            Err(e) if netfilter::iptables_unusable(&e) => continue,
            Err(e) => {
                errors.push(e.message);
                continue;
            }
        };
        if !snapshot.has_chain(&chain) {
            continue;
        }
        if let Err(e) = teardown_iptables(ns, family, snapshot, &chain) {
            errors.push(e.msg);
        }
    }
    if let Err(e) = teardown_nftables(ns, &hash_for_instance(network, ifname, container_id)) {
        errors.push(e.msg);
    }
    if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("\n"))) }
}

/// Removes the masquerading of every attachment of `network` that is not
/// in `valid` (the reference has the nftables half but never calls it).
pub fn gc(ns: &Netns, network: &str, valid: &[Attachment]) -> Result<()> {
    let mut errors = Vec::new();
    if iptables_usable(ns) {
        for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
            if let Err(e) = gc_iptables(ns, family, network, valid) {
                errors.push(e.msg);
            }
        }
    }
    {
        let network_hash = hash_for_network(network);
        let keep: Vec<String> =
            valid.iter().map(|a| comment_for_instance(network, &a.ifname, &a.container_id)).collect();
        let stale = |c: &str| c.starts_with(&network_hash) && !keep.iter().any(|k| k == c);
        if let Err(e) = delete_nft_rules(ns, stale) {
            errors.push(e.msg);
        }
        let valid: Vec<String> = valid.iter().map(|a| hash_for_instance(network, &a.ifname, &a.container_id)).collect();
        for instance in record::instances().unwrap_or_default() {
            if instance.starts_with(&network_hash) && !valid.contains(&instance) {
                record::remove(&instance);
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("\n"))) }
}

fn family_of(ip: &IpNet) -> IpFamily {
    if ip.is_ipv4() { IpFamily::Ipv4 } else { IpFamily::Ipv6 }
}

fn multicast(family: IpFamily) -> &'static str {
    match family {
        IpFamily::Ipv4 => "224.0.0.0/4",
        IpFamily::Ipv6 => "ff00::/8",
    }
}

fn setup_iptables(ns: &Netns, ips: &[IpNet], network: &str, container_id: &str) -> Result<()> {
    let chain = chain_name(network, container_id, "");
    let comment = save_string(&comment(network, container_id));
    let nothing = IptablesTable::parse("");
    for ip in ips {
        let family = family_of(ip);
        // The rules as iptables-save prints them, so "unique" compares text.
        let rules = [
            (chain.as_str(), format!("-d {} -m comment --comment {comment} -j ACCEPT", ip.masked())),
            (chain.as_str(), format!("! -d {} -m comment --comment {comment} -j MASQUERADE", multicast(family))),
            ("POSTROUTING", jump(ip, &comment, &chain)),
        ];
        let build = |_: &IptablesTable, change: &mut netfilter::IptablesChange| {
            change.ensure_chain(&chain);
            for (in_chain, spec) in &rules {
                change.append_unique(in_chain, spec);
            }
            Ok(())
        };
        // Against an empty table: `-N` fails the whole restore if the chain
        // is there already (a second address, a repeated ADD).
        let mut blind = netfilter::IptablesChange::new(&nothing);
        build(&nothing, &mut blind)?;
        match blind.apply(ns, family, "nat") {
            Ok(()) => continue,
            Err(e) if e.kind == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        edit_iptables(ns, family, "nat", build)?;
    }
    Ok(())
}

/// POSTROUTING's jump for one address, as iptables-save prints it.
fn jump(ip: &IpNet, comment: &str, chain: &str) -> String {
    format!("-s {} -m comment --comment {comment} -j {chain}", IpNet::host(ip.addr))
}

/// Deletes the jumps for `addresses` and the chain, in one restore that
/// fails (changing nothing) unless they are all there.
fn delete_known(
    ns: &Netns,
    family: IpFamily,
    network: &str,
    container_id: &str,
    chain: &str,
    addresses: &[&IpNet],
) -> std::result::Result<(), crate::types::Error> {
    let comment = save_string(&comment(network, container_id));
    let mut lines: Vec<String> =
        addresses.iter().map(|ip| format!("-D POSTROUTING {}", jump(ip, &comment, chain))).collect();
    lines.push(format!("-F {chain}"));
    lines.push(format!("-X {chain}"));
    crate::netfilter_capability::iptables_restore(ns, family, "nat", &lines.join("\n"))
}

/// Deletes every POSTROUTING rule jumping to the attachment's chain, then
/// the chain.
fn teardown_iptables(ns: &Netns, family: IpFamily, snapshot: IptablesTable, chain: &str) -> Result<()> {
    netfilter::edit_iptables_from(ns, family, "nat", snapshot, |table, change| {
        if !table.has_chain(chain) {
            return Ok(());
        }
        delete_jumps_to(table, change, "POSTROUTING", chain);
        change.delete_chain(chain);
        Ok(())
    })
}

fn delete_jumps_to(table: &IptablesTable, change: &mut netfilter::IptablesChange, from: &str, chain: &str) {
    let suffix = format!("-j {chain}");
    for rule in table.rules(from).iter().filter(|r| r.ends_with(&suffix)) {
        change.delete(from, rule);
    }
}

fn gc_iptables(ns: &Netns, family: IpFamily, network: &str, valid: &[Attachment]) -> Result<()> {
    let keep: Vec<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    edit_iptables(ns, family, "nat", |table, change| {
        // A POSTROUTING jump commented `name: "<network>" id: "<id>"` leads
        // to that attachment's chain.
        for rule in table.rules("POSTROUTING") {
            let Some(id) = netfilter::comment_of(rule).as_deref().and_then(|c| container_of(c, network)) else {
                continue;
            };
            let chain = chain_name(network, &id, "");
            if !keep.contains(&id.as_str()) && rule.ends_with(&format!("-j {chain}")) {
                change.delete("POSTROUTING", rule);
                change.delete_chain(&chain);
            }
        }
        Ok(())
    })
}

/// The container id in a reference comment for `network`.
fn container_of(comment: &str, network: &str) -> Option<String> {
    let quoted_id = comment.strip_prefix(&format!("name: {} id: ", netfilter::go_quote(network)))?;
    let inner = quoted_id.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

fn hash_for_network(network: &str) -> String {
    netfilter::hash_with_prefix(16, "", network)
}

fn hash_for_instance(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        hash_for_network(network),
        netfilter::hash_with_prefix(16, "", &format!("{ifname}:{container_id}"))
    )
}

fn comment_for_instance(network: &str, ifname: &str, container_id: &str) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        hash_for_instance(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    );
    comment.truncate(NFT_COMMENT_MAX);
    comment
}

/// ADD in the reference's layout. Its rules are numbered by the kernel, and
/// nft deletes a rule only by its number, so the reference lists the whole
/// table, one rule per attachment, on every ADD and DEL. Here ADD reads only
/// the three-rule `postrouting` chain and records its rules' handles with the
/// table's (never reused) handle, so DEL deletes them without a listing. An
/// attachment with a record from an earlier ADD, or none (the reference's, or
/// an older cni-wasm's), takes the listing path.
fn setup_nftables(ns: &Netns, ips: &[IpNet], network: &str, ifname: &str, container_id: &str) -> Result<()> {
    let instance = hash_for_instance(network, ifname, container_id);
    let comment = comment_for_instance(network, ifname, container_id);
    let readded = record::read(&instance).is_some();
    let existing = if readded {
        NftTable::read(ns, "inet", NFT_TABLE)?
    } else {
        NftTable::read_chain(ns, "inet", NFT_TABLE, "postrouting")?
    };
    let mut batch = NftBatch::new();
    // Declaring a table or chain that exists costs a slow kernel commit;
    // only do it when something is missing (the reference always does).
    // The goto stands for masq_checks: the kernel does not delete a chain
    // a rule jumps to.
    let complete = existing.as_ref().is_some_and(|t| {
        let rules: Vec<&NftRule> = t.rules_in("postrouting").collect();
        rules.len() == 3 && rules[2].expr == serde_json::json!([expr::goto(NFT_CHAIN)])
    });
    if !complete {
        batch.add_table(
            "inet",
            NFT_TABLE,
            Some("Masquerading for plugins from github.com/containernetworking/plugins"),
        );
        batch.add_chain(
            "inet",
            NFT_TABLE,
            NFT_CHAIN,
            Some("Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"),
        );
        batch.add_base_chain("inet", NFT_TABLE, "postrouting", "nat", "postrouting", 100);
        batch.flush_chain("inet", NFT_TABLE, "postrouting");
        batch.add_rule(
            "inet",
            NFT_TABLE,
            "postrouting",
            vec![expr::payload("ip", "daddr", "==", expr::prefix("224.0.0.0", 4)), expr::ret()],
            None,
        );
        batch.add_rule(
            "inet",
            NFT_TABLE,
            "postrouting",
            vec![expr::payload("ip6", "daddr", "==", expr::prefix("ff00::", 8)), expr::ret()],
            None,
        );
        batch.add_rule("inet", NFT_TABLE, "postrouting", vec![expr::goto(NFT_CHAIN)], None);
    }
    for stale in existing.iter().flat_map(|t| t.rules_in(NFT_CHAIN)) {
        if stale.comment.as_deref().is_some_and(|c| c.starts_with(&instance)) {
            batch.delete_rule(stale);
        }
    }
    for ip in ips {
        let family = if ip.is_ipv4() { "ip" } else { "ip6" };
        let subnet = ip.masked();
        let rule = vec![
            expr::payload(family, "saddr", "==", serde_json::json!(ip.addr.to_string())),
            expr::payload(family, "daddr", "!=", expr::prefix(&subnet.addr.to_string(), subnet.prefix)),
            expr::masquerade(),
        ];
        batch.add_rule("inet", NFT_TABLE, NFT_CHAIN, rule, Some(&comment));
    }
    let echo = batch.apply_echo(ns)?;
    let handles =
        NftHandles::of_echo(ns, ("inet", NFT_TABLE, "postrouting"), existing.as_ref(), &echo, |c| c == comment);
    match handles.filter(|h| h.rules.len() == ips.len()) {
        Some(handles) => record::write(&instance, &handles),
        // Without the numbers DEL lists the table, as the reference does.
        None => {
            record::remove(&instance);
            Ok(())
        }
    }
}

/// DEL: the recorded rules by handle while the table is the one they were
/// added to, else (no record, another table, a rule gone) by listing.
fn teardown_nftables(ns: &Netns, instance: &str) -> Result<()> {
    let handles = record::read(instance);
    if handles.as_ref().is_some_and(|h| h.delete(ns, ("inet", NFT_TABLE, "postrouting"))) {
        record::remove(instance);
        return Ok(());
    }
    delete_nft_rules(ns, |comment| comment.starts_with(instance))?;
    if handles.is_some() {
        record::remove(instance);
    }
    Ok(())
}

/// The handles an ADD's nftables rules got ([`NftHandles`]), in the plugin's
/// state directory under `masq-nft/<instance hash>`.
mod record {
    use super::*;

    const DIR: &str = "masq-nft";

    pub fn read(instance: &str) -> Option<NftHandles> {
        let bytes = crate::state::read(&format!("{DIR}/{instance}")).ok()??;
        NftHandles::decode(std::str::from_utf8(&bytes).ok()?, NFT_CHAIN)
    }

    pub fn write(instance: &str, handles: &NftHandles) -> Result<()> {
        crate::state::replace(&format!("{DIR}/{instance}"), handles.encode().as_bytes())
            .map_err(|e| internal(format!("recording the masquerade rules' handles: {}", e.message)))
    }

    pub fn remove(instance: &str) {
        let _ = crate::state::remove(&format!("{DIR}/{instance}"));
    }

    pub fn instances() -> Option<Vec<String>> {
        crate::state::files(DIR).ok()
    }
}

/// Deletes the masquerade rules whose comment matches; nothing when nft
/// is not usable or the table does not exist.
fn delete_nft_rules(ns: &Netns, matches: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(Some(table)) = NftTable::read(ns, "inet", NFT_TABLE) else { return Ok(()) };
    let mut batch = NftBatch::new();
    for rule in table.rules_in(NFT_CHAIN) {
        if rule.comment.as_deref().is_some_and(&matches) {
            batch.delete_rule(rule);
        }
    }
    batch.apply(ns)
}
