//! host-local, side by side with the reference: the same results and the
//! same store files through an allocation sequence, a store either can take
//! over from the other, no duplicates under concurrency, the GC and STATUS
//! the reference lacks, and ADD/CHECK/DEL whose store calls do not grow
//! with the number of attachments (cni-wasm's side index, a hint only).

use std::collections::HashSet;
use std::path::Path;

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, Outcome, run};
use cni_wasm_tests::{TempDir, reference, require_root, snapshot};
use serde_json::{Value, json};

fn config(version: &str, name: &str, data_dir: &Path, ipam: Value) -> String {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data_dir.display().to_string());
    json!({"cniVersion": version, "name": name, "type": "bridge", "ipam": ipam}).to_string()
}

/// The same calls against cni-wasm and the reference, each with its own
/// store, comparing outputs and store contents after every step.
struct SideBySide {
    install: Installation,
    ours: TempDir,
    theirs: TempDir,
    netns: Netns,
}

impl SideBySide {
    fn new(tag: &str) -> Self {
        require_root();
        SideBySide {
            install: Installation::new(tag),
            ours: TempDir::new(tag),
            theirs: TempDir::new(tag),
            netns: Netns::new(tag),
        }
    }

    /// Runs `command` for `container` on both; returns our outcome.
    fn step(&self, command: &str, container: &str, version: &str, ipam: Value, args: &str) -> Outcome {
        let env = Env {
            args: args.to_string(),
            ..Env::new(command, container, &self.netns.path(), "eth0", &self.install.dir)
        };
        let ours =
            run(&self.install.plugin("host-local"), &env, &config(version, "sbs", &self.ours.path, ipam.clone()));
        let theirs = run(&reference("host-local"), &env, &config(version, "sbs", &self.theirs.path, ipam));
        assert_eq!(ours.success, theirs.success, "{command} {container}: {} vs {}", ours.stdout, theirs.stdout);
        assert_eq!(ours.stdout, theirs.stdout, "{command} {container}: output");
        assert_eq!(
            snapshot(&self.ours.join("sbs")),
            snapshot(&self.theirs.join("sbs")),
            "{command} {container}: store files"
        );
        ours
    }
}

#[test]
fn an_allocation_sequence_with_releases_and_wraparound_matches_the_reference() {
    let sbs = SideBySide::new("hl-sequence");
    let ipam =
        json!({"ranges": [[{"subnet": "10.40.0.0/29"}], [{"subnet": "fd40::/125"}]], "routes": [{"dst": "0.0.0.0/0"}]});
    for c in ["c1", "c2", "c3", "c4", "c5"] {
        sbs.step("ADD", c, "1.0.0", ipam.clone(), "");
    }
    // The IPv4 range (.2-.6; .1 is the gateway) is full now.
    let full = sbs.step("ADD", "c6", "1.0.0", ipam.clone(), "");
    assert!(!full.success && full.json()["msg"].as_str().unwrap().contains("no IP addresses available"));
    sbs.step("DEL", "c2", "1.0.0", ipam.clone(), "");
    sbs.step("DEL", "c4", "1.0.0", ipam.clone(), "");
    // Round robin continues after the last address handed out and wraps.
    let next = sbs.step("ADD", "c7", "1.0.0", ipam.clone(), "");
    assert_eq!(next.json()["ips"][0]["address"], "10.40.0.3/29");
    sbs.step("ADD", "c8", "0.4.0", ipam.clone(), "");
    sbs.step("DEL", "c1", "1.0.0", ipam.clone(), "");
    // A requested address, through CNI_ARGS.
    sbs.step("ADD", "c9", "1.0.0", ipam.clone(), "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.40.0.2");
    // A second ADD for the same attachment is refused.
    sbs.step("ADD", "c9", "1.0.0", ipam.clone(), "");
    // An old version sees one address per family.
    sbs.step("DEL", "c9", "1.0.0", ipam.clone(), "");
    sbs.step("ADD", "c9", "0.2.0", ipam.clone(), "");
    for c in ["c3", "c5", "c7", "c8", "c9", "never-added"] {
        sbs.step("DEL", c, "1.0.0", ipam.clone(), "");
    }
    let left: Vec<String> = snapshot(&sbs.ours.join("sbs")).into_iter().map(|(name, _)| name).collect();
    assert_eq!(left, ["last_reserved_ip.0", "last_reserved_ip.1", "lock"], "every reservation released");
}

