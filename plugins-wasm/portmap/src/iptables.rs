//! The iptables backend, rule for rule the reference's (table nat):
//!
//! ```text
//! PREROUTING, OUTPUT:  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! CNI-HOSTPORT-DNAT:   -m comment "dnat name: .. id: .." -m multiport -p tcp --dports 8080,8081 -j CNI-DN-<hash>
//! CNI-DN-<hash>:       -s <container net> -p tcp --dport 8080 -j CNI-HOSTPORT-SETMARK   (hairpin)
//!                      -s 127.0.0.1 -p tcp --dport 8080 -j CNI-HOSTPORT-SETMARK         (localhost, IPv4)
//!                      -p tcp --dport 8080 -j DNAT --to-destination <container ip>:80
//! POSTROUTING (first): -m comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! CNI-HOSTPORT-MASQ:   -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! ```
//!
//! One iptables-restore per family applies all of it atomically. Rules are
//! written in iptables-save's canonical form wherever we compare them.

use std::net::IpAddr;

use cni_plugin_sdk::Attachment;
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::{
    IptablesChange, IptablesTable, chain_name, comment_of, edit_iptables_from, go_quote, iptables_unusable, save_string,
};
use cni_plugin_sdk::types::{ErrorKind, IpFamily};

use crate::config::PortMap;

pub const TOP_DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
pub const SET_MARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
pub const MARK_MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
/// Created by old versions; still torn down so an upgrade leaves nothing.
const OLD_TOP_SNAT_CHAIN: &str = "CNI-HOSTPORT-SNAT";
/// multiport takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;
/// xtables' comment limit.
const COMMENT_MAX: usize = 255;

pub fn dnat_chain(network: &str, container_id: &str) -> String {
    chain_name(network, container_id, "DN-")
}

fn old_snat_chain(network: &str, container_id: &str) -> String {
    chain_name(network, container_id, "SN-")
}

fn family(ip: IpAddr) -> IpFamily {
    if ip.is_ipv4() { IpFamily::Ipv4 } else { IpFamily::Ipv6 }
}

fn mark(bit: u32) -> String {
    let value = 1u32 << bit;
    format!("{value:#x}/{value:#x}")
}

fn entry_comment(network: &str, container_id: &str) -> String {
    let mut comment = format!("dnat name: {} id: {}", go_quote(network), go_quote(container_id));
    if comment.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX - 3;
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
        comment.push_str("...");
    }
    comment
}

/// `-d 10.0.0.1/32` as iptables-save prints an address.
fn host_match(flag: &str, ip: IpAddr) -> String {
    format!("{flag} {}", IpNet::host(ip))
}

/// The rules of the container's DNAT chain, in canonical form.
pub fn dnat_rules(conf: &PortMap, container: IpNet) -> Vec<String> {
    let set_mark = conf.external_set_mark_chain.as_deref().unwrap_or(SET_MARK_CHAIN);
    let v4 = container.is_ipv4();
    let mut rules = Vec::new();
    for mapping in conf.mappings.iter().filter(|m| m.applies_to(container.addr)) {
        let destination = mapping.host_destination().map(|ip| host_match("-d", ip));
        let base = |source: Option<String>| -> String {
            let mut parts: Vec<String> = Vec::new();
            parts.extend(source);
            parts.extend(destination.clone());
            parts.push(format!("-p {0} -m {0} --dport {1}", mapping.protocol, mapping.host_port));
            parts.join(" ")
        };
        if conf.snat {
            // Hairpin: the container reaching itself through the host port.
            let source = if conf.masq_all { None } else { Some(format!("-s {}", container.masked())) };
            rules.push(format!("{} -j {set_mark}", base(source)));
            if v4 && !conf.masq_all {
                rules.push(format!("{} -j {set_mark}", base(Some("-s 127.0.0.1/32".into()))));
            }
        }
        rules.push(format!(
            "{} -j DNAT --to-destination {}",
            base(None),
            socket(container.addr, mapping.container_port)
        ));
    }
    rules
}

