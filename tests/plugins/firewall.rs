//! firewall chained after bridge (+ host-local), side by side with the
//! reference through libcni: the same results and the same iptables-save
//! (both families) after every ADD and DEL; real traffic under each
//! ingressPolicy; the nftables backend the reference lacks; CHECK that
//! notices rules removed out of band; DEL that always succeeds; a clear
//! error when firewalld is asked for but absent; GC, which the reference
//! lacks. Every "host" is a scratch namespace.

use cni_wasm_tests::kernel::{iptables_save, nft_ruleset};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, Outcome, run};
use cni_wasm_tests::result;
use cni_wasm_tests::side::{Side, SideBySide, ping};
use cni_wasm_tests::{reference, require_root};
use serde_json::{Value, json};

/// A bridge network: bridge `br`, gateway .1 of `subnet4` (and of
/// `subnet6`), default routes through it, then `firewall`.
fn network(name: &str, br: &str, subnet4: &str, subnet6: Option<&str>, firewall: Value) -> Value {
    let mut ranges = vec![json!([{"subnet": subnet4}])];
    let mut routes = vec![json!({"dst": "0.0.0.0/0"})];
    if let Some(subnet6) = subnet6 {
        ranges.push(json!([{"subnet": subnet6}]));
        routes.push(json!({"dst": "::/0"}));
    }
    let bridge = json!({"type": "bridge", "bridge": br, "isGateway": true,
        "ipam": {"type": "host-local", "routes": routes, "ranges": ranges}});
    json!({"cniVersion": "1.0.0", "name": name, "plugins": [bridge, firewall]})
}

