//! dummy, in the full-kernel lane (this kernel has no dummy links). The
//! Debian 1.1.1 package has no dummy plugin, so these tests hold ours to
//! upstream's documented behaviour rather than running a reference: a
//! `dummy` link named CNI_IFNAME in the container with IPAM's addresses,
//! routes and DNS; CHECK; the DEL matrix; rollback; bad input; VERSION.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_are_upstreams};
use cni_wasm_tests::side::Side;
use cni_wasm_tests::{lane, result};
use serde_json::{Value, json};

fn dummy(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "dummy",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
                 "routes": [{"dst": "192.0.2.0/24"}], "resolvConf": "/etc/resolv.conf"}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn conflist(plugin: Value) -> Value {
    json!({"cniVersion": "1.0.0", "name": "dummynet", "plugins": [plugin]})
}

#[test]
#[ignore = "needs a full kernel (dummy): tests/kernel-vm.sh runs it"]
fn add_makes_an_addressed_dummy_link_and_check_and_del_follow_it() {
    lane::require_kernel_feature("dummy");
    let ours = Side::ours("dm-add");
    let conflist = conflist(dummy(json!({})));
    let ct = Netns::new("dm-add-c");
    let added = ours.add(&conflist, "a", &ct, &[]).unwrap();

    let eth0 = &ct.ip_json(&["-d", "addr", "show", "eth0"])[0];
    assert_eq!(eth0["linkinfo"]["info_kind"], "dummy", "{eth0}");
    assert!(eth0["flags"].as_array().unwrap().contains(&json!("UP")), "{eth0}");
    let mac = eth0["address"].as_str().unwrap();
    assert_eq!(
        added["interfaces"],
        json!([{"name": "eth0", "mac": mac, "sandbox": ct.path()}]),
        "one interface, the dummy"
    );
    assert_eq!(result::ip(&added, 0), "10.77.0.2");
    assert_eq!(added["ips"][0]["interface"], 0);
    assert_eq!(added["ips"][1]["interface"], 0);
    let addresses = eth0.to_string();
    assert!(addresses.contains("10.77.0.2") && addresses.contains("fd77::2"), "{eth0}");
    let routes = ct.ip_json(&["route", "show", "192.0.2.0/24"]);
    assert_eq!(routes[0]["dev"], "eth0", "IPAM's route is on the dummy: {routes}");
    // Unlike macvlan and vlan, dummy keeps IPAM's DNS (here read from
    // resolvConf by host-local).
    assert!(added["dns"].is_object(), "IPAM's DNS: {added}");

    ours.check(&conflist, "a", &ct, &[]).expect("CHECK after ADD");
    ct.exec("ip", &["link", "set", "eth0", "down"]);
    let down = ours.check(&conflist, "a", &ct, &[]).unwrap_err();
    assert!(down.contains("is down"), "{down}");
    ct.exec("ip", &["link", "set", "eth0", "up"]);
    ct.exec("ip", &["addr", "del", "10.77.0.2/24", "dev", "eth0"]);
    let missing = ours.check(&conflist, "a", &ct, &[]).unwrap_err();
    assert!(missing.contains("Failed to match addr 10.77.0.2/24"), "{missing}");

    ours.del(&conflist, "a", &ct, &[]).unwrap();
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
    assert!(
        cni_wasm_tests::snapshot(&ours.store.join("dummynet"))
            .iter()
            .all(|(n, _)| n.parse::<std::net::IpAddr>().is_err())
    );
}

#[test]
#[ignore = "needs a full kernel (dummy): tests/kernel-vm.sh runs it"]
fn del_succeeds_twice_never_added_without_a_netns_and_after_the_netns_is_gone() {
    lane::require_kernel_feature("dummy");
    let direct = Direct::new("dm-del", "dummy", "dummynet");
    let config = direct.config(dummy(json!({})));
    let ct = Netns::new("dm-del-c");
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    let gone = Netns::new("dm-del-gone");
    assert!(direct.ours("ADD", "b", &gone.path(), &config).success);
    let path = gone.path();
    drop(gone);
    let outcome = direct.ours("DEL", "b", &path, &config);
    assert!(outcome.success, "DEL after the netns is gone: {}", outcome.stdout);
    assert!(direct.reservations().is_empty(), "every address released");
}

#[test]
#[ignore = "needs a full kernel (dummy): tests/kernel-vm.sh runs it"]
fn bad_input_and_a_failed_add_leave_nothing() {
    lane::require_kernel_feature("dummy");
    let direct = Direct::new("dm-bad", "dummy", "dummynet");
    let ct = Netns::new("dm-bad-c");
    let no_ipam = direct.config(json!({"type": "dummy"}));
    let outcome = direct.ours("ADD", "a", &ct.path(), &no_ipam);
    assert_eq!(outcome.json()["code"], 7, "{}", outcome.stdout);
    assert_eq!(outcome.json()["msg"], "dummy interface requires an IPAM configuration");
    let unreachable = direct
        .config(dummy(json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]],
        "routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}})));
    let outcome = direct.ours("ADD", "a", &ct.path(), &unreachable);
    assert!(outcome.json()["msg"].as_str().unwrap().contains("failed to add route"), "{}", outcome.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "no link left in the container");
    assert!(direct.reservations().is_empty(), "no address left reserved");
    ct.exec("ip", &["link", "add", "eth0", "type", "dummy"]);
    let taken = direct.ours("ADD", "a", &ct.path(), &direct.config(dummy(json!({}))));
    assert!(!taken.success, "CNI_IFNAME taken: {}", taken.stdout);
    assert!(direct.reservations().is_empty(), "no address left reserved");
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo", "eth0"], "the container's own eth0 is untouched");
}

#[test]
fn version_lists_upstreams_versions() {
    cni_wasm_tests::require_root();
    assert_versions_are_upstreams(&Installation::new("dm-version"), "dummy");
}
