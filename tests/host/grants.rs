//! Grants: a plugin can do only what its manifest declares and the admin's
//! policy allows, and in the host namespace only to objects its request
//! names or it created. A refused call makes no change.

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::{Probe, TempDir, link_names};
use serde_json::json;

const EVERYTHING: &[&str] = &["links", "addresses", "routes", "sysctl", "delegation", "state", "files"];

#[test]
fn a_third_party_plugin_without_a_policy_entry_gets_nothing() {
    let probe = Probe::new("grant-none", json!({}));
    let ns = Netns::new("grant-none");
    let out =
        run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&["create-container-veth"], json!({})));
    assert!(!out.success);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("not granted the \"links\" capability") && msg.contains("policy.json"), "{msg}");
    assert_eq!(link_names(&ns), ["lo"]);
}

/// What a component can call is what its manifest declares: one that
/// imports a family it does not declare is refused before it runs, even
/// when the policy grants that family.
#[test]
fn a_component_importing_an_undeclared_family_is_refused_before_it_runs() {
    let probe = Probe::new("grant-manifest", json!({"plugins": {"undeclared": {"capabilities": EVERYTHING}}}));
    let plugin = probe.install.add_component("undeclared", &cni_wasm_tests::test_component("undeclared"));
    let ns = Netns::new("grant-manifest");
    let out = run(
        &plugin,
        &probe.env("ADD", "c1", &ns.path()),
        &json!({"cniVersion": "1.0.0", "name": "n", "type": "undeclared"}).to_string(),
    );
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("imports cni-wasm:plugin/routes, but its manifest does not declare"), "{msg}");
}

#[test]
fn a_family_the_policy_does_not_grant_is_refused_and_the_add_undone() {
    let granted = ["links", "addresses", "sysctl", "delegation", "state", "files"];
    let probe = Probe::new("grant-policy", json!({"plugins": {"probe": {"capabilities": granted}}}));
    let ns = Netns::new("grant-policy");
    let steps = ["create-container-veth", "add-route"];
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&steps, json!({})));
    assert!(!out.success);
    assert!(out.json()["msg"].as_str().unwrap().contains("not granted the \"routes\" capability"), "{}", out.stdout);
    // ...and the ADD's veth was rolled back.
    assert_eq!(link_names(&ns), ["lo"]);
}

/// A third party reaches a host link only through a key its manifest
/// declares, and only where the admin's policy admits the name.
#[test]
fn host_links_no_declared_key_names_are_out_of_reach() {
    let policy = json!({"plugins": {"probe": {"capabilities": EVERYTHING, "hostLinks": ["bystander*"]}}});
    let probe = Probe::new("grant-host-link", policy);
    let host = Netns::new("grant-fake-host");
    host.exec("ip", &["link", "add", "bystander0", "type", "veth", "peer", "name", "bystander1"]);
    let container = Netns::new("grant-container");
    let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &container.path()) };
    let out = run(&probe.plugin, &env, &Probe::config(&["change-unnamed-host-link"], json!({})));
    assert!(!out.success);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("is not one a config key names"), "{msg}");
    let mtu = host.ip_json(&["link", "show", "bystander0"])[0]["mtu"].clone();
    assert_eq!(mtu, 1500, "the bystander link is unchanged");

    // Named by the declared key, and admitted by the policy: changed.
    let named = |link: &str| {
        Probe::config(&["change-host-link"], json!({"probe": {"steps": ["change-host-link"], "hostLink": link}}))
    };
    let out = run(&probe.plugin, &env, &named("bystander0"));
    assert!(out.success, "{}", out.stdout);
    assert_eq!(host.ip_json(&["link", "show", "bystander0"])[0]["mtu"], 1280);

    // Named by the declared key, but a name the policy does not admit.
    host.exec("ip", &["link", "add", "other0", "type", "veth", "peer", "name", "other1"]);
    let out = run(&probe.plugin, &env, &named("other0"));
    assert!(out.json()["msg"].as_str().unwrap().contains("is not one a config key names"), "{}", out.stdout);
    assert_eq!(host.ip_json(&["link", "show", "other0"])[0]["mtu"], 1500);
}

#[test]
fn global_host_sysctls_need_the_manifest() {
    let probe = Probe::new("grant-sysctl", json!({"plugins": {"probe": {"capabilities": EVERYTHING}}}));
    let host = Netns::new("grant-sysctl-host");
    let container = Netns::new("grant-sysctl-container");
    let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &container.path()) };
    let out = run(&probe.plugin, &env, &Probe::config(&["write-host-sysctl"], json!({})));
    assert!(out.json()["msg"].as_str().unwrap().contains("manifest does not list it"), "{}", out.stdout);
    assert_eq!(host.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(), "0");
}

