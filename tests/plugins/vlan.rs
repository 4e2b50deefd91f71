//! vlan side by side with the reference through libcni, in the full-kernel
//! lane (this kernel has no 802.1Q): the same results and links (VLAN id,
//! MTU, MAC); a container reaching a peer on its VLAN and not one on
//! another; the DEL matrix, where the reference fails once the master is
//! gone; CHECK; rollback; bad input; VERSION.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::kernel;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_extend_the_references};
use cni_wasm_tests::side::{ReferenceCheck, Side, SideBySide, ping};
use cni_wasm_tests::{lane, result};
use serde_json::{Value, json};

fn vlan(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "vlan", "master": "master0", "vlanId": 100,
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "10.76.0.0/24", "gateway": "10.76.0.1"}]]}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn conflist(plugin: Value) -> Value {
    json!({"cniVersion": "1.0.0", "name": "vlannet", "plugins": [plugin]})
}

fn with_master(host: &Netns) {
    host.exec("ip", &["link", "add", "master0", "type", "dummy"]);
    host.exec("ip", &["link", "set", "master0", "up"]);
}

/// The container's state and its VLAN links' 802.1Q data.
fn container_state(ns: &Netns) -> Value {
    let mut state = kernel::container_state(ns);
    let links = ns.ip_json(&["-d", "link", "show"]);
    let vlans: Vec<Value> = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "vlan")
        .map(|l| json!({"name": l["ifname"], "data": l["linkinfo"]["info_data"], "txqlen": l["txqlen"]}))
        .collect();
    state["vlans"] = json!(vlans);
    state
}

/// Two containers can't share a VLAN id on one master (the kernel allows
/// one VLAN device per id and parent): one container per case.
#[test]
#[ignore = "needs a full kernel (vlan): tests/kernel-vm.sh runs it"]
fn a_vlan_with_and_without_an_mtu_matches_the_reference() {
    lane::require_kernel_feature("vlan");
    for (tag, extra) in
        [("vl-plain", json!({})), ("vl-mtu", json!({"mtu": 1400, "vlanId": 0, "dns": {"nameservers": ["10.76.0.53"]}}))]
    {
        SideBySide::new(tag, conflist(vlan(extra)))
            .prepare(with_master)
            .container_state(container_state)
            .reference_check(ReferenceCheck::Passes)
            .containers(1)
            .run();
    }
}

/// The master is a veth to a "switch" namespace that has VLANs 100 and 200
/// on its end, each with a peer address in the same subnet: the container
/// on VLAN 100 reaches the VLAN 100 peer and not the VLAN 200 one.
#[test]
#[ignore = "needs a full kernel (vlan): tests/kernel-vm.sh runs it"]
fn a_container_reaches_its_vlan_and_not_another() {
    lane::require_kernel_feature("vlan");
    let ours = Side::ours("vl-ping");
    let switch = Netns::new("vl-ping-sw");
    ours.exec("ip", &["link", "add", "master0", "type", "veth", "peer", "name", "trunk0", "netns", &switch.name]);
    ours.exec("ip", &["link", "set", "master0", "up"]);
    switch.exec("ip", &["link", "set", "trunk0", "up"]);
    // Both peers share a subnet; by default Linux answers ARP for any of its
    // addresses on any link, which would let VLAN 100 reach VLAN 200's address.
    switch.exec("sysctl", &["-qw", "net.ipv4.conf.all.arp_ignore=1"]);
    for (id, address) in [("100", "10.76.0.100/24"), ("200", "10.76.0.200/24")] {
        let name = format!("trunk0.{id}");
        switch.exec("ip", &["link", "add", "link", "trunk0", "name", &name, "type", "vlan", "id", id]);
        switch.exec("ip", &["addr", "add", address, "dev", &name]);
        switch.exec("ip", &["link", "set", &name, "up"]);
    }
    let conflist = conflist(vlan(json!({})));
    let ct = Netns::new("vl-ping-c");
    ours.add(&conflist, "a", &ct, &[]).unwrap();
    assert!(ping(&ct, "10.76.0.100"), "the peer on VLAN 100 answers");
    assert!(!ping(&ct, "10.76.0.200"), "the peer on VLAN 200 is out of reach");
    ours.del(&conflist, "a", &ct, &[]).unwrap();
}

/// The kernel deletes a master's VLANs with it; DEL must still release the
/// address. The reference looks the master up first and fails, leaking it.
#[test]
#[ignore = "needs a full kernel (vlan): tests/kernel-vm.sh runs it"]
fn del_succeeds_twice_never_added_after_the_netns_and_after_the_master_where_the_reference_fails() {
    lane::require_kernel_feature("vlan");
    let direct = Direct::new("vl-del", "vlan", "vlannet");
    with_master(&direct.host);
    let config = direct.config(vlan(json!({})));
    let ct = Netns::new("vl-del-c");
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    let (ours_ct, theirs_ct) = (Netns::new("vl-del-o"), Netns::new("vl-del-r"));
    let other_id = direct.config(vlan(json!({"vlanId": 101})));
    assert!(direct.ours("ADD", "o", &ours_ct.path(), &config).success);
    assert!(direct.reference("ADD", "r", &theirs_ct.path(), &other_id).success);
    direct.host.exec("ip", &["link", "del", "master0"]);
    assert!(
        !direct.reference("DEL", "r", &theirs_ct.path(), &other_id).success,
        "the reference fails: fixed upstream?"
    );
    let ours = direct.ours("DEL", "o", &ours_ct.path(), &config);
    assert!(ours.success, "{}", ours.stdout);
    assert_eq!(direct.reservations().len(), 1, "only the reference's reservation is left");
}

#[test]
#[ignore = "needs a full kernel (vlan): tests/kernel-vm.sh runs it"]
fn bad_input_and_a_failed_add_leave_nothing_and_check_notices_another_vlan_id() {
    lane::require_kernel_feature("vlan");
    let direct = Direct::new("vl-bad", "vlan", "vlannet");
    with_master(&direct.host);
    let ct = Netns::new("vl-bad-c");
    for (extra, text) in [
        (json!({"vlanId": 4095}), "invalid VLAN ID 4095"),
        (json!({"mtu": 9000}), "invalid MTU 9000, must be [0, master MTU(1500)]"),
        (json!({"master": ""}), "\"master\" field is required"),
        (json!({"ipam": {}}), "vlan needs an IPAM configuration"),
        (
            json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.76.0.0/24"}]], "routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}}),
            "failed to add route",
        ),
    ] {
        let outcome = direct.ours("ADD", "a", &ct.path(), &direct.config(vlan(extra.clone())));
        assert!(outcome.json()["msg"].as_str().unwrap().contains(text), "{extra}: {}", outcome.stdout);
        assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "{extra}: nothing left in the container");
    }
    assert!(direct.reservations().is_empty(), "nothing left in the store");

    let ours = Side::ours("vl-chk");
    with_master(&ours.host);
    let conflist = conflist(vlan(json!({})));
    let ct = Netns::new("vl-chk-c");
    let added = ours.add(&conflist, "a", &ct, &[]).unwrap();
    ours.check(&conflist, "a", &ct, &[]).expect("CHECK after ADD");
    let other = self::conflist(vlan(json!({"vlanId": 101})));
    assert!(ours.check(&other, "a", &ct, &[]).unwrap_err().contains("has VLAN id 100, configured 101"));
    assert_eq!(result::ip(&added, 0), "10.76.0.2");
}

#[test]
fn version_lists_the_references_versions_and_1_1_0() {
    cni_wasm_tests::require_root();
    assert_versions_extend_the_references(&Installation::new("vl-version"), "vlan");
}