fn socket(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

/// One entry rule per protocol (sorted) per group of 15 host ports, in the
/// order the reference writes them; canonical only without conditions.
pub fn entry_rules(conf: &PortMap, container_id: &str, v4: bool) -> Vec<String> {
    let chain = dnat_chain(&conf.name, container_id);
    let comment = save_string(&entry_comment(&conf.name, container_id));
    let conditions: Vec<String> = conf.conditions(v4).iter().map(|c| quote_token(c)).collect();
    let mut protocols: Vec<&str> = conf.mappings.iter().map(|m| m.protocol.as_str()).collect();
    protocols.sort();
    protocols.dedup();
    let mut rules = Vec::new();
    for protocol in protocols {
        // The reference groups every mapping, whatever its host IP family.
        let ports: Vec<String> =
            conf.mappings.iter().filter(|m| m.protocol == protocol).map(|m| m.host_port.to_string()).collect();
        for group in ports.chunks(MULTIPORT_MAX) {
            let mut rule =
                format!("-p {protocol} -m comment --comment {comment} -m multiport --dports {}", group.join(","));
            for condition in &conditions {
                rule.push(' ');
                rule.push_str(condition);
            }
            rule.push_str(&format!(" -j {chain}"));
            rules.push(rule);
        }
    }
    rules
}

/// A condition for an iptables-restore line: one argument, as the
/// reference passes each element to iptables, so one with spaces or quotes
/// is quoted (control characters were refused with the config).
fn quote_token(token: &str) -> String {
    if token.is_empty() || token.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\\' | '\'')) {
        save_string(token)
    } else {
        token.to_string()
    }
}

/// The nat table of the container's family, read once: a failure means
/// iptables is not usable here.
pub fn read_nat(host: &Netns, container: IpNet) -> std::result::Result<IptablesTable, cni_plugin_sdk::types::Error> {
    IptablesTable::read(host, family(container.addr), "nat")
}

pub fn forward_ports(
    host: &Netns,
    conf: &PortMap,
    container_id: &str,
    container: IpNet,
    nat: IptablesTable,
) -> Result<()> {
    let chain = dnat_chain(&conf.name, container_id);
    let dnat = dnat_rules(conf, container);
    let entries = entry_rules(conf, container_id, container.is_ipv4());
    let mark = mark(conf.mark_bit);
    edit_iptables_from(host, family(container.addr), "nat", nat, |table, change| {
        // The mark chains first: the DNAT rules jump to them.
        if conf.snat && conf.external_set_mark_chain.is_none() {
            change.ensure_chain(SET_MARK_CHAIN);
            change.append_unique(
                SET_MARK_CHAIN,
                &format!("-m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark {mark}"),
            );
            change.ensure_chain(MARK_MASQ_CHAIN);
            change.append_unique(MARK_MASQ_CHAIN, &format!("-m mark --mark {mark} -j MASQUERADE"));
            // First in POSTROUTING, or bridge/ptp's masquerade rules win.
            change.insert_unique(
                "POSTROUTING",
                &format!("-m comment --comment \"CNI portfwd requiring masquerade\" -j {MARK_MASQ_CHAIN}"),
            );
        }
        change.ensure_chain(TOP_DNAT_CHAIN);
        for builtin in ["PREROUTING", "OUTPUT"] {
            change.append_unique(builtin, &format!("-m addrtype --dst-type LOCAL -j {TOP_DNAT_CHAIN}"));
        }
        // This container's chain is rebuilt from scratch, so a repeated or
        // changed ADD converges.
        delete_jumps(table, change, TOP_DNAT_CHAIN, &chain);
        change.reset_chain(&chain);
        for rule in &dnat {
            change.append(&chain, rule);
        }
        for rule in &entries {
            change.append(TOP_DNAT_CHAIN, rule);
        }
        Ok(())
    })
}

fn delete_jumps(table: &IptablesTable, change: &mut IptablesChange, from: &str, chain: &str) {
    let suffix = format!(" -j {chain}");
    for rule in table.rules(from).iter().filter(|r| r.ends_with(&suffix)) {
        change.delete(from, rule);
    }
}