#[test]
fn config_errors_match_the_reference() {
    let sbs = SideBySide::new("hl-errors");
    for ipam in [
        json!({"ranges": [[{"subnet": "10.41.0.0/31"}]]}),
        json!({"ranges": [[{"subnet": "10.41.0.5/24"}]]}),
        json!({"ranges": [[{"subnet": "10.41.0.0/24", "rangeStart": "10.42.0.1"}]]}),
        json!({"ranges": [[{"subnet": "10.41.0.0/24"}], [{"subnet": "10.41.0.0/25"}]]}),
        json!({"ranges": []}),
    ] {
        let out = sbs.step("ADD", "c1", "1.0.0", ipam.clone(), "");
        assert!(!out.success, "{ipam}");
    }
    let two_v4 = json!({"ranges": [[{"subnet": "10.41.0.0/24"}], [{"subnet": "10.42.0.0/24"}]]});
    assert!(!sbs.step("ADD", "c1", "0.2.0", two_v4, "").success);
    let requested_taken = json!({"ranges": [[{"subnet": "10.43.0.0/24"}]]});
    sbs.step("ADD", "c1", "1.0.0", requested_taken.clone(), "IP=10.43.0.9");
    assert!(!sbs.step("ADD", "c2", "1.0.0", requested_taken.clone(), "IP=10.43.0.9").success);
    assert!(!sbs.step("ADD", "c3", "1.0.0", requested_taken.clone(), "IP=10.43.0.1").success, "the gateway");
    assert!(!sbs.step("ADD", "c4", "1.0.0", requested_taken.clone(), "FOO=bar").success, "unknown CNI_ARGS key");
    assert!(!sbs.step("ADD", "c4", "1.0.0", requested_taken, "FOO").success, "malformed CNI_ARGS");
}

#[test]
fn resolv_conf_and_the_legacy_range_match_the_reference() {
    let sbs = SideBySide::new("hl-features");
    let resolv = TempDir::new("resolv");
    std::fs::write(
        resolv.join("resolv.conf"),
        "# comment\nnameserver 10.0.0.53\nsearch a.example b.example\noptions ndots:2\ndomain example\n",
    )
    .unwrap();
    let ipam = json!({"subnet": "10.44.0.0/24", "rangeStart": "10.44.0.100", "gateway": "10.44.0.254",
                      "resolvConf": resolv.join("resolv.conf").display().to_string()});
    let first = sbs.step("ADD", "c1", "1.0.0", ipam.clone(), "");
    assert_eq!(first.json()["ips"][0]["address"], "10.44.0.100/24");
    assert_eq!(first.json()["dns"]["nameservers"], json!(["10.0.0.53"]));
    let requested = sbs.step("ADD", "c2", "0.3.1", ipam.clone(), "IP=10.44.0.150");
    assert_eq!(requested.json()["ips"][0]["address"], "10.44.0.150/24");
    // A resolvConf that does not exist is an error on both sides.
    let mut missing = ipam;
    missing["resolvConf"] = json!("/nonexistent/resolv.conf");
    assert!(!sbs.step("ADD", "c3", "1.0.0", missing, "").success);
}

/// One cni-wasm installation, store and namespace.
struct Fixture {
    install: Installation,
    store: TempDir,
    ns: Netns,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        require_root();
        Fixture { install: Installation::new(tag), store: TempDir::new(tag), ns: Netns::new(tag) }
    }

    fn config(&self, version: &str, name: &str, subnet: &str) -> String {
        config(version, name, &self.store.path, json!({"ranges": [[{"subnet": subnet}]]}))
    }

    fn env(&self, command: &str, container: &str) -> Env {
        Env::new(command, container, &self.ns.path(), "eth0", &self.install.dir)
    }

    /// Runs our host-local.
    fn run(&self, env: &Env, config: &str) -> Outcome {
        run(&self.install.plugin("host-local"), env, config)
    }

    /// The holders of the network's reservations.
    fn held(&self, network: &str) -> Vec<String> {
        snapshot(&self.store.join(network)).into_iter().filter(|(n, _)| n.starts_with("10.")).map(|(_, c)| c).collect()
    }
}

