//! bridge (+ host-local) side by side with the reference through libcni:
//! the same results and the same links, addresses, routes, sysctls and
//! netfilter rules for every field the reference has; real traffic; the
//! fields the Debian reference lacks (portIsolation, vlanTrunk, ...) on
//! their own; DEL that always cleans up.

use cni_wasm_tests::kernel::{self, iptables_save};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::side::{BRIDGE, GATEWAY, Side, SideBySide, ping};
use cni_wasm_tests::{lane, result, wait_until_no_random_veths};
use serde_json::{Value, json};

fn bridge(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "bridge", "bridge": BRIDGE,
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "10.89.0.0/24", "gateway": GATEWAY}]]}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn conflist(plugin: Value) -> Value {
    json!({"cniVersion": "1.0.0", "name": "podman", "plugins": [plugin]})
}

/// Two containers added, checked and deleted on both sides, comparing
/// every result and both namespaces after each step.
fn same_as_the_reference(tag: &str, plugin: Value, args: &str) {
    SideBySide::new(tag, conflist(plugin)).cni_args(args).run();
}

#[test]
fn a_plain_l2_bridge_matches_the_reference() {
    same_as_the_reference("br-l2", bridge(json!({})), "");
}

#[test]
fn a_gateway_bridge_with_masquerade_and_hairpin_matches_the_reference() {
    same_as_the_reference("br-gw", bridge(json!({"isGateway": true, "ipMasq": true, "hairpinMode": true})), "");
}

