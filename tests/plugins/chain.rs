//! The podman chain, bridge (+host-local) → portmap → firewall → tuning,
//! as podman and Kubernetes run it: through the real libcni, side by side
//! with the reference, under concurrency, and across an upgrade from the
//! reference to cni-wasm.

use std::collections::HashSet;

use cni_wasm_tests::kernel::{self, iptables_save};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::side::{Side, SideBySide, podman_chain, port_mappings};
use cni_wasm_tests::{link_names, result};
use serde_json::{Value, json};

fn chain(backend: Option<&str>) -> Value {
    podman_chain(backend, json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}))
}

fn host_netfilter(side: &Side) -> Value {
    json!({
        "nat4": iptables_save(&side.host, false, "nat"),
        "filter4": iptables_save(&side.host, false, "filter"),
        "nat6": iptables_save(&side.host, true, "nat"),
        "filter6": iptables_save(&side.host, true, "filter"),
    })
}

#[test]
fn the_podman_chain_matches_the_reference_through_libcni() {
    let mappings = port_mappings(&[(8080, 80, "tcp", None), (5353, 53, "udp", None)]);
    let attached = SideBySide::new("ch-sbs", chain(None)).capability("portMappings", mappings).add();
    for (our_ct, _) in &attached.containers {
        assert_eq!(kernel::sysctl(our_ct, "net/ipv4/conf/eth0/accept_redirects"), "0", "tuning's sysctl is set");
    }
    attached.del();
}

#[test]
fn check_of_the_chain_fails_once_its_rules_are_removed_out_of_band() {
    for backend in [None, Some("nftables")] {
        let ours = Side::ours("ch-chk");
        let conflist = chain(backend);
        let caps = [("portMappings", port_mappings(&[(8080, 80, "tcp", None)]))];
        let ct = Netns::new("ch-chk-c");
        ours.add(&conflist, "c", &ct, &caps).unwrap();
        ours.check(&conflist, "c", &ct, &caps).unwrap_or_else(|e| panic!("{backend:?}: CHECK after ADD: {e}"));
        match backend {
            None => {
                ours.exec("iptables", &["-F", "CNI-FORWARD"]);
            }
            Some(_) => {
                ours.exec("nft", &["flush", "table", "ip", "cni_hostport"]);
            }
        }
        assert!(ours.check(&conflist, "c", &ct, &caps).is_err(), "{backend:?}: CHECK after the rules are gone");
        ours.del(&conflist, "c", &ct, &caps).unwrap();
    }
}