fn firewall(extra: Value) -> Value {
    let mut plugin = json!({"type": "firewall"});
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

/// Both families' filter tables, as iptables-save prints them.
fn filter_tables(host: &Netns) -> Value {
    json!({"filter4": iptables_save(host, false, "filter"), "filter6": iptables_save(host, true, "filter")})
}

/// Two dual-stack containers added and deleted on both sides, comparing
/// the results and both namespaces after every step.
fn same_as_the_reference(tag: &str, firewall_plugin: Value) {
    let conflist = network("podman", "cni-podman0", "10.89.0.0/24", Some("fd89::/64"), firewall_plugin);
    let attached = SideBySide::new(tag, conflist).add();
    let rules = filter_tables(&attached.ours.host).to_string();
    assert!(
        rules.contains("-A CNI-FORWARD -s 10.89.0.2/32 -j ACCEPT")
            && rules.contains("-A CNI-FORWARD -s fd89::3/128 -j ACCEPT"),
        "{rules}"
    );
    let done = attached.del();
    let rules = filter_tables(&done.ours.host).to_string();
    assert!(!rules.contains("10.89.0.") && !rules.contains("fd89::"), "every address rule is gone: {rules}");
}

#[test]
fn the_default_policy_matches_the_reference() {
    same_as_the_reference("fw-open", firewall(json!({})));
}

#[test]
fn the_same_bridge_policy_matches_the_reference() {
    same_as_the_reference("fw-same", firewall(json!({"ingressPolicy": "same-bridge"})));
}

/// A name longer than a link name may be: the config names the chain, so
/// the plugin owns it.
#[test]
fn a_configured_admin_chain_and_backend_match_the_reference() {
    same_as_the_reference(
        "fw-admin",
        firewall(json!({"backend": "iptables", "iptablesAdminChainName": "CNI-ADMIN-OVERRIDES-OF-PODS"})),
    );
}

/// The podman chain's firewall, with ipMasq: the reference's results and
/// rules (nat and filter) through the whole chain.
#[test]
fn firewall_after_a_masquerading_bridge_matches_the_reference() {
    SideBySide::new("fw-podman", cni_wasm_tests::side::podman("1.0.0", &[firewall(json!({}))])).containers(1).run();
}

/// Containers a1, a2 on bridge A and b1 on bridge B, both networks with
/// `firewall`: whether a1 reaches a2, and whether a1 reaches b1 (and b1 a1).
fn reachability(tag: &str, firewall_plugin: Value) -> (bool, bool) {
    let ours = Side::ours(tag);
    let net_a = network("fw-a", "fwbr-a", "10.61.1.0/24", None, firewall_plugin.clone());
    let net_b = network("fw-b", "fwbr-b", "10.61.2.0/24", None, firewall_plugin);
    let (a1, a2, b1) =
        (Netns::new(&format!("{tag}-a1")), Netns::new(&format!("{tag}-a2")), Netns::new(&format!("{tag}-b1")));
    let a1_ip = result::ip(&ours.add(&net_a, "a1", &a1, &[]).unwrap(), 0);
    let a2_ip = result::ip(&ours.add(&net_a, "a2", &a2, &[]).unwrap(), 0);
    let b1_ip = result::ip(&ours.add(&net_b, "b1", &b1, &[]).unwrap(), 0);
    assert!(ping(&a1, "10.61.1.1") && ping(&b1, "10.61.2.1"), "{tag}: containers reach their gateways");
    let same_bridge = ping(&a1, &a2_ip);
    let across = ping(&a1, &b1_ip);
    assert_eq!(ping(&b1, &a1_ip), across, "{tag}: isolation works both ways");
    for (net, id, ct) in [(&net_a, "a1", &a1), (&net_a, "a2", &a2), (&net_b, "b1", &b1)] {
        ours.del(net, id, ct, &[]).unwrap();
    }
    (same_bridge, across)
}

#[test]
fn open_lets_containers_reach_other_bridges() {
    assert_eq!(reachability("fw-t-open", firewall(json!({}))), (true, true));
}

#[test]
fn same_bridge_blocks_other_bridges_but_not_the_own() {
    assert_eq!(reachability("fw-t-same", firewall(json!({"ingressPolicy": "same-bridge"}))), (true, false));
}

/// `isolated` (upstream, after the Debian reference): not even the own
/// bridge. Bridged traffic meets the FORWARD chain through br_netfilter,
/// which a fresh namespace has on (bridge-nf-call-iptables=1).
#[test]
fn isolated_blocks_even_the_own_bridge() {
    assert_eq!(reachability("fw-t-iso", firewall(json!({"ingressPolicy": "isolated"}))), (false, false));
}

#[test]
fn the_nftables_backend_isolates_bridges_too() {
    assert_eq!(reachability("fw-t-nft-open", firewall(json!({"backend": "nftables"}))), (true, true));
    assert_eq!(
        reachability("fw-t-nft-same", firewall(json!({"backend": "nftables", "ingressPolicy": "same-bridge"}))),
        (true, false)
    );
    assert_eq!(
        reachability("fw-t-nft-iso", firewall(json!({"backend": "nftables", "ingressPolicy": "isolated"}))),
        (false, false)
    );
}

#[test]
fn nftables_rules_exist_after_add_and_are_gone_after_del() {
    let ours = Side::ours("fw-nft");
    let conflist =
        network("fw-nft", "fwbr-nft", "10.62.0.0/24", Some("fd62::/64"), firewall(json!({"backend": "nftables"})));
    let (one, two) = (Netns::new("fw-nft-1"), Netns::new("fw-nft-2"));
    let first = ours.add(&conflist, "one", &one, &[]).unwrap();
    let second = ours.add(&conflist, "two", &two, &[]).unwrap();
    let (ip4, ip6, other4) = (result::ip(&first, 0), result::ip(&first, 1), result::ip(&second, 0));
    let ruleset = nft_ruleset(&ours.host);
    for rule in [
        format!("ip daddr {ip4} ct state established,related accept"),
        format!("ip saddr {ip4} accept"),
        format!("ip6 daddr {ip6} ct state established,related accept"),
        format!("ip6 saddr {ip6} accept"),
        format!("ip saddr {other4} accept"),
    ] {
        assert!(ruleset.contains(&rule), "{rule:?} after ADD:\n{ruleset}");
    }
    assert!(ruleset.contains("id: one\"") && ruleset.contains("id: two\""), "rules name their attachment:\n{ruleset}");
    assert!(!iptables_save(&ours.host, false, "filter").contains("CNI-FORWARD"), "no iptables rules with nftables");
    ours.check(&conflist, "one", &one, &[]).expect("CHECK after ADD");
    ours.del(&conflist, "one", &one, &[]).unwrap();
    let ruleset = nft_ruleset(&ours.host);
    assert!(
        !ruleset.contains(&format!("{ip4} ")) && !ruleset.contains(&format!("{ip6} ")),
        "one's rules are gone:\n{ruleset}"
    );
    assert!(ruleset.contains(&format!("ip saddr {other4} accept")), "two's stay:\n{ruleset}");
    ours.del(&conflist, "two", &two, &[]).unwrap();
    assert!(!nft_ruleset(&ours.host).contains("saddr"), "nothing of either is left");
}

/// The handle of the first rule in `chain` of table inet cni_firewall
/// whose text contains `needle`.
fn nft_handle(host: &Netns, chain: &str, needle: &str) -> String {
    let listing = host.exec("nft", &["-a", "list", "chain", "inet", "cni_firewall", chain]);
    let line =
        listing.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no rule with {needle:?}:\n{listing}"));
    line.rsplit("# handle ").next().unwrap().trim().to_string()
}

#[test]
fn check_passes_after_add_and_fails_once_a_rule_is_removed_out_of_band() {
    // (backend, how to remove one of the container's rules or a bridge's
    // isolation rule behind the plugin's back)
    type Removal = fn(&Netns, &str);
    let cases: [(&str, &str, Removal); 4] = [
        ("iptables", "open", |host, ip| {
            host.exec("iptables", &["-D", "CNI-FORWARD", "-s", &format!("{ip}/32"), "-j", "ACCEPT"]);
        }),
        ("iptables", "same-bridge", |host, _| {
            let comment = "CNI firewall plugin rules (ingressPolicy: same-bridge)";
            host.exec(
                "iptables",
                &["-D", "CNI-ISOLATION-STAGE-2", "-o", "fwbr-chk", "-m", "comment", "--comment", comment, "-j", "DROP"],
            );
        }),
        ("nftables", "open", |host, ip| {
            let handle = nft_handle(host, "containers", &format!("ip saddr {ip} "));
            host.exec("nft", &["delete", "rule", "inet", "cni_firewall", "containers", "handle", &handle]);
        }),
        ("nftables", "isolated", |host, _| {
            let handle = nft_handle(host, "isolation_stage_1", "oifname \"fwbr-chk\" drop");
            host.exec("nft", &["delete", "rule", "inet", "cni_firewall", "isolation_stage_1", "handle", &handle]);
        }),
    ];
    for (backend, policy, remove) in cases {
        let ours = Side::ours("fw-chk");
        let conflist = network(
            "fw-chk",
            "fwbr-chk",
            "10.63.0.0/24",
            None,
            firewall(json!({"backend": backend, "ingressPolicy": policy})),
        );
        let ct = Netns::new("fw-chk-c");
        let ip = result::ip(&ours.add(&conflist, "c", &ct, &[]).unwrap(), 0);
        ours.check(&conflist, "c", &ct, &[]).unwrap_or_else(|e| panic!("{backend} {policy}: CHECK after ADD: {e}"));
        remove(&ours.host, &ip);
        let error = ours
            .check(&conflist, "c", &ct, &[])
            .expect_err(&format!("{backend} {policy}: CHECK after the rule is gone"));
        assert!(error.contains("not found"), "{backend} {policy}: {error}");
        ours.del(&conflist, "c", &ct, &[]).unwrap();
    }
}

/// The plugin run directly (as a runtime would, without libcni), in a
/// scratch host namespace, with the prevResult a bridge would pass.
struct Direct {
    install: Installation,
    host: Netns,
    container: Netns,
}

impl Direct {
    fn new(tag: &str) -> Direct {
        require_root();
        Direct {
            install: Installation::new(tag),
            host: Netns::new(&format!("{tag}-h")),
            container: Netns::new(&format!("{tag}-c")),
        }
    }

    fn env(&self, command: &str, id: &str) -> Env {
        Env {
            host_netns: Some(self.host.name.clone()),
            ..Env::new(command, id, &self.container.path(), "eth0", &self.install.dir)
        }
    }

    fn ours(&self, command: &str, id: &str, config: &Value) -> Outcome {
        run(&self.install.plugin("firewall"), &self.env(command, id), &config.to_string())
    }

    fn reference(&self, command: &str, id: &str, config: &Value) -> Outcome {
        run(&reference("firewall"), &self.env(command, id), &config.to_string())
    }
}

/// A firewall config for network `name` with a bridge's prevResult for
/// `addresses` (none: no prevResult).
fn direct_config(version: &str, name: &str, extra: Value, addresses: Option<&[&str]>) -> Value {
    let mut config = json!({"cniVersion": version, "name": name, "type": "firewall"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    if let Some(addresses) = addresses {
        let ips: Vec<Value> = addresses.iter().map(|a| json!({"address": a, "interface": 2})).collect();
        config["prevResult"] = json!({"cniVersion": version,
            "interfaces": [{"name": "fwbr0"}, {"name": "veth0123abcd"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": ips});
    }
    config
}

#[test]
fn del_succeeds_twice_for_unknown_containers_and_without_prev_result() {
    let direct = Direct::new("fw-del");
    for backend in ["iptables", "nftables"] {
        let network = format!("fw-del-{backend}");
        let with = direct_config("1.0.0", &network, json!({"backend": backend}), Some(&["10.64.0.5/24", "fd64::5/64"]));
        let without = direct_config("1.0.0", &network, json!({"backend": backend}), None);
        let added = direct.ours("ADD", "del-a", &with);
        assert!(added.success, "{backend}: ADD: {}", added.stdout);
        for (what, id, config) in [
            ("DEL", "del-a", &with),
            ("DEL again", "del-a", &with),
            ("DEL never added", "del-never", &with),
            ("DEL without prevResult", "del-never", &without),
        ] {
            let outcome = direct.ours("DEL", id, config);
            assert!(outcome.success, "{backend}: {what}: {} {}", outcome.stdout, outcome.stderr);
        }
        // DEL without prevResult still removes what the ADD set up (the
        // reference knows no addresses then and leaves the rules).
        assert!(direct.ours("ADD", "del-b", &with).success);
        let outcome = direct.ours("DEL", "del-b", &without);
        assert!(outcome.success, "{backend}: DEL without prevResult: {} {}", outcome.stdout, outcome.stderr);
        let rules = format!("{}\n{}", filter_tables(&direct.host), nft_ruleset(&direct.host));
        assert!(!rules.contains("10.64.0.5") && !rules.contains("fd64::5"), "{backend}: rules left:\n{rules}");
    }
}

#[test]
fn add_without_prev_result_fails_like_the_reference() {
    let direct = Direct::new("fw-noprev");
    for command in ["ADD", "CHECK"] {
        let config = direct_config("1.0.0", "fw-noprev", json!({}), None);
        let (ours, theirs) = (direct.ours(command, "c", &config), direct.reference(command, "c", &config));
        assert!(!ours.success && !theirs.success, "{command}");
        assert_eq!(ours.json(), theirs.json(), "{command}: the same error");
    }
}

/// The reference adds the container's rules, then rejects an unknown
/// ingressPolicy (or a same-bridge policy without a bridge in prevResult)
/// and leaves the rules behind; cni-wasm rejects first.
#[test]
fn a_bad_ingress_policy_fails_before_anything_is_changed() {
    let direct = Direct::new("fw-badpol");
    let mut no_bridge =
        direct_config("1.0.0", "fw-badpol", json!({"ingressPolicy": "same-bridge"}), Some(&["10.65.0.7/24"]));
    no_bridge["prevResult"]["interfaces"] = json!([]);
    no_bridge["prevResult"]["ips"][0].as_object_mut().unwrap().remove("interface");
    for config in
        [direct_config("1.0.0", "fw-badpol", json!({"ingressPolicy": "closed"}), Some(&["10.65.0.7/24"])), no_bridge]
    {
        let ours = direct.ours("ADD", "c", &config);
        let theirs_host = Netns::new("fw-badpol-r");
        let theirs = run(
            &reference("firewall"),
            &Env { host_netns: Some(theirs_host.name.clone()), ..direct.env("ADD", "c") },
            &config.to_string(),
        );
        assert!(!ours.success && !theirs.success);
        assert_eq!(ours.json()["msg"], theirs.json()["msg"], "the same message");
        assert!(iptables_save(&theirs_host, false, "filter").contains("10.65.0.7"), "the reference leaks the rules");
        assert!(!iptables_save(&direct.host, false, "filter").contains("10.65.0.7"), "cni-wasm leaves nothing");
    }
    // DEL needs no policy: it succeeds, so a runtime can clean up (the
    // reference's DEL fails the same way its ADD did).
    let closed = direct_config("1.0.0", "fw-badpol", json!({"ingressPolicy": "closed"}), Some(&["10.65.0.7/24"]));
    assert!(direct.ours("DEL", "c", &closed).success);
    assert!(!direct.reference("DEL", "c", &closed).success);
}

#[test]
fn firewalld_asked_for_but_absent_is_a_clear_error() {
    let direct = Direct::new("fw-fwd");
    let config = direct_config("1.1.0", "fw-fwd", json!({"backend": "firewalld"}), Some(&["10.66.0.2/24"]));
    for command in ["ADD", "CHECK"] {
        let outcome = direct.ours(command, "c", &config);
        assert_eq!(outcome.code(), 999, "{command}");
        let msg = outcome.json()["msg"].as_str().unwrap().to_string();
        assert!(msg.contains("firewalld") && msg.contains("not running"), "{command}: {msg}");
    }
    let status = direct.ours("STATUS", "", &direct_config("1.1.0", "fw-fwd", json!({"backend": "firewalld"}), None));
    assert_eq!(status.code(), 50, "STATUS: the backend is not available");
    // Nothing to remove where firewalld is not running: DEL succeeds.
    assert!(direct.ours("DEL", "c", &config).success);
    assert!(!iptables_save(&direct.host, false, "filter").contains("10.66.0.2"));
    // Unset, the backend is iptables, as firewalld is not running.
    let default = direct_config("1.1.0", "fw-fwd", json!({}), Some(&["10.66.0.2/24"]));
    assert!(direct.ours("ADD", "c", &default).success);
    assert!(iptables_save(&direct.host, false, "filter").contains("-s 10.66.0.2/32 -j ACCEPT"));
    assert!(direct.ours("STATUS", "", &direct_config("1.1.0", "fw-fwd", json!({}), None)).success);
    assert!(direct.ours("STATUS", "", &direct_config("1.1.0", "fw-fwd", json!({"backend": "nftables"}), None)).success);
    assert!(direct.ours("DEL", "c", &default).success);
}

#[test]
fn gc_removes_the_rules_of_attachments_not_listed() {
    let direct = Direct::new("fw-gc");
    for backend in ["iptables", "nftables"] {
        // A network name of this test's own: GC looks at every record of
        // the network, and records live in the real host's /run.
        let network = format!("fw-gc-{backend}");
        let stale =
            direct_config("1.1.0", &network, json!({"backend": backend}), Some(&["10.67.0.2/24", "fd67::2/64"]));
        let live = direct_config("1.1.0", &network, json!({"backend": backend}), Some(&["10.67.0.3/24"]));
        let other_network =
            direct_config("1.1.0", &format!("{network}-other"), json!({"backend": backend}), Some(&["10.67.1.4/24"]));
        for (id, config) in [("gc-stale", &stale), ("gc-live", &live), ("gc-other", &other_network)] {
            let outcome = direct.ours("ADD", id, config);
            assert!(outcome.success, "{backend}: ADD {id}: {}", outcome.stdout);
        }
        let mut gc = direct_config("1.1.0", &network, json!({"backend": backend}), None);
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-live", "ifname": "eth0"}]);
        let outcome = direct.ours("GC", "", &gc);
        assert!(outcome.success, "{backend}: GC: {} {}", outcome.stdout, outcome.stderr);
        let rules = format!("{}\n{}", filter_tables(&direct.host), nft_ruleset(&direct.host));
        assert!(
            !rules.contains("10.67.0.2") && !rules.contains("fd67::2"),
            "{backend}: the stale attachment's rules are gone:\n{rules}"
        );
        assert!(rules.contains("10.67.0.3"), "{backend}: the listed attachment's rules stay:\n{rules}");
        assert!(rules.contains("10.67.1.4"), "{backend}: another network's rules stay:\n{rules}");
        let check = direct.ours("CHECK", "gc-live", &live);
        assert!(check.success, "{backend}: the listed attachment still passes CHECK: {}", check.stdout);
        for (id, config) in [("gc-live", &live), ("gc-other", &other_network)] {
            assert!(direct.ours("DEL", id, config).success);
        }
    }
}

#[test]
fn version_lists_what_the_reference_supports_and_later() {
    let direct = Direct::new("fw-ver");
    let outcome = run(
        &direct.install.plugin("firewall"),
        &Env::new("VERSION", "", "", "", &direct.install.dir),
        "{\"cniVersion\": \"1.0.0\"}",
    );
    assert_eq!(outcome.json()["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
    let old = direct_config("0.3.1", "fw-ver", json!({}), Some(&["10.68.0.2/24"]));
    assert_eq!(
        direct.ours("ADD", "c", &old).code(),
        direct.reference("ADD", "c", &old).code(),
        "0.3.1 is refused by both"
    );
}

/// Ten containers added at once, then deleted at once: the shared chains,
/// jumps and isolation rules exist once each, every container has its
/// rules, and afterwards none is left.
fn concurrent_adds_and_dels(backend: &str) {
    const N: usize = 10;
    let tag = format!("fw-conc-{backend}");
    let ours = Side::ours(&tag);
    let conflist = network(
        &tag,
        "fwbr-conc",
        "10.69.0.0/24",
        None,
        firewall(json!({"backend": backend, "ingressPolicy": "same-bridge"})),
    );
    let containers: Vec<Netns> = (0..N).map(|i| Netns::new(&format!("{tag}{i}"))).collect();
    let addresses: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, ct)| {
                let (ours, conflist) = (&ours, &conflist);
                s.spawn(move || ours.add(conflist, &format!("c{i}"), ct, &[]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| result::ip(&h.join().unwrap().unwrap_or_else(|e| panic!("{backend}: concurrent ADD: {e}")), 0))
            .collect()
    });
    let count = |text: &str, needle: &str| text.matches(needle).count();
    match backend {
        "iptables" => {
            let filter = iptables_save(&ours.host, false, "filter");
            assert_eq!(count(&filter, "-A FORWARD "), 2, "one jump to CNI-FORWARD, one to stage 1:\n{filter}");
            assert_eq!(count(&filter, "-j CNI-ADMIN"), 1, "{filter}");
            assert_eq!(count(&filter, "-A CNI-ISOLATION-STAGE-1 "), 2, "{filter}");
            assert_eq!(count(&filter, "-A CNI-ISOLATION-STAGE-2 "), 2, "{filter}");
            for ip in &addresses {
                assert_eq!(count(&filter, &format!(" {ip}/32 ")), 2, "{ip}:\n{filter}");
            }
        }
        _ => {
            let ruleset = nft_ruleset(&ours.host);
            assert_eq!(count(&ruleset, "jump isolation_stage_1"), 1, "{ruleset}");
            assert_eq!(count(&ruleset, "jump containers"), 1, "{ruleset}");
            assert_eq!(count(&ruleset, "oifname \"fwbr-conc\" drop"), 1, "{ruleset}");
            for ip in &addresses {
                assert_eq!(count(&ruleset, &format!(" {ip} ")), 2, "{ip}:\n{ruleset}");
            }
        }
    }
    std::thread::scope(|s| {
        for (i, ct) in containers.iter().enumerate() {
            let (ours, conflist) = (&ours, &conflist);
            s.spawn(move || {
                ours.del(conflist, &format!("c{i}"), ct, &[])
                    .unwrap_or_else(|e| panic!("{backend}: concurrent DEL: {e}"))
            });
        }
    });
    let rules = format!("{}\n{}", filter_tables(&ours.host), nft_ruleset(&ours.host));
    assert!(!rules.contains("10.69.0."), "{backend}: rules left:\n{rules}");
}

#[test]
fn concurrent_adds_and_dels_with_iptables_share_the_chains() {
    concurrent_adds_and_dels("iptables");
}

#[test]
fn concurrent_adds_and_dels_with_nftables_share_the_table() {
    concurrent_adds_and_dels("nftables");
}

/// The comments of the rules in the nftables backend's `containers` chain.
fn nft_container_comments(host: &Netns) -> Vec<String> {
    cni_wasm_tests::kernel::nft_rule_comments(host, "inet", "cni_firewall", &["containers"])
}

/// Every attachment's rules share the `containers` chain, and nft deletes
/// a rule only by its handle. An ADD reads only the three-rule forward
/// chain (and, to isolate, the per-bridge stage 1 chain) and records its
/// rules' handles; a DEL or a repeated ADD deletes by them. Only the first
/// ADD on a node, which makes the table, lists it; a record without handles
/// (an older cni-wasm's) makes DEL list it.
#[test]
fn nftables_add_and_del_find_the_attachments_rules_by_recorded_handles() {
    let direct = Direct::new("fw-nftrec");
    let audit = cni_wasm_tests::plugin::Audit::new("fw-nftrec");
    // Records live in the node's state directory: a network of this run.
    let network = format!("fw-nftrec-{}", std::process::id());
    let extra = json!({"backend": "nftables", "ingressPolicy": "same-bridge"});
    let configs = [("a", "10.69.0.2/24"), ("b", "10.69.0.3/24")]
        .map(|(id, address)| (id, direct_config("1.0.0", &network, extra.clone(), Some(&[address]))));
    let call = |command: &str, (id, config): &(&str, Value)| {
        let out = run(&direct.install.plugin("firewall"), &audit.on(direct.env(command, id)), &config.to_string());
        assert!(out.success, "{command} {id}: {} {}", out.stdout, out.stderr);
    };
    let of =
        |id: &str| nft_container_comments(&direct.host).iter().filter(|c| c.ends_with(&format!("id: {id}"))).count();
    call("ADD", &configs[0]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 1, "the first ADD, making the table, lists it");
    call("ADD", &configs[1]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "a second ADD lists no table");
    assert_eq!((of("a"), of("b")), (2, 2), "replies in and traffic out, per address");
    call("ADD", &configs[0]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "a repeated ADD lists no table");
    assert_eq!(of("a"), 2, "a repeated ADD replaces the attachment's rules");
    call("CHECK", &configs[0]);
    audit.take_count("netfilter.nft-list-table");

    call("DEL", &configs[0]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "DEL by recorded handles lists no table");
    assert_eq!((of("a"), of("b")), (0, 2), "DEL removes only a's rules");

    let path = std::path::Path::new("/run/cni-wasm/firewall/attachments").join(&network).join("b:eth0");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).expect("ADD recorded b")).unwrap();
    assert!(record["nftRules"].is_string(), "the record holds the handles: {record}");
    record.as_object_mut().unwrap().remove("nftRules");
    std::fs::write(&path, record.to_string()).unwrap();
    call("DEL", &configs[1]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 1, "DEL without handles lists the table");
    assert_eq!(of("b"), 0, "every rule of b is gone");
    assert!(!path.exists(), "DEL removes the record");
}

/// A DEL deletes the address rules its ADD wrote in one restore, without
/// reading the filter table (which holds every container's rules); rules
/// not as written (here: already gone) make it read the table.
#[test]
fn an_iptables_del_of_what_its_add_wrote_reads_no_table() {
    let direct = Direct::new("fw-iptdel");
    let audit = cni_wasm_tests::plugin::Audit::new("fw-iptdel");
    let network = format!("fw-iptdel-{}", std::process::id());
    let config = direct_config("1.0.0", &network, json!({"backend": "iptables"}), Some(&["10.70.0.2/24"]));
    let call = |command: &str| {
        let out = run(&direct.install.plugin("firewall"), &audit.on(direct.env(command, "a")), &config.to_string());
        assert!(out.success, "{command}: {} {}", out.stdout, out.stderr);
    };
    call("ADD");
    assert!(filter_tables(&direct.host).to_string().contains("10.70.0.2"), "ADD lets the address through");
    audit.take_count("netfilter.iptables-save");
    call("DEL");
    assert_eq!(audit.take_count("netfilter.iptables-save"), 0, "DEL reads no table");
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "nor an nftables one");
    assert!(!filter_tables(&direct.host).to_string().contains("10.70.0.2"), "DEL removes the address rules");
    call("DEL");
    assert_eq!(audit.take_count("netfilter.iptables-save"), 1, "a DEL with nothing to delete reads the table");
}
