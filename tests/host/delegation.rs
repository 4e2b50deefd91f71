//! Delegation: built-in plugins run in-process, `<type>.wasm` in CNI_PATH
//! under the admin's policy, anything else is executed from CNI_PATH as the
//! spec says (same stdin, same environment but CNI_COMMAND); a failed ADD
//! runs the delegate's DEL. A delegate run on behalf of a third-party
//! plugin gets no more than that plugin may do, with objects and state only
//! as the admin's config names them, and never an executable.

use std::os::unix::fs::PermissionsExt;

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, run};
use cni_wasm_tests::{Probe, TempDir, snapshot};
use serde_json::{Value, json};

fn probe(tag: &str) -> Probe {
    Probe::new(tag, json!({"plugins": {"probe": {"capabilities": ["links", "state", "delegation"]}}}))
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
        "probe": {"capabilities": ["links", "state", "delegation"]},
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
        "#!/bin/sh\n{{ echo \"by $0\"; env | grep '^CNI_' | sort; echo ---; cat; echo; echo ===; }} >> {log}\n\
         [ \"$CNI_COMMAND\" = ADD ] && printf '%s' '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"{address}\"}}]}}'\nexit 0\n",
        log = log.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("recipam");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A built-in caller's IPAM (ptp's), as a runtime would run ptp: in a
/// scratch host with a container namespace.
struct Ptp {
    install: cni_wasm_tests::plugin::Installation,
    host: Netns,
    container: Netns,
}

impl Ptp {
    fn new(tag: &str) -> Ptp {
        cni_wasm_tests::require_root();
        Ptp {
            install: cni_wasm_tests::plugin::Installation::new(tag),
            host: Netns::new(&format!("{tag}-h")),
            container: Netns::new(&format!("{tag}-c")),
        }
    }

    fn env(&self, command: &str, path: String) -> Env {
        let mut env = Env::new(command, "c1", &self.container.path(), "eth0", &self.install.dir);
        env.host_netns = Some(self.host.name.clone());
        env.path = path;
        env
    }
}

#[test]
fn an_executable_delegate_gets_the_same_stdin_and_environment_and_the_first_match_in_cni_path() {
    let ptp = Ptp::new("deleg-exec");
    let dirs = TempDir::new("deleg-exec");
    let log = dirs.join("log");
    recording_ipam(&dirs.join("first"), &log, "10.63.0.5/24");
    recording_ipam(&dirs.join("second"), &log, "10.63.0.6/24");
    let path =
        format!("{}:{}:{}", ptp.install.dir.display(), dirs.join("first").display(), dirs.join("second").display());
    let mut env = ptp.env("ADD", path);
    env.args = "IgnoreUnknown=1;K8S_POD_NAME=p".into();
    // The script's address has no gateway, which ptp needs: its ADD fails
    // after the IPAM ADD, and the host runs the IPAM DEL.
    let config =
        json!({"cniVersion": "1.0.0", "name": "exec-net", "type": "ptp", "ipam": {"type": "recipam"}}).to_string();
    let out = run(&ptp.install.plugin("ptp"), &env, &config);
    assert!(out.json()["msg"].as_str().unwrap().contains("no gateway"), "{}", out.stdout);

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
    assert!(add_env.contains("first/recipam") && del_env.contains("first/recipam"), "the first match in CNI_PATH ran");
}

#[test]
fn a_missing_delegate_is_an_error_naming_the_path() {
    let ptp = Ptp::new("deleg-missing");
    let config = json!({"cniVersion": "1.0.0", "name": "missing-net", "type": "ptp", "ipam": {"type": "nonesuch"}});
    let out =
        run(&ptp.install.plugin("ptp"), &ptp.env("ADD", ptp.install.dir.display().to_string()), &config.to_string());
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("failed to find plugin \"nonesuch\"") && msg.contains(&ptp.install.dir.display().to_string()),
        "{msg}"
    );
}

