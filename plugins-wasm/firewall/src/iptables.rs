//! The iptables backend, with the reference's chains, rules and comments
//! exactly (iptables-save after an ADD or DEL is the reference's):
//!
//! - filter `FORWARD` jumps to `CNI-FORWARD` (inserted first);
//! - `CNI-FORWARD` jumps to the admin chain first (`CNI-ADMIN` unless
//!   `iptablesAdminChainName` says otherwise), then accepts, per container
//!   address, replies to it (`-d ip -m conntrack --ctstate
//!   RELATED,ESTABLISHED`) and everything from it (`-s ip`);
//! - ingressPolicy same-bridge / isolated: `CNI-ISOLATION-STAGE-1` and
//!   `-2`, which drop traffic between bridges (and, isolated, within one).
//!
//! Each family's change is one iptables-restore transaction built against
//! a fresh iptables-save snapshot (retried when a chain appeared or
//! vanished meanwhile); the caller holds the plugin's netfilter lock, so
//! "insert unless present" cannot race with another firewall invocation.

use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::{IpNet, family_of};
use cni_plugin_sdk::netfilter::{IptablesChange, IptablesTable, edit_iptables, iptables_unusable, save_string};
use cni_plugin_sdk::types::IpFamily;

use crate::config::IngressPolicy;

pub const FORWARD_CHAIN: &str = "CNI-FORWARD";
pub const STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
pub const STAGE_2: &str = "CNI-ISOLATION-STAGE-2";
const TABLE: &str = "filter";
const RULES_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
/// The comment of the isolation rules every bridge shares (the jump from
/// FORWARD, the RETURNs) and of the stage-2 DROP: the Debian reference's
/// first, which we write; upstream's since it added "isolated", which we
/// accept as the same rule, so a host the newer reference also served does
/// not get the rules twice.
const SHARED_ISOLATION_COMMENTS: [&str; 2] = [
    "CNI firewall plugin rules (ingressPolicy: same-bridge)",
    "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)",
];

/// The bridge whose traffic the ingress policy restricts.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub bridge: String,
    pub policy: IngressPolicy,
}

/// A rule spec as iptables-save prints it: matches, the comment, target.
fn commented(matches: &str, comment: &str, target: &str) -> String {
    let matches = if matches.is_empty() { String::new() } else { format!("{matches} ") };
    format!("{matches}-m comment --comment {} -j {target}", save_string(comment))
}

fn forward_jump() -> String {
    commented("", RULES_COMMENT, FORWARD_CHAIN)
}

fn admin_jump(admin_chain: &str) -> String {
    commented("", ADMIN_COMMENT, admin_chain)
}

/// The two rules of one container address (getPrivChainRules).
fn address_rules(ip: &IpNet) -> [String; 2] {
    [format!("-d {ip} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"), format!("-s {ip} -j ACCEPT")]
}

fn shared_variants(matches: &str, target: &str) -> Vec<String> {
    SHARED_ISOLATION_COMMENTS.iter().map(|c| commented(matches, c, target)).collect()
}

fn policy_comment(policy: IngressPolicy) -> String {
    format!("CNI firewall plugin rules (ingressPolicy: {})", policy.name())
}

/// The isolation rules of one bridge, each as its accepted variants (the
/// first is the one written), with the chain they belong to and whether
/// they go first (`true`) or last.
fn isolation_rules(isolation: &Isolation) -> Rules {
    let bridge = &isolation.bridge;
    let policy = policy_comment(isolation.policy);
    let mut rules = vec![
        ("FORWARD", true, shared_variants("", STAGE_1)),
        (STAGE_1, true, vec![commented(&format!("-i {bridge} ! -o {bridge}"), &policy, STAGE_2)]),
    ];
    if isolation.policy == IngressPolicy::Isolated {
        rules.push((STAGE_1, true, vec![commented(&format!("-i {bridge} -o {bridge}"), &policy, "DROP")]));
    }
    rules.push((STAGE_1, false, shared_variants("", "RETURN")));
    rules.push((STAGE_2, true, shared_variants(&format!("-o {bridge}"), "DROP")));
    rules.push((STAGE_2, false, shared_variants("", "RETURN")));
    rules
}

pub fn families(ips: &[IpNet]) -> Vec<IpFamily> {
    let mut families = Vec::new();
    for ip in ips {
        let family = family_of(ip.addr);
        if !families.contains(&family) {
            families.push(family);
        }
    }
    families
}

fn of_family(ips: &[IpNet], family: IpFamily) -> Vec<IpNet> {
    ips.iter().filter(|ip| family_of(ip.addr) == family).copied().collect()
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::Ipv4 => "IPv4",
        IpFamily::Ipv6 => "IPv6",
    }
}

