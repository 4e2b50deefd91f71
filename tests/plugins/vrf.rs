//! vrf side by side with the reference, in the full-kernel lane (this
//! kernel has no VRF links). vrf is a chained plugin, so each test builds
//! the container interfaces an earlier plugin would have left (veths to a
//! peer namespace, addressed and routed) and runs vrf on them directly with
//! that prevResult: the VRF and its table, interfaces sharing one VRF, the
//! VRF going with its last member, the interface's routes and IPv6
//! addresses following it into the VRF (upstream does; Debian's 1.1.1 does
//! not), traffic through a moved route, CHECK, the DEL matrix, bad input.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_extend_the_references};
use cni_wasm_tests::side::ping;
use cni_wasm_tests::{kernel, lane};
use serde_json::{Value, json};

/// A container with `eth0` (10.79.0.2/24, fd79::2/64, 192.0.2.0/24 and a
/// default route via 10.79.0.1) and `eth1` (10.79.1.2/24), veths to `peer`
/// which holds .1 of each subnet.
fn container(tag: &str) -> (Netns, Netns) {
    let ct = Netns::new(tag);
    let peer = Netns::new(&format!("{tag}-p"));
    for (i, (v4, v6)) in [("10.79.0", Some("fd79::")), ("10.79.1", None)].into_iter().enumerate() {
        let (inside, outside) = (format!("eth{i}"), format!("p{i}"));
        ct.exec("ip", &["link", "add", &inside, "type", "veth", "peer", "name", &outside, "netns", &peer.name]);
        ct.exec("ip", &["addr", "add", &format!("{v4}.2/24"), "dev", &inside]);
        peer.exec("ip", &["addr", "add", &format!("{v4}.1/24"), "dev", &outside]);
        if let Some(v6) = v6 {
            ct.exec("ip", &["addr", "add", &format!("{v6}2/64"), "dev", &inside, "nodad"]);
            peer.exec("ip", &["addr", "add", &format!("{v6}1/64"), "dev", &outside, "nodad"]);
        }
        ct.exec("ip", &["link", "set", &inside, "up"]);
        peer.exec("ip", &["link", "set", &outside, "up"]);
    }
    ct.exec("ip", &["route", "add", "192.0.2.0/24", "via", "10.79.0.1", "dev", "eth0"]);
    ct.exec("ip", &["route", "add", "default", "via", "10.79.0.1", "dev", "eth0"]);
    (ct, peer)
}

fn prev_result(ct: &Netns, ifname: &str) -> Value {
    json!({"cniVersion": "1.0.0", "interfaces": [{"name": ifname, "sandbox": ct.path()}],
           "ips": [{"address": "10.79.0.2/24", "gateway": "10.79.0.1", "interface": 0}],
           "routes": [{"dst": "0.0.0.0/0"}]})
}

fn vrf(direct: &Direct, ct: &Netns, ifname: &str, extra: Value) -> String {
    let mut plugin = json!({"type": "vrf", "vrfname": "blue", "prevResult": prev_result(ct, ifname)});
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    direct.config(plugin)
}

/// The VRF links of a namespace and who is enslaved to what.
fn vrf_state(ns: &Netns) -> Value {
    let links = ns.ip_json(&["-d", "link", "show"]);
    let summary: Vec<Value> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            json!({"name": l["ifname"], "master": l["master"], "kind": l["linkinfo"]["info_kind"],
                   "table": l["linkinfo"]["info_data"]["table"], "up": l["flags"].as_array().unwrap().contains(&json!("UP"))})
        })
        .collect();
    json!(summary)
}

fn routes_in(ns: &Netns, table: &str) -> Vec<String> {
    let mut routes: Vec<String> = ["-4", "-6"]
        .into_iter()
        .flat_map(|family| {
            ns.ip_json(&[family, "route", "show", "table", table]).as_array().unwrap().clone().into_iter()
        })
        .filter(|r| r["type"].is_null() || r["type"] == "unicast")
        .map(|r| format!("{} via {}", r["dst"].as_str().unwrap(), r["gateway"].as_str().unwrap_or("-")))
        .collect();
    routes.sort();
    routes
}

