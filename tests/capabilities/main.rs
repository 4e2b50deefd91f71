//! The native capability layer on a real kernel: what the host's WIT
//! bindings call after their policy checks.

mod conntrack;
mod nft_netlink;

use std::net::IpAddr;

use cni_wasm_capabilities::addresses::{self, Family};
use cni_wasm_capabilities::links::{self, LinkChange, LinkKind, LinkOptions, TapOptions};
use cni_wasm_capabilities::net::IpNetwork;
use cni_wasm_capabilities::netns::Netns as Namespace;
use cni_wasm_capabilities::routes::{self, AddMode, RouteFilter, RouteSpec};
use cni_wasm_capabilities::state::StateDir;
use cni_wasm_capabilities::{ErrorKind, sysctl};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::{TempDir, lane, link_names, require_root};
use serde_json::json;

fn open(ns: &Netns) -> Namespace {
    Namespace::open(&ns.path()).expect("opening a test netns")
}

fn thread_netns() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

#[test]
fn a_veth_pair_is_created_across_namespaces_in_one_call_and_no_thread_moves() {
    require_root();
    let (a, b) = (Netns::new("cap-veth-a"), Netns::new("cap-veth-b"));
    let before = thread_netns();
    let (ns_a, ns_b) = (open(&a), open(&b));
    let (link, peer) = links::create_veth(
        &ns_a,
        "eth0",
        &LinkOptions { mtu: Some(1400), ..Default::default() },
        &ns_b,
        "vethpeer",
        &LinkOptions::default(),
    )
    .unwrap();
    assert_eq!((link.name.as_str(), link.mtu, link.kind.as_deref()), ("eth0", 1400, Some("veth")));
    assert_eq!(peer.name, "vethpeer");
    assert_eq!(link_names(&a), ["lo", "eth0"]);
    assert_eq!(link_names(&b), ["lo", "vethpeer"]);
    assert_eq!(thread_netns(), before, "the calling thread never changes namespace");

    links::set(
        &ns_a,
        "eth0",
        &LinkChange { up: Some(true), mac: Some(vec![0x02, 0, 0, 0, 0, 0x42]), ..Default::default() },
    )
    .unwrap();
    let eth0 = links::require(&ns_a, "eth0").unwrap();
    assert!(eth0.up);
    assert_eq!(links::format_mac(eth0.mac.as_deref().unwrap()), "02:00:00:00:00:42");
    links::delete(&ns_a, "eth0").unwrap();
    assert_eq!(link_names(&b), ["lo"], "deleting one end deletes the pair");
}

#[test]
fn errors_say_what_failed_and_classify_the_errno() {
    require_root();
    let a = Netns::new("cap-errors");
    let ns = open(&a);
    let error = links::set(&ns, "nope0", &LinkChange { up: Some(true), ..Default::default() }).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error.message.contains("\"nope0\"") && error.message.contains(&a.path()), "{}", error.message);
    let error = links::delete(&ns, "nope0").unwrap_err();
    assert_eq!((error.kind, error.errno), (ErrorKind::NotFound, Some(libc_enodev())));
    links::create_veth(&ns, "x0", &LinkOptions::default(), &ns, "x1", &LinkOptions::default()).unwrap();
    let error = links::create_veth(&ns, "x0", &LinkOptions::default(), &ns, "x2", &LinkOptions::default()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::AlreadyExists);
}

fn libc_enodev() -> i32 {
    19
}

#[test]
fn link_types_the_kernel_lacks_are_unsupported_with_the_kernels_reason() {
    require_root();
    let a = Netns::new("cap-kinds");
    let ns = open(&a);
    for (name, kind) in [("d0", LinkKind::Dummy), ("vrf0", LinkKind::Vrf { table: 10 })] {
        match links::create(&ns, name, &kind, &LinkOptions::default(), None) {
            Ok(link) => assert_eq!(link.name, name),
            Err(error) => {
                println!("this kernel lacks {name}'s link type: {}", error.message);
                assert_eq!(error.kind, ErrorKind::Unsupported, "{}", error.message);
                assert!(error.message.contains("Unknown device type"), "the kernel's extended ack: {}", error.message);
            }
        }
    }
}

