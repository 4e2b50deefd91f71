//! portmap, chained after bridge through the real libcni: the reference's
//! iptables rules byte for byte, the upstream nftables layout, mapped ports
//! reachable from everywhere a user expects, CHECK that works on IPv4-only
//! networks, conntrack cleanup on ADD and DEL, and GC.

use std::io::BufRead;

use cni_wasm_tests::kernel::{self, iptables_save};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::result;
use cni_wasm_tests::side::{self, GATEWAY, Server, Side, connect, lan_client, podman, port_mappings};
use serde_json::{Value, json};

fn portmap(extra: Value) -> Value {
    let mut plugin = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

fn mappings() -> Value {
    port_mappings(&[(8080, 80, "tcp", None), (5353, 53, "udp", None), (9090, 90, "tcp", Some("127.0.0.1"))])
}

fn nat_tables(side: &Side) -> [String; 2] {
    [iptables_save(&side.host, false, "nat"), iptables_save(&side.host, true, "nat")]
}

#[test]
fn iptables_rules_results_and_kernel_state_match_the_reference() {
    let (ours, theirs) = (Side::ours("pm-sbs-o"), Side::reference("pm-sbs-r"));
    let conflist = podman("1.0.0", &[portmap(json!({}))]);
    let caps = [("portMappings", mappings())];
    let (our_ct, their_ct) = (Netns::new("pm-sbs-oc"), Netns::new("pm-sbs-rc"));
    let our_result = ours.add(&conflist, "abc123", &our_ct, &caps).unwrap();
    let their_result = theirs.add(&conflist, "abc123", &their_ct, &caps).unwrap();
    assert_eq!(result::normalize(&our_result), result::normalize(&their_result));
    assert_eq!(nat_tables(&ours), nat_tables(&theirs), "nat tables after ADD");
    kernel::assert_converges(|| kernel::state(&ours.host), || kernel::state(&theirs.host), "host namespace");
    kernel::assert_converges(|| kernel::state(&our_ct), || kernel::state(&their_ct), "container namespace");
    let localnet = format!("net/ipv4/conf/{}/route_localnet", side::BRIDGE);
    assert_eq!(kernel::sysctl(&ours.host, &localnet), "1");
    assert_eq!(kernel::sysctl(&theirs.host, &localnet), "1");

    // The Debian reference's CHECK fails on every IPv4-only network (it
    // insists on an IPv6 chain); ours checks the families in use.
    ours.check(&conflist, "abc123", &our_ct, &caps).expect("CHECK right after ADD passes");
    let their_check = theirs.check(&conflist, "abc123", &their_ct, &caps);
    if let Err(e) = &their_check {
        assert!(e.contains("could not check ipv6 dnat"), "the reference fails CHECK for another reason: {e}");
    }

    ours.del(&conflist, "abc123", &our_ct, &caps).unwrap();
    theirs.del(&conflist, "abc123", &their_ct, &caps).unwrap();
    assert_eq!(nat_tables(&ours), nat_tables(&theirs), "nat tables after DEL");
    assert!(!nat_tables(&ours)[0].contains("CNI-DN-"), "no per-container chain left");
}

#[test]
fn mark_bit_external_mark_chain_and_conditions_match_the_reference() {
    let configs = [
        json!({"markMasqBit": 5}),
        json!({"snat": false}),
        json!({"externalSetMarkChain": "KUBE-MARK-MASQ"}),
        json!({"conditionsV4": ["-s", "192.0.2.0/24", "!", "-i", "eth9"]}),
        // One element is one argument, spaces and all, as the reference
        // passes it to iptables.
        json!({"conditionsV4": ["-m", "comment", "--comment", "two words"]}),
    ];
    for extra in configs {
        let (ours, theirs) = (Side::ours("pm-opt-o"), Side::reference("pm-opt-r"));
        for side in [&ours, &theirs] {
            // An existing mark chain, as kube-proxy would have made it.
            side.exec("iptables", &["-t", "nat", "-N", "KUBE-MARK-MASQ"]);
        }
        let conflist = podman("1.0.0", &[portmap(extra.clone())]);
        let caps = [("portMappings", mappings())];
        let (our_ct, their_ct) = (Netns::new("pm-opt-oc"), Netns::new("pm-opt-rc"));
        ours.add(&conflist, "abc123", &our_ct, &caps).unwrap();
        theirs.add(&conflist, "abc123", &their_ct, &caps).unwrap();
        assert_eq!(nat_tables(&ours), nat_tables(&theirs), "nat tables after ADD with {extra}");
        ours.check(&conflist, "abc123", &our_ct, &caps).unwrap_or_else(|e| panic!("CHECK with {extra}: {e}"));
        ours.del(&conflist, "abc123", &our_ct, &caps).unwrap();
        theirs.del(&conflist, "abc123", &their_ct, &caps).unwrap();
        assert_eq!(nat_tables(&ours), nat_tables(&theirs), "nat tables after DEL with {extra}");
    }
}

/// Every way a user reaches a mapped port: from the host itself over
/// 127.0.0.1 and its own address, from another machine, from another
/// container, and from the container itself (hairpin); a host-IP mapping
/// only on that address.
fn mapped_ports_are_reachable(backend: &str) {
    let ours = Side::ours(&format!("pm-reach-{backend}"));
    let conflist = podman("1.0.0", &[portmap(json!({"backend": backend}))]);
    let caps = [("portMappings", mappings())];
    let (web, other) = (Netns::new("pm-reach-web"), Netns::new("pm-reach-oth"));
    ours.add(&conflist, "web", &web, &caps).unwrap();
    ours.add(&conflist, "other", &other, &[]).unwrap();
    let lan = lan_client(&ours.host, "pm-reach-lan", "192.168.77.1", "192.168.77.2");
    let _servers = [
        Server::start(&web, "tcp", "0.0.0.0:80", "web"),
        Server::start(&web, "udp", "0.0.0.0:53", "dns"),
        Server::start(&web, "tcp", "0.0.0.0:90", "local-only"),
    ];
    let answer = |from: &Netns, protocol: &str, address: &str| -> String {
        connect(from, protocol, address)
            .unwrap_or_else(|| panic!("{backend}: {protocol} {address} unreachable from {}", from.name))
    };
    for (protocol, port, name) in [("tcp", 8080, "web"), ("udp", 5353, "dns")] {
        for (from, address) in [(&ours.host, "127.0.0.1"), (&ours.host, GATEWAY), (&ours.host, "192.168.77.1")] {
            assert!(answer(from, protocol, &format!("{address}:{port}")).starts_with(name));
        }
        // From another machine the container sees the client itself.
        assert_eq!(answer(&lan, protocol, &format!("192.168.77.1:{port}")), format!("{name} 192.168.77.2"));
        // Hairpin: masqueraded, so the answer comes back the same way.
        assert!(answer(&other, protocol, &format!("{GATEWAY}:{port}")).starts_with(name));
        assert!(answer(&web, protocol, &format!("{GATEWAY}:{port}")).starts_with(name));
    }
    assert!(answer(&ours.host, "tcp", "127.0.0.1:9090").starts_with("local-only"));
    assert_eq!(connect(&lan, "tcp", "192.168.77.1:9090"), None, "a 127.0.0.1 mapping is not reachable from outside");

    ours.check(&conflist, "web", &web, &caps).expect("CHECK after ADD");
    ours.del(&conflist, "web", &web, &caps).unwrap();
    assert_eq!(connect(&ours.host, "tcp", "127.0.0.1:8080"), None, "DEL removes the mapping");
}

#[test]
fn mapped_ports_are_reachable_with_iptables() {
    mapped_ports_are_reachable("iptables");
}

#[test]
fn mapped_ports_are_reachable_with_nftables() {
    mapped_ports_are_reachable("nftables");
}

#[test]
fn nftables_rules_follow_the_upstream_layout_and_del_removes_them() {
    let ours = Side::ours("pm-nft");
    let conflist = podman("1.0.0", &[portmap(json!({"backend": "nftables"}))]);
    let caps = [("portMappings", mappings())];
    let ct = Netns::new("pm-nft-c");
    let result = ours.add(&conflist, "abc123", &ct, &caps).unwrap();
    let ip = result::ip(&result, 0);
    let table = ours.exec("nft", &["list", "table", "ip", "cni_hostport"]);
    for expected in [
        format!("tcp dport 8080 dnat to {ip}:80 comment \"abc123\""),
        format!("udp dport 5353 dnat to {ip}:53 comment \"abc123\""),
        format!("ip daddr 127.0.0.1 tcp dport 9090 dnat to {ip}:90 comment \"abc123\""),
        format!("ip saddr {ip} ip daddr {ip} masquerade comment \"abc123\""),
        format!("ip saddr 127.0.0.1 ip daddr {ip} masquerade comment \"abc123\""),
        "fib daddr type local jump hostports_all".to_string(),
    ] {
        assert!(table.contains(&expected), "missing {expected:?} in\n{table}");
    }
    assert!(!iptables_save(&ours.host, false, "nat").contains("CNI-DN-"), "nothing in iptables");
    ours.del(&conflist, "abc123", &ct, &caps).unwrap();
    let table = ours.exec("nft", &["list", "table", "ip", "cni_hostport"]);
    assert!(!table.contains("abc123"), "DEL leaves no rule of the container:\n{table}");
}

fn check_fails_after_out_of_band_removal(backend: &str) {
    let ours = Side::ours(&format!("pm-chk-{backend}"));
    let conflist = podman("1.0.0", &[portmap(json!({"backend": backend}))]);
    let caps = [("portMappings", mappings())];
    let ct = Netns::new("pm-chk-c");
    ours.add(&conflist, "abc123", &ct, &caps).unwrap();
    ours.check(&conflist, "abc123", &ct, &caps).expect("CHECK after ADD");
    if backend == "iptables" {
        ours.exec("iptables", &["-t", "nat", "-F", "CNI-DN-748d4dd0c88c50c10332c"]);
    } else {
        ours.exec("nft", &["flush", "chain", "ip", "cni_hostport", "hostports"]);
    }
    let error = ours.check(&conflist, "abc123", &ct, &caps).expect_err("CHECK must notice the missing rules");
    assert!(error.contains("not found") || error.contains("missing"), "{error}");
    ours.del(&conflist, "abc123", &ct, &caps).unwrap();
}

#[test]
fn check_fails_after_rules_are_removed_out_of_band_with_iptables() {
    check_fails_after_out_of_band_removal("iptables");
}

#[test]
fn check_fails_after_rules_are_removed_out_of_band_with_nftables() {
    check_fails_after_out_of_band_removal("nftables");
}

/// The scenario of reference issue #1190: a client keeps sending UDP from
/// one source port; its conntrack entry must not keep pointing at a
/// deleted container.
#[test]
fn a_udp_client_reaches_the_replacement_container_and_del_leaves_no_entry() {
    let ours = Side::ours("pm-udp");
    let conflist = podman("1.0.0", &[portmap(json!({}))]);
    let caps = [("portMappings", port_mappings(&[(5353, 53, "udp", None)]))];
    let lan = lan_client(&ours.host, "pm-udp-lan", "192.168.78.1", "192.168.78.2");
    let first = Netns::new("pm-udp-first");
    ours.add(&conflist, "first", &first, &caps).unwrap();
    let mut first_server = Server::start(&first, "udp", "0.0.0.0:53", "first");
    let mut client = std::process::Command::new("ip")
        .args(["netns", "exec", &lan.name])
        .arg(side::nettest())
        .args(["send-udp", "192.168.78.1:5353", "40000", "100"])
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(first_server.stdout()).lines();
    assert!(lines.next().is_some_and(|l| l.unwrap().starts_with("got 192.168.78.2")), "the first container receives");

    // Replace the container: another IP takes the same mapping.
    ours.del(&conflist, "first", &first, &caps).unwrap();
    drop(lines);
    drop(first_server);
    let blocker = Netns::new("pm-udp-block");
    ours.add(&conflist, "blocker", &blocker, &[]).unwrap(); // takes the old IP's successor
    let second = Netns::new("pm-udp-second");
    let result = ours.add(&conflist, "second", &second, &caps).unwrap();
    assert_ne!(result["ips"][0]["address"], "10.89.0.2/24", "the replacement has another IP");
    let mut second_server = Server::start(&second, "udp", "0.0.0.0:53", "second");
    let (sender, receiver) = std::sync::mpsc::channel();
    let stdout = std::mem::replace(second_server.stdout(), unsafe_dummy_stdout());
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = sender.send(lines.next().and_then(Result::ok));
    });
    // The client sends every 100 ms; a stale entry would keep the datagrams
    // going to the deleted container for as long as the client sends.
    let got = receiver.recv_timeout(kernel::SETTLE).ok().flatten();
    assert!(got.is_some_and(|l| l.starts_with("got 192.168.78.2")), "the replacement receives the client's datagrams");

    // DEL with no replacement: once the client stops, nothing remains for the port.
    let _ = client.kill();
    let _ = client.wait();
    ours.del(&conflist, "second", &second, &caps).unwrap();
    let entries: Vec<String> =
        kernel::conntrack(&ours.host, false).into_iter().filter(|e| e.contains("dport=5353")).collect();
    assert!(entries.is_empty(), "conntrack entries for the port after DEL: {entries:?}");
}