/// 20 containers added at once, then deleted at once: no failures, no
/// duplicate addresses, and afterwards nothing of theirs anywhere.
fn concurrent_adds_and_dels_leave_nothing(backend: Option<&str>) {
    const N: usize = 20;
    let ours = Side::ours("ch-conc");
    let conflist = chain(backend);
    let containers: Vec<Netns> = (0..N).map(|i| Netns::new(&format!("ch-conc{i}"))).collect();
    let caps = |i: usize| {
        [("portMappings", port_mappings(&[(8000 + i as u16, 80, "tcp", None), (9000 + i as u16, 53, "udp", None)]))]
    };
    let results: Vec<Result<Value, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, ct)| {
                let (ours, conflist) = (&ours, &conflist);
                s.spawn(move || ours.add(conflist, &format!("c{i}"), ct, &caps(i)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addresses: Vec<String> = results
        .iter()
        .map(|r| result::ip(r.as_ref().unwrap_or_else(|e| panic!("{backend:?}: concurrent ADD failed: {e}")), 0))
        .collect();
    assert_eq!(addresses.iter().collect::<HashSet<_>>().len(), N, "{backend:?}: duplicate addresses: {addresses:?}");
    for (i, ct) in containers.iter().enumerate() {
        ours.check(&conflist, &format!("c{i}"), ct, &caps(i))
            .unwrap_or_else(|e| panic!("{backend:?}: CHECK c{i}: {e}"));
    }
    let dels: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, ct)| {
                let (ours, conflist) = (&ours, &conflist);
                s.spawn(move || ours.del(conflist, &format!("c{i}"), ct, &caps(i)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for del in dels {
        del.unwrap_or_else(|e| panic!("{backend:?}: concurrent DEL failed: {e}"));
    }
    // Nothing left: links, addresses, rules, reservations, conntrack entries.
    let links: Vec<String> = link_names(&ours.host).into_iter().filter(|l| kernel::is_random_veth(l)).collect();
    assert!(links.is_empty(), "{backend:?}: veths left: {links:?}");
    let rules = format!("{}\n{}", host_netfilter(&ours), kernel::nft_ruleset(&ours.host));
    for (i, ip) in addresses.iter().enumerate() {
        assert!(
            !rules.contains(&format!("{ip} "))
                && !rules.contains(&format!("{ip}/"))
                && !rules.contains(&format!("{ip}:")),
            "{backend:?}: a rule for {ip} is left:\n{rules}"
        );
        assert!(!rules.contains(&format!("\"c{i}\"")), "{backend:?}: a rule of c{i} is left:\n{rules}");
    }
    let reserved: Vec<String> = std::fs::read_dir(ours.store_dir().join("podman"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(reserved.is_empty(), "{backend:?}: reservations left: {reserved:?}");
    // The bridge's own traffic (its IGMP reports) is not a container's.
    let entries: Vec<String> = kernel::conntrack(&ours.host, false)
        .into_iter()
        .filter(|e| addresses.iter().any(|ip| e.contains(&format!("={ip} "))))
        .collect();
    assert!(entries.is_empty(), "{backend:?}: conntrack entries left: {entries:?}");
}

#[test]
fn twenty_concurrent_adds_and_dels_with_iptables_leave_nothing_behind() {
    concurrent_adds_and_dels_leave_nothing(None);
}

#[test]
fn twenty_concurrent_adds_and_dels_with_nftables_leave_nothing_behind() {
    concurrent_adds_and_dels_leave_nothing(Some("nftables"));
}

/// An upgrade: containers set up by the reference plugins, torn down by
/// cni-wasm's (same CNI_PATH names, same cache), leave nothing behind.
#[test]
fn cni_wasm_deletes_what_the_reference_added() {
    let theirs = Side::reference("ch-upg-r");
    let ours = Side::ours("ch-upg-o");
    let conflist = chain(None);
    let caps = [("portMappings", port_mappings(&[(8080, 80, "tcp", None)]))];
    let ct = Netns::new("ch-upg-c");
    // Both sides share the reference's host namespace and store.
    let result = theirs.add(&conflist, "old", &ct, &caps).unwrap();
    let upgraded = cni_wasm_tests::libcni::Runtime::new(&ours.bin_dir()).in_netns(&theirs.host.name);
    // libcni's cache lives with the runtime: hand the cached result over as
    // prevResult by running DEL with the same cache directory.
    let cache = theirs.runtime.cache_dir().to_path_buf();
    let args = vec![
        "--container-id".to_string(),
        "old".into(),
        "--netns".into(),
        ct.path(),
        "--ifname".into(),
        "eth0".into(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--cap".into(),
        format!("portMappings={}", caps[0].1),
    ];
    let del = upgraded.invoke("del", &theirs.conflist(&conflist), &args);
    assert_eq!(del.code, 0, "cni-wasm DEL of a reference ADD: {}", del.stderr);
    let rules = host_netfilter(&theirs).to_string();
    let ip = result::ip(&result, 0);
    assert!(!rules.contains(&ip), "rules for {ip} left after the upgrade DEL: {rules}");
    assert!(!rules.contains("CNI-DN-"), "{rules}");
    assert!(!link_names(&theirs.host).iter().any(|l| kernel::is_random_veth(l)));
}

/// A container's link that goes down and up again (its own network
/// manager, a DHCP client, an admin) keeps its IPv6 address with ours:
/// without `keep_addr_on_down` the kernel drops every IPv6 address of a
/// link that goes down. The Debian reference's ConfigureIface does not set
/// it (upstream's does now), so its container loses the address. It is the
/// one deliberate difference in container state that the side-by-side
/// comparisons leave out.
#[test]
fn a_container_link_bounced_keeps_its_ipv6_address_where_the_reference_loses_it() {
    let mut conflist = cni_wasm_tests::side::podman("1.0.0", &[]);
    conflist["plugins"][0]["ipam"]["ranges"] = json!([[{"subnet": "10.98.0.0/24"}], [{"subnet": "fd98::/64"}]]);
    let (ours, theirs) = (Side::ours("ch-v6-o"), Side::reference("ch-v6-r"));
    let (our_ct, their_ct) = (Netns::new("ch-v6-oc"), Netns::new("ch-v6-rc"));
    let our_result = ours.add(&conflist, "c", &our_ct, &[]).unwrap();
    theirs.add(&conflist, "c", &their_ct, &[]).unwrap();
    let global_ipv6 = |ns: &Netns| -> Vec<String> {
        let addresses = ns.ip_json(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
        // iproute2 prints an empty object for each address the filter drops.
        let info = addresses[0]["addr_info"].as_array().into_iter().flatten();
        info.filter_map(|a| a["local"].as_str()).map(str::to_string).collect()
    };
    for ct in [&our_ct, &their_ct] {
        ct.exec("ip", &["link", "set", "eth0", "down"]);
        ct.exec("ip", &["link", "set", "eth0", "up"]);
    }
    assert_eq!(global_ipv6(&our_ct), [result::ip(&our_result, 1)], "ours keeps the IPv6 address");
    assert_eq!(kernel::sysctl(&our_ct, "net/ipv6/conf/eth0/keep_addr_on_down"), "1");
    assert!(global_ipv6(&their_ct).is_empty(), "the reference keeps it now too: compare keep_addr_on_down again");
    ours.del(&conflist, "c", &our_ct, &[]).unwrap();
    theirs.del(&conflist, "c", &their_ct, &[]).unwrap();
}
