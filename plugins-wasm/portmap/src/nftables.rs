//! The nftables backend, the same tables, chains and comments as the
//! upstream reference (`ip cni_hostport` / `ip6 cni_hostport`), so either
//! implementation removes what the other set up:
//!
//! ```text
//! prerouting, output (nat, dstnat): [conditions] fib daddr type local jump hostports_all
//! hostports_all:                    jump hostip_hostports; jump hostports
//! hostports:                        [ip daddr <host ip>] tcp dport 8080 dnat to <container>:80  comment "<containerID>"
//! masquerading (nat, srcnat):       ip saddr <container> ip daddr <container> masquerade        comment "<containerID>"
//!                                   ip saddr 127.0.0.1 ip daddr <container> masquerade          comment "<containerID>"
//! ```
//!
//! One nft transaction per family. Unlike the reference, the shared
//! skeleton is declared only when it is missing or its conditions changed:
//! re-declaring existing objects costs a kernel commit per ADD.

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::{NftBatch, NftTable, expr};
use serde_json::{Value, json};

use crate::config::PortMap;

pub const TABLE: &str = "cni_hostport";
const HOSTPORTS: &str = "hostports";
/// Legacy (rules with a host IP used to live here); kept, and searched on
/// DEL, so upgrades stay transparent.
const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
const HOSTPORTS_ALL: &str = "hostports_all";
const MASQUERADING: &str = "masquerading";
/// nft's dstnat and srcnat priorities.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

fn family(container: &IpNet) -> &'static str {
    if container.is_ipv4() { "ip" } else { "ip6" }
}

pub fn forward_ports(host: &Netns, conf: &PortMap, container_id: &str, container: IpNet) -> Result<()> {
    let family = family(&container);
    let conditions = parse_conditions(conf.conditions(container.is_ipv4()))?;
    // The base chains' rule carries its conditions as a comment, so an ADD
    // can tell whether the skeleton is already what it would write.
    let skeleton_comment = skeleton_comment(conf.conditions(container.is_ipv4()));
    let existing = NftTable::read(host, family, TABLE)?;
    let mut batch = NftBatch::new();
    let complete = existing.as_ref().is_some_and(|t| {
        [HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL].iter().all(|c| t.has_chain(c))
            && (!conf.snat || t.has_chain(MASQUERADING))
            && ["prerouting", "output"].iter().all(|chain| {
                let rules: Vec<_> = t.rules_in(chain).collect();
                rules.len() == 1 && rules[0].comment.as_deref() == Some(skeleton_comment.as_str())
            })
            && t.rules_in(HOSTPORTS_ALL).count() == 2
    });
    if !complete {
        batch.add_table(family, TABLE, Some("CNI portmap plugin"));
        for chain in [HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL] {
            batch.add_chain(family, TABLE, chain, None);
        }
        batch.flush_chain(family, TABLE, HOSTPORTS_ALL);
        batch.add_rule(family, TABLE, HOSTPORTS_ALL, vec![expr::jump(HOSTIP_HOSTPORTS)], None);
        batch.add_rule(family, TABLE, HOSTPORTS_ALL, vec![expr::jump(HOSTPORTS)], None);
        for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
            batch.add_base_chain(family, TABLE, chain, "nat", hook, DSTNAT);
            batch.flush_chain(family, TABLE, chain);
            let mut rule = conditions.clone();
            rule.push(expr::fib_daddr_local());
            rule.push(expr::jump(HOSTPORTS_ALL));
            batch.add_rule(family, TABLE, chain, rule, Some(&skeleton_comment));
        }
        if conf.snat {
            batch.add_base_chain(family, TABLE, MASQUERADING, "nat", "postrouting", SRCNAT);
        }
    }
    // A repeated ADD replaces the container's rules rather than doubling them.
    for stale in existing.iter().flat_map(|t| t.rules.iter()) {
        if stale.comment.as_deref() == Some(container_id)
            && [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING].contains(&stale.chain.as_str())
        {
            batch.delete_rule(stale);
        }
    }
    let address = container.addr.to_string();
    for mapping in conf.mappings.iter().filter(|m| m.applies_to(container.addr)) {
        let mut rule = Vec::new();
        if let Some(host_ip) = mapping.host_destination() {
            rule.push(expr::payload(family, "daddr", "==", json!(host_ip.to_string())));
        }
        rule.push(expr::payload(&mapping.protocol, "dport", "==", json!(mapping.host_port)));
        rule.push(json!({"dnat": {"addr": address, "port": mapping.container_port}}));
        batch.add_rule(family, TABLE, HOSTPORTS, rule, Some(container_id));
    }
    if conf.snat {
        // Hairpin and localhost traffic must come back through the host.
        let mut sources = vec![if conf.masq_all { any(&container) } else { json!(address) }];
        if container.is_ipv4() && !conf.masq_all {
            sources.push(json!("127.0.0.1"));
        }
        for source in sources {
            let rule = vec![
                expr::payload(family, "saddr", "==", source),
                expr::payload(family, "daddr", "==", json!(address)),
                expr::masquerade(),
            ];
            batch.add_rule(family, TABLE, MASQUERADING, rule, Some(container_id));
        }
    }
    batch.apply(host).map_err(|e| internal(format!("unable to set up nftables rules for port mappings: {}", e.msg)))
}