#[test]
#[ignore = "needs a full kernel (dummy, vlan): tests/kernel-vm.sh runs it"]
fn a_dummy_link_and_a_vlan_on_it_are_created_as_iproute2_shows_them() {
    require_root();
    lane::require_kernel_feature("dummy");
    lane::require_kernel_feature("vlan");
    let a = Netns::new("cap-vlan");
    let ns = open(&a);
    let options = LinkOptions { mtu: Some(1400), ..Default::default() };
    let parent = links::create(&ns, "dum0", &LinkKind::Dummy, &options, None).unwrap();
    assert_eq!((parent.kind.as_deref(), parent.mtu), (Some("dummy"), 1400));
    let vlan = LinkKind::Vlan { parent: "dum0".into(), id: 42 };
    let link = links::create(&ns, "dum0.42", &vlan, &LinkOptions::default(), None).unwrap();
    assert_eq!((link.kind.as_deref(), link.vlan_id, link.parent_index), (Some("vlan"), Some(42), Some(parent.index)));

    let shown = a.ip_json(&["-d", "link", "show"]);
    let by_name = |name: &str| shown.as_array().unwrap().iter().find(|l| l["ifname"] == name).cloned().unwrap();
    let (dummy, vlan) = (by_name("dum0"), by_name("dum0.42"));
    assert_eq!((&dummy["linkinfo"]["info_kind"], &dummy["mtu"]), (&"dummy".into(), &1400.into()), "{dummy:#}");
    assert_eq!(vlan["linkinfo"]["info_kind"], "vlan", "{vlan:#}");
    assert_eq!(vlan["linkinfo"]["info_data"]["protocol"], "802.1Q", "{vlan:#}");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 42, "{vlan:#}");
    assert_eq!(vlan["link"], "dum0", "{vlan:#}");
    assert_eq!(vlan["mtu"], 1400, "a VLAN takes its parent's MTU: {vlan:#}");

    links::delete(&ns, "dum0").unwrap();
    assert_eq!(link_names(&a), ["lo"], "deleting the parent deletes its VLAN");
}

#[test]
fn addresses_and_routes_round_trip() {
    require_root();
    let a = Netns::new("cap-addr");
    let ns = open(&a);
    links::create_veth(&ns, "eth0", &LinkOptions::default(), &ns, "eth1", &LinkOptions::default()).unwrap();
    links::set(&ns, "eth0", &LinkChange { up: Some(true), ..Default::default() }).unwrap();
    let address: IpNetwork = "10.70.0.5/24".parse().unwrap();
    addresses::add(&ns, "eth0", address).unwrap();
    assert_eq!(addresses::add(&ns, "eth0", address).unwrap_err().kind, ErrorKind::AlreadyExists);
    let listed = addresses::dump(&ns, Some("eth0"), Some(Family::V4)).unwrap();
    assert_eq!(listed.iter().map(|a| a.address).collect::<Vec<_>>(), [address]);
    let shown = a.ip_json(&["addr", "show", "eth0"]);
    assert_eq!(shown[0]["addr_info"][0]["broadcast"], "10.70.0.255", "IPv4 gets its broadcast, like iproute2");

    let route = RouteSpec {
        destination: Some("10.71.0.0/16".parse().unwrap()),
        gateway: Some("10.70.0.1".parse::<IpAddr>().unwrap()),
        link: Some("eth0".into()),
        ..Default::default()
    };
    routes::add(&ns, &route, AddMode::Exclusive).unwrap();
    let found = routes::dump(&ns, &RouteFilter { link: Some("eth0".into()), ..Default::default() }).unwrap();
    assert!(found.iter().any(|r| r.destination.to_string() == "10.71.0.0/16" && r.gateway == route.gateway));
    assert_eq!(routes::lookup(&ns, "10.71.3.4".parse().unwrap()).unwrap().gateway, route.gateway);
    routes::delete(&ns, &route).unwrap();
    addresses::delete(&ns, "eth0", address).unwrap();
    assert!(addresses::dump(&ns, Some("eth0"), Some(Family::V4)).unwrap().is_empty());
}

#[test]
fn a_link_moves_between_namespaces_through_a_temporary_one() {
    require_root();
    let (a, b) = (Netns::new("cap-move-a"), Netns::new("cap-move-b"));
    let (ns_a, ns_b) = (open(&a), open(&b));
    links::create_veth(&ns_a, "dev0", &LinkOptions::default(), &ns_a, "dev1", &LinkOptions::default()).unwrap();
    // "dev1" also exists in b: the rename happens where it cannot clash.
    links::create_veth(&ns_b, "dev1", &LinkOptions::default(), &ns_b, "other", &LinkOptions::default()).unwrap();
    let moved = links::move_to(&ns_a, "dev0", &ns_b, "eth0").unwrap();
    assert_eq!(moved.name, "eth0");
    assert_eq!(link_names(&a), ["lo", "dev1"]);
    assert!(link_names(&b).contains(&"eth0".to_string()));
    // Moving onto a taken name fails and leaves the link where it was.
    assert!(links::move_to(&ns_a, "dev1", &ns_b, "other").is_err());
    assert_eq!(link_names(&a), ["lo", "dev1"]);
}

