//! Hostile plugins: a third-party plugin that tries to hurt the node, run
//! under a policy that grants every family it asks for, in a scratch host
//! namespace (tests/src/hostile.rs). Each attack must end in one clear CNI
//! error (or be contained where the host lets it run), and the host's
//! links, addresses, routes, rules, qdiscs, nftables ruleset, iptables,
//! network sysctls and conntrack table, and a canary directory, must be as
//! they were.

use cni_wasm_tests::hostile::ScratchHost;
use cni_wasm_tests::plugin::run;
use serde_json::{Value, json};

/// What an attack must come to.
enum Expect {
    /// One CNI error whose message contains this.
    Refused(&'static str),
    /// Refused, or allowed within what the attacker owns.
    Contained,
}
use Expect::*;

/// Runs every attack in `attacks` against one scratch host and fails with
/// the list of those that were not contained.
fn assert_all_contained(tag: &str, attacks: &[(&str, Value, Expect)]) {
    assert_contained_on(&ScratchHost::new(tag), attacks);
}

/// As [`assert_all_contained`], on a scratch host the test prepared.
fn assert_contained_on(scratch: &ScratchHost, attacks: &[(&str, Value, Expect)]) {
    let mut escaped = Vec::new();
    for (attack, extra, expect) in attacks {
        let before = scratch.snapshot();
        let out = scratch.run_attack(attack, extra);
        if let Some(failure) = verdict(&out, expect) {
            escaped.push(format!("{attack} {extra}: {failure}"));
        }
        if let Err(changes) = scratch.unchanged_since(&before) {
            escaped.push(format!("{attack} {extra}: changed the host:\n{changes}"));
        }
    }
    assert!(escaped.is_empty(), "{} of {} attacks got through:\n{}", escaped.len(), attacks.len(), escaped.join("\n"));
}

/// Why `out` is not what `expect` says, if it is not.
fn verdict(out: &cni_wasm_tests::plugin::Outcome, expect: &Expect) -> Option<String> {
    let parsed: Result<Value, _> = serde_json::from_str(&out.stdout);
    let Ok(json) = parsed else { return Some(format!("stdout is not one JSON value: {:.300}", out.stdout)) };
    match (expect, out.success) {
        (Contained, true) => None,
        (Contained, false) | (Refused(_), false) => {
            let msg = json["msg"].as_str().unwrap_or_default();
            let code = json["code"].as_u64().unwrap_or(0);
            match expect {
                _ if msg.is_empty() || code == 0 => Some(format!("an error without code or message: {json}")),
                Refused(fragment) if !msg.contains(fragment) => Some(format!("message {msg:?} lacks {fragment:?}")),
                _ => None,
            }
        }
        (Refused(_), true) => Some(format!("succeeded: {json}")),
    }
}

fn target(name: &str) -> Value {
    json!({"target": name})
}

#[test]
fn the_hosts_links_cannot_be_changed_through_any_key() {
    let not_named = "is not one a config key names";
    let mut attacks = Vec::new();
    for attack in ["link-mtu", "link-down", "link-rename", "link-enslave", "link-delete", "link-readdress", "link-move"]
    {
        // Named by no key, by a declared key outside the policy's
        // patterns, only in prevResult, args or runtimeConfig.
        attacks.push((attack, target("eth0"), Refused(not_named)));
        attacks.push((attack, json!({"target": "eth0", "managed": "eth0"}), Refused(not_named)));
        attacks.push((
            attack,
            json!({"target": "cni0", "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "cni0"}]}}),
            Refused(not_named),
        ));
        attacks.push((
            attack,
            json!({"target": "attkvictim0", "args": {"cni": {"link": "attkvictim0"}}}),
            Refused(not_named),
        ));
        attacks.push((
            attack,
            json!({"target": "attkvictim0", "runtimeConfig": {"link": "attkvictim0"}}),
            Refused(not_named),
        ));
    }
    attacks.push(("link-unaddress", target("cni0"), Refused(not_named)));
    attacks.push(("macvlan-on", target("eth0"), Refused("as a parent")));
    attacks.push(("macvlan-on", json!({"target": "eth0", "parent": "eth0"}), Refused("as a parent")));
    attacks.push(("vlan-on", target("cni0"), Refused("as a parent")));
    // A port of someone else's bridge would see its traffic.
    attacks.push(("enslave-own-to-cni0", json!({}), Refused("cni0")));
    assert_all_contained("hostile-links", &attacks);
}

#[test]
fn the_hosts_routes_and_rules_stay_its_own() {
    assert_all_contained(
        "hostile-routes",
        &[
            ("route-via", target("eth0"), Refused("eth0")),
            ("route-delete-default", json!({}), Refused("eth0")),
            ("default-route-replace", json!({}), Refused("default route")),
            ("default-route-add", json!({}), Refused("default route")),
            ("rule-host", json!({}), Refused("refused")),
        ],
    );
}

#[test]
fn sysctls_outside_the_containers_net_tree_are_refused() {
    const NOT_NET: &str = "is not a path below /proc/sys/net";
    assert_all_contained(
        "hostile-sysctl",
        &[
            // Declared by the manifest, not admitted by the policy.
            ("host-sysctl", target("net/ipv4/ip_forward"), Refused("refused")),
            ("host-sysctl", target("net/ipv4/conf/eth0/forwarding"), Refused("refused")),
            ("host-sysctl", target("net/ipv4/conf/all/forwarding"), Refused("refused")),
            ("host-sysctl", target("kernel/hostname"), Refused(NOT_NET)),
            ("own-link-sysctl-trick", json!({}), Refused(NOT_NET)),
            // The container's net tree is its own; nothing else is, and
            // kernel/hostname is the node's (the host shares its UTS
            // namespace with the plugin).
            ("container-sysctl", target("kernel/hostname"), Refused(NOT_NET)),
            ("container-sysctl", target("net/../kernel/hostname"), Refused(NOT_NET)),
            ("container-sysctl", target("net/ipv4/../../kernel/hostname"), Refused(NOT_NET)),
            ("container-sysctl", target("/proc/sys/kernel/hostname"), Refused(NOT_NET)),
            ("container-sysctl", target("net/ipv4/conf/eth0/../../../../kernel/hostname"), Refused(NOT_NET)),
        ],
    );
}

#[test]
fn netfilter_tables_and_chains_of_others_are_out_of_reach() {
    let iptables = |rules: &str| target(rules);
    let nft = |batch: Value| target(&batch.to_string());
    assert_all_contained(
        "hostile-netfilter",
        &[
            ("iptables", iptables(":FORWARD DROP [0:0]"), Refused("refused")),
            ("iptables", iptables("-P FORWARD DROP"), Refused("refused")),
            ("iptables", iptables("-F CNI-FORWARD"), Refused("refused")),
            ("iptables", iptables("-F OTHER-CHAIN"), Refused("refused")),
            ("iptables", iptables("-X OTHER-CHAIN"), Refused("refused")),
            ("iptables", iptables("-A OTHER-CHAIN -j ACCEPT"), Refused("refused")),
            ("iptables", iptables("-I FORWARD 1 -j DROP"), Refused("refused")),
            ("iptables", iptables("-R FORWARD 1 -j ATTK-X"), Refused("refused")),
            ("iptables", iptables("-D FORWARD 1"), Refused("refused")),
            ("iptables", iptables("-D FORWARD -j CNI-FORWARD"), Refused("refused")),
            ("iptables", iptables("-A FORWARD -j ATTK-X -j DROP"), Refused("refused")),
            // Read one way by a naive tokenizer, another by iptables.
            ("iptables", iptables("-A FORWARD -m comment --comment x\u{b}-j\u{b}ATTK-X -j DROP"), Refused("refused")),
            ("iptables", iptables("-A FORWARD -m comment --comment \"-j ATTK-X\" -j DROP"), Refused("refused")),
            ("iptables", iptables("-A FORWARD -m comment --comment 'x -j ATTK-X' -j DROP"), Refused("refused")),
            ("iptables", iptables("-A FORWARD -m comment --comment \"x\\\" -j ATTK-X\" -j DROP"), Refused("refused")),
            ("iptables", iptables(":ATTK-X - [0:0]\n-A FORWARD -j DROP"), Refused("refused")),
            ("iptables", iptables(":ATTK-X - [0:0]\r-A FORWARD -j DROP"), Refused("refused")),
            ("iptables", iptables(":ATTK-X - [0:0] \\\n-A FORWARD -j DROP"), Refused("refused")),
            ("iptables", iptables("COMMIT\n*filter\n-F FORWARD"), Refused("refused")),
            ("iptables", iptables("-F"), Refused("refused")),
            ("iptables-nat", iptables("-F POSTROUTING"), Refused("refused")),
            ("iptables-nat", iptables("-D POSTROUTING -j OTHER-NAT"), Refused("refused")),
            // A chain a declared key names, where the policy does not admit
            // the name, or where only args names it; a config string that is
            // no declared key.
            ("iptables-flush-named", json!({"target": "CNI-FORWARD", "chain": "CNI-FORWARD"}), Refused("refused")),
            (
                "iptables-flush-named",
                json!({"target": "OTHER-CHAIN", "args": {"cni": {"chain": "OTHER-CHAIN"}}}),
                Refused("refused"),
            ),
            ("iptables", json!({"target": "-I FORWARD 1 -j DROP", "note": "DROP"}), Refused("refused")),
            // nftables: someone else's table, also where the manifest claims it.
            (
                "nft",
                nft(json!({"nftables": [{"delete": {"table": {"family": "inet", "name": "other"}}}]})),
                Refused("refused"),
            ),
            ("nft", nft(json!({"nftables": [{"flush": {"ruleset": null}}]})), Refused("refused")),
            (
                "nft",
                nft(json!({"nftables": [{"add": {"rule": {"family": "inet", "table": "other", "chain": "input",
                    "expr": [{"drop": null}]}}}]})),
                Refused("refused"),
            ),
            (
                "nft",
                nft(json!({"nftables": [{"flush": {"chain": {"family": "inet", "table": "other", "name": "input"}}}]})),
                Refused("refused"),
            ),
            // Its own objects, made before a failure, are undone.
            ("iptables-then-fail", json!({}), Refused("failing after its iptables rules")),
            ("nft-then-fail", json!({}), Refused("failing after its nftables table")),
        ],
    );
}

#[test]
fn conntrack_deletes_must_name_what_the_invocation_owns() {
    assert_all_contained(
        "hostile-conntrack",
        &[
            ("conntrack-all", json!({}), Refused("refused")),
            ("conntrack-port", json!({}), Refused("refused")),
            // A port in args is no mapping of the admin's.
            ("conntrack-port", json!({"args": {"cni": {"portMappings": [{"hostPort": 80}]}}}), Refused("refused")),
        ],
    );
}

#[test]
fn state_and_files_stay_inside_what_the_policy_names() {
    let scratch = ScratchHost::new("hostile-files");
    let canary = scratch.canary.display();
    // A symlink planted in the state directory, pointing at the canary.
    std::os::unix::fs::symlink(&scratch.canary.path, scratch.state.join("planted")).unwrap();
    let attacks = [
        ("state-write", json!({"path": "../x"}), Refused("must be relative, without '..'")),
        ("state-write", json!({"path": format!("{canary}/x")}), Refused("must be relative, without '..'")),
        ("state-write", json!({"path": "planted/x"}), Refused("is a symlink, and the state store follows none")),
        ("state-read", json!({"path": "planted/keep"}), Refused("is a symlink, and the state store follows none")),
        ("state-write", json!({"path": "a/../../x"}), Refused("must be relative, without '..'")),
        ("file-read", json!({"path": "/etc/shadow"}), Refused("refused")),
        ("file-read", json!({"path": "/proc/self/environ"}), Refused("refused")),
        ("file-read", json!({"path": format!("{canary}/keep")}), Refused("refused")),
        (
            "file-read",
            json!({"path": format!("{canary}/../{}/keep", scratch.canary.path.file_name().unwrap().to_string_lossy())}),
            Refused("is not an absolute path without '..'"),
        ),
        // A declared file key the policy does not admit, or one only args fills.
        ("file-read", json!({"path": "/etc/shadow", "file": "/etc/shadow"}), Refused("refused")),
        ("file-read", json!({"path": "/etc/shadow", "args": {"cni": {"file": "/etc/shadow"}}}), Refused("refused")),
    ];
    assert_contained_on(&scratch, &attacks);
    let planted = scratch.state.join("planted");
    assert_eq!(std::fs::read_link(&planted).unwrap(), scratch.canary.path);
}

/// Go's decoder takes the last case-insensitive match of a key; the host
/// and the SDK read keys the same way, so what the host validates is what
/// the plugin gets.
#[test]
fn a_case_variant_duplicate_key_is_read_as_go_reads_it() {
    let scratch = ScratchHost::new("hostile-keys");
    let before = scratch.snapshot();
    let mut config = scratch.config("state-write", &json!({"path": "x"}));
    config["Name"] = json!("../escape");
    let out = run(&scratch.attacker, &scratch.env("ADD"), &config.to_string());
    assert_eq!(out.code(), 7, "{}", out.stdout);
    let mut config = scratch.config("none", &json!({}));
    config["CNIVersion"] = json!("9.9.9");
    let out = run(&scratch.attacker, &scratch.env("ADD"), &config.to_string());
    assert_eq!(out.code(), 1, "{}", out.stdout);
    scratch.unchanged_since(&before).unwrap();
    assert!(std::fs::read_dir(&scratch.state.path).unwrap().next().is_none(), "nothing was stored");
}

#[test]
fn delegation_cannot_make_a_built_in_a_confused_deputy() {
    let scratch = ScratchHost::new("hostile-deputy");
    let canary = scratch.canary.display();
    let ipam = json!({"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": canary});
    let attacks = [
        ("delegate", target("attacker"), Refused("loop")),
        ("delegate", target("/bin/sh"), Refused("invalid delegate plugin type")),
        ("delegate", target("../x"), Refused("invalid delegate plugin type")),
        ("delegate", target("sh"), Refused("refused")),
        // host-local with a dataDir of the attacker's choosing: it writes
        // where the admin's config says, never into the canary.
        (
            "delegate-crafted",
            json!({"crafted": {"cniVersion": "1.0.0", "name": "attk-net", "type": "host-local", "ipam": ipam}}),
            Contained,
        ),
        // bridge on the host's eth0, gateway and masquerade: no host link
        // is the attacker's, so the bridge gets none (and eth0 is no bridge).
        (
            "delegate-crafted",
            json!({"crafted": {"cniVersion": "1.0.0", "name": "attk-net", "type": "bridge", "bridge": "eth0",
                               "isGateway": true, "ipMasq": true, "ipam": ipam}}),
            Refused("eth0"),
        ),
        (
            "delegate-crafted",
            json!({"crafted": {"cniVersion": "1.0.0", "name": "attk-net", "type": "bridge", "bridge": "cni0",
                               "isGateway": true, "ipam": ipam}}),
            Refused("refused"),
        ),
    ];
    assert_contained_on(&scratch, &attacks);
}

#[test]
fn resource_attacks_end_within_the_limits_and_leave_nothing() {
    let scratch = ScratchHost::new("hostile-limits");
    scratch.set_policy(json!({"memoryMiB": 256}));
    let attacks = [
        ("spin", json!({}), Refused("deadline")),
        ("memory-bomb", json!({}), Refused("memory")),
        ("big-result", json!({}), Refused("result")),
        ("logs", json!({}), Contained),
        ("panic-after-links", json!({}), Refused("the plugin panicked: attacker: panicking after creating links")),
    ];
    let mut escaped = Vec::new();
    for (attack, extra, expect) in &attacks {
        let before = scratch.snapshot();
        let started = std::time::Instant::now();
        let out = scratch.run_attack(attack, extra);
        if let Some(failure) = verdict(&out, expect) {
            escaped.push(format!("{attack}: {failure}"));
        }
        // Bounds, not timings: a run past three times its deadline hung.
        if started.elapsed() > std::time::Duration::from_secs(9) {
            escaped.push(format!("{attack}: ran {:?} against a 3 s deadline", started.elapsed()));
        }
        if out.stderr.len() > 4 << 20 {
            escaped.push(format!("{attack}: {} bytes of logs passed through", out.stderr.len()));
        }
        if let Err(changes) = scratch.unchanged_since(&before) {
            escaped.push(format!("{attack}: changed the host:\n{changes}"));
        }
        let links = cni_wasm_tests::link_names(&scratch.container);
        if links != ["lo"] {
            escaped.push(format!("{attack}: left {links:?} in the container"));
        }
    }
    assert!(escaped.is_empty(), "{} attacks got through:\n{}", escaped.len(), escaped.join("\n"));
}

/// A forged result names the host's eth0 and cni0 as the attachment's
/// host-side interfaces; a built-in chained after it must not act on them.
#[test]
fn a_forged_prev_result_gives_the_next_plugin_nothing_on_the_host() {
    let scratch = ScratchHost::new("hostile-forged");
    let before = scratch.snapshot();
    let out = scratch.run_attack("forged-result", &json!({}));
    assert!(out.success, "{}", out.stdout);
    let forged = out.json();
    for (plugin, extra) in [
        ("bandwidth", json!({"ingressRate": 8000, "ingressBurst": 8000, "egressRate": 8000, "egressBurst": 8000})),
        ("tuning", json!({"mtu": 1300, "promisc": true})),
    ] {
        let mut config = json!({"cniVersion": "1.0.0", "name": "attk-net", "type": plugin, "prevResult": forged});
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        let env = scratch.env("ADD");
        // Whether it fails or not, the host's links are not its to touch.
        run(&scratch.install.plugin(plugin), &env, &config.to_string());
        run(&scratch.install.plugin(plugin), &env.with_command("DEL"), &config.to_string());
        if let Err(changes) = scratch.unchanged_since(&before) {
            panic!("{plugin} after a forged prevResult changed the host:\n{changes}");
        }
    }
}