#[test]
fn a_default_gateway_bridge_with_mtu_and_promisc_matches_the_reference() {
    let plugin = bridge(json!({"isDefaultGateway": true, "mtu": 1400, "promiscMode": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.90.0.0/24"}]]}}));
    same_as_the_reference("br-dgw", plugin, "");
}

#[test]
fn a_dual_stack_bridge_with_dad_and_force_address_matches_the_reference() {
    let plugin = bridge(json!({"isGateway": true, "forceAddress": true, "enabledad": true, "ipMasq": true,
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                 "ranges": [[{"subnet": "10.91.0.0/24"}], [{"subnet": "fd91::/64"}]]}}));
    same_as_the_reference("br-dual", plugin, "");
}

#[test]
fn mac_spoof_check_and_a_requested_mac_match_the_reference() {
    let plugin = bridge(json!({"isGateway": true, "macspoofchk": true}));
    same_as_the_reference("br-mac", plugin, "IgnoreUnknown=1;MAC=0a:58:0a:59:00:99");
}

#[test]
fn containers_reach_their_gateway_and_each_other_and_not_after_del() {
    let ours = Side::ours("br-ping");
    let conflist = conflist(bridge(json!({"isGateway": true, "ipMasq": true})));
    let (a, b) = (Netns::new("br-ping-a"), Netns::new("br-ping-b"));
    ours.add(&conflist, "a", &a, &[]).unwrap();
    let b_result = ours.add(&conflist, "b", &b, &[]).unwrap();
    let b_ip = result::ip(&b_result, 0);
    assert!(ping(&a, GATEWAY), "a container reaches its gateway");
    assert!(ping(&a, &b_ip), "a container reaches another on the bridge");
    assert!(ping(&ours.host, &b_ip), "the host reaches a container");
    ours.del(&conflist, "b", &b, &[]).unwrap();
    assert!(!ping(&a, &b_ip), "a deleted container is unreachable");
    ours.del(&conflist, "a", &a, &[]).unwrap();
}

#[test]
fn port_isolation_keeps_containers_apart_but_not_from_the_gateway() {
    let ours = Side::ours("br-iso");
    let conflist = conflist(bridge(json!({"isGateway": true, "portIsolation": true})));
    let (a, b) = (Netns::new("br-iso-a"), Netns::new("br-iso-b"));
    ours.add(&conflist, "a", &a, &[]).unwrap();
    let b_result = ours.add(&conflist, "b", &b, &[]).unwrap();
    let b_ip = result::ip(&b_result, 0);
    assert!(ping(&a, GATEWAY));
    assert!(!ping(&a, &b_ip), "isolated ports cannot talk to each other");
    let ports = ours.host.ip_json(&["-d", "link", "show", "master", BRIDGE]);
    assert!(ports.as_array().unwrap().iter().all(|p| p["linkinfo"]["info_slave_data"]["isolated"] == json!(true)));
}

/// The host (like any peer) still maps a deleted container's address to its
/// MAC; the next container with that address must be reachable at once,
/// not after the stale entry times out (tens of seconds). The reference's
/// arp_notify fires before the bridge port forwards and is lost.
#[test]
fn a_reused_address_is_reachable_at_once() {
    let ours = Side::ours("br-reuse");
    let conflist = conflist(bridge(json!({"isGateway": true})));
    // Another container keeps the bridge up (and its neighbour table).
    let keeper = Netns::new("br-reuse-k");
    ours.add(&conflist, "keeper", &keeper, &[]).unwrap();
    let add_with_ip = |id: &str, ct: &Netns| {
        let args = [
            "--container-id",
            id,
            "--netns",
            &ct.path(),
            "--ifname",
            "eth0",
            "--args",
            "IgnoreUnknown=1;IP=10.89.0.50",
        ];
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        ours.runtime.invoke("add", &ours.conflist(&conflist), &args).into_result().unwrap();
    };
    let (first, second) = (Netns::new("br-reuse-1"), Netns::new("br-reuse-2"));
    add_with_ip("first", &first);
    assert!(ping(&ours.host, "10.89.0.50"));
    // A real reuse comes later than the neighbour lock time, within which
    // the kernel ignores an update of the entry as a flap: wait until the
    // host's entry for the address is older than that.
    let locktime = kernel::sysctl(&ours.host, &format!("net/ipv4/neigh/{BRIDGE}/locktime"));
    let locktime_seconds = locktime.parse::<u64>().expect("locktime is a number of 1/100 s") / 100;
    kernel::eventually(kernel::SETTLE, "the host's neighbour entry outlives the lock time", || {
        let entry = ours.host.ip_json(&["-s", "neigh", "show", "10.89.0.50"]);
        match entry[0]["updated"].as_u64() {
            Some(age) if age > locktime_seconds => Ok(()),
            _ => Err(entry.to_string()),
        }
    });
    ours.del(&conflist, "first", &first, &[]).unwrap();
    add_with_ip("second", &second);
    let mac = second.ip_json(&["link", "show", "eth0"])[0]["address"].as_str().unwrap().to_string();
    let neighbour = ours.host.ip_json(&["neigh", "show", "10.89.0.50"]);
    assert_eq!(neighbour[0]["lladdr"].as_str(), Some(mac.as_str()), "the host learned the new MAC: {neighbour}");
    assert!(ping(&ours.host, "10.89.0.50"), "the reused address answers at once");
    assert_eq!(kernel::sysctl(&second, "net/ipv4/conf/eth0/arp_notify"), "1", "arp_notify is set, as by the reference");
}

/// The VLANs of each bridge port, by (normalized) port name.
fn port_vlans(host: &Netns) -> Vec<(String, Vec<Value>)> {
    let table: Value = serde_json::from_str(&host.exec("bridge", &["-j", "vlan", "show"])).unwrap();
    let mut ports: Vec<(String, Vec<Value>)> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (kernel::normalize_name(p["ifname"].as_str().unwrap()), p["vlans"].as_array().unwrap().clone()))
        .collect();
    ports.sort_by_key(|p| format!("{p:?}"));
    ports
}

/// The default VLAN 1 left on a container's port, untagged but not its PVID.
fn is_leftover_default_vlan(vlan: &Value) -> bool {
    vlan["vlan"] == 1 && vlan["flags"] == json!(["Egress Untagged"])
}

/// The host namespace with its VLAN table, without the default VLAN the
/// Debian reference leaves on a container's port (see below).
fn host_with_vlans(host: &Netns) -> Value {
    let mut state = kernel::host_state(host);
    let vlans: Vec<(String, Vec<Value>)> = port_vlans(host)
        .into_iter()
        .map(|(port, vlans)| (port, vlans.into_iter().filter(|v| !is_leftover_default_vlan(v)).collect()))
        .collect();
    state["vlans"] = json!(vlans);
    state
}

/// An access VLAN matches the reference in everything but one thing the
/// Debian reference gets wrong: it adds VLAN 100 as the port's PVID but
/// leaves the port in the bridge's default VLAN 1 (egress untagged), so the
/// container still gets VLAN 1's untagged broadcast traffic. Ours removes
/// the default VLAN first, as upstream does now unless
/// `preserveDefaultVlan` says otherwise.
#[test]
#[ignore = "needs a full kernel (bridge vlan_filtering): tests/kernel-vm.sh runs it"]
fn an_access_vlan_matches_the_reference_but_leaves_the_default_vlan() {
    lane::require_kernel_feature("bridge vlan_filtering");
    let plugin = bridge(json!({"vlan": 100, "isGateway": true}));
    let attached = SideBySide::new("br-vlan", conflist(plugin)).host_state(host_with_vlans).add();
    let leftover = |host: &Netns| -> usize {
        port_vlans(host)
            .iter()
            .filter(|(port, _)| port == "veth*")
            .flat_map(|(_, v)| v)
            .filter(|v| is_leftover_default_vlan(v))
            .count()
    };
    assert_eq!(leftover(&attached.ours.host), 0, "ours: no container port is left in VLAN 1");
    // Both containers' ports and the VLAN gateway interface's.
    let ports = port_vlans(&attached.theirs.host).iter().filter(|(port, _)| port == "veth*").count();
    assert_eq!(leftover(&attached.theirs.host), ports, "the reference leaves every port in VLAN 1 (fixed now?)");
    attached.del();
}

/// vlanTrunk and preserveDefaultVlan are newer than the Debian reference.
#[test]
#[ignore = "needs a full kernel (bridge vlan_filtering): tests/kernel-vm.sh runs it"]
fn a_vlan_trunk_tags_the_port_with_every_vlan() {
    lane::require_kernel_feature("bridge vlan_filtering");
    let ours = Side::ours("br-trunk");
    let conflist = conflist(bridge(json!({"vlan": 100, "vlanTrunk": [{"minID": 200, "maxID": 202}, {"id": 300}]})));
    let a = Netns::new("br-trunk-a");
    ours.add(&conflist, "a", &a, &[]).unwrap();
    let ports = ours.host.ip_json(&["link", "show", "master", BRIDGE]);
    let port = ports[0]["ifname"].as_str().expect("the container's port").to_string();
    let vlans: Value = serde_json::from_str(&ours.exec("bridge", &["-j", "vlan", "show", "dev", &port])).unwrap();
    let ids: Vec<(u64, bool)> = vlans[0]["vlans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| {
            let (first, last) =
                (v["vlan"].as_u64().unwrap(), v["vlanEnd"].as_u64().unwrap_or(v["vlan"].as_u64().unwrap()));
            let pvid = v["flags"].as_array().is_some_and(|f| f.iter().any(|f| f == "PVID"));
            (first..=last).map(move |id| (id, pvid))
        })
        .collect();
    assert_eq!(ids, [(100, true), (200, false), (201, false), (202, false), (300, false)], "{vlans}");
    ours.del(&conflist, "a", &a, &[]).unwrap();
}