/// Removes the container's chains from `families`; a family whose iptables
/// does not work is skipped, as in the reference. With the config (`conf`),
/// the rules an ADD wrote are deleted without reading the table first.
/// Returns whether any family's iptables was usable.
pub fn unforward_ports(
    host: &Netns,
    network: &str,
    container_id: &str,
    families: &[IpFamily],
    conf: Option<&PortMap>,
) -> Result<bool> {
    let chains = [
        (TOP_DNAT_CHAIN, dnat_chain(network, container_id)),
        (OLD_TOP_SNAT_CHAIN, old_snat_chain(network, container_id)),
    ];
    let mut usable = 0;
    for family in families.iter().copied() {
        if let Some(known) = conf.and_then(|conf| known_deletion(conf, container_id, family)) {
            match cni_plugin_sdk::netfilter_capability::iptables_restore(host, family, "nat", &known) {
                Ok(()) => {
                    usable += 1;
                    continue;
                }
                Err(e) if e.kind == ErrorKind::Unsupported => continue,
                // Not as the ADD left it (or never added): read, then edit.
                Err(_) => {}
            }
        }
        // The snapshot also tells whether there is anything to delete, so a
        // DEL with nothing left costs one iptables-save per family.
        let table = match IptablesTable::read(host, family, "nat") {
            Ok(table) => table,
            Err(e) if iptables_unusable(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        usable += 1;
        if !chains.iter().any(|(_, chain)| table.has_chain(chain)) {
            continue;
        }
        edit_iptables_from(host, family, "nat", table, |table, change| {
            for (from, chain) in &chains {
                if table.has_chain(chain) {
                    delete_jumps(table, change, from, chain);
                    change.delete_chain(chain);
                }
            }
            Ok(())
        })
        .map_err(|e| internal(format!("could not teardown {} dnat: {}", family_name(family), e.msg)))?;
    }
    Ok(usable > 0)
}

/// The restore that deletes the entry rules and the chain an ADD with this
/// config wrote; applied, it fails (changing nothing) unless they are all
/// there, so a DEL need not read the table (iptables-save costs what every
/// container's rules cost). None with conditions: then the kernel's
/// canonical text of an entry rule is not ours to predict.
fn known_deletion(conf: &PortMap, container_id: &str, family: IpFamily) -> Option<String> {
    let v4 = family == IpFamily::Ipv4;
    let entries = entry_rules(conf, container_id, v4);
    if !conf.conditions(v4).is_empty() || entries.is_empty() {
        return None;
    }
    let chain = dnat_chain(&conf.name, container_id);
    let mut lines: Vec<String> = entries.iter().map(|rule| format!("-D {TOP_DNAT_CHAIN} {rule}")).collect();
    lines.push(format!("-F {chain}"));
    lines.push(format!("-X {chain}"));
    Some(lines.join("\n"))
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::Ipv4 => "ipv4",
        IpFamily::Ipv6 => "ipv6",
    }
}

/// The container's chain holds exactly the expected rules and is reached
/// from CNI-HOSTPORT-DNAT.
pub fn check_ports(conf: &PortMap, container_id: &str, container: IpNet, table: &IptablesTable) -> Result<()> {
    let name = family_name(family(container.addr));
    let chain = dnat_chain(&conf.name, container_id);
    if !table.has_chain(&chain) {
        return Err(internal(format!("could not check {name} dnat: chain {chain} not found in iptables table nat")));
    }
    for rule in dnat_rules(conf, container) {
        if !table.has_rule(&chain, &rule) {
            return Err(internal(format!("could not check {name} dnat: rule {rule:?} not found in chain {chain}")));
        }
    }
    let entries = entry_rules(conf, container_id, container.is_ipv4());
    let present = table.rules(TOP_DNAT_CHAIN).iter().filter(|r| r.ends_with(&format!(" -j {chain}"))).count();
    // With conditions the kernel's canonical text is not ours to predict;
    // count the jumps instead.
    let complete = if conf.conditions(container.is_ipv4()).is_empty() {
        entries.iter().all(|rule| table.has_rule(TOP_DNAT_CHAIN, rule))
    } else {
        present >= entries.len()
    };
    if !complete {
        return Err(internal(format!(
            "could not check {name} dnat: rules jumping to {chain} missing from {TOP_DNAT_CHAIN}"
        )));
    }
    Ok(())
}

/// Removes the chains of this network's attachments that are not valid
/// (found by the entry rules' `dnat name: .. id: ..` comments).
pub fn gc(host: &Netns, network: &str, valid: &[Attachment]) -> Result<()> {
    let prefix = format!("dnat name: {} id: ", go_quote(network));
    for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
        let snapshot = match IptablesTable::read(host, family, "nat") {
            Ok(snapshot) => snapshot,
            Err(e) if iptables_unusable(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let stale = stale_containers(&snapshot, &prefix, valid);
        if stale.is_empty() {
            continue;
        }
        edit_iptables_from(host, family, "nat", snapshot, |table, change| {
            for id in &stale {
                let chain = dnat_chain(network, id);
                delete_jumps(table, change, TOP_DNAT_CHAIN, &chain);
                change.delete_chain(&chain);
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn stale_containers(table: &IptablesTable, prefix: &str, valid: &[Attachment]) -> Vec<String> {
    let mut stale: Vec<String> = table
        .rules(TOP_DNAT_CHAIN)
        .iter()
        .filter_map(|rule| comment_of(rule)?.strip_prefix(prefix).map(unquote))
        .filter(|id| !valid.iter().any(|a| &a.container_id == id))
        .collect();
    stale.sort();
    stale.dedup();
    stale
}

fn unquote(quoted: &str) -> String {
    let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(quoted);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, Mapping};

    fn conf(mappings: Vec<Mapping>) -> PortMap {
        PortMap {
            name: "podman".into(),
            backend: Some(Backend::Iptables),
            snat: true,
            masq_all: false,
            mark_bit: 13,
            external_set_mark_chain: None,
            conditions_v4: Vec::new(),
            conditions_v6: Vec::new(),
            mappings,
        }
    }

    fn mapping(host: u16, container: u16, protocol: &str, host_ip: Option<&str>) -> Mapping {
        Mapping {
            host_port: host,
            container_port: container,
            protocol: protocol.into(),
            host_ip: host_ip.map(|h| h.parse().unwrap()),
        }
    }

    fn net(text: &str) -> IpNet {
        let (ip, prefix) = text.split_once('/').unwrap();
        IpNet::new(ip.parse().unwrap(), prefix.parse().unwrap()).unwrap()
    }

    /// iptables-save of the Debian reference (1.1.1) after the same ADD.
    #[test]
    fn rules_are_the_references_in_canonical_form() {
        let conf = conf(vec![
            mapping(8080, 80, "tcp", None),
            mapping(5353, 53, "udp", None),
            mapping(9090, 90, "tcp", Some("127.0.0.1")),
        ]);
        assert_eq!(
            dnat_rules(&conf, net("10.89.0.2/24")),
            [
                "-s 10.89.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
                "-s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
                "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.89.0.2:80",
                "-s 10.89.0.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK",
                "-s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK",
                "-p udp -m udp --dport 5353 -j DNAT --to-destination 10.89.0.2:53",
                "-s 10.89.0.0/24 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK",
                "-s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK",
                "-d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.89.0.2:90",
            ]
        );
        assert_eq!(
            entry_rules(&conf, "abc123", true),
            [
                r#"-p tcp -m comment --comment "dnat name: \"podman\" id: \"abc123\"" -m multiport --dports 8080,9090 -j CNI-DN-748d4dd0c88c50c10332c"#,
                r#"-p udp -m comment --comment "dnat name: \"podman\" id: \"abc123\"" -m multiport --dports 5353 -j CNI-DN-748d4dd0c88c50c10332c"#,
            ]
        );
    }

    #[test]
    fn ipv6_has_no_localhost_rule_and_brackets_the_destination() {
        let conf = conf(vec![mapping(8080, 80, "tcp", None), mapping(9090, 90, "tcp", Some("127.0.0.1"))]);
        assert_eq!(
            dnat_rules(&conf, net("fd00::2/64")),
            [
                "-s fd00::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
                "-p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::2]:80",
            ]
        );
    }

    #[test]
    fn more_than_fifteen_ports_are_split_into_groups() {
        let conf = conf((1..=16).map(|p| mapping(1000 + p, 80, "tcp", None)).collect());
        let entries = entry_rules(&conf, "abc123", true);
        assert_eq!(entries.len(), 2);
        assert!(entries[1].contains("--dports 1016 "));
    }

    #[test]
    fn masq_all_and_the_mark_bit_change_the_rules() {
        let mut conf = conf(vec![mapping(8080, 80, "tcp", None)]);
        conf.masq_all = true;
        conf.external_set_mark_chain = Some("KUBE-MARK-MASQ".into());
        assert_eq!(
            dnat_rules(&conf, net("10.89.0.2/24")),
            [
                "-p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ",
                "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.89.0.2:80"
            ]
        );
        assert_eq!(mark(0), "0x1/0x1");
        assert_eq!(mark(13), "0x2000/0x2000");
    }

    #[test]
    fn gc_finds_stale_containers_by_comment() {
        let saved = "*nat\n:CNI-HOSTPORT-DNAT - [0:0]\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"podman\\\" id: \\\"old\\\"\" -m multiport --dports 80 -j CNI-DN-x\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"podman\\\" id: \\\"live\\\"\" -m multiport --dports 81 -j CNI-DN-y\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"other\\\" id: \\\"old2\\\"\" -m multiport --dports 82 -j CNI-DN-z\nCOMMIT\n";
        let table = IptablesTable::parse(saved);
        let valid = [Attachment { container_id: "live".into(), ifname: "eth0".into() }];
        assert_eq!(stale_containers(&table, "dnat name: \"podman\" id: ", &valid), ["old"]);
    }
}