/// ADD: the chains, jumps and address rules, and the isolation rules, in
/// one transaction per family. A family that fails takes back the address
/// rules of the families done before it.
pub fn add(host: &Netns, admin_chain: &str, ips: &[IpNet], isolation: Option<&Isolation>) -> Result<()> {
    let isolation = isolation.map(isolation_rules);
    let mut done = Vec::new();
    for family in families(ips) {
        let addresses = of_family(ips, family);
        let outcome = edit_iptables(host, family, TABLE, |table, change| {
            change.ensure_chain(FORWARD_CHAIN).ensure_chain(admin_chain);
            change.insert_unique("FORWARD", &forward_jump());
            change.insert_unique(FORWARD_CHAIN, &admin_jump(admin_chain));
            for ip in &addresses {
                for rule in address_rules(ip) {
                    change.append_unique(FORWARD_CHAIN, &rule);
                }
            }
            // After the jump to CNI-FORWARD, so the jump to stage 1 is
            // inserted before it, as the reference's order of calls does.
            if let Some(rules) = &isolation {
                isolation_changes(table, change, rules);
            }
            Ok(())
        });
        // A family's transaction is atomic: only earlier families need
        // undoing.
        if let Err(e) = outcome {
            for done in done {
                let _ = remove(host, done, &of_family(ips, done));
            }
            return Err(e).context(format!("setting up {} firewall rules", family_name(family)));
        }
        done.push(family);
    }
    Ok(())
}

/// The isolation chains and one bridge's rules, for every family of
/// `ips` (the firewalld backend isolates with iptables, as the reference).
pub fn isolate(host: &Netns, ips: &[IpNet], isolation: &Isolation) -> Result<()> {
    let rules = isolation_rules(isolation);
    for family in families(ips) {
        edit_iptables(host, family, TABLE, |table, change| {
            isolation_changes(table, change, &rules);
            Ok(())
        })
        .context(format!("setting up {} isolation rules", family_name(family)))?;
    }
    Ok(())
}

type Rules = Vec<(&'static str, bool, Vec<String>)>;

fn isolation_changes(table: &IptablesTable, change: &mut IptablesChange, rules: &Rules) {
    change.ensure_chain(STAGE_1).ensure_chain(STAGE_2);
    for (chain, first, variants) in rules {
        add_unless_any(table, change, chain, *first, variants);
    }
}

/// Adds the first variant unless any of them is in the chain.
fn add_unless_any(table: &IptablesTable, change: &mut IptablesChange, chain: &str, first: bool, variants: &[String]) {
    if variants.iter().any(|v| table.has_rule(chain, v)) {
        return;
    }
    if first {
        change.insert_unique(chain, &variants[0]);
    } else {
        change.append_unique(chain, &variants[0]);
    }
}

/// DEL: the address rules only; the chains, jumps and isolation rules stay
/// for the other containers (as in the reference). A family whose iptables
/// is not usable here has nothing to remove.
pub fn remove(host: &Netns, family: IpFamily, ips: &[IpNet]) -> Result<()> {
    if ips.is_empty() {
        return Ok(());
    }
    // The rules as ADD wrote them, deleted in one restore that fails
    // (changing nothing) unless all are there: no read of a table that
    // holds every container's rules.
    let known: Vec<String> =
        ips.iter().flat_map(address_rules).map(|rule| format!("-D {FORWARD_CHAIN} {rule}")).collect();
    match cni_plugin_sdk::netfilter_capability::iptables_restore(host, family, TABLE, &known.join("\n")) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind == cni_plugin_sdk::types::ErrorKind::Unsupported => return Ok(()),
        // Not as ADD left them (gone, or never added): read, then edit.
        Err(_) => {}
    }
    let snapshot = match IptablesTable::read(host, family, TABLE) {
        Ok(snapshot) => snapshot,
        Err(e) if iptables_unusable(&e) => return Ok(()),
        Err(e) => return Err(e).context(format!("reading the {} filter table", family_name(family))),
    };
    if !snapshot.has_chain(FORWARD_CHAIN) {
        return Ok(());
    }
    cni_plugin_sdk::netfilter::edit_iptables_from(host, family, TABLE, snapshot, |_, change| {
        for ip in ips {
            for rule in address_rules(ip) {
                change.delete(FORWARD_CHAIN, &rule);
            }
        }
        Ok(())
    })
    .context(format!("removing {} firewall rules", family_name(family)))
}

