//! macvlan side by side with the reference through libcni: the same results
//! and links (mode, MTU, MAC, queue lengths), addresses and routes in both
//! namespaces, at layer 2 and 3; real traffic between two containers on one
//! master (and not to the master itself, as the kernel has it); the DEL
//! matrix, where the Debian reference fails once the master is gone; CHECK,
//! STATUS, rollback and VERSION. Every "host" is a scratch namespace with a
//! veth as the master (this kernel has no dummy links).

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::kernel::{self, SETTLE, eventually};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_extend_the_references};
use cni_wasm_tests::result;
use cni_wasm_tests::side::{ReferenceCheck, Side, SideBySide, ping};
use serde_json::{Value, json};

const SUBNET: &str = "10.71.0.0/24";

fn macvlan(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "macvlan", "master": "master0",
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": SUBNET, "gateway": "10.71.0.1"}]]}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn conflist(version: &str, plugin: Value) -> Value {
    json!({"cniVersion": version, "name": "macnet", "plugins": [plugin]})
}

/// The master: a veth, up, with its peer beside it (a LAN to the outside).
fn with_master(host: &Netns) {
    host.exec("ip", &["link", "add", "master0", "type", "veth", "peer", "name", "master0p"]);
    host.exec("ip", &["link", "set", "master0", "up"]);
    host.exec("ip", &["link", "set", "master0p", "up"]);
}

/// The container as kernel::container_state has it, plus the macvlan's own
/// attributes, without ndisc_notify: ours sets it (as upstream does now, so
/// a reused IPv6 address is announced), Debian's 1.1.1 does not.
fn container_state(ns: &Netns) -> Value {
    let mut state = kernel::container_state(ns);
    state["sysctls"].as_object_mut().unwrap().remove("net/ipv6/conf/eth0/ndisc_notify");
    let eth0 = ns.ip_json(&["-d", "link", "show"]);
    let macvlans: Vec<Value> = eth0
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "macvlan")
        .map(|l| json!({"name": l["ifname"], "data": l["linkinfo"]["info_data"], "txqlen": l["txqlen"]}))
        .collect();
    state["macvlans"] = json!(macvlans);
    state
}

fn same_as_the_reference(tag: &str, version: &str, plugin: Value) -> cni_wasm_tests::side::Detached {
    SideBySide::new(tag, conflist(version, plugin))
        .prepare(with_master)
        .container_state(container_state)
        .reference_check(ReferenceCheck::Passes)
        .run()
}

#[test]
fn a_bridge_mode_macvlan_with_ipam_matches_the_reference_at_every_version() {
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        same_as_the_reference(&format!("mv-v{}", version.replace('.', "")), version, macvlan(json!({})));
    }
}

#[test]
fn every_mode_and_an_mtu_match_the_reference() {
    for mode in ["private", "vepa", "bridge"] {
        same_as_the_reference(&format!("mv-{mode}"), "1.0.0", macvlan(json!({"mode": mode, "mtu": 1400})));
    }
    // passthru takes the whole master: one container.
    SideBySide::new("mv-passthru", conflist("1.0.0", macvlan(json!({"mode": "passthru"}))))
        .prepare(with_master)
        .container_state(container_state)
        .containers(1)
        .run();
}

#[test]
fn a_layer_2_macvlan_without_ipam_and_with_dns_matches_the_reference() {
    let plugin = json!({"type": "macvlan", "master": "master0", "dns": {"nameservers": ["10.71.0.53"]}});
    same_as_the_reference("mv-l2", "1.0.0", plugin);
}

#[test]
fn the_mac_follows_runtime_config_then_cni_args_then_the_config_as_in_the_reference() {
    let plugin = macvlan(json!({"mac": "02:00:00:00:00:01", "capabilities": {"mac": true}}));
    let done = SideBySide::new("mv-mac", conflist("1.0.0", plugin))
        .prepare(with_master)
        .container_state(container_state)
        .containers(1)
        .cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .capability("mac", json!("02:00:00:00:00:03"))
        .run();
    let (ours, theirs) = &done.results[0];
    assert_eq!(ours["interfaces"][0]["mac"], "02:00:00:00:00:03");
    assert_eq!(theirs["interfaces"][0]["mac"], "02:00:00:00:00:03");
}