#[test]
#[ignore = "needs a full kernel (vrf): tests/kernel-vm.sh runs it"]
fn two_interfaces_share_a_vrf_like_the_references_and_it_goes_with_the_last() {
    lane::require_kernel_feature("vrf");
    let direct = Direct::new("vrf-two", "vrf", "vrfnet");
    let (ours, _ours_peer) = container("vrf-two-o");
    let (theirs, _theirs_peer) = container("vrf-two-r");
    for ifname in ["eth0", "eth1"] {
        let ours_out = direct.ours_on("ADD", ifname, &ours.path(), ifname, &vrf(&direct, &ours, ifname, json!({})));
        let theirs_out =
            direct.reference_on("ADD", ifname, &theirs.path(), ifname, &vrf(&direct, &theirs, ifname, json!({})));
        assert!(ours_out.success && theirs_out.success, "{} / {}", ours_out.stdout, theirs_out.stdout);
        let normalize = |v: Value| cni_wasm_tests::result::normalize(&v);
        kernel::assert_same(&normalize(ours_out.json()), &normalize(theirs_out.json()), "prevResult passed on");
        assert_eq!(ours_out.json()["interfaces"][0]["name"], ifname, "the prevResult, unchanged");
    }
    kernel::assert_same(&vrf_state(&ours), &vrf_state(&theirs), "VRF, table 1, both interfaces enslaved");
    let blue = &ours.ip_json(&["-d", "link", "show", "blue"])[0];
    assert_eq!(blue["linkinfo"]["info_data"]["table"], 1, "the lowest free table: {blue}");

    // Upstream's route move (Debian's 1.1.1 drops them): the interface's
    // own routes are in the VRF's table, and IPv6 addresses survived.
    assert_eq!(
        routes_in(&ours, "1"),
        [
            "10.79.0.0/24 via -",
            "10.79.1.0/24 via -",
            "192.0.2.0/24 via 10.79.0.1",
            "default via 10.79.0.1",
            "fd79::/64 via -",
            "fe80::/64 via -",
            "fe80::/64 via -"
        ]
    );
    assert!(ours.ip_json(&["addr", "show", "eth0"]).to_string().contains("fd79::2"), "IPv6 address restored");

    for (ifname, vrf_left) in [("eth0", true), ("eth1", false)] {
        let config = vrf(&direct, &ours, ifname, json!({}));
        assert!(direct.ours_on("DEL", ifname, &ours.path(), ifname, &config).success);
        let theirs_config = vrf(&direct, &theirs, ifname, json!({}));
        assert!(direct.reference_on("DEL", ifname, &theirs.path(), ifname, &theirs_config).success);
        kernel::assert_same(&vrf_state(&ours), &vrf_state(&theirs), &format!("after DEL of {ifname}"));
        assert_eq!(cni_wasm_tests::link_names(&ours).contains(&"blue".to_string()), vrf_left, "after DEL of {ifname}");
    }
}

/// The peer pings the container from an address outside the container's
/// subnets: the reply needs the default route, which moved into the VRF.
#[test]
#[ignore = "needs a full kernel (vrf): tests/kernel-vm.sh runs it"]
fn traffic_follows_the_moved_default_route() {
    lane::require_kernel_feature("vrf");
    let direct = Direct::new("vrf-ping", "vrf", "vrfnet");
    let (ct, peer) = container("vrf-ping-c");
    peer.exec("ip", &["addr", "add", "198.51.100.1/32", "dev", "lo"]);
    peer.exec("ip", &["link", "set", "lo", "up"]);
    let config = vrf(&direct, &ct, "eth0", json!({}));
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    let reply = std::process::Command::new("ip")
        .args(["netns", "exec", &peer.name, "ping", "-c1", "-W2", "-I", "198.51.100.1", "10.79.0.2"])
        .output()
        .unwrap();
    assert!(reply.status.success(), "the container answers through its VRF's default route");
    assert!(ping(&peer, "10.79.0.2"));
    // From inside, bound to the VRF (what `ip vrf exec` does with a cgroup):
    // the peer's loopback address is reached through the moved default route.
    let bound = std::process::Command::new("ip")
        .args(["netns", "exec", &ct.name, "ping", "-c1", "-W2", "-I", "blue", "198.51.100.1"])
        .output()
        .unwrap();
    assert!(bound.status.success(), "ping -I blue: {}", String::from_utf8_lossy(&bound.stdout));
}

