//! The CNI protocol edge (cni-spec.md §8): environment, versions, result
//! shapes and error codes, checked through real plugin processes.

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::require_root;
use serde_json::{Value, json};

fn loopback_config(version: &str) -> String {
    json!({"cniVersion": version, "name": "proto", "type": "loopback"}).to_string()
}

fn setup() -> (Installation, Netns) {
    require_root();
    (Installation::new("protocol"), Netns::new("protocol"))
}

fn env(install: &Installation, command: &str, netns: &Netns) -> Env {
    Env::new(command, "container-1", &netns.path(), "eth0", &install.dir)
}

#[test]
fn version_lists_every_supported_spec_version_without_reading_stdin() {
    let (install, _ns) = setup();
    let only_command = Env { command: "VERSION".into(), ..Env::default() };
    for stdin in ["", r#"{"cniVersion":"0.4.0"}"#, "garbage, not JSON"] {
        let out = run(&install.plugin("loopback"), &only_command, stdin);
        assert!(out.success, "{}", out.stdout);
        let reply = out.json();
        assert_eq!(reply["cniVersion"], "1.1.0", "like skel, VERSION reports the library version");
        assert_eq!(reply["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    }
}

#[test]
fn no_command_prints_what_the_plugin_is_to_stderr() {
    let (install, _ns) = setup();
    let out = run(&install.plugin("host-local"), &Env::default(), "");
    assert!(out.success);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("CNI host-local plugin"), "{}", out.stderr);
    assert!(out.stderr.contains("0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{}", out.stderr);
}

#[test]
fn unknown_command_is_code_4() {
    let (install, ns) = setup();
    let out = run(&install.plugin("loopback"), &env(&install, "FOO", &ns), &loopback_config("1.0.0"));
    assert_eq!(out.code(), 4);
    assert_eq!(out.json()["msg"], "unknown CNI_COMMAND: FOO");
}

#[test]
fn missing_variables_are_named_together_in_one_code_4_error() {
    let (install, _ns) = setup();
    let bare = Env { command: "ADD".into(), path: install.dir.display().to_string(), ..Env::default() };
    let out = run(&install.plugin("loopback"), &bare, &loopback_config("1.0.0"));
    assert_eq!(out.code(), 4);
    assert_eq!(out.json()["msg"], "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing");
    // DEL needs no netns, but does need the container id and ifname.
    let out = run(&install.plugin("loopback"), &Env { command: "DEL".into(), ..bare }, &loopback_config("1.0.0"));
    assert_eq!(out.json()["msg"], "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing");
}

#[test]
fn bad_container_ids_and_interface_names_are_code_4() {
    let (install, ns) = setup();
    for (id, ifname) in [
        ("-abc", "eth0"),
        ("a/b", "eth0"),
        ("a b", "eth0"),
        ("c", "0123456789abcdef"),
        ("c", "."),
        ("c", ".."),
        ("c", "a/b"),
        ("c", "a:b"),
        ("c", "a b"),
    ] {
        let e = Env { container_id: id.into(), ifname: ifname.into(), ..env(&install, "ADD", &ns) };
        let out = run(&install.plugin("loopback"), &e, &loopback_config("1.0.0"));
        assert_eq!(out.code(), 4, "{id:?} {ifname:?}: {}", out.stdout);
    }
}

#[test]
fn bad_config_gets_decoding_or_invalid_config_codes() {
    let (install, ns) = setup();
    let e = env(&install, "ADD", &ns);
    let plugin = install.plugin("loopback");
    assert_eq!(run(&plugin, &e, "not json").code(), 6);
    assert_eq!(run(&plugin, &e, r#"{"cniVersion":"1.0.0","type":"loopback"}"#).code(), 7);
    assert_eq!(run(&plugin, &e, r#"{"cniVersion":"1.0.0","name":"bad/name"}"#).code(), 7);
}

#[test]
fn unsupported_version_is_code_1_naming_both_sides() {
    let (install, ns) = setup();
    let out = run(&install.plugin("loopback"), &env(&install, "ADD", &ns), &loopback_config("9.9.9"));
    assert_eq!(out.code(), 1);
    let details = out.json()["details"].as_str().unwrap().to_string();
    assert!(details.contains("9.9.9") && details.contains("1.1.0"), "{details}");
}

#[test]
fn results_take_the_shape_of_the_requested_version() {
    let (install, ns) = setup();
    let plugin = install.plugin("loopback");
    for version in ["1.1.0", "1.0.0"] {
        let result = run(&plugin, &env(&install, "ADD", &ns), &loopback_config(version)).json();
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["interfaces"][0]["sandbox"], ns.path());
        for ip in result["ips"].as_array().unwrap() {
            assert!(ip.get("version").is_none());
            assert_eq!(ip["interface"], 0, "interface 0 must be emitted, not omitted");
        }
    }
    for version in ["0.4.0", "0.3.1", "0.3.0"] {
        let result = run(&plugin, &env(&install, "ADD", &ns), &loopback_config(version)).json();
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["ips"][0]["version"], "4");
        assert_eq!(result["ips"][1]["version"], "6");
    }
    let legacy = run(&plugin, &env(&install, "ADD", &ns), &loopback_config("0.2.0")).json();
    assert_eq!(legacy["ip4"]["ip"], "127.0.0.1/8");
    assert!(legacy.get("interfaces").is_none());
    // No cniVersion at all means 0.1.0.
    let oldest = run(&plugin, &env(&install, "ADD", &ns), r#"{"name":"proto","type":"loopback"}"#).json();
    assert_eq!(oldest["cniVersion"], "0.1.0");
    assert_eq!(oldest["ip4"]["ip"], "127.0.0.1/8");
}

#[test]
fn capabilities_runtime_config_and_args_are_accepted() {
    let (install, ns) = setup();
    let config = json!({
        "cniVersion": "1.0.0", "name": "proto", "type": "loopback",
        "capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": []},
        "args": {"anything": {"goes": [1, 2]}}, "someUnknownKey": "value"
    });
    let out = run(&install.plugin("loopback"), &env(&install, "ADD", &ns), &config.to_string());
    assert!(out.success, "{}", out.stdout);
}

#[test]
fn a_missing_netns_is_a_clean_error() {
    let (install, _ns) = setup();
    let e = Env::new("ADD", "c1", "/var/run/netns/does-not-exist", "eth0", &install.dir);
    let out = run(&install.plugin("loopback"), &e, &loopback_config("1.0.0"));
    assert!(!out.success);
    let error = out.json();
    assert!(error["msg"].as_str().unwrap().contains("does-not-exist"), "{error}");
    assert!(
        out.stdout.trim_end().ends_with('}') && out.stdout.matches("\"code\"").count() == 1,
        "exactly one JSON object"
    );
}

#[test]
fn the_plugins_own_netns_is_refused_before_anything_runs() {
    // The Go skel checks this only after ADD/DEL ran: the Debian reference's
    // loopback DEL with CNI_NETNS=/proc/self/ns/net sets the *host's* lo down
    // and only then complains. cni-wasm refuses first and leaves lo alone.
    let (install, _ns) = setup();
    let e = Env::new("DEL", "c1", "/proc/self/ns/net", "lo", &install.dir);
    let out = run(&install.plugin("loopback"), &e, &loopback_config("1.0.0"));
    assert_eq!(out.code(), 8);
    let lo = cni_wasm_tests::netns::run("ip", &["-j", "link", "show", "lo"]);
    assert!(lo.contains("\"UP\""), "the host's lo must still be up: {lo}");
}

#[test]
fn check_needs_0_4_0_and_status_and_gc_need_1_1_0() {
    let (install, ns) = setup();
    let plugin = install.plugin("loopback");
    let out = run(&plugin, &env(&install, "CHECK", &ns), &loopback_config("0.3.1"));
    assert_eq!((out.code(), out.json()["msg"].clone()), (1, json!("config version does not allow CHECK")));
    let status = Env { command: "STATUS".into(), path: install.dir.display().to_string(), ..Env::default() };
    assert_eq!(run(&plugin, &status, &loopback_config("1.0.0")).code(), 1);
    let gc = Env { command: "GC".into(), ..status.clone() };
    assert_eq!(run(&plugin, &gc, &loopback_config("1.0.0")).code(), 1);
    // At 1.1.0 both succeed without any container variables, printing nothing.
    for e in [status, gc] {
        let out = run(&plugin, &e, &loopback_config("1.1.0"));
        assert!(out.success && out.stdout.is_empty(), "{}", out.stdout);
    }
}

#[test]
fn errors_are_one_go_shaped_json_object() {
    let (install, ns) = setup();
    let out = run(&install.plugin("loopback"), &env(&install, "ADD", &ns), &loopback_config("9.9.9"));
    let expected = "{\n    \"code\": 1,\n    \"msg\": \"incompatible CNI versions\",\n    \"details\": \"config is \\\"9.9.9\\\", plugin supports [\\\"0.1.0\\\" \\\"0.2.0\\\" \\\"0.3.0\\\" \\\"0.3.1\\\" \\\"0.4.0\\\" \\\"1.0.0\\\" \\\"1.1.0\\\"]\"\n}";
    assert_eq!(out.stdout, expected);
    let _: Value = out.json();
}
