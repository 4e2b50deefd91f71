//! nftables batches over netlink: every rule shape the plugins add per
//! attachment is encoded as nft encodes it. Each is added once by `nft -j
//! -f -` and once by the capability, and nft must list the two alike, down
//! to the bytecode (`nft --debug=netlink list`); the echoed handles are the
//! listed ones, and deletion by handle removes exactly that rule.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni_wasm_capabilities::netns::Netns as Namespace;
use cni_wasm_capabilities::{netfilter, nft_netlink};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::require_root;
use serde_json::{Value, json};

fn nft_stdin(ns: &Netns, args: &[&str], input: &str) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn payload(protocol: &str, field: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}})
}

fn interface(key: &str, op: &str, name: &str) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": name}})
}

fn prefix(addr: &str, len: u8) -> Value {
    json!({"prefix": {"addr": addr, "len": len}})
}

/// (family, expressions, comment): bridge and ptp's masquerade, portmap's
/// DNAT and hairpin, firewall's per-address and isolation rules.
fn shapes() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        (
            "inet",
            json!([payload("ip", "saddr", "==", json!("10.88.0.5")), payload("ip", "daddr", "!=", prefix("10.88.0.0", 16)), {"masquerade": null}]),
            Some("0123456789abcdef-fedcba9876543210, net: podman, if: eth0, id: abc"),
        ),
        (
            "inet",
            json!([payload("ip6", "saddr", "==", json!("fd00::5")), payload("ip6", "daddr", "!=", prefix("fd00::", 64)), {"masquerade": null}]),
            None,
        ),
        (
            "inet",
            json!([payload("ip", "daddr", "==", json!("10.89.0.2")), {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]),
            Some("fw"),
        ),
        ("inet", json!([payload("ip6", "saddr", "==", json!("fd89::2")), {"accept": null}]), Some("fw")),
        (
            "inet",
            json!([interface("iifname", "==", "cni-podman0"), interface("oifname", "!=", "cni-podman0"), {"jump": {"target": "other"}}]),
            Some("ingressPolicy: same-bridge|isolated, bridge: cni-podman0"),
        ),
        ("inet", json!([interface("oifname", "==", "br0"), {"drop": null}]), None),
        ("inet", json!([{"goto": {"target": "other"}}]), None),
        ("inet", json!([payload("ip", "daddr", "==", prefix("10.0.0.0", 8)), {"return": null}]), None),
        (
            "ip",
            json!([payload("tcp", "dport", "==", json!(8080)), {"dnat": {"addr": "10.88.0.5", "port": 80}}]),
            Some("abc123"),
        ),
        (
            "ip",
            json!([payload("ip", "daddr", "==", json!("127.0.0.1")), payload("tcp", "dport", "==", json!(9090)), {"dnat": {"addr": "10.88.0.5", "port": 90}}]),
            Some("abc123"),
        ),
        (
            "ip",
            json!([payload("ip", "saddr", "==", json!("10.88.0.5")), payload("ip", "daddr", "==", json!("10.88.0.5")), {"masquerade": null}]),
            Some("abc123"),
        ),
        (
            "ip6",
            json!([payload("udp", "dport", "==", json!(53)), {"dnat": {"addr": "fd00::5", "port": 53}}]),
            Some("abc123"),
        ),
        // The shared chains' skeletons.
        ("inet", json!([payload("ip", "daddr", "==", prefix("224.0.0.0", 4)), {"return": null}]), None),
        ("inet", json!([payload("ip6", "daddr", "==", prefix("ff00::", 8)), {"return": null}]), None),
        ("inet", json!([payload("ip", "daddr", "!=", prefix("10.128.0.0", 9)), {"accept": null}]), None),
        (
            "ip",
            json!([{"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"jump": {"target": "other"}}]),
            Some("cni-wasm: no conditions"),
        ),
    ]
}

fn add(family: &str, chain: &str, expr: &Value, comment: Option<&str>) -> Value {
    let mut rule = json!({"family": family, "table": "t", "chain": chain, "expr": expr});
    if let Some(comment) = comment {
        rule["comment"] = json!(comment);
    }
    json!({"add": {"rule": rule}})
}

/// The bytecode nft lists for each rule of `chain`, by handle.
fn bytecode(ns: &Netns, family: &str, chain: &str) -> Vec<(u64, String)> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "--debug=netlink", "list", "chain", family, "t", chain])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rules: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        // "<family> <table> <chain> <handle> [<position>]"
        let header = line.strip_prefix(&format!("{family} t {chain} ")).and_then(|h| h.split(' ').next()?.parse().ok());
        if let Some(handle) = header {
            rules.push((handle, String::new()));
        } else if let Some((_, code)) = rules.last_mut().filter(|_| line.starts_with("  ")) {
            code.push_str(line);
            code.push('\n');
        }
    }
    rules
}

