//! The nftables backend (`"backend": "nftables"`). The reference has none
//! (it treats the value like an unset backend and uses iptables); this one
//! mirrors the iptables layout in one table of its own:
//!
//! ```text
//! table inet cni_firewall {
//!     chain forward { type filter hook forward priority filter; policy accept;
//!         jump isolation_stage_1
//!         jump admin
//!         jump containers }
//!     chain admin { }              # the admin's rules; the plugin never edits it
//!     chain containers {           # per attachment, commented with its identity
//!         ip daddr 10.89.0.2 ct state established,related accept comment "<net hash>-<attachment hash>, net: …"
//!         ip saddr 10.89.0.2 accept comment "…" }
//!     chain isolation_stage_1 {    # ingressPolicy same-bridge / isolated, per bridge
//!         iifname "br" oifname != "br" jump isolation_stage_2 comment "…"
//!         iifname "br" oifname "br" drop comment "…"   # isolated only
//!     }
//!     chain isolation_stage_2 { oifname "br" drop comment "…" }
//! }
//! ```
//!
//! Container rules carry the masquerade rules' identity comment
//! (`<sha512(network)>-<sha512(ifname:id)>`, 16 hex each), so DEL finds
//! them without prevResult and GC finds those of attachments that are gone.
//! An `accept` here ends only this table's forward chain: unlike iptables'
//! CNI-FORWARD it cannot override another table's drop.

use cni_plugin_sdk::Attachment;
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::{NftBatch, NftHandles, NftTable, expr, hash_with_prefix};
use serde_json::{Value, json};

use crate::config::IngressPolicy;
use crate::iptables::Isolation;

pub const TABLE: &str = "cni_firewall";
const FAMILY: &str = "inet";
const FORWARD: &str = "forward";
const ADMIN: &str = "admin";
const CONTAINERS: &str = "containers";
const STAGE_1: &str = "isolation_stage_1";
const STAGE_2: &str = "isolation_stage_2";
/// The base chain's jumps, in order.
const JUMPS: [&str; 3] = [STAGE_1, ADMIN, CONTAINERS];
/// knftables.CommentLengthMax, as the masquerade rules.
const COMMENT_MAX: usize = 128;

pub fn network_hash(network: &str) -> String {
    hash_with_prefix(16, "", network)
}

/// The prefix every comment of one attachment's rules starts with.
pub fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!("{}-{}", network_hash(network), hash_with_prefix(16, "", &format!("{ifname}:{container_id}")))
}

fn instance_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    );
    comment.truncate(COMMENT_MAX);
    comment
}

fn ip_family(ip: &IpNet) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

fn address_rules(ip: &IpNet) -> [Vec<Value>; 2] {
    let family = ip_family(ip);
    let address = json!(ip.addr.to_string());
    [
        vec![
            expr::payload(family, "daddr", "==", address.clone()),
            expr::ct_state(&["established", "related"]),
            expr::accept(),
        ],
        vec![expr::payload(family, "saddr", "==", address), expr::accept()],
    ]
}

fn interface(key: &str, op: &str, name: &str) -> Value {
    expr::meta(key, op, json!(name))
}

/// One bridge's isolation rules: (chain, comment, expressions). The
/// comments make each rule findable, so it is added once.
fn isolation_rules(isolation: &Isolation) -> Vec<(&'static str, String, Vec<Value>)> {
    let bridge = isolation.bridge.as_str();
    let mut rules = vec![(
        STAGE_1,
        format!("ingressPolicy: same-bridge|isolated, bridge: {bridge}"),
        vec![interface("iifname", "==", bridge), interface("oifname", "!=", bridge), expr::jump(STAGE_2)],
    )];
    if isolation.policy == IngressPolicy::Isolated {
        rules.push((
            STAGE_1,
            format!("ingressPolicy: isolated, bridge: {bridge}"),
            vec![interface("iifname", "==", bridge), interface("oifname", "==", bridge), expr::drop()],
        ));
    }
    rules.push((
        STAGE_2,
        format!("ingressPolicy: same-bridge|isolated, bridge: {bridge}"),
        vec![interface("oifname", "==", bridge), expr::drop()],
    ));
    rules
}