pub fn remove_all(host: &Netns, ips: &[IpNet]) -> Result<()> {
    let mut errors = Vec::new();
    for family in families(ips) {
        if let Err(e) = remove(host, family, &of_family(ips, family)) {
            errors.push(e.msg);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
}

/// CHECK: the jumps and the address rules (and, beyond the reference, the
/// bridge's isolation rules) are in place. Unlike the reference, CHECK
/// creates nothing: a missing chain is reported, not made.
pub fn check(host: &Netns, admin_chain: &str, ips: &[IpNet], isolation: Option<&Isolation>) -> Result<()> {
    for family in families(ips) {
        let table = IptablesTable::read(host, family, TABLE)
            .context(format!("reading the {} filter table", family_name(family)))?;
        require(&table, "FORWARD", &[forward_jump()])?;
        require(&table, FORWARD_CHAIN, &[admin_jump(admin_chain)])?;
        for ip in of_family(ips, family) {
            for rule in address_rules(&ip) {
                if !table.has_rule(FORWARD_CHAIN, &rule) {
                    return Err(internal(format!("expected rule [{rule}] not found")));
                }
            }
        }
        if let Some(isolation) = isolation {
            check_isolation_in(&table, isolation)?;
        }
    }
    Ok(())
}

/// CHECK of the isolation rules alone (the firewalld backend's).
pub fn check_isolation(host: &Netns, ips: &[IpNet], isolation: &Isolation) -> Result<()> {
    for family in families(ips) {
        let table = IptablesTable::read(host, family, TABLE)
            .context(format!("reading the {} filter table", family_name(family)))?;
        check_isolation_in(&table, isolation)?;
    }
    Ok(())
}

fn check_isolation_in(table: &IptablesTable, isolation: &Isolation) -> Result<()> {
    for (chain, _, variants) in isolation_rules(isolation) {
        require(table, chain, &variants)?;
    }
    Ok(())
}

fn require(table: &IptablesTable, chain: &str, variants: &[String]) -> Result<()> {
    if variants.iter().any(|v| table.has_rule(chain, v)) {
        Ok(())
    } else {
        Err(internal(format!("expected {chain} rule [{}] not found", variants[0].replace('"', ""))))
    }
}

/// Whether both families' filter tables can be read (STATUS).
pub fn usable(host: &Netns) -> Result<()> {
    for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
        IptablesTable::read(host, family, TABLE)
            .context(format!("could not initialize iptables protocol {}", family_name(family)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_written_as_iptables_save_prints_the_references() {
        // Copied from iptables-save after the Debian reference's ADD.
        assert_eq!(forward_jump(), r#"-m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#);
        assert_eq!(
            admin_jump("CNI-ADMIN"),
            r#"-m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#
        );
        let ip: IpNet = "10.89.0.2/32".parse().unwrap();
        assert_eq!(
            address_rules(&ip),
            ["-d 10.89.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-s 10.89.0.2/32 -j ACCEPT"]
        );
        let rules = isolation_rules(&Isolation { bridge: "cni-podman0".into(), policy: IngressPolicy::SameBridge });
        let written: Vec<(&str, &str)> = rules.iter().map(|(chain, _, v)| (*chain, v[0].as_str())).collect();
        let comment = r#""CNI firewall plugin rules (ingressPolicy: same-bridge)""#;
        assert_eq!(
            written,
            [
                ("FORWARD", format!("-m comment --comment {comment} -j CNI-ISOLATION-STAGE-1").as_str()),
                (
                    STAGE_1,
                    format!("-i cni-podman0 ! -o cni-podman0 -m comment --comment {comment} -j CNI-ISOLATION-STAGE-2")
                        .as_str()
                ),
                (STAGE_1, format!("-m comment --comment {comment} -j RETURN").as_str()),
                (STAGE_2, format!("-o cni-podman0 -m comment --comment {comment} -j DROP").as_str()),
                (STAGE_2, format!("-m comment --comment {comment} -j RETURN").as_str()),
            ]
        );
    }

    #[test]
    fn isolated_adds_a_drop_within_the_bridge_with_upstreams_comment() {
        let rules = isolation_rules(&Isolation { bridge: "br1".into(), policy: IngressPolicy::Isolated });
        assert!(rules.iter().any(|(chain, first, v)| *chain == STAGE_1
            && *first
            && v[0] == r#"-i br1 -o br1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP"#));
    }

    #[test]
    fn shared_rules_written_by_upstream_count_as_present() {
        let saved = "*filter\n:FORWARD ACCEPT [0:0]\n:CNI-ISOLATION-STAGE-1 - [0:0]\n\
            -A FORWARD -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j CNI-ISOLATION-STAGE-1\nCOMMIT\n";
        let table = IptablesTable::parse(saved);
        let mut change = IptablesChange::new(&table);
        add_unless_any(&table, &mut change, "FORWARD", true, &shared_variants("", STAGE_1));
        assert!(change.is_empty());
    }
}
