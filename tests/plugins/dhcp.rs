//! dhcp against a real DHCP server: dnsmasq in its own namespace on a
//! bridge, our lease daemon (`dhcp daemon`) started as the reference's is.
//! A macvlan container's result and routes match the reference plugin and
//! daemon's; a bridge container leases too; leases are renewed at T1, and
//! a macvlan's DEL sends DHCPRELEASE (dnsmasq forgets the lease; the Debian reference
//! sends none); a server that never answers is a clear timeout error that
//! leaves nothing behind; options from the config and CNI_ARGS reach the
//! server; CHECK, STATUS, GC; the daemon outlives a vanished container and
//! resumes its leases after a crash; the DEL matrix; VERSION.

use std::path::Path;

use cni_wasm_tests::dhcp::{BRIDGE, DhcpServer, LeaseDaemon, POOL, SERVER_IP};
use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::kernel::{self, SETTLE, eventually};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, Outcome, assert_versions_extend_the_references, run};
use cni_wasm_tests::side::ping;
use cni_wasm_tests::{REFERENCE_DIR, reference, result};
use serde_json::{Value, json};

/// T1 and T2 short enough to see renewals within a test (dnsmasq's
/// shortest lease is two minutes).
const SHORT_T1: [&str; 2] = ["--dhcp-option=option:T1,2", "--dhcp-option=option:T2,4"];

/// A macvlan on the LAN's bridge, with dhcp IPAM asking `socket`.
fn macvlan(socket: &str, ipam: Value) -> Value {
    let mut config = json!({"type": "macvlan", "master": BRIDGE, "ipam": {"type": "dhcp", "daemonSocketPath": socket}});
    for (key, value) in ipam.as_object().unwrap() {
        config["ipam"][key] = value.clone();
    }
    config
}

/// A LAN, our daemon on it, and a way to run plugins in its host namespace.
struct Lan {
    direct: Direct,
    server: DhcpServer,
    daemon: LeaseDaemon,
}

impl Lan {
    fn new(tag: &str, server_options: &[&str]) -> Lan {
        let direct = Direct::new(tag, "macvlan", "dhcpnet");
        let server = DhcpServer::start(&direct.host, tag, server_options);
        let daemon = LeaseDaemon::start(&direct.install.plugin("dhcp"), tag, &[]);
        Lan { direct, server, daemon }
    }

    fn config(&self, ipam: Value) -> String {
        self.direct.config(macvlan(&self.daemon.socket_path(), ipam))
    }

    fn ours(&self, command: &str, id: &str, netns: &str, config: &str) -> Outcome {
        self.direct.ours(command, id, netns, config)
    }

    /// ADD that must succeed; the leased address.
    fn add(&self, id: &str, ct: &Netns) -> (Value, String) {
        let outcome = self.ours("ADD", id, &ct.path(), &self.config(json!({})));
        assert!(outcome.success, "ADD {id}: {}\n{}\ndaemon: {}", outcome.stdout, outcome.stderr, self.daemon.log());
        let result = outcome.json();
        let address = result::ip(&result, 0);
        (result, address)
    }

    /// A config with `prevResult`, for CHECK.
    fn with_prev(&self, result: &Value) -> String {
        let mut config: Value = serde_json::from_str(&self.config(json!({}))).unwrap();
        config["prevResult"] = result.clone();
        config.to_string()
    }

    fn wait_released(&self, address: &str) {
        eventually(SETTLE, &format!("dnsmasq forgetting {address}"), || {
            let leased = self.server.leased();
            (self.server.released(address) && !leased.contains(&address.to_string()))
                .then_some(())
                .ok_or(format!("leases {leased:?}"))
        });
    }
}

/// STATUS and GC need a 1.1.0 config.
fn v11(config: &str) -> String {
    let mut config: Value = serde_json::from_str(config).unwrap();
    config["cniVersion"] = json!("1.1.0");
    config.to_string()
}

fn in_pool(address: &str) -> bool {
    let last = |a: &str| a.rsplit('.').next().unwrap().parse::<u8>().unwrap();
    address.starts_with("10.77.0.") && (last(POOL.0)..=last(POOL.1)).contains(&last(address))
}