#[test]
fn the_policy_can_narrow_a_built_in_plugin() {
    cni_wasm_tests::require_root();
    let install = Installation::new("grant-builtin");
    let policy = TempDir::new("grant-builtin");
    std::fs::write(
        policy.join("policy.json"),
        json!({"plugins": {"host-local": {"capabilities": ["files"]}}}).to_string(),
    )
    .unwrap();
    let store = TempDir::new("grant-builtin-store");
    let ns = Netns::new("grant-builtin");
    let conf = json!({"cniVersion": "1.0.0", "name": "narrow", "type": "bridge",
                      "ipam": {"type": "host-local", "dataDir": store.display(), "subnet": "10.60.0.0/24"}});
    let env = Env::new("ADD", "c1", &ns.path(), "eth0", &install.dir)
        .var("CNI_WASM_POLICY", policy.join("policy.json").display().to_string());
    let out = run(&install.plugin("host-local"), &env, &conf.to_string());
    assert!(out.json()["msg"].as_str().unwrap().contains("not granted the \"state\" capability"), "{}", out.stdout);
    assert!(!store.join("narrow").exists(), "nothing was written");
}

#[test]
fn an_invalid_policy_file_is_a_clear_error() {
    cni_wasm_tests::require_root();
    let install = Installation::new("grant-bad-policy");
    let policy = TempDir::new("grant-bad-policy");
    std::fs::write(policy.join("policy.json"), "{not json").unwrap();
    let ns = Netns::new("grant-bad-policy");
    let env = Env::new("ADD", "c1", &ns.path(), "lo", &install.dir)
        .var("CNI_WASM_POLICY", policy.join("policy.json").display().to_string());
    let out = run(&install.plugin("loopback"), &env, r#"{"cniVersion":"1.0.0","name":"n","type":"loopback"}"#);
    assert!(out.json()["msg"].as_str().unwrap().contains("invalid policy file"), "{}", out.stdout);
}

/// With CNI_WASM_AUDIT, every capability call is one JSON line: who, for
/// which attachment, the call, its object and the verdict.
#[test]
fn every_capability_call_is_audited_with_its_verdict() {
    let probe = Probe::new("grant-audit", json!({"plugins": {"probe": {"capabilities": EVERYTHING}}}));
    let host = Netns::new("grant-audit-host");
    host.exec("ip", &["link", "add", "bystander0", "type", "veth", "peer", "name", "bystander1"]);
    let container = Netns::new("grant-audit-ctr");
    let log = TempDir::new("grant-audit");
    let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &container.path()) }
        .var("CNI_WASM_AUDIT", log.join("audit.log").display().to_string());
    let config = Probe::config(
        &["create-container-veth", "change-host-link"],
        json!({"probe": {"steps": ["create-container-veth", "change-host-link"], "hostLink": "bystander0"}}),
    );
    let out = run(&probe.plugin, &env, &config);
    assert!(!out.success, "{}", out.stdout);
    let text = std::fs::read_to_string(log.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["call"].as_str().unwrap().into(),
                l["object"].as_str().unwrap().into(),
                l["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("links.create-veth".into(), "\"probe0\"".into(), "ok".into()),
            ("links.set".into(), "\"bystander0\"".into(), "denied".into())
        ],
        "{text}"
    );
    assert_eq!(
        (&lines[1]["plugin"], &lines[1]["command"], &lines[1]["containerID"]),
        (&json!("probe"), &json!("ADD"), &json!("c1"))
    );
}

/// A parent (a macvlan master) may get children, and nothing else: it is
/// never changed, downed, moved or deleted; a link no key names as a parent
/// gets no child.
#[test]
fn a_parent_gets_children_and_nothing_else() {
    let policy = json!({"plugins": {"probe": {"capabilities": EVERYTHING, "hostLinks": ["master0", "eth0"]}}});
    let probe = Probe::new("grant-parent", policy);
    let host = Netns::new("grant-parent-host");
    host.exec("ip", &["link", "add", "master0", "type", "veth", "peer", "name", "master0p"]);
    host.exec("ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    host.exec("ip", &["link", "set", "master0", "up"]);
    let attempt = |steps: &[&str], extra: serde_json::Value| {
        let container = Netns::new("grant-parent-ctr");
        let env = Env { host_netns: Some(host.name.clone()), ..probe.env("ADD", "c1", &container.path()) };
        let mut probe_conf = json!({"steps": steps, "master": "master0"});
        for (k, v) in extra.as_object().unwrap() {
            probe_conf[k] = v.clone();
        }
        let out = run(&probe.plugin, &env, &Probe::config(steps, json!({"probe": probe_conf})));
        (out, link_names(&container))
    };
    let (out, _) = attempt(&["create-macvlan", "fail"], json!({}));
    assert_eq!(out.json()["msg"], "probe: failing as asked", "a child on the parent is allowed: {}", out.stdout);
    for step in ["down-master", "delete-master", "move-master"] {
        let (out, _) = attempt(&[step], json!({}));
        assert!(out.json()["msg"].as_str().unwrap().contains("refused"), "{step}: {}", out.stdout);
    }
    // eth0 is in the policy's patterns, but no key names it as a parent.
    let (out, container_links) = attempt(&["create-macvlan"], json!({"parent": "eth0"}));
    assert!(
        out.json()["msg"].as_str().unwrap().contains("is not one a config key names as a parent"),
        "{}",
        out.stdout
    );
    assert_eq!(container_links, ["lo"]);
    let master = &host.ip_json(&["link", "show", "master0"])[0];
    assert!(master["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "the master is unchanged: {master}");
}