#[test]
#[ignore = "needs a full kernel (vrf): tests/kernel-vm.sh runs it"]
fn tables_checks_and_bad_input_as_the_reference() {
    lane::require_kernel_feature("vrf");
    let direct = Direct::new("vrf-bad", "vrf", "vrfnet");
    for (tag, setup, ifname, extra, text) in [
        ("vrf-bad-a", "", "eth0", json!({"vrfname": ""}), "configuration is expected to have a valid vrf name"),
        ("vrf-bad-b", "ip link add blue type dummy", "eth0", json!({}), "Netlink blue is not a VRF"),
        (
            "vrf-bad-c",
            "ip link add blue type vrf table 7",
            "eth0",
            json!({"table": 8}),
            "already exist with different routing table 7",
        ),
        (
            "vrf-bad-d",
            "ip link add br0 type bridge && ip link set eth0 master br0",
            "eth0",
            json!({}),
            "has already a master set: br0",
        ),
        ("vrf-bad-e", "", "eth9", json!({}), "could not get link by name eth9"),
    ] {
        let mut messages = Vec::new();
        for side in ["o", "r"] {
            let (ct, _peer) = container(&format!("{tag}{side}"));
            if !setup.is_empty() {
                ct.exec("sh", &["-c", setup]);
            }
            let config = vrf(&direct, &ct, ifname, extra.clone());
            let outcome = match side {
                "o" => direct.ours_on("ADD", "a", &ct.path(), ifname, &config),
                _ => direct.reference_on("ADD", "a", &ct.path(), ifname, &config),
            };
            assert!(!outcome.success, "{tag}{side}: {}", outcome.stdout);
            messages.push(outcome.json());
        }
        assert!(messages[0]["msg"].as_str().unwrap().contains(text), "{tag}: {}", messages[0]);
        assert_eq!(messages[0], messages[1], "{tag}: the reference's error");
    }
    let (ct, _peer) = container("vrf-tab");
    ct.exec("ip", &["link", "add", "green", "type", "vrf", "table", "1"]);
    let red = vrf(&direct, &ct, "eth0", json!({"vrfname": "red"}));
    assert!(direct.ours("ADD", "a", &ct.path(), &red).success);
    assert_eq!(ct.ip_json(&["-d", "link", "show", "red"])[0]["linkinfo"]["info_data"]["table"], 2, "1 is taken");
    let fixed = vrf(&direct, &ct, "eth1", json!({"vrfname": "pink", "table": 100}));
    assert!(direct.ours_on("ADD", "b", &ct.path(), "eth1", &fixed).success);
    assert_eq!(ct.ip_json(&["-d", "link", "show", "pink"])[0]["linkinfo"]["info_data"]["table"], 100);

    assert!(direct.ours("CHECK", "a", &ct.path(), &red).success, "CHECK after ADD");
    ct.exec("ip", &["link", "set", "eth0", "nomaster"]);
    let check = direct.ours("CHECK", "a", &ct.path(), &red);
    assert!(check.stdout.contains("Failed to find eth0 associated to vrf red"), "{}", check.stdout);
    let no_prev = direct.config(json!({"type": "vrf", "vrfname": "red"}));
    assert!(direct.ours("ADD", "a", &ct.path(), &no_prev).stdout.contains("missing prevResult from earlier plugin"));
}

/// DEL twice, never added, without a netns, after the netns is gone, and
/// after the interface is gone, where Debian's reference fails (upstream's
/// #1282 fixes it).
#[test]
#[ignore = "needs a full kernel (vrf): tests/kernel-vm.sh runs it"]
fn del_succeeds_whenever_nothing_is_left_to_undo() {
    lane::require_kernel_feature("vrf");
    let direct = Direct::new("vrf-del", "vrf", "vrfnet");
    let (ct, _peer) = container("vrf-del-c");
    let config = vrf(&direct, &ct, "eth0", json!({}));
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    assert!(!cni_wasm_tests::link_names(&ct).contains(&"blue".to_string()), "the VRF went with its last member");

    for side in ["o", "r"] {
        let (ct, _peer) = container(&format!("vrf-gone-{side}"));
        let config = vrf(&direct, &ct, "eth0", json!({}));
        let add = if side == "o" {
            direct.ours("ADD", "a", &ct.path(), &config)
        } else {
            direct.reference("ADD", "a", &ct.path(), &config)
        };
        assert!(add.success, "{}", add.stdout);
        ct.exec("ip", &["link", "del", "eth0"]);
        let del = if side == "o" {
            direct.ours("DEL", "a", &ct.path(), &config)
        } else {
            direct.reference("DEL", "a", &ct.path(), &config)
        };
        match side {
            "o" => {
                assert!(del.success, "DEL with the interface gone: {}", del.stdout);
                assert!(!cni_wasm_tests::link_names(&ct).contains(&"blue".to_string()), "and the empty VRF deleted");
            }
            _ => assert!(!del.success, "the reference fails: fixed in Debian's package?"),
        }
    }
    let gone = Netns::new("vrf-del-gone");
    let path = gone.path();
    drop(gone);
    assert!(direct.ours("DEL", "a", &path, &config).success, "DEL after the netns is gone");
}

#[test]
fn version_lists_the_references_versions_and_1_1_0() {
    cni_wasm_tests::require_root();
    assert_versions_extend_the_references(&Installation::new("vrf-version"), "vrf");
}