#[test]
fn each_rule_shape_is_encoded_as_nft_encodes_it() {
    require_root();
    let ns = Netns::new("nftnl-shapes");
    for family in ["inet", "ip", "ip6"] {
        nft_stdin(
            &ns,
            &["-f", "-"],
            &format!("table {family} t {{\n chain by_nft {{\n }}\n chain ours {{\n }}\n chain other {{\n }}\n}}\n"),
        );
    }
    let capability = Namespace::open(&ns.path()).unwrap();
    for (family, expr, comment) in shapes() {
        let by_nft = json!({"nftables": [add(family, "by_nft", &expr, comment)]});
        nft_stdin(&ns, &["-j", "-f", "-"], &by_nft.to_string());
        let ours = json!({"nftables": [add(family, "ours", &expr, comment)]});
        let echo: Value =
            serde_json::from_str(&netfilter::nft_apply_echo(&capability, &ours.to_string(), deadline()).unwrap())
                .unwrap();
        let (expected, got) = (bytecode(&ns, family, "by_nft"), bytecode(&ns, family, "ours"));
        // The newest rule of each chain (handles only grow).
        let newest = |rules: Vec<(u64, String)>| rules.into_iter().max_by_key(|(handle, _)| *handle).unwrap();
        let (expected, got) = (newest(expected), newest(got));
        assert_eq!(got.1, expected.1, "{family} {expr}: the kernel holds what nft would have added");
        assert_eq!(echo["nftables"][0]["add"]["rule"]["handle"], got.0, "{family} {expr}: the echo has the handle");
    }
    // The JSON listings agree too, comments included.
    for family in ["inet", "ip", "ip6"] {
        let listed = |chain: &str| -> Vec<Value> {
            let text = ns.exec("nft", &["-j", "list", "chain", family, "t", chain]);
            let value: Value = serde_json::from_str(&text).unwrap();
            value["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|o| o.get("rule"))
                .map(|r| json!({"expr": r["expr"], "comment": r["comment"]}))
                .collect()
        };
        assert_eq!(listed("ours"), listed("by_nft"), "{family}");
    }
}

#[test]
fn deletion_by_handle_removes_only_that_rule_and_a_failed_batch_changes_nothing() {
    require_root();
    let ns = Netns::new("nftnl-delete");
    nft_stdin(&ns, &["-f", "-"], "table ip t {\n chain c {\n }\n}\n");
    let capability = Namespace::open(&ns.path()).unwrap();
    let accept = json!([payload("ip", "saddr", "==", json!("10.1.0.1")), {"accept": null}]);
    let batch = json!({"nftables": [add("ip", "c", &accept, Some("a")), add("ip", "c", &accept, Some("b"))]});
    let echo: Value =
        serde_json::from_str(&netfilter::nft_apply_echo(&capability, &batch.to_string(), deadline()).unwrap()).unwrap();
    let handles: Vec<u64> = (0..2).map(|i| echo["nftables"][i]["add"]["rule"]["handle"].as_u64().unwrap()).collect();
    let delete =
        |handle: u64| json!({"delete": {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": handle}}});
    netfilter::nft_apply(&capability, &json!({"nftables": [delete(handles[0])]}).to_string(), deadline()).unwrap();
    let listed = ns.exec("nft", &["list", "chain", "ip", "t", "c"]);
    assert!(!listed.contains("comment \"a\"") && listed.contains("comment \"b\""), "{listed}");

    // One command failing (a's rule is gone) fails the batch whole: b stays,
    // the rule added before the failing command is not committed.
    let batch = json!({"nftables": [add("ip", "c", &accept, Some("c")), delete(handles[0]), delete(handles[1])]});
    let error = netfilter::nft_apply(&capability, &batch.to_string(), deadline()).unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let listed = ns.exec("nft", &["list", "chain", "ip", "t", "c"]);
    assert!(listed.contains("comment \"b\"") && !listed.contains("comment \"c\""), "{listed}");

    // A chain that does not exist: an error, not a hang.
    let missing = json!({"nftables": [add("ip", "nowhere", &accept, None)]});
    assert!(netfilter::nft_apply(&capability, &missing.to_string(), deadline()).unwrap_err().is_not_found());
}

/// nft's listing of one chain, without its metainfo.
fn nft_listing(ns: &Netns, family: &str, chain: &str) -> Vec<Value> {
    let text = ns.exec("nft", &["-j", "list", "chain", family, "t", chain]);
    let value: Value = serde_json::from_str(&text).unwrap();
    value["nftables"].as_array().unwrap().iter().filter(|o| o.get("metainfo").is_none()).cloned().collect()
}

#[test]
fn a_chain_is_listed_over_netlink_as_nft_lists_it_or_left_to_nft() {
    require_root();
    let ns = Netns::new("nftnl-list");
    // The shared chains' skeletons (masquerade, portmap, firewall), then
    // every per-attachment shape.
    nft_stdin(
        &ns,
        &["-f", "-"],
        "table inet t {\n chain other {\n }\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  \
         ip daddr 224.0.0.0/4 return\n  ip6 daddr ff00::/8 return\n  goto other\n }\n chain forward {\n  \
         type filter hook forward priority filter; policy accept;\n  jump other\n }\n chain ours {\n }\n chain counted {\n  counter\n }\n}\n\
         table ip t {\n chain other {\n }\n chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n  \
         fib daddr type local jump other comment \"cni-wasm: no conditions\"\n }\n chain ours {\n }\n}\n\
         table ip6 t {\n chain ours {\n }\n}\n",
    );
    let capability = Namespace::open(&ns.path()).unwrap();
    for (family, expr, comment) in shapes() {
        let batch = json!({"nftables": [add(family, "ours", &expr, comment)]});
        netfilter::nft_apply(&capability, &batch.to_string(), deadline()).unwrap();
    }
    for (family, chain) in [
        ("inet", "postrouting"),
        ("inet", "forward"),
        ("inet", "ours"),
        ("ip", "prerouting"),
        ("ip", "ours"),
        ("ip6", "ours"),
    ] {
        match nft_netlink::list_chain(&capability, family, "t", chain) {
            nft_netlink::Listed::Found(listing) => {
                assert_eq!(
                    listing["nftables"].as_array().unwrap(),
                    &nft_listing(&ns, family, chain),
                    "{family} {chain}"
                )
            }
            _ => panic!("{family} {chain} is decoded"),
        }
    }
    assert!(matches!(nft_netlink::list_chain(&capability, "inet", "t", "counted"), nft_netlink::Listed::Undecoded));
    assert!(matches!(nft_netlink::list_chain(&capability, "inet", "t", "absent"), nft_netlink::Listed::Missing));
    assert!(matches!(nft_netlink::list_chain(&capability, "inet", "absent", "ours"), nft_netlink::Listed::Missing));
    // Through the capability: the table object in front, nft's fallback.
    let counted: Value = serde_json::from_str(
        &netfilter::nft_list_chain(&capability, "inet", "t", "counted", deadline()).unwrap().unwrap(),
    )
    .unwrap();
    assert!(counted["nftables"].as_array().unwrap().iter().any(|o| o["rule"]["expr"][0].get("counter").is_some()));
}

#[test]
fn a_table_is_listed_over_netlink_as_nft_lists_it_or_left_to_nft() {
    require_root();
    let ns = Netns::new("nftnl-table");
    // The masquerade table's layout (comments on the table and a chain,
    // which nft's JSON does not show), and one table with a set.
    nft_stdin(
        &ns,
        &["-f", "-"],
        "table inet t {\n comment \"table comment\"\n chain other {\n  comment \"chain comment\"\n }\n          chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  ip daddr 224.0.0.0/4 return\n           goto other\n }\n chain shapes {\n }\n}\ntable ip t {\n set s {\n  type ipv4_addr\n }\n chain c {\n }\n}\n",
    );
    let capability = Namespace::open(&ns.path()).unwrap();
    for (family, expr, comment) in shapes().into_iter().filter(|(family, _, _)| *family == "inet") {
        let batch = json!({"nftables": [add(family, "shapes", &expr, comment)]});
        netfilter::nft_apply(&capability, &batch.to_string(), deadline()).unwrap();
    }
    let nft = |family: &str| -> Vec<Value> {
        let text = ns.exec("nft", &["-j", "list", "table", family, "t"]);
        let value: Value = serde_json::from_str(&text).unwrap();
        value["nftables"].as_array().unwrap().iter().filter(|o| o.get("metainfo").is_none()).cloned().collect()
    };
    match nft_netlink::list_table(&capability, "inet", "t") {
        nft_netlink::Listed::Found(listing) => assert_eq!(listing["nftables"].as_array().unwrap(), &nft("inet")),
        _ => panic!("inet t is decoded"),
    }
    assert!(matches!(nft_netlink::list_table(&capability, "ip", "t"), nft_netlink::Listed::Undecoded), "a set");
    assert!(matches!(nft_netlink::list_table(&capability, "ip6", "t"), nft_netlink::Listed::Missing));
    // Through the capability, nft lists what is not decoded.
    let listed = netfilter::nft_list_table(&capability, "ip", "t", deadline()).unwrap().unwrap();
    assert!(listed.contains("\"set\""), "{listed}");
}

/// The batches that make the shared tables (masquerade's, portmap's and
/// firewall's layouts, as the plugins send them), applied over netlink in
/// one namespace and by nft in another: nft lists the same ruleset. But for
/// the comments of tables and chains, which nft 1.0's JSON input drops:
/// over netlink they are kept, as the reference (nft's text input) keeps
/// them.
#[test]
fn the_shared_tables_are_made_as_nft_makes_them() {
    require_root();
    let table = |family: &str, name: &str, comment: &str| json!({"add": {"table": {"family": family, "name": name, "comment": comment}}});
    let chain = |family: &str, table: &str, name: &str| json!({"add": {"chain": {"family": family, "table": table, "name": name}}});
    let base = |family: &str, table: &str, name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": family, "table": table, "name": name, "type": kind, "hook": hook,
            "prio": prio, "policy": "accept"}}})
    };
    let flush = |family: &str, table: &str, name: &str| json!({"flush": {"chain": {"family": family, "table": table, "name": name}}});
    let rule = |family: &str, table: &str, chain: &str, expr: Value| json!({"add": {"rule": {"family": family, "table": table, "chain": chain, "expr": expr}}});
    let fib_local =
        json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}});
    let mut masq_checks = chain("inet", "cni_plugins_masquerade", "masq_checks");
    masq_checks["add"]["chain"]["comment"] =
        json!("Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet");
    let masquerade = "cni_plugins_masquerade";
    let batch = json!({"nftables": [
        table("inet", masquerade, "Masquerading for plugins from github.com/containernetworking/plugins"),
        masq_checks,
        base("inet", masquerade, "postrouting", "nat", "postrouting", 100),
        flush("inet", masquerade, "postrouting"),
        rule("inet", masquerade, "postrouting", json!([payload("ip", "daddr", "==", prefix("224.0.0.0", 4)), {"return": null}])),
        rule("inet", masquerade, "postrouting", json!([payload("ip6", "daddr", "==", prefix("ff00::", 8)), {"return": null}])),
        rule("inet", masquerade, "postrouting", json!([{"goto": {"target": "masq_checks"}}])),
        table("ip", "cni_hostport", "CNI portmap plugin"),
        chain("ip", "cni_hostport", "hostports"),
        chain("ip", "cni_hostport", "hostip_hostports"),
        chain("ip", "cni_hostport", "hostports_all"),
        flush("ip", "cni_hostport", "hostports_all"),
        rule("ip", "cni_hostport", "hostports_all", json!([{"jump": {"target": "hostip_hostports"}}])),
        rule("ip", "cni_hostport", "hostports_all", json!([{"jump": {"target": "hostports"}}])),
        base("ip", "cni_hostport", "prerouting", "nat", "prerouting", -100),
        flush("ip", "cni_hostport", "prerouting"),
        rule("ip", "cni_hostport", "prerouting", json!([fib_local, {"jump": {"target": "hostports_all"}}])),
        base("ip", "cni_hostport", "masquerading", "nat", "postrouting", 100),
        table("inet", "cni_firewall", "CNI firewall plugin rules"),
        base("inet", "cni_firewall", "forward", "filter", "forward", 0),
        chain("inet", "cni_firewall", "admin"),
        chain("inet", "cni_firewall", "containers"),
        flush("inet", "cni_firewall", "forward"),
        rule("inet", "cni_firewall", "forward", json!([{"jump": {"target": "admin"}}])),
        rule("inet", "cni_firewall", "forward", json!([{"jump": {"target": "containers"}}])),
    ]});
    assert!(nft_netlink::encode(&batch).is_some(), "every command is encoded");
    let (ours, theirs) = (Netns::new("nftnl-made-o"), Netns::new("nftnl-made-n"));
    let capability = Namespace::open(&ours.path()).unwrap();
    let echo: Value =
        serde_json::from_str(&netfilter::nft_apply_echo(&capability, &batch.to_string(), deadline()).unwrap()).unwrap();
    assert!(echo["nftables"][0]["add"]["table"]["handle"].is_u64(), "the new table's handle is echoed: {echo}");
    nft_stdin(&theirs, &["-j", "-f", "-"], &batch.to_string());
    let listed = |ns: &Netns| ns.exec("nft", &["list", "ruleset"]);
    let uncommented = |text: String| -> String {
        text.lines().filter(|l| !l.trim_start().starts_with("comment ")).map(|l| format!("{l}\n")).collect()
    };
    let ruleset = listed(&ours);
    assert!(ruleset.contains("comment \"CNI portmap plugin\""), "{ruleset}");
    assert!(ruleset.contains("comment \"Masquerade traffic from certain IPs"), "{ruleset}");
    assert_eq!(uncommented(ruleset), listed(&theirs));
    // Applied again, as an ADD that found the layout damaged would: the
    // flushes leave one copy of each rule, the adds change nothing else.
    netfilter::nft_apply(&capability, &batch.to_string(), deadline()).unwrap();
    nft_stdin(&theirs, &["-j", "-f", "-"], &batch.to_string());
    assert_eq!(uncommented(listed(&ours)), listed(&theirs));
}
