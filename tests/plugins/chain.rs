//! The podman chain, bridge (+host-local) → portmap → firewall → tuning,
//! as podman and Kubernetes run it: through the real libcni, side by side
//! with the reference, under concurrency, and across an upgrade from the
//! reference to cni-wasm.

use std::collections::HashSet;

use cni_wasm_tests::kernel::{self, assert_converges, assert_same, iptables_save, normalize_result};
use cni_wasm_tests::link_names;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::side::{Side, podman_chain, port_mappings};
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
    let (ours, theirs) = (Side::ours("ch-sbs-o"), Side::reference("ch-sbs-r"));
    let conflist = chain(None);
    let caps = [("portMappings", port_mappings(&[(8080, 80, "tcp", None), (5353, 53, "udp", None)]))];
    let (our_ct, their_ct) = (Netns::new("ch-sbs-oc"), Netns::new("ch-sbs-rc"));
    for id in ["one", "two"] {
        let (our_ct, their_ct) = (Netns::new(&format!("ch-sbs-o{id}")), Netns::new(&format!("ch-sbs-r{id}")));
        let ours_result = ours.add(&conflist, id, &our_ct, &caps).unwrap();
        let theirs_result = theirs.add(&conflist, id, &their_ct, &caps).unwrap();
        assert_same(&normalize_result(&ours_result), &normalize_result(&theirs_result), &format!("result of ADD {id}"));
        assert_same(&host_netfilter(&ours), &host_netfilter(&theirs), &format!("iptables after ADD {id}"));
        assert_converges(|| kernel::state(&ours.host), || kernel::state(&theirs.host), &format!("host after ADD {id}"));
        assert_converges(|| kernel::state(&our_ct), || kernel::state(&their_ct), &format!("container after ADD {id}"));
        assert_eq!(kernel::sysctl(&our_ct, "net/ipv4/conf/eth0/accept_redirects"), "0");
        ours.check(&conflist, id, &our_ct, &caps).unwrap_or_else(|e| panic!("CHECK {id} right after ADD: {e}"));
        ours.del(&conflist, id, &our_ct, &caps).unwrap();
        theirs.del(&conflist, id, &their_ct, &caps).unwrap();
        assert_same(&host_netfilter(&ours), &host_netfilter(&theirs), &format!("iptables after DEL {id}"));
    }
    drop((our_ct, their_ct));
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
        .map(|r| {
            r.as_ref().unwrap_or_else(|e| panic!("{backend:?}: concurrent ADD failed: {e}"))["ips"][0]["address"]
                .as_str()
                .unwrap()
                .to_string()
        })
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
    for (i, address) in addresses.iter().enumerate() {
        let ip = address.split('/').next().unwrap();
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
        .filter(|e| addresses.iter().any(|a| e.contains(&format!("={} ", a.split('/').next().unwrap()))))
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
    let ip = result["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    assert!(!rules.contains(&ip), "rules for {ip} left after the upgrade DEL: {rules}");
    assert!(!rules.contains("CNI-DN-"), "{rules}");
    assert!(!link_names(&theirs.host).iter().any(|l| kernel::is_random_veth(l)));
}
