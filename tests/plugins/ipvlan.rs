//! ipvlan side by side with the reference through libcni, in the
//! full-kernel lane (this kernel has no ipvlan): the same results and links
//! in l2, l3 and l3s, with IPAM and chained after another plugin (the
//! master then being that plugin's one interface); traffic between two
//! containers in l2 and l3; the DEL matrix; CHECK; rollback; VERSION.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::kernel;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_extend_the_references};
use cni_wasm_tests::side::{ReferenceCheck, Side, SideBySide, ping};
use cni_wasm_tests::{lane, result};
use serde_json::{Value, json};

fn ipvlan(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "ipvlan", "master": "master0",
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "10.74.0.0/24", "gateway": "10.74.0.1"}]]}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn conflist(plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": "ipvnet", "plugins": plugins})
}

/// The master: a dummy link, up (named so the dummy module's own dummy0
/// never clashes).
fn with_master(host: &Netns) {
    host.exec("ip", &["link", "add", "master0", "type", "dummy"]);
    host.exec("ip", &["link", "set", "master0", "up"]);
}

/// The container's state, its ipvlan's mode included, without ndisc_notify
/// (ours sets it as upstream does now; Debian's 1.1.1 does not).
fn container_state(ns: &Netns) -> Value {
    let mut state = kernel::container_state(ns);
    state["sysctls"].as_object_mut().unwrap().remove("net/ipv6/conf/eth0/ndisc_notify");
    let links = ns.ip_json(&["-d", "link", "show"]);
    let ipvlans: Vec<Value> = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "ipvlan")
        .map(|l| json!({"name": l["ifname"], "data": l["linkinfo"]["info_data"], "txqlen": l["txqlen"]}))
        .collect();
    state["ipvlans"] = json!(ipvlans);
    state
}

#[test]
#[ignore = "needs a full kernel (ipvlan): tests/kernel-vm.sh runs it"]
fn every_mode_matches_the_reference() {
    lane::require_kernel_feature("ipvlan");
    for mode in ["l2", "l3", "l3s"] {
        SideBySide::new(&format!("ipv-{mode}"), conflist(vec![ipvlan(json!({"mode": mode, "mtu": 1400}))]))
            .prepare(with_master)
            .container_state(container_state)
            .reference_check(ReferenceCheck::Passes)
            .run();
    }
}

/// Chained after a plugin whose result has one interface and addresses
/// (the prevResult given directly, as libcni would hand it over): that
/// interface is the master, and its addresses go on the ipvlan.
#[test]
#[ignore = "needs a full kernel (ipvlan): tests/kernel-vm.sh runs it"]
fn chained_without_ipam_the_previous_interface_is_the_master_and_its_addresses_are_used() {
    lane::require_kernel_feature("ipvlan");
    let direct = Direct::new("ipv-chain", "ipvlan", "ipvnet");
    with_master(&direct.host);
    let ct = Netns::new("ipv-chain-c");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "master0"}],
        "ips": [{"address": "10.75.0.5/24", "gateway": "10.75.0.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.75.0.53"]}});
    let config = direct.config(json!({"prevResult": prev, "dns": {"nameservers": ["10.75.0.54"]}}));
    // One master can't hold the same address on two ipvlan ports, so the
    // two sides take turns.
    let ours = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(ours.success, "{}", ours.stdout);
    assert_eq!(ours.json()["dns"], json!({"nameservers": ["10.75.0.54"]}), "the config's DNS");
    let eth0 = &ct.ip_json(&["-d", "addr", "show", "eth0"])[0];
    assert_eq!(eth0["linkinfo"]["info_kind"], "ipvlan");
    assert!(eth0.to_string().contains("10.75.0.5"), "{eth0}");
    assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
    let theirs_ct = Netns::new("ipv-chain-r");
    let theirs = direct.reference("ADD", "b", &theirs_ct.path(), &config);
    assert!(theirs.success, "{}", theirs.stdout);
    let normalize = |v: Value| cni_wasm_tests::result::normalize(&v);
    kernel::assert_same(&normalize(ours.json()), &normalize(theirs.json()), "chained result");
}

#[test]
#[ignore = "needs a full kernel (ipvlan): tests/kernel-vm.sh runs it"]
fn l2_and_l3_containers_on_one_master_reach_each_other() {
    lane::require_kernel_feature("ipvlan");
    for mode in ["l2", "l3"] {
        let ours = Side::ours(&format!("ipv-ping-{mode}"));
        with_master(&ours.host);
        let conflist = conflist(vec![ipvlan(json!({"mode": mode}))]);
        let (a, b) = (Netns::new("ipv-ping-a"), Netns::new("ipv-ping-b"));
        let a_ip = result::ip(&ours.add(&conflist, "a", &a, &[]).unwrap(), 0);
        let b_ip = result::ip(&ours.add(&conflist, "b", &b, &[]).unwrap(), 0);
        assert!(ping(&a, &b_ip) && ping(&b, &a_ip), "{mode}: the containers reach each other");
        ours.del(&conflist, "a", &a, &[]).unwrap();
        ours.del(&conflist, "b", &b, &[]).unwrap();
    }
}

#[test]
#[ignore = "needs a full kernel (ipvlan): tests/kernel-vm.sh runs it"]
fn del_succeeds_twice_never_added_after_the_netns_and_after_the_master_is_gone() {
    lane::require_kernel_feature("ipvlan");
    let direct = Direct::new("ipv-del", "ipvlan", "ipvnet");
    with_master(&direct.host);
    let config = direct.config(ipvlan(json!({})));
    let ct = Netns::new("ipv-del-c");
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    let gone = Netns::new("ipv-del-gone");
    assert!(direct.ours("ADD", "b", &gone.path(), &config).success);
    direct.host.exec("ip", &["link", "del", "master0"]);
    let path = gone.path();
    drop(gone);
    let outcome = direct.ours("DEL", "b", &path, &config);
    assert!(outcome.success, "DEL with neither master nor netns: {}", outcome.stdout);
    assert!(direct.reservations().is_empty(), "every address released");
}

#[test]
#[ignore = "needs a full kernel (ipvlan): tests/kernel-vm.sh runs it"]
fn a_failed_add_leaves_nothing_and_check_notices_a_changed_mode() {
    lane::require_kernel_feature("ipvlan");
    let direct = Direct::new("ipv-fail", "ipvlan", "ipvnet");
    with_master(&direct.host);
    let ct = Netns::new("ipv-fail-c");
    let bad_route = direct
        .config(ipvlan(json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.74.0.0/24"}]],
        "routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}})));
    assert!(!direct.ours("ADD", "a", &ct.path(), &bad_route).success);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "the ipvlan was removed (the reference leaks it and the IP)");
    assert!(direct.reservations().is_empty());

    let ours = Side::ours("ipv-chk");
    with_master(&ours.host);
    let conflist = conflist(vec![ipvlan(json!({}))]);
    let ct = Netns::new("ipv-chk-c");
    ours.add(&conflist, "a", &ct, &[]).unwrap();
    ours.check(&conflist, "a", &ct, &[]).expect("CHECK after ADD");
    let l3 = self::conflist(vec![ipvlan(json!({"mode": "l3"}))]);
    let error = ours.check(&l3, "a", &ct, &[]).unwrap_err();
    assert!(error.contains("Container IPVlan mode l2 does not match expected value: l3"), "{error}");
}

#[test]
fn version_lists_the_references_versions_and_1_1_0() {
    cni_wasm_tests::require_root();
    assert_versions_extend_the_references(&Installation::new("ipv-version"), "ipvlan");
}