/// Two containers on one master reach each other; neither reaches the
/// master's own address, because a macvlan in bridge mode cannot talk to
/// its parent, which the kernel enforces.
#[test]
fn containers_on_one_master_reach_each_other_but_not_the_master() {
    let ours = Side::ours("mv-ping");
    with_master(&ours.host);
    ours.exec("ip", &["addr", "add", "10.71.0.250/24", "dev", "master0"]);
    let conflist = conflist("1.0.0", macvlan(json!({})));
    let (a, b) = (Netns::new("mv-ping-a"), Netns::new("mv-ping-b"));
    let a_ip = result::ip(&ours.add(&conflist, "a", &a, &[]).unwrap(), 0);
    let b_ip = result::ip(&ours.add(&conflist, "b", &b, &[]).unwrap(), 0);
    assert!(ping(&a, &b_ip), "a reaches b");
    assert!(ping(&b, &a_ip), "b reaches a");
    assert!(!ping(&a, "10.71.0.250"), "a macvlan does not reach its master's own address");
    ours.del(&conflist, "b", &b, &[]).unwrap();
    assert!(!ping(&a, &b_ip), "a deleted container is unreachable");
    ours.del(&conflist, "a", &a, &[]).unwrap();
}

/// macvlan run directly in a scratch host with a master.
fn direct(tag: &str) -> Direct {
    let direct = Direct::new(tag, "macvlan", "macnet");
    with_master(&direct.host);
    direct
}

/// A whole macvlan config, as `macvlan` extends the plugin.
fn config(direct: &Direct, extra: Value) -> String {
    direct.config(macvlan(extra))
}

#[test]
fn del_succeeds_twice_never_added_without_netns_and_once_the_master_is_gone() {
    let direct = direct("mv-del");
    let config = config(&direct, json!({}));
    let ct = Netns::new("mv-del-c");
    let add = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(add.success, "{}", add.stdout);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never-added", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
    assert!(direct.reservations().is_empty(), "the address was released");

    // The namespace goes first.
    let gone = Netns::new("mv-del-gone");
    assert!(direct.ours("ADD", "b", &gone.path(), &config).success);
    let path = gone.path();
    drop(gone);
    let outcome = direct.ours("DEL", "b", &path, &config);
    assert!(outcome.success, "DEL after the netns is gone: {}", outcome.stdout);
    assert!(direct.reservations().is_empty());
}

/// The kernel deletes a master's macvlans with it; DEL must still release
/// the address. Debian's reference looks the master up first and fails
/// (`Link not found`), leaking the reservation.
#[test]
fn del_after_the_master_is_gone_releases_the_address_where_the_reference_fails() {
    let direct = direct("mv-del-master");
    let config = config(&direct, json!({}));
    let (ours_ct, theirs_ct) = (Netns::new("mv-dm-o"), Netns::new("mv-dm-r"));
    assert!(direct.ours("ADD", "o", &ours_ct.path(), &config).success);
    assert!(direct.reference("ADD", "r", &theirs_ct.path(), &config).success);
    direct.host.exec("ip", &["link", "del", "master0"]);
    let theirs = direct.reference("DEL", "r", &theirs_ct.path(), &config);
    assert!(!theirs.success, "the reference's DEL fails without the master: fixed upstream? {}", theirs.stdout);
    let ours = direct.ours("DEL", "o", &ours_ct.path(), &config);
    assert!(ours.success, "{}", ours.stdout);
    assert_eq!(direct.reservations(), ["10.71.0.3"], "only the reference's reservation is left");
}

#[test]
fn a_failed_add_leaves_nothing_in_the_container_nor_the_store() {
    let direct = direct("mv-fail");
    // A route through a gateway off every subnet: ConfigureIface fails
    // after IPAM and the link.
    let config = config(
        &direct,
        json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
        "routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}}),
    );
    let ct = Netns::new("mv-fail-c");
    let outcome = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(!outcome.success, "{}", outcome.stdout);
    assert!(outcome.json()["msg"].as_str().unwrap().contains("failed to add route"), "{}", outcome.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "the macvlan was removed");
    assert!(direct.reservations().is_empty(), "the address was released");
}