fn layout_complete(table: &NftTable) -> bool {
    JUMPS.iter().all(|c| table.has_chain(c)) && table.has_chain(FORWARD) && forward_complete(table)
}

/// The base chain holds the three jumps. The kernel keeps a chain while a
/// rule jumps to it, so this alone says the chains exist.
fn forward_complete(table: &NftTable) -> bool {
    let jumps: Vec<Value> = table.rules_in(FORWARD).map(|r| r.expr.clone()).collect();
    let expected: Vec<Value> = JUMPS.iter().map(|c| json!([expr::jump(c)])).collect();
    jumps == expected
}

/// The table, its chains and the base chain's jumps (declaring what exists
/// costs a kernel commit, so only when the probe says something is
/// missing; the base chain is rewritten whole, it holds nothing else).
fn declare_layout(batch: &mut NftBatch) {
    batch.add_table(FAMILY, TABLE, Some("CNI firewall plugin rules"));
    batch.add_base_chain(FAMILY, TABLE, FORWARD, "filter", "forward", 0);
    for chain in [ADMIN, CONTAINERS, STAGE_1, STAGE_2] {
        batch.add_chain(FAMILY, TABLE, chain, None);
    }
    batch.flush_chain(FAMILY, TABLE, FORWARD);
    for chain in JUMPS {
        batch.add_rule(FAMILY, TABLE, FORWARD, vec![expr::jump(chain)], None);
    }
}

/// Whose rules: one attachment of one network.
pub struct Owner<'a> {
    pub network: &'a str,
    pub ifname: &'a str,
    pub container_id: &'a str,
}

impl Owner<'_> {
    fn instance(&self) -> String {
        instance_hash(self.network, self.ifname, self.container_id)
    }

    fn comment(&self) -> String {
        instance_comment(self.network, self.ifname, self.container_id)
    }
}

/// How DEL finds an attachment's rules.
pub enum Found {
    /// By the handles its ADD recorded.
    Handles(NftHandles),
    /// By listing the table (no record of the handles).
    List,
    /// The record says its ADD wrote no nftables rules.
    Nothing,
}

/// The small base chain, read to tell the layout is complete and which
/// table this is without reading the chain of every attachment's rules.
const PROBE: &str = FORWARD;

/// ADD, in one transaction: the layout, the attachment's rules (replacing
/// any an earlier ADD of the same attachment left), the bridge's isolation
/// rules unless present. Reads the three-rule base chain and, to isolate,
/// the per-bridge stage 1 chain; when that view was wrong (a chain gone
/// behind it, a recorded rule deleted), once more from the whole table.
/// Returns the handles of the attachment's rules.
pub fn add(
    host: &Netns,
    attachment: &Owner,
    ips: &[IpNet],
    isolation: Option<&Isolation>,
    previous: Option<&NftHandles>,
) -> Result<Option<NftHandles>> {
    let probe = NftTable::read_chain(host, FAMILY, TABLE, PROBE)?;
    let comment = attachment.comment();
    // `view` is the probe (and stage 1), or the whole table.
    let attempt = |view: Option<&NftTable>, whole: bool, previous: Option<&NftHandles>| {
        let mut batch = NftBatch::new();
        let complete = view.is_some_and(|t| if whole { layout_complete(t) } else { forward_complete(t) });
        if !complete {
            declare_layout(&mut batch);
        }
        match previous {
            Some(handles) if view.is_some_and(|t| handles.names(t)) => handles.delete_in(&mut batch, FAMILY, TABLE),
            _ => {
                let instance = attachment.instance();
                for stale in view.iter().flat_map(|t| t.rules_in(CONTAINERS)) {
                    if stale.comment.as_deref().is_some_and(|c| c.starts_with(&instance)) {
                        batch.delete_rule(stale);
                    }
                }
            }
        }
        for ip in ips {
            for rule in address_rules(ip) {
                batch.add_rule(FAMILY, TABLE, CONTAINERS, rule, Some(&comment));
            }
        }
        if let Some(isolation) = isolation {
            for (chain, comment, rule) in isolation_rules(isolation) {
                // Unlisted, stage 2's rule is there with stage 1's (one
                // batch adds both, under one comment).
                let listed = if whole { chain } else { STAGE_1 };
                let present = view
                    .iter()
                    .flat_map(|t| t.rules_in(listed))
                    .any(|r| r.comment.as_deref() == Some(comment.as_str()));
                if !present {
                    batch.add_rule(FAMILY, TABLE, chain, rule, Some(&comment));
                }
            }
        }
        batch.apply_echo(host)
    };
    let whole = || NftTable::read(host, FAMILY, TABLE);
    let echo = match &probe {
        // A first ADD on this node (or a damaged layout): the whole table.
        None => attempt(whole()?.as_ref(), true, None)?,
        Some(probe) => {
            let mut view = probe.clone();
            if isolation.is_some()
                && let Some(stage_1) = NftTable::read_chain(host, FAMILY, TABLE, STAGE_1)?
            {
                view.rules.extend(stage_1.rules);
            }
            match attempt(Some(&view), false, previous) {
                Ok(echo) => echo,
                // The view was wrong (a chain gone, a recorded rule deleted).
                Err(_) => attempt(whole()?.as_ref(), true, None)?,
            }
        }
    };
    Ok(NftHandles::of_echo(host, (FAMILY, TABLE, PROBE), probe.as_ref(), &echo, |c| c == comment))
}

