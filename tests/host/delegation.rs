//! Delegation: built-in plugins run in-process, `<type>.wasm` in CNI_PATH
//! under the admin's policy, anything else is executed from CNI_PATH as the
//! spec says (same stdin, same environment but CNI_COMMAND); a failed ADD
//! runs the delegate's DEL.

use std::os::unix::fs::PermissionsExt;

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::run;
use cni_wasm_tests::{Probe, TempDir, snapshot};
use serde_json::{Value, json};

fn probe(tag: &str) -> Probe {
    Probe::new(tag, json!({"plugins": {"probe": {"capabilities": ["links", "delegation"]}}}))
}

fn reservations(store: &TempDir) -> Vec<String> {
    snapshot(&store.join("probe-net")).into_iter().map(|(n, _)| n).filter(|n| n.starts_with("10.")).collect()
}

#[test]
fn a_built_in_ipam_runs_in_process_and_its_del_follows_a_failed_add() {
    let probe = probe("deleg-builtin");
    let store = TempDir::new("deleg-builtin");
    let ns = Netns::new("deleg-builtin");
    let ipam = json!({"ipam": {"type": "host-local", "dataDir": store.display(), "subnet": "10.61.0.0/24"}});
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["delegate"], ipam.clone()));
    assert!(out.success, "{}", out.stdout);
    assert_eq!(out.json()["ips"][0]["address"], "10.61.0.2/24");
    assert_eq!(reservations(&store), ["10.61.0.2"]);
    assert!(run(&probe.plugin, &probe.env("DEL", "c1", &ns.path()), &Probe::config(&[], ipam.clone())).success);
    assert!(reservations(&store).is_empty());

    // IPAM succeeded, then the plugin failed: the host ran IPAM DEL.
    let out = run(&probe.plugin, &probe.env("ADD", "c2", &ns.path()), &Probe::config(&["delegate", "fail"], ipam));
    assert!(!out.success);
    assert!(reservations(&store).is_empty(), "the reservation was released");
}

#[test]
fn a_third_party_wasm_ipam_runs_under_its_policy() {
    let probe = probe("deleg-wasm");
    // host-local's component, installed as a third-party "myipam.wasm".
    let component = cni_wasm_tests::target_dir().join("wasm-plugins/wasm32-wasip2/release/cni_host_local.wasm");
    std::fs::copy(&component, probe.install.dir.join("myipam.wasm")).unwrap();
    let store = TempDir::new("deleg-wasm-store");
    let policy = json!({"plugins": {
        "probe": {"capabilities": ["links", "delegation"]},
        "myipam": {"capabilities": ["state"], "stateDir": store.display()}
    }});
    std::fs::write(&probe.policy, policy.to_string()).unwrap();
    let ns = Netns::new("deleg-wasm");
    // The config's dataDir is ignored for a third-party plugin: the policy decides.
    let config =
        Probe::config(&["delegate"], json!({"ipam": {"type": "myipam", "dataDir": "/etc", "subnet": "10.62.0.0/24"}}));
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &config);
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["ips"][0]["address"], "10.62.0.2/24");
    assert_eq!(reservations(&store), ["10.62.0.2"]);
    assert!(!std::path::Path::new("/etc/probe-net").exists());
}

/// A delegate executable that records its environment and stdin.
fn recording_ipam(dir: &std::path::Path, log: &std::path::Path, address: &str) {
    let script = format!(
        "#!/bin/sh\n{{ env | grep '^CNI_' | sort; echo ---; cat; echo; echo ===; }} >> {log}\n\
         [ \"$CNI_COMMAND\" = ADD ] && printf '%s' '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"{address}\"}}]}}'\nexit 0\n",
        log = log.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("recipam");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_executable_delegate_gets_the_same_stdin_and_environment_and_the_first_match_in_cni_path() {
    let probe = probe("deleg-exec");
    let dirs = TempDir::new("deleg-exec");
    let log = dirs.join("log");
    recording_ipam(&dirs.join("first"), &log, "10.63.0.5/24");
    recording_ipam(&dirs.join("second"), &log, "10.63.0.6/24");
    let ns = Netns::new("deleg-exec");
    let mut env = probe.env("ADD", "c1", &ns.path());
    env.path =
        format!("{}:{}:{}", probe.install.dir.display(), dirs.join("first").display(), dirs.join("second").display());
    env.args = "IgnoreUnknown=1;K8S_POD_NAME=p".into();
    let config = Probe::config(&["delegate", "fail"], json!({"ipam": {"type": "recipam"}}));
    let out = run(&probe.plugin, &env, &config);
    assert_eq!(out.json()["msg"], "probe: failing as asked");

    let log = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = log.split("===\n").filter(|c| !c.is_empty()).collect();
    assert_eq!(calls.len(), 2, "ADD, then DEL from the rollback: {log}");
    let (add_env, add_stdin) = calls[0].split_once("---\n").unwrap();
    let (del_env, del_stdin) = calls[1].split_once("---\n").unwrap();
    assert_eq!(add_stdin.trim_end(), config, "byte-identical stdin");
    assert_eq!(del_stdin.trim_end(), config);
    assert!(add_env.contains("CNI_COMMAND=ADD") && del_env.contains("CNI_COMMAND=DEL"));
    assert_eq!(
        add_env.replace("CNI_COMMAND=ADD", ""),
        del_env.replace("CNI_COMMAND=DEL", ""),
        "only CNI_COMMAND differs"
    );
    assert!(add_env.contains("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p"), "{add_env}");
    assert!(add_env.contains("CNI_CONTAINERID=c1"));

    // The first directory in CNI_PATH wins.
    let out = run(&probe.plugin, &env, &Probe::config(&["delegate"], json!({"ipam": {"type": "recipam"}})));
    assert_eq!(out.json()["ips"][0]["address"], "10.63.0.5/24");
}

#[test]
fn a_missing_delegate_is_an_error_naming_the_path() {
    let probe = probe("deleg-missing");
    let ns = Netns::new("deleg-missing");
    let out = run(
        &probe.plugin,
        &probe.env("ADD", "c1", &ns.path()),
        &Probe::config(&["delegate"], json!({"ipam": {"type": "nonesuch"}})),
    );
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("failed to find plugin \"nonesuch\"") && msg.contains(&probe.install.dir.display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_delegate_error_reaches_the_runtime_unchanged() {
    let probe = probe("deleg-error");
    let ns = Netns::new("deleg-error");
    // host-local with an invalid range: its error passes through.
    let out = run(
        &probe.plugin,
        &probe.env("ADD", "c1", &ns.path()),
        &Probe::config(&["delegate"], json!({"ipam": {"type": "host-local", "subnet": "10.64.0.5/24"}})),
    );
    let error: Value = out.json();
    assert_eq!(error["code"], 999);
    assert!(error["msg"].as_str().unwrap().contains("host bits"), "{error}");
}