#[test]
fn bad_input_gets_one_error_with_a_clear_message() {
    let direct = direct("mv-bad");
    let ct = Netns::new("mv-bad-c");
    for (extra, code, text) in [
        (json!({"mode": "bogus"}), 7, "unknown macvlan mode: \"bogus\""),
        (json!({"mtu": 1600}), 7, "invalid MTU 1600, must be [0, master MTU(1500)]"),
        (json!({"master": "nope0"}), 999, "failed to lookup master \"nope0\": Link not found"),
        (json!({"mac": "zz"}), 999, "invalid args zz for MAC addr"),
    ] {
        let outcome = direct.ours("ADD", "a", &ct.path(), &config(&direct, extra.clone()));
        assert_eq!(outcome.code(), code, "{extra}: {}", outcome.stdout);
        assert!(outcome.json()["msg"].as_str().unwrap().contains(text), "{extra}: {}", outcome.stdout);
        assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "{extra}: nothing left");
    }
}

/// Without `master`, the link of the host's default route, as the reference.
#[test]
fn the_default_master_is_the_default_routes_link() {
    let direct = direct("mv-default");
    direct.host.exec("ip", &["addr", "add", "192.0.2.2/24", "dev", "master0"]);
    direct.host.exec("ip", &["route", "add", "default", "via", "192.0.2.1"]);
    let mut config: Value = serde_json::from_str(&config(&direct, json!({}))).unwrap();
    config.as_object_mut().unwrap().remove("master");
    let ct = Netns::new("mv-default-c");
    let outcome = direct.ours("ADD", "a", &ct.path(), &config.to_string());
    assert!(outcome.success, "{}", outcome.stdout);
    let eth0 = &ct.ip_json(&["-d", "link", "show", "eth0"])[0];
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan", "{eth0}");
}

#[test]
fn check_notices_a_changed_mode_and_a_missing_address() {
    let ours = Side::ours("mv-chk");
    with_master(&ours.host);
    let conflist = conflist("1.0.0", macvlan(json!({})));
    let ct = Netns::new("mv-chk-c");
    let added = ours.add(&conflist, "a", &ct, &[]).unwrap();
    ours.check(&conflist, "a", &ct, &[]).expect("CHECK after ADD");
    let vepa = self::conflist("1.0.0", macvlan(json!({"mode": "vepa"})));
    let error = ours.check(&vepa, "a", &ct, &[]).unwrap_err();
    assert!(error.contains("Container macvlan mode bridge does not match expected value: vepa"), "{error}");
    ct.exec("ip", &["addr", "del", &format!("{}/24", result::ip(&added, 0)), "dev", "eth0"]);
    let error = ours.check(&conflist, "a", &ct, &[]).unwrap_err();
    assert!(error.contains("Failed to match addr"), "{error}");
}

/// STATUS asks IPAM (code 50 once its range is used up); without IPAM
/// there is nothing to be unavailable.
#[test]
fn status_follows_ipam() {
    let direct = direct("mv-status");
    let mut config: Value = serde_json::from_str(&config(
        &direct,
        json!({"ipam": {"type": "host-local",
        "ranges": [[{"subnet": "10.72.0.0/30"}]]}}),
    ))
    .unwrap();
    config["cniVersion"] = json!("1.1.0");
    config["ipam"]["dataDir"] = json!(direct.store.display());
    let config = config.to_string();
    assert!(direct.ours("STATUS", "", "", &config).success);
    let ct = Netns::new("mv-status-c");
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    assert_eq!(direct.ours("STATUS", "", "", &config).code(), 50, "the /30 has one address, taken");
    let l2 = json!({"cniVersion": "1.1.0", "name": "macnet", "type": "macvlan", "master": "master0"});
    assert!(direct.ours("STATUS", "", "", &l2.to_string()).success);
}

#[test]
fn version_lists_the_references_versions_and_1_1_0() {
    cni_wasm_tests::require_root();
    assert_versions_extend_the_references(&Installation::new("mv-version"), "macvlan");
}

/// The host end of a container's macvlan is the master, whose state the
/// container's lifetime must not touch: after ADD and DEL it is as it was.
#[test]
fn the_master_is_untouched_by_add_and_del() {
    let ours = Side::ours("mv-master");
    with_master(&ours.host);
    let before = kernel::links(&ours.host);
    let conflist = conflist("1.0.0", macvlan(json!({})));
    let ct = Netns::new("mv-master-c");
    ours.add(&conflist, "a", &ct, &[]).unwrap();
    ours.del(&conflist, "a", &ct, &[]).unwrap();
    eventually(SETTLE, "the host's links are as before", || {
        let now = kernel::links(&ours.host);
        if now == before { Ok(()) } else { Err(now.to_string()) }
    });
}