/// DEL: the attachment's rules, by their handles or found by their comment
/// (prevResult is not needed). The layout and isolation rules stay for
/// other containers.
pub fn remove(host: &Netns, attachment: &Owner, found: Found) -> Result<()> {
    match found {
        Found::Nothing => Ok(()),
        Found::Handles(handles) if handles.delete(host, (FAMILY, TABLE, PROBE)) => Ok(()),
        Found::Handles(_) | Found::List => {
            let instance = attachment.instance();
            delete_container_rules(host, |comment| comment.starts_with(&instance))
        }
    }
}

/// GC: the rules of this network's attachments that are not in `valid`.
pub fn gc(host: &Netns, network: &str, valid: &[Attachment]) -> Result<()> {
    let prefix = format!("{}-", network_hash(network));
    let keep: Vec<String> = valid.iter().map(|a| instance_hash(network, &a.ifname, &a.container_id)).collect();
    delete_container_rules(host, |comment| {
        comment.starts_with(&prefix) && !keep.iter().any(|k| comment.starts_with(k.as_str()))
    })
}

fn delete_container_rules(host: &Netns, matches: impl Fn(&str) -> bool) -> Result<()> {
    let Some(table) = NftTable::read(host, FAMILY, TABLE)? else { return Ok(()) };
    let mut batch = NftBatch::new();
    for rule in table.rules_in(CONTAINERS) {
        if rule.comment.as_deref().is_some_and(&matches) {
            batch.delete_rule(rule);
        }
    }
    batch.apply(host)
}