#[test]
fn check_fails_when_the_container_address_is_gone() {
    let ours = Side::ours("br-chk");
    let conflist = conflist(bridge(json!({"isGateway": true})));
    let a = Netns::new("br-chk-a");
    let result = ours.add(&conflist, "a", &a, &[]).unwrap();
    ours.check(&conflist, "a", &a, &[]).expect("CHECK after ADD");
    let address = result["ips"][0]["address"].as_str().unwrap();
    a.exec("ip", &["addr", "del", address, "dev", "eth0"]);
    assert!(ours.check(&conflist, "a", &a, &[]).is_err(), "CHECK notices the missing address");
}

/// A bridge whose MAC the kernel chose follows its lowest port MAC. Ours is
/// created with its MAC set, so a port joining later (here one with the
/// lowest possible random MAC) changes nothing and CHECK still passes. The
/// reference pins the MAC only when it adds a gateway address, so an L2
/// bridge's MAC moves and its CHECK fails (MAC churn, plugins.md bug theme 7).
#[test]
fn a_port_joining_later_keeps_the_bridge_mac_where_the_reference_check_fails() {
    let conflist = conflist(bridge(json!({})));
    for side in [Side::ours("br-mac"), Side::reference("br-mac-r")] {
        let a = Netns::new(&format!("{}-a", side.host.name));
        let result = side.add(&conflist, "a", &a, &[]).unwrap();
        let reported = result["interfaces"][0]["mac"].as_str().unwrap().to_string();
        side.exec("ip", &["link", "add", "brmac-low", "type", "veth", "peer", "name", "brmac-lowp"]);
        side.exec("ip", &["link", "set", "brmac-low", "address", "02:00:00:00:00:00", "master", BRIDGE, "up"]);
        let bridge_mac = side.host.ip_json(&["link", "show", BRIDGE])[0]["address"].as_str().unwrap().to_string();
        let check = side.check(&conflist, "a", &a, &[]);
        if side.name == "cni-wasm" {
            assert_eq!(bridge_mac, reported, "the bridge keeps the MAC its ADD reported");
            check.expect("CHECK after a port with a lower MAC joined");
        } else {
            assert_eq!(bridge_mac, "02:00:00:00:00:00", "the reference's bridge follows its lowest port");
            let error = check.expect_err("the reference's CHECK notices the moved MAC");
            assert!(error.contains("Mac doesn't match"), "{error}");
        }
        side.del(&conflist, "a", &a, &[]).unwrap();
    }
}