/// A stand-in so the server's real stdout can move to the reader thread.
fn unsafe_dummy_stdout() -> std::process::ChildStdout {
    std::process::Command::new("true").stdout(std::process::Stdio::piped()).spawn().unwrap().stdout.take().unwrap()
}

#[test]
fn del_succeeds_twice_without_an_add_without_prev_result_and_without_the_netns() {
    let ours = Side::ours("pm-del");
    let conflist = podman("1.0.0", &[portmap(json!({}))]);
    let caps = [("portMappings", mappings())];
    let ct = Netns::new("pm-del-c");
    ours.add(&conflist, "abc123", &ct, &caps).unwrap();
    ours.del(&conflist, "abc123", &ct, &caps).unwrap();
    ours.del(&conflist, "abc123", &ct, &caps).expect("a second DEL");
    ours.del(&conflist, "never-added", &ct, &caps).expect("DEL of an unknown container");

    // The plugin alone, with no prevResult and a namespace that is gone.
    let install = Installation::new("pm-del-direct");
    let config = json!({"cniVersion": "1.0.0", "name": "podman", "type": "portmap",
        "runtimeConfig": {"portMappings": mappings()}});
    let env = Env {
        host_netns: Some(ours.host.name.clone()),
        ..Env::new("DEL", "gone", "/var/run/netns/does-not-exist", "eth0", &install.dir)
    };
    let outcome = run(&install.plugin("portmap"), &env, &config.to_string());
    assert!(outcome.success, "{} {}", outcome.stdout, outcome.stderr);
    assert!(!iptables_save(&ours.host, false, "nat").contains("CNI-DN-"));
}

