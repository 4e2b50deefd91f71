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
//! skeleton is declared only when it is missing or its conditions changed
//! (re-declaring existing objects costs a kernel commit per ADD), and an
//! ADD or DEL reads only the one-rule `prerouting` chain, not the chains
//! that hold every container's rules: ADD records its rules' handles
//! ([`Record`]) and DEL deletes by them. A container without handles (the
//! reference's, or cni-wasm 0.1's) is found by listing, as the reference
//! does.

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::{NftBatch, NftHandles, NftTable, expr};
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

pub fn family(container: &IpNet) -> &'static str {
    if container.is_ipv4() { "ip" } else { "ip6" }
}

/// What an ADD recorded of its nftables rules, in the plugin's state under
/// `nftables/<network>/<containerID>`: the container id (all that records
/// of cni-wasm 0.1 hold), then a line per family the ADD wrote to,
/// `<family> <NftHandles>`, or `<family> list` when the handles could not
/// be had. A family without a line has nothing of this container's, except
/// in a 0.1 record, where every family is listed as the reference does.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Record {
    pub container_id: String,
    pub families: Vec<(String, Option<NftHandles>)>,
}

impl Record {
    pub fn new(container_id: &str) -> Record {
        Record { container_id: container_id.into(), families: Vec::new() }
    }

    pub fn encode(&self) -> String {
        let mut text = self.container_id.clone();
        for (family, handles) in &self.families {
            let handles = handles.as_ref().map_or_else(|| "list".to_string(), NftHandles::encode);
            text.push_str(&format!("\n{family} {handles}"));
        }
        text
    }

    pub fn decode(text: &str) -> Record {
        let mut lines = text.lines();
        let container_id = lines.next().unwrap_or_default().to_string();
        let families = lines
            .filter_map(|line| {
                let (family, handles) = line.split_once(' ')?;
                Some((family.to_string(), NftHandles::decode(handles, HOSTPORTS)))
            })
            .collect();
        Record { container_id, families }
    }

    /// How to find a family's rules of this container.
    fn lookup(&self, family: &str) -> Found<'_> {
        if self.families.is_empty() {
            return Found::List;
        }
        match self.families.iter().find(|(f, _)| f == family) {
            Some((_, Some(handles))) => Found::Handles(handles),
            Some((_, None)) => Found::List,
            None => Found::Nothing,
        }
    }
}

enum Found<'a> {
    Handles(&'a NftHandles),
    List,
    Nothing,
}

fn lookup<'a>(record: Option<&'a Record>, family: &str) -> Found<'a> {
    record.map_or(Found::List, |r| r.lookup(family))
}

/// The skeleton's one-rule chain: reading it tells whether the skeleton is
/// complete and which table this is, at a cost that does not grow with the
/// number of attachments.
const PROBE: &str = "prerouting";

/// Sets up one address's mappings; returns the handles of the rules it
/// added (None: they could not be had, DEL will list).
pub fn forward_ports(
    host: &Netns,
    conf: &PortMap,
    container_id: &str,
    container: IpNet,
    previous: Option<&Record>,
) -> Result<Option<NftHandles>> {
    let family = family(&container);
    let conditions = parse_conditions(conf.conditions(container.is_ipv4()))?;
    // The base chains' rule carries its conditions as a comment, so an ADD
    // can tell whether the skeleton is already what it would write.
    let skeleton_comment = skeleton_comment(conf.conditions(container.is_ipv4()));
    let found = match previous {
        Some(record) => record.lookup(family),
        // A first ADD: nothing of the container's to replace.
        None => Found::Nothing,
    };
    let fast = !matches!(found, Found::List);
    let existing =
        if fast { NftTable::read_chain(host, family, TABLE, PROBE)? } else { NftTable::read(host, family, TABLE)? };
    let attempt = |existing: Option<&NftTable>, found: &Found| {
        let mut batch = NftBatch::new();
        // prerouting and output are written in one transaction with
        // hostports_all's jumps, and the kernel keeps a chain while a rule
        // jumps to it: the probe's rule stands for the rest.
        let complete = existing.is_some_and(|t| {
            let rules: Vec<_> = t.rules_in(PROBE).collect();
            rules.len() == 1 && rules[0].comment.as_deref() == Some(skeleton_comment.as_str())
        });
        if !complete {
            skeleton(&mut batch, family, conf, &conditions, &skeleton_comment);
        }
        // A repeated ADD replaces the container's rules rather than doubling them.
        match found {
            Found::Handles(handles) if existing.is_some_and(|t| handles.names(t)) => {
                handles.delete_in(&mut batch, family, TABLE)
            }
            _ => {
                for stale in existing.iter().flat_map(|t| t.rules.iter()) {
                    if stale.comment.as_deref() == Some(container_id)
                        && [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING].contains(&stale.chain.as_str())
                    {
                        batch.delete_rule(stale);
                    }
                }
            }
        }
        container_rules(&mut batch, family, conf, container_id, container);
        batch.apply_echo(host)
    };
    let echo = match attempt(existing.as_ref(), &found) {
        Ok(echo) => echo,
        // The skeleton damaged behind the probe's back, or a recorded rule
        // gone: once more from a listing of the whole table.
        Err(_) if fast => {
            let listed = NftTable::read(host, family, TABLE)?;
            attempt(listed.as_ref(), &Found::List)?
        }
        Err(e) => return Err(e),
    };
    Ok(NftHandles::of_echo(host, (family, TABLE, PROBE), existing.as_ref(), &echo, |c| c == container_id))
}