#[test]
fn del_succeeds_twice_for_unknown_containers_and_after_the_netns_is_gone() {
    let ours = Side::ours("br-del");
    let conflist = conflist(bridge(json!({"isGateway": true, "ipMasq": true})));
    let a = Netns::new("br-del-a");
    ours.add(&conflist, "a", &a, &[]).unwrap();
    // The namespace goes first (the container died): DEL must still
    // release the IP and remove the masquerade rules.
    let path = a.path();
    drop(a);
    let install = Installation::new("br-del-direct");
    let config = json!({"cniVersion": "1.0.0", "name": "podman", "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24", "gateway": GATEWAY}]], "dataDir": ours.store_dir().display().to_string()}});
    for (id, netns) in [("a", path.as_str()), ("a", path.as_str()), ("never-added", ""), ("a", "")] {
        let env = Env { host_netns: Some(ours.host.name.clone()), ..Env::new("DEL", id, netns, "eth0", &install.dir) };
        let outcome = run(&install.plugin("bridge"), &env, &config.to_string());
        assert!(outcome.success, "DEL {id} {netns:?}: {} {}", outcome.stdout, outcome.stderr);
    }
    let nat = iptables_save(&ours.host, false, "nat");
    assert!(!nat.contains("CNI-"), "masquerade rules removed:\n{nat}");
    let reserved: Vec<_> = std::fs::read_dir(ours.store_dir().join("podman"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(reserved.is_empty(), "IP released: {reserved:?}");
    // The host end of the veth goes with the namespace, when the kernel
    // gets to it. bridge's DEL leaves this to the kernel, as the reference
    // does: without the namespace only a cached prevResult names the host
    // end, a DEL without one must work as well, and deleting it first would
    // only race the kernel.
    wait_until_no_random_veths(&ours.host, "the host end of the veth is gone with the namespace");
}

/// GC (CNI 1.1, which libcni 1.1 cannot send: the plugin is run directly)
/// removes what attachments the runtime no longer lists left behind: their
/// masquerade rules and IP reservations. The reference has no GC.
#[test]
fn gc_removes_masquerading_and_reservations_of_attachments_not_listed() {
    let ours = Side::ours("br-gc");
    let conflist = conflist(bridge(json!({"isGateway": true, "ipMasq": true})));
    let (stale, live) = (Netns::new("br-gc-s"), Netns::new("br-gc-l"));
    let stale_ip = result::ip(&ours.add(&conflist, "stale", &stale, &[]).unwrap(), 0);
    let live_ip = result::ip(&ours.add(&conflist, "live", &live, &[]).unwrap(), 0);
    let install = Installation::new("br-gc-direct");
    let mut config = conflist["plugins"][0].clone();
    config["cniVersion"] = json!("1.1.0");
    config["name"] = json!("podman");
    config["ipam"]["dataDir"] = json!(ours.store_dir().display().to_string());
    config["cni.dev/valid-attachments"] = json!([{"containerID": "live", "ifname": "eth0"}]);
    let env = Env { host_netns: Some(ours.host.name.clone()), ..Env::new("GC", "", "", "", &install.dir) };
    let outcome = run(&install.plugin("bridge"), &env, &config.to_string());
    assert!(outcome.success, "{} {}", outcome.stdout, outcome.stderr);
    let nat = iptables_save(&ours.host, false, "nat");
    assert!(!nat.contains(&format!("{stale_ip}/32")), "the stale attachment's masquerade is gone:\n{nat}");
    assert!(nat.contains(&format!("{live_ip}/32")), "the live one's stays:\n{nat}");
    let store = ours.store_dir().join("podman");
    assert!(!store.join(&stale_ip).exists() && store.join(&live_ip).exists(), "reservations: only the live one stays");
}

/// ipMasq writes and deletes its rules without reading the nat table when
/// they are as expected, and reads and edits it when they are not: an ADD
/// that finds its chain already there (left empty by someone) fills it as
/// usual, and a DEL whose POSTROUTING jump someone removed still removes
/// the chain.
#[test]
fn masquerading_falls_back_to_reading_the_table_when_rules_are_not_as_expected() {
    let ours = Side::ours("br-masq");
    let conflist = conflist(bridge(json!({"isGateway": true, "ipMasq": true})));
    let ct = Netns::new("br-masq-c");
    let first_ip = result::ip(&ours.add(&conflist, "c", &ct, &[]).unwrap(), 0);
    let expected = iptables_save(&ours.host, false, "nat").replace(&first_ip, "IP");
    let chain = expected
        .lines()
        .find_map(|l| l.strip_prefix(':').filter(|c| c.starts_with("CNI-")))
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or_else(|| panic!("a CNI- chain in\n{expected}"))
        .to_string();
    ours.del(&conflist, "c", &ct, &[]).unwrap();
    let rules = |nat: &str| -> Vec<String> {
        nat.lines()
            .filter(|l| l.contains("CNI-"))
            .map(|l| l.split(' ').filter(|w| !w.starts_with('[')).collect())
            .collect()
    };
    assert!(rules(&iptables_save(&ours.host, false, "nat")).is_empty());

    ours.exec("iptables", &["-t", "nat", "-N", &chain]);
    let second_ip = result::ip(&ours.add(&conflist, "c", &ct, &[]).unwrap(), 0);
    let filled = iptables_save(&ours.host, false, "nat").replace(&second_ip, "IP");
    assert_eq!(rules(&filled), rules(&expected), "the chain filled as usual");

    let nat = iptables_save(&ours.host, false, "nat");
    let jump = nat.lines().find(|l| l.starts_with("-A POSTROUTING") && l.ends_with(&chain)).unwrap();
    let mut delete = vec!["-t", "nat", "-D"];
    let words = save_words(jump.trim_start_matches("-A "));
    delete.extend(words.iter().map(String::as_str));
    ours.exec("iptables", &delete);
    ours.del(&conflist, "c", &ct, &[]).unwrap();
    let left = iptables_save(&ours.host, false, "nat");
    assert!(!left.contains(&chain), "the chain is gone:\n{left}");
}

/// A DEL without prevResult (a runtime that lost it, or the spec's
/// "best effort" DEL) removes the masquerading by the addresses the
/// container's link had, as the reference does, without reading either
/// family's whole nat table.
#[test]
fn del_without_prev_result_removes_masquerading_without_reading_the_nat_table() {
    cni_wasm_tests::require_root();
    let install = Installation::new("br-masq-noprev");
    let host = Netns::new("br-masq-noprev-h");
    let store = cni_wasm_tests::TempDir::new("br-masq-noprev");
    let ct = Netns::new("br-masq-noprev-c");
    let mut plugin = bridge(json!({"isGateway": true, "ipMasq": true}));
    plugin["cniVersion"] = json!("1.0.0");
    plugin["name"] = json!("podman");
    plugin["ipam"]["dataDir"] = json!(store.display());
    let config = plugin.to_string();
    let log = cni_wasm_tests::TempDir::new("br-masq-noprev-audit");
    let env = Env { host_netns: Some(host.name.clone()), ..Env::new("ADD", "c", &ct.path(), "eth0", &install.dir) }
        .var("CNI_WASM_AUDIT", log.join("audit.log").display().to_string());
    let out = run(&install.plugin("bridge"), &env, &config);
    assert!(out.success, "{}", out.stdout);
    assert!(iptables_save(&host, false, "nat").contains("CNI-"), "ADD masquerades");
    std::fs::remove_file(log.join("audit.log")).unwrap();

    let out = run(&install.plugin("bridge"), &env.with_command("DEL"), &config);
    assert!(out.success, "{}", out.stdout);
    let nat = iptables_save(&host, false, "nat");
    assert!(!nat.contains("CNI-"), "the masquerading is gone:\n{nat}");
    let audit = std::fs::read_to_string(log.join("audit.log")).unwrap();
    let netfilter: Vec<&str> = audit.lines().filter(|l| l.contains("\"netfilter.")).collect();
    assert!(netfilter.iter().all(|l| !l.contains("iptables-save")), "no whole-table read: {netfilter:#?}");
}

/// The comments of the nftables masquerade rules (`masq_checks`).
fn nft_masquerade_comments(host: &Netns) -> Vec<String> {
    cni_wasm_tests::kernel::nft_rule_comments(host, "inet", "cni_plugins_masquerade", &["masq_checks"])
}

/// nftables masquerading holds one rule per attachment in one chain, and
/// nft deletes a rule only by its handle, so the reference lists the whole
/// table on every ADD and DEL. Ours reads only the three-rule postrouting
/// chain on ADD and records its rules' handles, and DEL deletes by them:
/// neither lists the table. An attachment without a record (made by the
/// reference or an older cni-wasm) is still removed, by listing.
#[test]
fn nftables_masquerading_deletes_by_recorded_handles_and_without_a_record_by_listing() {
    cni_wasm_tests::require_root();
    let install = Installation::new("br-nftrec");
    let host = Netns::new("br-nftrec-h");
    let store = cni_wasm_tests::TempDir::new("br-nftrec");
    let audit = cni_wasm_tests::plugin::Audit::new("br-nftrec");
    let mut plugin = bridge(json!({"isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables"}));
    plugin["cniVersion"] = json!("1.0.0");
    plugin["name"] = json!("podman");
    plugin["ipam"]["dataDir"] = json!(store.display());
    let config = plugin.to_string();
    let containers: Vec<Netns> = ["a", "b"].iter().map(|c| Netns::new(&format!("br-nftrec-{c}"))).collect();
    let env = |id: &str, ct: &Netns| {
        audit.on(Env { host_netns: Some(host.name.clone()), ..Env::new("ADD", id, &ct.path(), "eth0", &install.dir) })
    };
    let table_listings = || audit.take_count("netfilter.nft-list-table");
    // Records live in the node's state directory: ids of this run only.
    let ids = ["a", "b"].map(|c| format!("nftrec-{c}-{}", std::process::id()));
    for (id, ct) in ids.iter().zip(&containers) {
        let out = run(&install.plugin("bridge"), &env(id, ct), &config);
        assert!(out.success, "ADD {id}: {}", out.stdout);
        assert_eq!(table_listings(), 0, "ADD {id} does not list the table");
    }
    assert_eq!(nft_masquerade_comments(&host).len(), 2, "one rule per attachment");

    let out = run(&install.plugin("bridge"), &env(&ids[0], &containers[0]).with_command("DEL"), &config);
    assert!(out.success, "DEL a: {}", out.stdout);
    assert_eq!(table_listings(), 0, "DEL by recorded handles does not list the table");
    let left = nft_masquerade_comments(&host);
    assert!(left.len() == 1 && left[0].ends_with(&format!("id: {}", ids[1])), "only b's rule is left: {left:?}");

    // b as the reference would have left it: the rule and no record. The
    // record is named by the comment's leading hash of the attachment.
    let instance = left[0].split(',').next().unwrap();
    std::fs::remove_file(std::path::Path::new("/run/cni-wasm/bridge/masq-nft").join(instance))
        .expect("ADD recorded b's handles");
    let out = run(&install.plugin("bridge"), &env(&ids[1], &containers[1]).with_command("DEL"), &config);
    assert!(out.success, "DEL b: {}", out.stdout);
    assert_eq!(table_listings(), 1, "DEL without a record lists the table once");
    assert!(nft_masquerade_comments(&host).is_empty(), "every masquerade rule is gone");
}

/// An iptables-save rule split into arguments as a shell would: double
/// quotes group words, a backslash escapes the next character.
fn save_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted) = (String::new(), false);
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            '"' => quoted = !quoted,
            ' ' if !quoted => words.push(std::mem::take(&mut word)),
            _ => word.push(c),
        }
    }
    words.push(word);
    words
}