/// The container with the leased address replaced, so two leases compare
/// equal; without ndisc_notify, which our macvlan sets (as upstream does
/// now) and Debian's does not (see plugins/macvlan.rs).
fn container_state(ns: &Netns, address: &str) -> Value {
    let mut state = kernel::container_state(ns);
    state["sysctls"].as_object_mut().unwrap().remove("net/ipv6/conf/eth0/ndisc_notify");
    serde_json::from_str(&state.to_string().replace(address, "LEASED")).unwrap()
}

#[test]
fn a_macvlan_container_gets_the_references_result_and_routes() {
    // A classless route besides the router: both sides must return it.
    let lan = Lan::new("dhcp-same", &["--dhcp-option=121,10.200.0.0/16,10.77.0.1,0.0.0.0/0,10.77.0.1"]);
    let theirs = LeaseDaemon::start(&reference("dhcp"), "dhcp-same-ref", &[]);
    let (ct_ours, ct_theirs) = (Netns::new("dhcp-same-o"), Netns::new("dhcp-same-r"));

    let (ours, our_address) = lan.add("c-ours", &ct_ours);
    let config = lan.direct.config(macvlan(&theirs.socket_path(), json!({})));
    let env = |command: &str| Env {
        host_netns: Some(lan.direct.host.name.clone()),
        ..Env::new(command, "c-theirs", &ct_theirs.path(), "eth0", Path::new(REFERENCE_DIR))
    };
    let outcome = run(&reference("macvlan"), &env("ADD"), &config);
    assert!(outcome.success, "reference ADD: {}", outcome.stdout);
    let their_address = result::ip(&outcome.json(), 0);

    assert!(in_pool(&our_address) && in_pool(&their_address), "{our_address} and {their_address} from the pool");
    assert_ne!(our_address, their_address, "two clients, two leases");
    let normalized = |r: &Value, a: &str| {
        serde_json::from_str::<Value>(&result::normalize(r).to_string().replace(a, "LEASED")).unwrap()
    };
    kernel::assert_same(&normalized(&ours, &our_address), &normalized(&outcome.json(), &their_address), "result");
    assert_eq!(ours["ips"][0]["gateway"], SERVER_IP);
    kernel::assert_same(
        &container_state(&ct_ours, &our_address),
        &container_state(&ct_theirs, &their_address),
        "container",
    );
    assert!(ping(&ct_ours, SERVER_IP), "the container reaches the server through its lease");

    assert!(lan.ours("DEL", "c-ours", &ct_ours.path(), &lan.config(json!({}))).success);
    lan.wait_released(&our_address);
    assert!(run(&reference("macvlan"), &env("DEL"), &config).success);
}

#[test]
fn a_bridge_container_leases_from_the_lan() {
    let lan = Lan::new("dhcp-br", &[]);
    let ct = Netns::new("dhcp-br-c");
    let config = lan.direct.config(json!({"type": "bridge", "bridge": BRIDGE,
        "ipam": {"type": "dhcp", "daemonSocketPath": lan.daemon.socket_path()}}));
    let run_bridge = |command: &str| {
        let env = Env {
            host_netns: Some(lan.direct.host.name.clone()),
            ..Env::new(command, "c-br", &ct.path(), "eth0", &lan.direct.install.dir)
        };
        run(&lan.direct.install.plugin("bridge"), &env, &config)
    };
    let outcome = run_bridge("ADD");
    assert!(outcome.success, "bridge ADD: {}\n{}", outcome.stdout, outcome.stderr);
    let address = result::ip(&outcome.json(), 0);
    assert!(in_pool(&address), "{address} from the pool");
    assert!(ping(&ct, SERVER_IP), "the container reaches the server");
    // bridge deletes the container's interface before its IPAM DEL, as the
    // reference does (so a freed address is never still in use): with the
    // interface gone there is nothing to send DHCPRELEASE from, and the
    // daemon only forgets the lease.
    assert!(run_bridge("DEL").success);
    let forgotten = format!("c-br/dhcpnet/eth0: not releasing {address}");
    eventually(SETTLE, "the daemon forgetting the lease", || {
        let log = lan.daemon.log();
        log.contains(&forgotten).then_some(()).ok_or(log)
    });
}