#[test]
fn a_store_left_by_the_reference_is_taken_over() {
    let f = Fixture::new("hl-upgrade");
    let conf = f.config("1.0.0", "upgrade", "10.46.0.0/24");
    assert!(run(&reference("host-local"), &f.env("ADD", "old"), &conf).success);
    // cni-wasm continues the reference's round robin and releases its files.
    assert_eq!(f.run(&f.env("ADD", "new"), &conf).json()["ips"][0]["address"], "10.46.0.3/24");
    assert!(f.run(&f.env("CHECK", "old"), &conf).success);
    assert!(f.run(&f.env("DEL", "old"), &conf).success);
    assert!(!f.store.join("upgrade/10.46.0.2").exists());
    // And the reference can release what cni-wasm reserved.
    assert!(run(&reference("host-local"), &f.env("DEL", "new"), &conf).success);
    assert!(f.held("upgrade").is_empty());
}

#[test]
fn thirty_two_concurrent_adds_get_distinct_addresses() {
    let f = Fixture::new("hl-concurrent");
    let conf = f.config("1.0.0", "busy", "10.47.0.0/24");
    let each = |command: &'static str| -> Vec<Outcome> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let (f, conf) = (&f, &conf);
                    s.spawn(move || f.run(&f.env(command, &format!("c{i}")), conf))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let adds = each("ADD");
    let addresses: Vec<String> = adds
        .iter()
        .map(|out| {
            assert!(out.success, "{}", out.stdout);
            out.json()["ips"][0]["address"].as_str().unwrap().to_string()
        })
        .collect();
    let distinct: HashSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), 32, "duplicates in {addresses:?}");
    assert!(each("DEL").iter().all(|out| out.success));
    assert!(f.held("busy").is_empty(), "leaked {:?}", f.held("busy"));
}

#[test]
fn del_succeeds_in_every_situation_a_runtime_produces() {
    let f = Fixture::new("hl-del");
    let conf = f.config("1.0.0", "del", "10.48.0.0/24");
    assert!(f.run(&f.env("ADD", "c1"), &conf).success);
    // Netns unset (the runtime lost it): the reservation is still released.
    assert!(f.run(&Env { netns: String::new(), ..f.env("DEL", "c1") }, &conf).success);
    assert!(f.held("del").is_empty());
    for netns in ["", "/var/run/netns/cnitest-gone", &f.ns.path()] {
        for container in ["c1", "never-added"] {
            let env = Env { netns: netns.to_string(), ..f.env("DEL", container) };
            assert!(f.run(&env, &conf).success, "{container}, netns {netns:?}");
        }
    }
}

#[test]
fn check_finds_the_attachments_reservation() {
    let f = Fixture::new("hl-check");
    let conf = f.config("1.0.0", "chk", "10.49.0.0/24");
    assert!(f.run(&f.env("ADD", "c1"), &conf).success);
    assert!(f.run(&f.env("CHECK", "c1"), &conf).success);
    assert!(f.run(&f.env("DEL", "c1"), &conf).success);
    let out = f.run(&f.env("CHECK", "c1"), &conf);
    assert_eq!(out.json()["msg"], "host-local: Failed to find address added by container c1");
}

