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

#[test]
fn a_plugin_past_its_bound_of_capability_calls_is_stopped() {
    let probe = probe("limit-calls", json!({"maxCalls": 1000}));
    let ns = Netns::new("limit-calls");
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["many-calls"], json!({})));
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("stopped after 1000 capability calls"), "{msg}");
}

#[test]
fn a_flood_of_logs_is_cut_at_a_mebibyte() {
    let probe = probe("limit-logs", json!({}));
    let ns = Netns::new("limit-logs");
    let env = probe.env("ADD", "c1", &ns.path()).var("CNI_WASM_LOG", "error");
    let out = run(&probe.plugin, &env, &Probe::config(&["flood-logs"], json!({})));
    assert!(out.success, "{}", out.stdout);
    assert!(out.stderr.len() < 1_200_000, "{} bytes of logs passed through", out.stderr.len());
    let tail: String = out.stderr.chars().rev().take(300).collect::<String>().chars().rev().collect();
    assert!(out.stderr.contains("the rest is dropped"), "the cut is said: ...{tail}");
}

#[test]
fn a_result_over_a_mebibyte_is_refused() {
    let probe = probe("limit-result", json!({}));
    let ns = Netns::new("limit-result");
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["big-result"], json!({})));
    assert!(out.stdout.len() < 4096, "the result did not pass through");
    assert!(out.json()["msg"].as_str().unwrap().contains("larger than 1048576 bytes"), "{}", out.stdout);
}

/// Rolling back a failed ADD runs its delegates' DEL, and a delegate that
/// never returns from its DEL is stopped at the invocation's deadline like
/// everything else: the runtime gets an answer in time.
#[test]
fn a_delegate_spinning_in_its_rollback_del_is_stopped_at_the_deadline() {
    let policy = json!({"plugins": {
        "probe": {"capabilities": ["links", "delegation"], "timeoutMs": 1500},
        "spinner": {"capabilities": []}
    }});
    let probe = Probe::new("limit-rollback-spin", policy);
    probe.install.add_component("spinner", &cni_wasm_tests::test_component("probe"));
    let ns = Netns::new("limit-rollback-spin");
    let spinner =
        json!({"cniVersion": "1.0.0", "name": "probe-net", "type": "spinner", "probe": {"delSteps": ["spin"]}});
    let config = Probe::config(
        &["delegate-crafted", "fail"],
        json!({"probe": {"steps": ["delegate-crafted", "fail"], "crafted": spinner}}),
    );
    let start = Instant::now();
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &config);
    assert!(start.elapsed() < Duration::from_secs(10), "hung for {:?}", start.elapsed());
    assert_eq!(out.json()["msg"], "probe: failing as asked", "the ADD's own error is what the runtime gets");
    assert!(out.stderr.contains("spinner"), "the stopped DEL is logged: {}", out.stderr);
}
