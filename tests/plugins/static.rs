//! static, side by side with the reference.

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::{reference, require_root};
use serde_json::{Value, json};

fn compare(install: &Installation, ns: &Netns, command: &str, config: &Value, args: &str) -> Value {
    let env = Env { args: args.into(), ..Env::new(command, "c1", &ns.path(), "eth0", &install.dir) };
    let ours = run(&install.plugin("static"), &env, &config.to_string());
    let theirs = run(&reference("static"), &env, &config.to_string());
    assert_eq!((ours.success, &ours.stdout), (theirs.success, &theirs.stdout), "{command} {config} {args}");
    if ours.stdout.is_empty() { Value::Null } else { ours.json() }
}

#[test]
fn results_match_the_reference() {
    require_root();
    let install = Installation::new("static");
    let ns = Netns::new("static");
    let base = json!({"cniVersion": "1.0.0", "name": "st", "type": "bridge", "ipam": {
        "type": "static",
        "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}, {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}, {"dst": "3ffe:ffff:0:01ff::1/64"}],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"]}
    }});
    let result = compare(&install, &ns, "ADD", &base, "");
    assert_eq!(result["ips"][0]["address"], "10.10.0.1/24");
    for version in ["0.3.1", "0.4.0"] {
        let mut v = base.clone();
        v["cniVersion"] = json!(version);
        compare(&install, &ns, "ADD", &v, "");
    }
    compare(&install, &ns, "ADD", &base, "IP=10.20.0.5/24,10.21.0.5/24;GATEWAY=10.20.0.1");
    let mut runtime = base.clone();
    runtime["runtimeConfig"] = json!({"ips": ["10.30.0.5/16"]});
    runtime["args"] = json!({"cni": {"ips": ["10.31.0.5/16"]}});
    compare(&install, &ns, "ADD", &runtime, "");
    compare(&install, &ns, "ADD", &base, "IP=10.20.0.5");
    compare(&install, &ns, "DEL", &base, "");
}

#[test]
fn check_compares_gateways_with_prev_result() {
    require_root();
    let install = Installation::new("static-check");
    let ns = Netns::new("static-check");
    let mut config = json!({"cniVersion": "1.0.0", "name": "st", "type": "bridge", "ipam": {
        "type": "static", "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]}});
    config["prevResult"] =
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]});
    compare(&install, &ns, "CHECK", &config, "");
    config["prevResult"]["ips"][0]["gateway"] = json!("10.10.0.1");
    let env = Env::new("CHECK", "c1", &ns.path(), "eth0", &install.dir);
    let out = run(&install.plugin("static"), &env, &config.to_string());
    assert!(!out.success);
    assert!(out.json()["msg"].as_str().unwrap().contains("Failed to match addr 10.10.0.1"));
}