#[test]
fn leases_are_renewed_at_t1_and_del_releases_them() {
    let lan = Lan::new("dhcp-renew", &SHORT_T1);
    let ct = Netns::new("dhcp-renew-c");
    let (result, address) = lan.add("c1", &ct);
    // One ACK for the lease, then one per renewal.
    eventually(SETTLE, "two renewals", || {
        let acks = lan.server.acks(&address);
        (acks >= 3).then_some(()).ok_or(format!("{acks} ACKs of {address}"))
    });
    assert!(lan.ours("CHECK", "c1", &ct.path(), &lan.with_prev(&result)).success);
    assert!(ping(&ct, SERVER_IP), "the renewed lease still carries traffic");

    assert!(lan.ours("DEL", "c1", &ct.path(), &lan.config(json!({}))).success);
    lan.wait_released(&address);
    // The daemon has forgotten it: nothing left to renew, CHECK says so.
    let check = lan.ours("CHECK", "c1", &ct.path(), &lan.with_prev(&result));
    assert!(check.json()["msg"].as_str().unwrap().contains("holds no lease"), "{}", check.stdout);
}

#[test]
fn a_server_that_never_answers_is_a_timeout_error_that_leaves_nothing() {
    let direct = Direct::new("dhcp-mute", "macvlan", "dhcpnet");
    direct.host.exec("ip", &["link", "add", BRIDGE, "type", "bridge"]);
    direct.host.exec("ip", &["link", "set", BRIDGE, "up"]);
    let mut daemon = LeaseDaemon::start(&direct.install.plugin("dhcp"), "dhcp-mute", &["-timeout", "2s"]);
    let ct = Netns::new("dhcp-mute-c");
    let config = direct.config(macvlan(&daemon.socket_path(), json!({})));
    let outcome = direct.ours("ADD", "c1", &ct.path(), &config);
    assert!(!outcome.success);
    let error = outcome.json();
    let msg = error["msg"].as_str().unwrap();
    assert!(msg.contains("c1/eth0") && msg.contains("no DHCP server answered"), "{msg}");
    // macvlan rolled its link back; the daemon holds nothing and runs on.
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
    assert!(daemon.is_running());
    assert!(direct.ours("STATUS", "", "", &v11(&config)).success);
}

#[test]
fn options_from_the_config_and_cni_args_reach_the_server_and_priority_sets_metrics() {
    let lan = Lan::new("dhcp-opts", &[]);
    let ct = Netns::new("dhcp-opts-c");
    let config = lan.config(json!({
        "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}],
        "request": [{"option": "subnet-mask"}, {"option": "routers"}],
        "priority": 77,
    }));
    let outcome = lan.direct.ours_with_args("ADD", "c1", &ct.path(), &config, "IgnoreUnknown=1;K8S_POD_NAME=web-0");
    assert!(outcome.success, "{}", outcome.stdout);
    let result = outcome.json();
    assert!(result["routes"].as_array().unwrap().iter().all(|r| r["priority"] == 77), "{result}");
    let default = kernel::routes(&ct).to_string();
    assert!(default.contains("77"), "the container's routes carry the metric: {default}");
    let log = lan.server.log();
    assert!(log.contains("client provides name: web-0"), "dnsmasq saw the host name: {log}");

    let ct2 = Netns::new("dhcp-opts-c2");
    let bad = lan.ours("ADD", "c2", &ct2.path(), &lan.config(json!({"request": [{"option": "no-such-option"}]})));
    assert_eq!(bad.code(), 7);
    assert!(bad.json()["msg"].as_str().unwrap().contains("no-such-option"), "{}", bad.stdout);
    assert!(lan.ours("DEL", "c1", &ct.path(), &config).success);
}