#[test]
fn sysctls_are_per_namespace_and_confined_to_net() {
    require_root();
    let a = Netns::new("cap-sysctl");
    let ns = open(&a);
    let host_forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    sysctl::set(&ns, "net/ipv4/ip_forward", "1").unwrap();
    assert_eq!(sysctl::get(&ns, "net/ipv4/ip_forward").unwrap(), "1");
    assert_eq!(a.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(), "1");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_forwarding);
    for bad in ["kernel/hostname", "net/../kernel/hostname", "/net/ipv4/ip_forward", "net//x"] {
        assert_eq!(sysctl::set(&ns, bad, "x").unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
    }
}

#[test]
fn the_state_store_stays_inside_its_directory() {
    require_root();
    let outside = TempDir::new("cap-state-outside");
    let root = TempDir::new("cap-state");
    let store = StateDir::open(&root.path).unwrap();
    store.create("net/10.0.0.2", b"c1\r\neth0").unwrap();
    assert_eq!(store.create("net/10.0.0.2", b"c2").unwrap_err().kind, ErrorKind::AlreadyExists);
    assert_eq!(store.read("net/10.0.0.2").unwrap().unwrap(), b"c1\r\neth0");
    store.replace("net/last", b"10.0.0.2").unwrap();
    assert_eq!(store.files("net").unwrap(), ["10.0.0.2", "last"]);
    for bad in ["../x", "/etc/passwd", "net/../../x", ""] {
        assert_eq!(store.read(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad:?}");
    }
    // A symlink pointing out of the store is not followed.
    std::os::unix::fs::symlink(&outside.path, root.join("escape")).unwrap();
    assert!(store.create("escape/planted", b"x").is_err());
    assert!(!outside.join("planted").exists());
    assert!(store.remove("net/10.0.0.2").unwrap());
    assert!(!store.remove("net/10.0.0.2").unwrap());
}

#[test]
fn a_state_lock_excludes_other_holders_until_dropped() {
    require_root();
    let root = TempDir::new("cap-lock");
    let (one, two) = (StateDir::open(&root.path).unwrap(), StateDir::open(&root.path).unwrap());
    let soon = || std::time::Instant::now() + std::time::Duration::from_millis(200);
    let held = one.lock("net/lock", soon()).unwrap();
    assert_eq!(two.lock("net/lock", soon()).unwrap_err().kind, ErrorKind::Timeout);
    drop(held);
    assert!(two.lock("net/lock", soon()).is_ok());
}

#[test]
fn a_tap_is_created_inside_its_namespace_with_owner_group_and_queues() {
    require_root();
    let ns = Netns::new("cap-tap");
    let before = thread_netns();
    let tap = TapOptions { multi_queue: true, vnet_hdr: true, owner: Some(1234), group: Some(5678) };
    let options = LinkOptions { mtu: Some(1400), mac: Some(vec![0x02, 0, 0, 0, 0, 0x77]), tx_queue_len: None };
    let link = links::create(&open(&ns), "tap7", &LinkKind::Tap(tap.clone()), &options, None).unwrap();
    assert_eq!((link.name.as_str(), link.mtu, link.kind.as_deref()), ("tap7", 1400, Some("tun")));
    assert_eq!(thread_netns(), before, "the calling thread never changes namespace");
    let shown = &ns.ip_json(&["-d", "link", "show", "tap7"])[0];
    let info = &shown["linkinfo"]["info_data"];
    assert_eq!(shown["address"], "02:00:00:00:00:77");
    assert_eq!(
        (&info["type"], &info["pi"], &info["vnet_hdr"], &info["multi_queue"], &info["persist"]),
        (&json!("tap"), &json!(false), &json!(true), &json!(true), &json!(true)),
        "{info}"
    );
    assert_eq!((&info["user"], &info["group"]), (&json!(1234), &json!(5678)), "{info}");
    let again = links::create(&open(&ns), "tap7", &LinkKind::Tap(tap), &LinkOptions::default(), None);
    assert_eq!(again.unwrap_err().kind, ErrorKind::AlreadyExists, "never attaches to an existing tap");
    assert_eq!(link_names(&ns), ["lo", "tap7"]);
}

/// The TBF, ingress qdisc and redirect filter the bandwidth plugin makes,
/// as the Debian reference's leave them (`tc -j` of its ADD, 2 Mbit/s
/// with an 80 kbit burst).
#[test]
fn token_buckets_and_an_ingress_redirect_are_the_references() {
    use cni_wasm_capabilities::tc::{self, QdiscKind, TokenBucket};
    require_root();
    let ns = Netns::new("cap-tc");
    ns.exec("ip", &["link", "add", "host0", "type", "veth", "peer", "name", "peer0"]);
    ns.exec("ip", &["link", "add", "ifb7", "type", "ifb"]);
    ns.exec("ip", &["link", "set", "host0", "up"]);
    let namespace = open(&ns);
    let bucket = TokenBucket { rate: 250_000, burst: 10_000, limit: 16_250 };
    tc::add_root_tbf(&namespace, "host0", bucket).unwrap();
    tc::add_ingress(&namespace, "host0").unwrap();
    tc::add_ingress_redirect(&namespace, "host0", "ifb7").unwrap();
    let qdiscs: serde_json::Value =
        serde_json::from_str(&ns.exec("tc", &["-j", "qdisc", "show", "dev", "host0"])).unwrap();
    assert_eq!(qdiscs[0]["kind"], "tbf");
    assert_eq!(qdiscs[0]["options"], json!({"rate": 250000, "burst": 10000, "lat": 25000}), "{qdiscs}");
    assert_eq!((&qdiscs[1]["kind"], &qdiscs[1]["parent"]), (&json!("ingress"), &json!("ffff:fff1")), "{qdiscs}");
    let filters: serde_json::Value =
        serde_json::from_str(&ns.exec("tc", &["-j", "filter", "show", "dev", "host0", "ingress"])).unwrap();
    let filter = &filters[2];
    assert_eq!((&filter["protocol"], &filter["pref"], &filter["kind"]), (&json!("all"), &json!(1), &json!("u32")));
    assert_eq!(filter["options"]["flowid"], "1:1", "{filter}");
    let actions: Vec<(String, String)> = filter["options"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["to_dev"].as_str().unwrap().to_string(), a["control_action"]["type"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(actions, [("ifb7".into(), "stolen".into()), ("ifb7".into(), "pass".into())], "{filter}");
    let listed = tc::list_qdiscs(&namespace, "host0").unwrap();
    assert_eq!(listed[0].kind, QdiscKind::Tbf(bucket), "what the host reads back is what it installed");
    assert_eq!(listed[1].kind, QdiscKind::Ingress);
    assert_eq!(tc::add_root_tbf(&namespace, "host0", bucket).unwrap_err().kind, ErrorKind::AlreadyExists);
    tc::delete_qdisc(&namespace, "host0", tc::PARENT_INGRESS).unwrap();
    tc::delete_qdisc(&namespace, "host0", tc::PARENT_ROOT).unwrap();
    assert!(tc::list_qdiscs(&namespace, "host0").unwrap().iter().all(|q| !matches!(q.kind, QdiscKind::Tbf(_))));
    assert!(tc::delete_qdisc(&namespace, "host0", tc::PARENT_INGRESS).unwrap_err().is_not_found());
}

#[test]
fn source_rules_are_added_listed_and_deleted() {
    use cni_wasm_capabilities::rules::{self, Rule};
    require_root();
    let ns = Netns::new("cap-rules");
    let namespace = open(&ns);
    let rule = Rule {
        family: Family::V4,
        priority: Some(32000),
        source: Some(IpNetwork { address: "10.0.0.5".parse().unwrap(), prefix_len: 32 }),
        destination: None,
        table: 100,
        in_link: None,
        out_link: None,
    };
    rules::add(&namespace, &rule).unwrap();
    let shown = ns.ip_json(&["rule", "show", "table", "100"]);
    assert_eq!((&shown[0]["src"], &shown[0]["priority"]), (&json!("10.0.0.5"), &json!(32000)), "{shown}");
    assert!(rules::dump(&namespace, Family::V4).unwrap().contains(&rule));
    assert_eq!(rules::add(&namespace, &rule).unwrap_err().kind, ErrorKind::AlreadyExists);
    let v6 = Rule {
        family: Family::V6,
        source: Some(IpNetwork { address: "fd00::5".parse().unwrap(), prefix_len: 128 }),
        ..rule.clone()
    };
    rules::add(&namespace, &v6).unwrap();
    assert!(rules::dump(&namespace, Family::V6).unwrap().contains(&v6));
    rules::delete(&namespace, &rule).unwrap();
    rules::delete(&namespace, &v6).unwrap();
    assert!(ns.ip_json(&["rule", "show", "table", "100"]).as_array().unwrap().is_empty());
    assert!(rules::delete(&namespace, &rule).unwrap_err().is_not_found());
}