fn any(container: &IpNet) -> Value {
    if container.is_ipv4() { expr::prefix("0.0.0.0", 0) } else { expr::prefix("::", 0) }
}

fn skeleton_comment(conditions: &[String]) -> String {
    if conditions.is_empty() { "cni-wasm: no conditions".into() } else { format!("cni-wasm: {}", conditions.join(" ")) }
}

/// Deletes the container's rules from both families' tables.
pub fn unforward_ports(host: &Netns, container_id: &str) -> Result<()> {
    for family in ["ip", "ip6"] {
        let Some(table) = NftTable::read(host, family, TABLE)? else { continue };
        let mut batch = NftBatch::new();
        for rule in table.rules.iter().filter(|r| r.comment.as_deref() == Some(container_id)) {
            if [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING].contains(&rule.chain.as_str()) {
                batch.delete_rule(rule);
            }
        }
        batch.apply(host).map_err(|e| internal(format!("error deleting nftables rules: {}", e.msg)))?;
    }
    Ok(())
}

/// The reference's CHECK: at least one DNAT rule per mapping and the
/// masquerade rules, found by the container-id comment.
pub fn check_ports(host: &Netns, conf: &PortMap, container_id: &str, container: IpNet) -> Result<()> {
    let family = family(&container);
    let table =
        NftTable::read(host, family, TABLE)?.ok_or_else(|| internal(format!("table {family} {TABLE} not found")))?;
    let count = |chain: &str| table.rules_in(chain).filter(|r| r.comment.as_deref() == Some(container_id)).count();
    let expected_ports = conf.mappings.iter().filter(|m| m.applies_to(container.addr)).count();
    if expected_ports > 0 && count(HOSTPORTS) < expected_ports {
        return Err(internal(format!("missing hostport rules in {HOSTPORTS:?} chain")));
    }
    let expected_masq = match (conf.snat, container.is_ipv4() && !conf.masq_all) {
        (false, _) => 0,
        (true, true) => 2,
        (true, false) => 1,
    };
    if count(MASQUERADING) < expected_masq {
        return Err(internal(format!("missing hostport rules in {MASQUERADING:?} chain")));
    }
    Ok(())
}

/// Conditions in nft syntax, as JSON matches. The forms supported are the
/// ones port mapping conditions use: `<ip|ip6|tcp|udp> <field> [op] <value>`
/// and `<meta key|iifname|oifname> [op] <value>`, one or more per string.
fn parse_conditions(conditions: &[String]) -> Result<Vec<Value>> {
    let tokens: Vec<&str> = conditions.iter().flat_map(|c| c.split_whitespace()).collect();
    let mut matches = Vec::new();
    let mut rest = tokens.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        let (left, tail) = match *first {
            "ip" | "ip6" | "tcp" | "udp" | "sctp" => {
                let (field, tail) = tail.split_first().ok_or_else(|| bad_condition(conditions))?;
                (json!({"payload": {"protocol": first, "field": field}}), tail)
            }
            "iifname" | "oifname" | "iif" | "oif" | "mark" | "l4proto" => (json!({"meta": {"key": first}}), tail),
            "meta" => {
                let (key, tail) = tail.split_first().ok_or_else(|| bad_condition(conditions))?;
                (json!({"meta": {"key": key}}), tail)
            }
            _ => return Err(bad_condition(conditions)),
        };
        let (op, tail) = match tail.first().copied() {
            Some(op @ ("==" | "!=" | "<" | ">" | "<=" | ">=")) => (op, &tail[1..]),
            _ => ("==", tail),
        };
        let (value, tail) = tail.split_first().ok_or_else(|| bad_condition(conditions))?;
        matches.push(json!({"match": {"op": op, "left": left, "right": condition_value(value)}}));
        rest = tail;
    }
    Ok(matches)
}

fn condition_value(text: &str) -> Value {
    let text = text.trim_matches('"');
    if let Ok(number) = text.parse::<u64>() {
        return json!(number);
    }
    if let Some((address, len)) = text.split_once('/')
        && let Ok(len) = len.parse::<u8>()
    {
        return expr::prefix(address, len);
    }
    json!(text)
}

fn bad_condition(conditions: &[String]) -> cni_plugin_sdk::Error {
    internal(format!(
        "unsupported nftables condition {conditions:?}: cni-wasm accepts `<ip|ip6|tcp|udp|sctp> <field> [op] <value>` \
         and `<iifname|oifname|mark|meta KEY> [op] <value>`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_become_json_matches() {
        let parsed = parse_conditions(&["ip daddr != 10.0.0.0/8".into(), "iifname eth0".into()]).unwrap();
        assert_eq!(
            parsed,
            [
                json!({"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}),
                json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}),
            ]
        );
        assert!(parse_conditions(&["ct state new".into()]).is_err());
        assert!(parse_conditions(&["ip daddr".into()]).is_err());
    }
}
