//! Every call runs under a deadline and a memory cap, and a failed ADD is
//! rolled back by the host whatever stopped it.

use std::time::{Duration, Instant};

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, run};
use cni_wasm_tests::{Probe, link_names};
use serde_json::json;

fn probe(tag: &str, limits: serde_json::Value) -> Probe {
    let mut entry = json!({"capabilities": ["links", "addresses", "delegation"]});
    for (k, v) in limits.as_object().unwrap() {
        entry[k] = v.clone();
    }
    Probe::new(tag, json!({"plugins": {"probe": entry}}))
}

#[test]
fn a_plugin_past_its_deadline_is_stopped_and_its_add_undone() {
    let probe = probe("limit-deadline", json!({"timeoutMs": 400}));
    let ns = Netns::new("limit-deadline");
    let start = Instant::now();
    let out = run(
        &probe.plugin,
        &probe.env("ADD", "c1", &ns.path()),
        &Probe::config(&["create-container-veth", "spin"], json!({})),
    );
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(out.code(), 11, "{}", out.stdout);
    assert!(out.json()["msg"].as_str().unwrap().contains("deadline of 400 ms"), "{}", out.stdout);
    assert_eq!(link_names(&ns), ["lo"], "the veth created before the deadline was removed");
}

#[test]
fn a_plugin_over_its_memory_cap_is_stopped() {
    let probe = probe("limit-memory", json!({"memoryMiB": 16}));
    let ns = Netns::new("limit-memory");
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["allocate"], json!({})));
    assert!(!out.success);
    assert!(out.json()["msg"].as_str().unwrap().contains("memory cap of 16 MiB"), "{}", out.stdout);
}

#[test]
fn a_panicking_plugin_is_reported_with_its_message() {
    let probe = probe("limit-panic", json!({}));
    let ns = Netns::new("limit-panic");
    let out = run(
        &probe.plugin,
        &probe.env("ADD", "c1", &ns.path()),
        &Probe::config(&["create-container-veth", "panic"], json!({})),
    );
    assert_eq!(out.code(), 999);
    assert!(out.json()["msg"].as_str().unwrap().contains("crashed"), "{}", out.stdout);
    assert!(out.stderr.contains("plugin panicked: probe: panicking as asked"), "{}", out.stderr);
    assert_eq!(link_names(&ns), ["lo"]);
}

#[test]
fn an_add_that_fails_leaves_nothing_in_either_namespace() {
    let probe = probe("limit-rollback", json!({}));
    let host = Netns::new("limit-rollback-host");
    let container = Netns::new("limit-rollback-ctr");
    let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &container.path()) };
    let steps = ["create-host-veth", "create-host-bridge", "fail"];
    let out = run(&probe.plugin, &env, &Probe::config(&steps, json!({})));
    assert_eq!(out.json()["msg"], "probe: failing as asked");
    assert_eq!(link_names(&host), ["lo"]);
    assert_eq!(link_names(&container), ["lo"]);

    let out = run(
        &probe.plugin,
        &env,
        &Probe::config(&["create-container-veth", "add-container-address", "fail"], json!({})),
    );
    assert!(!out.success);
    assert_eq!(link_names(&container), ["lo"]);
}
