//! The kit for third parties: `cni-wasm new` writes a crate that builds
//! outside this repository and runs as a third-party plugin; the
//! route-override example, built the same way and chained after ptp,
//! changes the container's routes and nothing else; `cni-wasm inspect`
//! shows a component's imports, manifest, acceptance and grant.
//!
//! The crates are built with the real toolchain, `--offline` (the
//! dependencies are the built-in plugins', which `cargo build --release`
//! has fetched), into one target directory, target/kit, so the builds
//! share their compiled dependencies (all but the one with a changed
//! contract, which has its own).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, Outcome, run};
use cni_wasm_tests::{TempDir, cni_wasm_binary, require_root, target_dir, test_component};
use serde_json::{Value, json};

const SUBNET: &str = "10.77.0.0/24";
const GATEWAY: &str = "10.77.0.1";

/// `cargo build --release --target wasm32-wasip2 --offline` of the crate
/// in `dir`; returns its component.
fn build(dir: &Path, crate_name: &str) -> PathBuf {
    build_in(dir, crate_name, "kit")
}

/// [`build`] into target/`target`.
fn build_in(dir: &Path, crate_name: &str, target: &str) -> PathBuf {
    let target = target_dir().join(target);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--release", "--target", "wasm32-wasip2", "--offline"]).current_dir(dir);
    // The test build's own settings are not the plugin's.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_MANIFEST_DIR"] {
        command.env_remove(var);
    }
    let output = command.env("CARGO_TARGET_DIR", &target).output().expect("running cargo");
    assert!(
        output.status.success(),
        "building {} failed (offline: `cargo build --release` at the repository root fetches the dependencies):\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release").join(format!("{crate_name}.wasm"));
    assert!(wasm.is_file(), "{} is missing after the build", wasm.display());
    wasm
}

/// The route-override example, built once per test process.
fn route_override() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins-wasm/kit/route-override");
        build(&dir, "route_override")
    })
}

/// An installation with a third-party component, a policy and a private
/// artifact cache, and a fake host namespace (ptp's veth goes there).
struct Kit {
    install: Installation,
    plugin: PathBuf,
    policy: PathBuf,
    cache: TempDir,
    host: Netns,
    container: Netns,
    store: TempDir,
    _policy_dir: TempDir,
}

impl Kit {
    fn new(tag: &str, name: &str, wasm: &Path, policy: Value) -> Kit {
        require_root();
        let install = Installation::new(tag);
        let plugin = install.add_component(name, wasm);
        let policy_dir = TempDir::new(tag);
        let policy_path = policy_dir.join("policy.json");
        std::fs::write(&policy_path, policy.to_string()).expect("writing a policy");
        Kit {
            install,
            plugin,
            policy: policy_path,
            cache: TempDir::new(tag),
            host: Netns::new(&format!("{tag}-host")),
            container: Netns::new(&format!("{tag}-ctr")),
            store: TempDir::new(tag),
            _policy_dir: policy_dir,
        }
    }

    fn env(&self, command: &str) -> Env {
        Env {
            host_netns: Some(self.host.name.clone()),
            ..Env::new(command, "c1", &self.container.path(), "eth0", &self.install.dir)
        }
        .var("CNI_WASM_POLICY", self.policy.display().to_string())
        .var("CNI_WASM_CACHE_DIR", self.cache.display())
    }

    /// ptp + host-local ADD, as the first plugin of the chain.
    fn ptp_add(&self) -> Value {
        let out = run(&self.install.plugin("ptp"), &self.env("ADD"), &self.ptp_config().to_string());
        assert!(out.success, "ptp ADD: {}", out.stdout);
        out.json()
    }