#[test]
fn gc_removes_the_mappings_of_attachments_the_runtime_no_longer_lists() {
    for backend in ["iptables", "nftables"] {
        let ours = Side::ours(&format!("pm-gc-{backend}"));
        let conflist = podman("1.0.0", &[portmap(json!({"backend": backend}))]);
        let (a, b) = (Netns::new("pm-gc-a"), Netns::new("pm-gc-b"));
        ours.add(&conflist, "stale", &a, &[("portMappings", port_mappings(&[(8081, 80, "tcp", None)]))]).unwrap();
        ours.add(&conflist, "live", &b, &[("portMappings", port_mappings(&[(8082, 80, "tcp", None)]))]).unwrap();
        // libcni 1.1 has no GC: call the plugin as a 1.1 runtime would.
        let install = Installation::new("pm-gc-direct");
        let config = json!({"cniVersion": "1.1.0", "name": "podman", "type": "portmap", "backend": backend,
            "cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]});
        let env = Env { host_netns: Some(ours.host.name.clone()), ..Env::new("GC", "", "", "", &install.dir) };
        let outcome = run(&install.plugin("portmap"), &env, &config.to_string());
        assert!(outcome.success, "{backend}: {} {}", outcome.stdout, outcome.stderr);
        let rules = if backend == "iptables" {
            iptables_save(&ours.host, false, "nat")
        } else {
            kernel::nft_ruleset(&ours.host)
        };
        assert!(!rules.contains("8081"), "{backend}: the stale mapping is gone:\n{rules}");
        assert!(rules.contains("8082"), "{backend}: the live mapping stays:\n{rules}");
    }
}

#[test]
fn options_of_the_other_backend_and_bad_mappings_are_refused() {
    let ours = Side::ours("pm-bad");
    let ct = Netns::new("pm-bad-c");
    let cases = [
        (
            json!({"backend": "nftables", "conditionsV4": ["-s", "10.0.0.1"]}),
            mappings(),
            "nftables backend was requested but configuration contains iptables-specific options",
        ),
        (
            json!({"backend": "iptables", "conditionsV4": ["ip saddr 10.0.0.1"]}),
            mappings(),
            "iptables backend was requested",
        ),
        (json!({"markMasqBit": 40}), mappings(), "MasqMarkBit must be between 0 and 31"),
        (json!({}), port_mappings(&[(0, 80, "tcp", None)]), "Invalid host port number: 0"),
    ];
    for (extra, maps, message) in cases {
        let conflist = podman("1.0.0", &[portmap(extra.clone())]);
        let error = ours.add(&conflist, "bad", &ct, &[("portMappings", maps)]).expect_err("a bad config fails");
        assert!(error.contains(message), "{extra}: {error}");
        // The runtime cleans up a failed ADD with DEL, which must succeed
        // even for a config ADD refused.
        ours.del(&conflist, "bad", &ct, &[("portMappings", mappings())]).unwrap();
    }
    assert!(!iptables_save(&ours.host, false, "nat").contains("CNI-DN-"));
    assert!(!cni_wasm_tests::link_names(&ours.host).iter().any(|l| kernel::is_random_veth(l)), "no veth left");
}

/// A condition with a line break would end the rule and start one of the
/// plugin's choosing (a RETURN at the top of CNI-HOSTPORT-DNAT would
/// short-circuit every container's mappings): a config error, and nothing
/// changes.
#[test]
fn a_line_break_in_a_condition_is_a_config_error_and_injects_nothing() {
    let ours = Side::ours("pm-inject");
    let injected = "192.0.2.0/24\n-A CNI-HOSTPORT-DNAT -j RETURN";
    let conflist = podman("1.0.0", &[portmap(json!({"conditionsV4": ["-s", injected]}))]);
    let ct = Netns::new("pm-inject-c");
    let error = ours.add(&conflist, "abc123", &ct, &[("portMappings", mappings())]).unwrap_err();
    let error = cni_wasm_tests::libcni::cni_error(&error).unwrap_or_else(|| panic!("no CNI error: {error}"));
    assert_eq!(error["code"], 7, "{error}");
    assert!(error["msg"].as_str().unwrap().contains("control character"), "{error}");
    let nat = iptables_save(&ours.host, false, "nat");
    assert!(!nat.contains("-j RETURN"), "nothing was injected:\n{nat}");
}

/// A chained portmap config for network `name`, with bridge's prevResult
/// for `address` and one tcp mapping of `host_port`.
fn direct_config(name: &str, address: &str, host_port: u16) -> String {
    direct_config_with(name, address, host_port, json!({"backend": "nftables"}))
}

fn direct_config_with(name: &str, address: &str, host_port: u16, extra: Value) -> String {
    let mut config = json!({"cniVersion": "1.0.0", "name": name, "type": "portmap",
        "runtimeConfig": {"portMappings": port_mappings(&[(host_port, 80, "tcp", None)])},
        "prevResult": {"cniVersion": "1.0.0",
            "interfaces": [{"name": "cni-podman0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": address, "interface": 2}]}});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    config.to_string()
}

/// The comments of the rules in `ip cni_hostport`'s hostports and
/// masquerading chains.
fn nft_container_comments(host: &Netns) -> Vec<String> {
    kernel::nft_rule_comments(host, "ip", "cni_hostport", &["hostports", "masquerading"])
}

/// Every container's DNAT and hairpin rules share two chains, and nft
/// deletes a rule only by its handle, so the reference lists the whole
/// table on every ADD and DEL. Ours reads only the one-rule prerouting
/// chain, records the handles of what it added, and a DEL or a repeated
/// ADD deletes by them: no ADD or DEL lists the table. A container whose
/// record has no handles (cni-wasm 0.1's) is still removed, by listing.
#[test]
fn nftables_add_and_del_find_the_containers_rules_by_recorded_handles() {
    cni_wasm_tests::require_root();
    let install = Installation::new("pm-nftrec");
    let host = Netns::new("pm-nftrec-h");
    let audit = cni_wasm_tests::plugin::Audit::new("pm-nftrec");
    // Records live in the node's state directory: a network of this run.
    let network = format!("pm-nftrec-{}", std::process::id());
    let containers = [("a", "10.78.0.2/24", 8081), ("b", "10.78.0.3/24", 8082)].map(|(id, address, port)| {
        (id, Netns::new(&format!("pm-nftrec-{id}")), direct_config(&network, address, port))
    });
    let call = |command: &str, (id, ct, config): &(&str, Netns, String)| {
        let env =
            Env { host_netns: Some(host.name.clone()), ..Env::new(command, id, &ct.path(), "eth0", &install.dir) };
        let out = run(&install.plugin("portmap"), &audit.on(env), config);
        assert!(out.success, "{command} {id}: {} {}", out.stdout, out.stderr);
    };
    let of = |id: &str| nft_container_comments(&host).iter().filter(|c| *c == id).count();
    for container in &containers {
        call("ADD", container);
        assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "ADD {} lists no table", container.0);
    }
    // One DNAT rule, the hairpin and the localhost masquerade each.
    assert_eq!((of("a"), of("b")), (3, 3));
    call("ADD", &containers[0]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "a repeated ADD lists no table");
    assert_eq!(of("a"), 3, "a repeated ADD replaces the container's rules");

    call("DEL", &containers[0]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 0, "DEL by recorded handles lists no table");
    assert_eq!((of("a"), of("b")), (0, 3), "DEL removes only a's rules");

    // b as cni-wasm 0.1 recorded it: the container id, no handles.
    let record = std::path::Path::new("/run/cni-wasm/portmap/nftables").join(&network).join("b");
    std::fs::write(&record, "b").expect("ADD recorded b");
    call("DEL", &containers[1]);
    assert_eq!(audit.take_count("netfilter.nft-list-table"), 2, "DEL without handles lists each family's table");
    assert_eq!(of("b"), 0, "every rule of b is gone");
    assert!(!record.exists(), "DEL removes the record");
}

/// iptables-save prints every container's chains and rules. A DEL whose
/// config says what its ADD wrote deletes exactly that in one restore,
/// reading no table; with conditions (whose canonical text the kernel
/// decides) or when the rules are not as written, it reads the table.
#[test]
fn an_iptables_del_of_what_its_add_wrote_reads_no_table() {
    cni_wasm_tests::require_root();
    let install = Installation::new("pm-iptdel");
    let host = Netns::new("pm-iptdel-h");
    let ct = Netns::new("pm-iptdel-c");
    let audit = cni_wasm_tests::plugin::Audit::new("pm-iptdel");
    let call = |command: &str, config: &str| {
        let env =
            Env { host_netns: Some(host.name.clone()), ..Env::new(command, "a", &ct.path(), "eth0", &install.dir) };
        let out = run(&install.plugin("portmap"), &audit.on(env), config);
        assert!(out.success, "{command}: {} {}", out.stdout, out.stderr);
    };
    // (The backend is named: conditions without one make the config's
    // backend choice probe iptables with a read of its own.)
    let conditions = json!({"backend": "iptables", "conditionsV4": ["-s", "10.0.0.0/8"]});
    for (extra, saves) in [(json!({}), 0), (conditions, 1)] {
        let config = direct_config_with("pm-iptdel", "10.79.0.2/24", 8083, extra.clone());
        call("ADD", &config);
        assert!(iptables_save(&host, false, "nat").contains("CNI-DN-"), "{extra}: ADD maps the port");
        audit.take_count("netfilter.iptables-save");
        call("DEL", &config);
        assert_eq!(audit.take_count("netfilter.iptables-save"), saves, "{extra}: tables read by DEL");
        let nat = iptables_save(&host, false, "nat");
        assert!(!nat.contains("CNI-DN-") && !nat.contains("8083"), "{extra}: DEL removes the mapping:\n{nat}");
    }
    // Nothing left to delete: the restore fails, the table is read, DEL
    // still succeeds.
    call("DEL", &direct_config_with("pm-iptdel", "10.79.0.2/24", 8083, json!({})));
    assert_eq!(audit.take_count("netfilter.iptables-save"), 1);
}