/// The table, its chains and the base chains' jump rules. The reference
/// declares them on every ADD; here only when the probe says something is
/// missing (re-declaring costs a kernel commit).
fn skeleton(batch: &mut NftBatch, family: &str, conf: &PortMap, conditions: &[Value], comment: &str) {
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
        let mut rule = conditions.to_vec();
        rule.push(expr::fib_daddr_local());
        rule.push(expr::jump(HOSTPORTS_ALL));
        batch.add_rule(family, TABLE, chain, rule, Some(comment));
    }
    if conf.snat {
        batch.add_base_chain(family, TABLE, MASQUERADING, "nat", "postrouting", SRCNAT);
    }
}

/// The container's DNAT rules, and its hairpin and localhost masquerade.
fn container_rules(batch: &mut NftBatch, family: &str, conf: &PortMap, container_id: &str, container: IpNet) {
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
}

fn any(container: &IpNet) -> Value {
    if container.is_ipv4() { expr::prefix("0.0.0.0", 0) } else { expr::prefix("::", 0) }
}

fn skeleton_comment(conditions: &[String]) -> String {
    if conditions.is_empty() { "cni-wasm: no conditions".into() } else { format!("cni-wasm: {}", conditions.join(" ")) }
}

/// Deletes the container's rules from both families' tables: by the
/// recorded handles where the record has them, else by listing the table.
pub fn unforward_ports(host: &Netns, container_id: &str, record: Option<&Record>) -> Result<()> {
    for family in ["ip", "ip6"] {
        match lookup(record, family) {
            Found::Nothing => continue,
            Found::Handles(handles) if handles.delete(host, (family, TABLE, PROBE)) => continue,
            _ => {}
        }
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
    // The two chains that hold containers' rules, not the whole table (the
    // skeleton is not the reference's CHECK either).
    let hostports = NftTable::read_chain(host, family, TABLE, HOSTPORTS)?
        .ok_or_else(|| internal(format!("table {family} {TABLE} not found")))?;
    let count = |table: &NftTable, chain: &str| {
        table.rules_in(chain).filter(|r| r.comment.as_deref() == Some(container_id)).count()
    };
    let expected_ports = conf.mappings.iter().filter(|m| m.applies_to(container.addr)).count();
    if expected_ports > 0 && count(&hostports, HOSTPORTS) < expected_ports {
        return Err(internal(format!("missing hostport rules in {HOSTPORTS:?} chain")));
    }
    let expected_masq = match (conf.snat, container.is_ipv4() && !conf.masq_all) {
        (false, _) => 0,
        (true, true) => 2,
        (true, false) => 1,
    };
    let masquerading = match expected_masq {
        0 => None,
        _ => NftTable::read_chain(host, family, TABLE, MASQUERADING)?,
    };
    if masquerading.as_ref().map_or(0, |t| count(t, MASQUERADING)) < expected_masq {
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