/// An executable runs with every privilege of the host: a third-party
/// plugin must not get one to run with a config of its making.
#[test]
fn a_third_party_plugin_cannot_run_an_executable_delegate() {
    let probe = probe("deleg-exec-3p");
    let dirs = TempDir::new("deleg-exec-3p");
    let log = dirs.join("log");
    recording_ipam(&dirs.join("bin"), &log, "10.63.1.5/24");
    let ns = Netns::new("deleg-exec-3p");
    let mut env = probe.env("ADD", "c1", &ns.path());
    env.path = format!("{}:{}", probe.install.dir.display(), dirs.join("bin").display());
    let out = run(&probe.plugin, &env, &Probe::config(&["delegate"], json!({"ipam": {"type": "recipam"}})));
    assert!(out.json()["msg"].as_str().unwrap().contains("refused"), "{}", out.stdout);
    assert!(!log.exists(), "the executable never ran");
}

/// The confused deputy: a third party hands host-local a dataDir of its
/// choosing. The built-in runs with the admin's config's store, never the
/// crafted one.
#[test]
fn a_built_in_delegate_uses_the_admins_store_not_the_callers() {
    let probe = probe("deleg-deputy");
    let (store, elsewhere) = (TempDir::new("deleg-deputy"), TempDir::new("deleg-deputy-elsewhere"));
    let ns = Netns::new("deleg-deputy");
    let crafted = json!({"cniVersion": "1.0.0", "name": "probe-net", "type": "host-local",
        "ipam": {"type": "host-local", "dataDir": elsewhere.display(), "subnet": "10.65.0.0/24"}});
    let config = Probe::config(
        &["delegate-crafted"],
        json!({"ipam": {"type": "host-local", "dataDir": store.display(), "subnet": "10.65.0.0/24"}, "probe": {"steps": ["delegate-crafted"], "crafted": crafted}}),
    );
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &config);
    assert!(out.success, "{}", out.stdout);
    assert_eq!(reservations(&store), ["10.65.0.2"], "the reservation is in the admin's store");
    assert!(snapshot(&elsewhere.join("probe-net")).is_empty(), "nothing in the store the caller chose");
}

/// A built-in bridge run by a third party with a bridge of its choosing:
/// the caller may touch no host link, so neither may its delegate.
#[test]
fn a_built_in_delegate_gets_no_more_than_its_third_party_caller() {
    let probe = probe("deleg-narrow");
    let host = Netns::new("deleg-narrow-h");
    host.exec("ip", &["link", "add", "cni0", "type", "bridge"]);
    host.exec("ip", &["addr", "add", "10.66.0.1/24", "dev", "cni0"]);
    let ns = Netns::new("deleg-narrow");
    let crafted = json!({"cniVersion": "1.0.0", "name": "probe-net", "type": "bridge", "bridge": "cni0",
        "isGateway": true, "forceAddress": true, "ipam": {"type": "static", "addresses": [{"address": "10.67.0.5/24", "gateway": "10.67.0.1"}]}});
    let config =
        Probe::config(&["delegate-crafted"], json!({"probe": {"steps": ["delegate-crafted"], "crafted": crafted}}));
    let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &ns.path()) };
    let out = run(&probe.plugin, &env, &config);
    assert!(out.json()["msg"].as_str().unwrap().contains("refused"), "{}", out.stdout);
    let addresses = host.ip_json(&["addr", "show", "cni0"]);
    let local: Vec<&str> =
        addresses[0]["addr_info"].as_array().unwrap().iter().filter_map(|a| a["local"].as_str()).collect();
    assert_eq!(local, ["10.66.0.1"], "cni0 kept its address");
    assert_eq!(cni_wasm_tests::link_names(&ns), ["lo"], "the failed ADD left nothing in the container");
}

#[test]
fn a_plugin_delegating_to_itself_is_stopped_with_a_clear_error() {
    let probe = probe("deleg-self");
    let ns = Netns::new("deleg-self");
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["delegate-self"], json!({})));
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("delegation loop: probe -> probe"), "{msg}");
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