#[test]
fn check_status_and_gc() {
    let lan = Lan::new("dhcp-gc", &[]);
    let (ct1, ct2) = (Netns::new("dhcp-gc-1"), Netns::new("dhcp-gc-2"));
    let (result1, address1) = lan.add("c1", &ct1);
    let (_, address2) = lan.add("c2", &ct2);
    assert!(lan.ours("CHECK", "c1", &ct1.path(), &lan.with_prev(&result1)).success);
    // CHECK against a result with another address fails.
    let mut wrong = result1.clone();
    wrong["ips"][0]["address"] = json!("10.77.0.250/24");
    let check = lan.ours("CHECK", "c1", &ct1.path(), &lan.with_prev(&wrong));
    assert!(check.json()["msg"].as_str().unwrap().contains(&address1), "{}", check.stdout);

    assert!(lan.ours("STATUS", "", "", &v11(&lan.config(json!({})))).success);
    let gone = lan.direct.config(macvlan("/run/cni-wasm-test-none/dhcp.sock", json!({})));
    let status = lan.ours("STATUS", "", "", &v11(&gone));
    assert_eq!(status.code(), 50);
    assert!(status.json()["msg"].as_str().unwrap().contains("/run/cni-wasm-test-none/dhcp.sock"), "{}", status.stdout);

    let mut gc: Value = serde_json::from_str(&v11(&lan.config(json!({})))).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    assert!(lan.ours("GC", "", "", &gc.to_string()).success);
    lan.wait_released(&address2);
    assert!(lan.ours("CHECK", "c1", &ct1.path(), &lan.with_prev(&result1)).success, "c1 is kept");
    assert!(lan.ours("DEL", "c1", &ct1.path(), &lan.config(json!({}))).success);
}

#[test]
fn the_daemon_outlives_a_vanished_container_and_resumes_its_leases_after_a_crash() {
    let mut lan = Lan::new("dhcp-crash", &SHORT_T1);
    let ct1 = Netns::new("dhcp-crash-1");
    let (result1, address1) = lan.add("c1", &ct1);
    let ct2 = Netns::new("dhcp-crash-2");
    let path2 = ct2.path();
    lan.add("c2", &ct2);
    drop(ct2);
    eventually(SETTLE, "the daemon noticing c2 is gone", || {
        let log = lan.daemon.log();
        log.contains("c2/dhcpnet/eth0: the container is gone").then_some(()).ok_or(log)
    });
    assert!(lan.daemon.is_running());

    lan.daemon.kill();
    lan.daemon.restart();
    assert!(lan.ours("CHECK", "c1", &ct1.path(), &lan.with_prev(&result1)).success, "{}", lan.daemon.log());
    let acks = lan.server.acks(&address1);
    eventually(SETTLE, "renewing after the restart", || {
        let now = lan.server.acks(&address1);
        (now > acks).then_some(()).ok_or(format!("{now} ACKs"))
    });
    assert!(lan.ours("DEL", "c1", &ct1.path(), &lan.config(json!({}))).success);
    lan.wait_released(&address1);
    // The vanished container's DEL has nothing left to do.
    assert!(lan.ours("DEL", "c2", &path2, &lan.config(json!({}))).success);
}

#[test]
fn del_succeeds_when_there_is_nothing_to_release() {
    let lan = Lan::new("dhcp-del", &[]);
    let ct = Netns::new("dhcp-del-c");
    let config = lan.config(json!({}));
    assert!(lan.ours("DEL", "never-added", &ct.path(), &config).success);
    let (_, address) = lan.add("c1", &ct);
    assert!(lan.ours("DEL", "c1", &ct.path(), &config).success);
    lan.wait_released(&address);
    assert!(lan.ours("DEL", "c1", &ct.path(), &config).success, "a second DEL");
    assert!(lan.ours("DEL", "c1", "", &config).success, "a DEL without a netns");
}

#[test]
fn an_unreachable_daemon_is_an_error_that_says_how_to_start_it() {
    let direct = Direct::new("dhcp-nod", "macvlan", "dhcpnet");
    direct.host.exec("ip", &["link", "add", BRIDGE, "type", "bridge"]);
    let ct = Netns::new("dhcp-nod-c");
    let config = direct.config(macvlan("/run/cni-wasm-test-none/dhcp.sock", json!({})));
    let outcome = direct.ours("ADD", "c1", &ct.path(), &config);
    let msg = outcome.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("/run/cni-wasm-test-none/dhcp.sock") && msg.contains("dhcp daemon"), "{msg}");
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "a failed ADD leaves nothing");
}

#[test]
fn version_extends_the_references() {
    let install = Installation::new("dhcp-version");
    assert_versions_extend_the_references(&install, "dhcp");
}