/// CHECK: the layout, both rules of every address with the attachment's
/// comment, and the bridge's isolation rules.
pub fn check(
    host: &Netns,
    network: &str,
    ifname: &str,
    container_id: &str,
    ips: &[IpNet],
    isolation: Option<&Isolation>,
) -> Result<()> {
    // The chains CHECK looks at, each read alone: a listing of the table
    // would cost what every other attachment's rules cost too.
    let mut table = NftTable::read_chain(host, FAMILY, TABLE, FORWARD)?
        .ok_or_else(|| internal(format!("nftables table {FAMILY} {TABLE} not found")))?;
    let mut chains = vec![CONTAINERS];
    if isolation.is_some() {
        chains.extend([STAGE_1, STAGE_2]);
    }
    for chain in chains {
        if let Some(listed) = NftTable::read_chain(host, FAMILY, TABLE, chain)? {
            table.chains.extend(listed.chains);
            table.rules.extend(listed.rules);
        }
    }
    // The jumps from forward keep admin and the stages (the kernel does not
    // delete a chain a rule jumps to).
    if !forward_complete(&table) || !table.has_chain(CONTAINERS) {
        return Err(internal(format!("nftables table {FAMILY} {TABLE} lacks its chains or the jumps from {FORWARD}")));
    }
    let comment = instance_comment(network, ifname, container_id);
    let ours: Vec<&Value> = table
        .rules_in(CONTAINERS)
        .filter(|r| r.comment.as_deref() == Some(comment.as_str()))
        .map(|r| &r.expr)
        .collect();
    for ip in ips {
        for rule in address_rules(ip) {
            if !ours.iter().any(|expr| same_rule(expr, &rule)) {
                return Err(internal(format!(
                    "expected nftables rule for {} in chain {CONTAINERS} not found",
                    ip.addr
                )));
            }
        }
    }
    if let Some(isolation) = isolation {
        for (chain, comment, _) in isolation_rules(isolation) {
            if !table.rules_in(chain).any(|r| r.comment.as_deref() == Some(comment.as_str())) {
                return Err(internal(format!("expected nftables rule {comment:?} in chain {chain} not found")));
            }
        }
    }
    Ok(())
}

/// Whether a listed rule is the one written: nft lists the same
/// expressions back, except that a set of flags may come back as a list
/// in another order.
fn same_rule(listed: &Value, written: &[Value]) -> bool {
    let Some(listed) = listed.as_array() else { return false };
    listed.len() == written.len() && listed.iter().zip(written).all(|(a, b)| a == b || same_flags(a, b))
}

fn same_flags(a: &Value, b: &Value) -> bool {
    let sorted = |v: &Value| {
        let mut v = v["match"]["right"].as_array().cloned().unwrap_or_default();
        v.sort_by_key(|x| x.to_string());
        v
    };
    a["match"]["left"] == b["match"]["left"]
        && a["match"]["op"] == b["match"]["op"]
        && sorted(a) == sorted(b)
        && !sorted(a).is_empty()
}

/// Whether nftables can be used here (STATUS).
pub fn usable(host: &Netns) -> Result<()> {
    cni_plugin_sdk::netfilter_capability::nft_list_table(host, FAMILY, TABLE)
        .map(drop)
        .map_err(|e| internal(format!("nftables is not usable: {}", e.message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_identify_network_and_attachment() {
        let comment = instance_comment("podman", "eth0", "abc");
        assert!(comment.starts_with(&format!("{}-", network_hash("podman"))));
        assert!(comment.starts_with(&instance_hash("podman", "eth0", "abc")));
        assert!(comment.ends_with(", net: podman, if: eth0, id: abc"));
        assert_ne!(instance_hash("podman", "eth0", "abc"), instance_hash("podman", "eth1", "abc"));
        assert!(instance_comment("n", "eth0", &"x".repeat(300)).len() <= COMMENT_MAX);
    }

    #[test]
    fn a_listed_rule_matches_what_was_written() {
        let ip: IpNet = "fd89::2/128".parse().unwrap();
        let [replies, from] = address_rules(&ip);
        let listed = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "fd89::2"}},
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["related", "established"]}},
            {"accept": null}
        ]);
        assert!(same_rule(&listed, &replies));
        assert!(!same_rule(&listed, &from));
    }

    #[test]
    fn the_layout_is_complete_only_with_every_chain_and_jump() {
        let mut table = NftTable {
            chains: vec![FORWARD.into(), ADMIN.into(), CONTAINERS.into(), STAGE_1.into(), STAGE_2.into()],
            ..NftTable::default()
        };
        assert!(!layout_complete(&table));
        for (handle, chain) in JUMPS.iter().enumerate() {
            table.rules.push(cni_plugin_sdk::netfilter::NftRule {
                family: FAMILY.into(),
                table: TABLE.into(),
                chain: FORWARD.into(),
                handle: handle as u64,
                comment: None,
                expr: json!([expr::jump(chain)]),
            });
        }
        assert!(layout_complete(&table));
    }
}