#[test]
fn gc_releases_what_no_valid_attachment_holds_and_nothing_else() {
    let f = Fixture::new("hl-gc");
    let (net_a, net_b) = (f.config("1.1.0", "gc-a", "10.50.0.0/24"), f.config("1.1.0", "gc-b", "10.50.0.0/24"));
    for (c, ifname) in [("keep", "eth0"), ("stale", "eth0"), ("keep", "eth1")] {
        assert!(f.run(&Env { ifname: ifname.into(), ..f.env("ADD", c) }, &net_a).success);
    }
    assert!(f.run(&f.env("ADD", "other"), &net_b).success);
    let gc = Env { command: "GC".into(), path: f.install.dir.display().to_string(), ..Env::default() };
    let mut request: Value = serde_json::from_str(&net_a).unwrap();
    request["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let out = f.run(&gc, &request.to_string());
    assert!(out.success && out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(f.held("gc-a"), ["keep\r\neth0"]);
    assert_eq!(f.held("gc-b"), ["other\r\neth0"], "another network is untouched");

    // An empty list (under the legacy key too) releases the whole network.
    let mut empty: Value = serde_json::from_str(&net_a).unwrap();
    empty["cni.dev/attachments"] = json!([]);
    assert!(f.run(&gc, &empty.to_string()).success);
    assert!(f.held("gc-a").is_empty());
    assert_eq!(f.held("gc-b").len(), 1);
}

#[test]
fn status_reports_an_exhausted_pool_with_code_50() {
    let f = Fixture::new("hl-status");
    // A /30 holds .1 (the gateway) and .2: one address.
    let conf = f.config("1.1.0", "small", "10.51.0.0/30");
    let status = Env { command: "STATUS".into(), path: f.install.dir.display().to_string(), ..Env::default() };
    assert!(f.run(&status, &conf).success);
    assert!(f.run(&f.env("ADD", "c1"), &conf).success);
    let out = f.run(&status, &conf);
    assert_eq!(out.code(), 50, "{}", out.stdout);
    assert!(f.run(&f.env("DEL", "c1"), &conf).success);
    assert!(f.run(&status, &conf).success);
}

/// The state calls (from the audit log) one command of ours makes.
fn state_calls(f: &Fixture, env: &Env, config: &str) -> Vec<String> {
    let log = TempDir::new("hl-audit");
    let path = log.join("audit.log");
    let out = f.run(&env.clone().var("CNI_WASM_AUDIT", path.display().to_string()), config);
    assert!(out.success, "{} {}: {}", env.command, env.container_id, out.stdout);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["call"].as_str().unwrap().to_string())
        .filter(|call| call.starts_with("state."))
        .collect()
}

/// ADD, CHECK and DEL of an attachment make the same store calls whether
/// the network holds no other attachment or three hundred: they read the
/// attachment's index entry, not every reservation.
#[test]
fn add_check_and_del_cost_the_same_however_full_the_store_is() {
    let f = Fixture::new("hl-flat");
    let calls = |network: &str, others: usize| -> Vec<Vec<String>> {
        let conf = f.config("1.0.0", network, "10.52.0.0/16");
        // Reservations as the reference writes them, away from where the
        // round robin starts (10.52.0.2), so the ADD's first try succeeds.
        let dir = f.store.join(network);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..others {
            let name = format!("10.52.{}.{}", 100 + i / 200, 1 + i % 200);
            std::fs::write(dir.join(name), format!("other-{i}\r\neth0")).unwrap();
        }
        ["ADD", "CHECK", "DEL"].iter().map(|command| state_calls(&f, &f.env(command, "c1"), &conf)).collect()
    };
    let empty = calls("flat-empty", 0);
    let full = calls("flat-full", 300);
    assert_eq!(empty, full, "store calls with 0 and 300 other attachments");
    assert!(full.iter().all(|calls| calls.len() < 10), "{full:?}");
}

/// The index is only a hint: after the reference released what we added,
/// our CHECK does not trust the stale entry, our DEL succeeds, and GC
/// drops entries of attachments that are gone.
#[test]
fn a_stale_index_entry_is_never_trusted_and_gc_prunes_it() {
    let f = Fixture::new("hl-stale");
    // 1.0.0: the Debian reference knows no later version.
    let conf = f.config("1.0.0", "stale", "10.53.0.0/24");
    assert!(f.run(&f.env("ADD", "c1"), &conf).success);
    assert!(f.run(&f.env("ADD", "c2"), &conf).success);
    assert!(run(&reference("host-local"), &f.env("DEL", "c1"), &conf).success);
    let out = f.run(&f.env("CHECK", "c1"), &conf);
    assert_eq!(out.json()["msg"], "host-local: Failed to find address added by container c1");
    // The reference re-adds c1 elsewhere; our DEL finds it by scanning.
    assert!(run(&reference("host-local"), &f.env("ADD", "c1"), &conf).success);
    assert!(f.run(&f.env("DEL", "c1"), &conf).success);
    assert_eq!(f.held("stale"), ["c2\r\neth0"]);

    let index = f.store.join("stale/cni-wasm-attachments");
    let entries = || std::fs::read_dir(&index).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries(), 1, "c2's entry");
    let gc = Env { command: "GC".into(), path: f.install.dir.display().to_string(), ..Env::default() };
    let mut request: Value = serde_json::from_str(&f.config("1.1.0", "stale", "10.53.0.0/24")).unwrap();
    request["cni.dev/valid-attachments"] = json!([]);
    assert!(f.run(&gc, &request.to_string()).success);
    assert_eq!(entries(), 0, "GC pruned the index");
    assert!(f.held("stale").is_empty());
}