    fn ptp_config(&self) -> Value {
        json!({"cniVersion": "1.0.0", "name": "kitnet", "type": "ptp",
               "ipam": {"type": "host-local", "dataDir": self.store.display(), "ranges": [[{"subnet": SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.50.0/24"}]}})
    }

    fn ptp_del(&self) {
        let out = run(&self.install.plugin("ptp"), &self.env("DEL"), &self.ptp_config().to_string());
        assert!(out.success, "ptp DEL: {}", out.stdout);
    }

    /// Runs the third-party plugin chained after ptp (prevResult as
    /// libcni passes it).
    fn chained(&self, command: &str, conf: Value, prev_result: &Value) -> Outcome {
        let mut conf = conf;
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("kitnet");
        conf["prevResult"] = prev_result.clone();
        run(&self.plugin, &self.env(command), &conf.to_string())
    }

    fn routes(&self) -> Vec<Value> {
        self.container.ip_json(&["route", "show"]).as_array().cloned().unwrap_or_default()
    }

    fn inspect(&self, wasm: &Path, args: &[&str]) -> std::process::Output {
        Command::new(cni_wasm_binary())
            .arg("inspect")
            .arg(wasm)
            .args(args)
            .env("CNI_WASM_POLICY", &self.policy)
            .env("CNI_WASM_CACHE_DIR", &self.cache.path)
            .output()
            .expect("running cni-wasm inspect")
    }
}

fn dsts(routes: &[Value]) -> Vec<String> {
    routes.iter().map(|r| r["dst"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_new_plugin_builds_outside_the_workspace_and_runs_as_a_third_party() {
    require_root();
    let work = TempDir::new("kit-new");
    let out = Command::new(cni_wasm_binary())
        .args(["new", "demo-plugin"])
        .current_dir(&work.path)
        .output()
        .expect("running cni-wasm new");
    assert!(out.status.success(), "cni-wasm new: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created plugin demo-plugin"));
    let dir = work.join("demo-plugin");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\n[workspace]\n") && manifest.contains(r#"crate-type = ["cdylib"]"#), "{manifest}");
    assert!(dir.join("wit/plugin.wit").is_file() && dir.join("vendor/cni-plugin-sdk-0.1.0/src/lib.rs").is_file());
    // A second `new` into the same directory refuses to overwrite it.
    let again = Command::new(cni_wasm_binary()).args(["new", "demo-plugin"]).current_dir(&work.path).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let wasm = build(&dir, "demo_plugin");
    let kit =
        Kit::new("kit-new", "demo-plugin", &wasm, json!({"plugins": {"demo-plugin": {"capabilities": ["links"]}}}));
    let previous = kit.ptp_add();
    let conf = json!({"type": "demo-plugin", "message": "hello from the kit test"});
    let added = kit.chained("ADD", conf.clone(), &previous);
    assert!(added.success, "ADD: {}", added.stdout);
    assert_eq!(added.json(), previous, "the template passes prevResult on");
    let checked = kit.chained("CHECK", conf.clone(), &added.json());
    assert!(checked.success, "CHECK: {}", checked.stdout);

    // CHECK looks for CNI_IFNAME in the container: a clear error without it.
    let missing = run(
        &kit.plugin,
        &Env { ifname: "eth9".into(), ..kit.env("CHECK") },
        &json!({"cniVersion": "1.0.0", "name": "kitnet", "type": "demo-plugin", "prevResult": previous}).to_string(),
    );
    assert_eq!(missing.code(), 4, "{}", missing.stdout);
    assert!(missing.json()["msg"].as_str().unwrap().contains("no interface eth9 in the container"));
    // Unchained, it says what it needs.
    let unchained = run(&kit.plugin, &kit.env("ADD"), &json!({"cniVersion": "1.0.0", "name": "kitnet"}).to_string());
    assert!(unchained.json()["msg"].as_str().unwrap().contains("must be chained"), "{}", unchained.stdout);

    let deleted = kit.chained("DEL", conf, &added.json());
    assert!(deleted.success, "DEL: {}", deleted.stdout);
    kit.ptp_del();
}

/// flushgateway, delroutes and addroutes after ptp: the container's routes
/// and the result change as configured; CHECK sees a deleted route come
/// back unless skipcheck; DEL is a no-op.
#[test]
fn route_override_after_ptp_deletes_and_adds_the_container_routes() {
    let policy = json!({"plugins": {"route-override": {"capabilities": ["routes"]}}});
    let kit = Kit::new("kit-ro", "route-override", route_override(), policy);
    let previous = kit.ptp_add();
    let before = dsts(&kit.routes());
    assert!(before.contains(&"default".into()) && before.contains(&"192.168.50.0/24".into()), "{before:?}");

    let conf = json!({"type": "route-override", "flushgateway": true, "delroutes": [{"dst": "192.168.50.0/24"}],
                      "addroutes": [{"dst": "10.200.0.0/16", "gw": GATEWAY}]});
    let added = kit.chained("ADD", conf.clone(), &previous);
    assert!(added.success, "ADD: {}", added.stdout);
    let after = kit.routes();
    let names = dsts(&after);
    assert!(!names.contains(&"default".into()) && !names.contains(&"192.168.50.0/24".into()), "{after:?}");
    let new = after.iter().find(|r| r["dst"] == "10.200.0.0/16").unwrap_or_else(|| panic!("no new route: {after:?}"));
    assert_eq!((&new["gateway"], &new["dev"]), (&json!(GATEWAY), &json!("eth0")));
    let result = added.json();
    assert_eq!(result["routes"], json!([{"dst": "10.200.0.0/16", "gw": GATEWAY}]));
    assert!(result["ips"][0].get("gateway").is_none(), "flushgateway drops the gateway: {result}");
    assert_eq!(result["interfaces"], previous["interfaces"]);

    let checked = kit.chained("CHECK", conf.clone(), &result);
    assert!(checked.success, "CHECK: {}", checked.stdout);
    kit.container.exec("ip", &["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
    let checked = kit.chained("CHECK", conf.clone(), &result);
    assert!(!checked.success && checked.stdout.contains("route to 0.0.0.0/0"), "CHECK: {}", checked.stdout);
    let mut skip = conf.clone();
    skip["skipcheck"] = json!(true);
    assert!(kit.chained("CHECK", skip, &result).success);

    let deleted = kit.chained("DEL", conf, &result);
    assert!(deleted.success, "DEL: {}", deleted.stdout);
    assert!(dsts(&kit.routes()).contains(&"10.200.0.0/16".into()), "DEL changes nothing");
    kit.ptp_del();
}

/// flushroutes keeps only the link and connected routes, then adds.
#[test]
fn route_override_flushroutes_leaves_only_link_routes_and_the_added_ones() {
    let policy = json!({"plugins": {"route-override": {"capabilities": ["routes"]}}});
    let kit = Kit::new("kit-flush", "route-override", route_override(), policy);
    let previous = kit.ptp_add();
    let conf = json!({"type": "route-override", "flushroutes": true,
                      "addroutes": [{"dst": "10.201.0.0/16", "gw": GATEWAY}]});
    let added = kit.chained("ADD", conf, &previous);
    assert!(added.success, "ADD: {}", added.stdout);
    let after = kit.routes();
    for route in &after {
        assert!(route["dst"] == "10.201.0.0/16" || route.get("gateway").is_none(), "not flushed: {route}");
    }
    assert!(dsts(&after).contains(&"10.201.0.0/16".into()) && dsts(&after).contains(&GATEWAY.into()), "{after:?}");
    assert_eq!(added.json()["routes"], json!([{"dst": "10.201.0.0/16", "gw": GATEWAY}]));
    kit.ptp_del();
}

/// Without `routes` in its policy entry, route-override is refused with a
/// CNI error naming the capability and the policy, and no route changes.
#[test]
fn route_override_without_the_routes_grant_is_refused_and_changes_nothing() {
    let policy = json!({"plugins": {"route-override": {"capabilities": ["links"]}}});
    let kit = Kit::new("kit-deny", "route-override", route_override(), policy);
    let previous = kit.ptp_add();
    let before = kit.routes();
    let conf = json!({"type": "route-override", "flushroutes": true,
                      "addroutes": [{"dst": "10.202.0.0/16", "gw": GATEWAY}]});
    let out = kit.chained("ADD", conf, &previous);
    assert!(!out.success, "{}", out.stdout);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("not granted the \"routes\" capability") && msg.contains("policy"), "{msg}");
    assert_eq!(kit.routes(), before, "nothing changed");
    kit.ptp_del();
}

/// inspect prints what a component imports and declares, whether the host
/// would run it, and what the policy grants it; an undeclared import is
/// flagged and the exit status says refused.
#[test]
fn inspect_reports_imports_manifest_verdict_and_grant() {
    let policy = json!({"plugins": {
        "route-override": {"capabilities": ["routes"], "timeoutMs": 5000, "memoryMiB": 32},
        "probe": {"capabilities": ["links"], "hostLinks": ["eth*"]}}});
    let kit = Kit::new("kit-inspect", "route-override", route_override(), policy);
    let installed = kit.install.dir.join("route-override.wasm");
    let out = kit.inspect(&installed, &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "inspect: {text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "contract built against cni-wasm:plugin@0.1.0; this host implements 0.1.0",
        "cni-wasm:plugin/routes@0.1.0 routes",
        "capabilities routes",
        "host check ACCEPTED: this host would run it",
        "families routes",
        "refused families (none)",
        "limits timeout 5000 ms, memory 32 MiB, at most 1048576 capability calls",
    ] {
        assert!(has_line(&text, line), "no line {line:?} in:\n{text}");
    }
    assert!(has_line(&text, "cniVersions 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{text}");

    let json: Value = serde_json::from_slice(&kit.inspect(&installed, &["--json"]).stdout).expect("--json is JSON");
    assert_eq!(json["accepted"], true);
    assert_eq!(json["manifest"]["capabilities"], json!(["routes"]));
    assert_eq!(json["grant"]["families"], json!(["routes"]));

    // The build's own file, inspected as the type it will be installed as.
    let out = kit.inspect(route_override(), &["--type", "route-override"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(has_line(&text, "families routes") && has_line(&text, "objects (none)"), "{text}");

    // The same component under another name has no entry: nothing granted.
    kit.install.add_component("other-name", route_override());
    let out = kit.inspect(&kit.install.dir.join("other-name.wasm"), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("(NO entry for it)") && has_line(&text, "refused families routes"), "{text}");

    // Object keys: the probe's parent key, named by a config, against the
    // entry's hostLinks.
    kit.install.add_component("probe", &test_component("probe"));
    let config = kit.store.join("probe.json");
    std::fs::write(&config, json!({"cniVersion": "1.0.0", "name": "n", "probe": {"master": "eth0"}}).to_string())
        .unwrap();
    let out = kit.inspect(&kit.install.dir.join("probe.wasm"), &["--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(r#"probe.master (parent): hostLinks ["eth*"]; "eth0" is granted"#), "{text}");
    assert!(has_line(&text, "families links") && has_line(&text, "object key probe.master role parent default none"));

    // A component that imports a family its manifest does not declare.
    kit.install.add_component("undeclared", &test_component("undeclared"));
    let out = kit.inspect(&kit.install.dir.join("undeclared.wasm"), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "refused is exit status 1: {text}");
    assert!(text.contains("host check REFUSED"), "{text}");
    assert!(text.contains("imports cni-wasm:plugin/routes, but its manifest does not declare the \"routes\""));
}

/// Whether `text` has `line`, however its columns are padded.
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line)
}

/// A component built against another minor of the contract (the template
/// with its vendored WIT package bumped to 0.2.0): inspect says why the
/// host refuses it, and a run is refused with code 1 naming both versions.
#[test]
fn a_component_built_against_another_contract_is_refused_by_inspect_and_by_a_run() {
    require_root();
    let work = TempDir::new("kit-contract");
    let new = Command::new(cni_wasm_binary()).args(["new", "contract-next"]).current_dir(&work.path).output().unwrap();
    assert!(new.status.success(), "{}", String::from_utf8_lossy(&new.stderr));
    let dir = work.join("contract-next");
    let types = dir.join("wit/types.wit");
    let wit = std::fs::read_to_string(&types).unwrap();
    assert!(wit.starts_with("package cni-wasm:plugin@0.1.0;"), "{wit}");
    std::fs::write(&types, wit.replacen("@0.1.0;", "@0.2.0;", 1)).unwrap();
    // Not in target/kit: cargo tells the vendored SDKs apart by their path
    // within their crate, the same for both, so the demo plugin's build
    // could pick up this one's SDK of another contract.
    let wasm = build_in(&dir, "contract_next", "kit-contract");

    let policy = json!({"plugins": {"contract-next": {"capabilities": ["links"]}}});
    let kit = Kit::new("kit-contract", "contract-next", &wasm, policy);
    let out = kit.inspect(&kit.install.dir.join("contract-next.wasm"), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(has_line(&text, "contract built against cni-wasm:plugin@0.2.0; this host implements 0.1.0"), "{text}");
    assert!(text.contains("host check REFUSED") && text.contains("built against the cni-wasm contract 0.2.0"));
    assert!(text.contains("manifest   not read"), "a component the host refuses is not instantiated: {text}");

    let previous = kit.ptp_add();
    let out = kit.chained("ADD", json!({"type": "contract-next"}), &previous);
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("0.2.0") && msg.contains("this host implements 0.1.0"), "{msg}");
    kit.ptp_del();
}
