//! loopback, side by side with the reference: the same result JSON, byte
//! for byte, and the same kernel state.

use cni_wasm_tests::kernel::lo_state;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::{reference, require_root};
use serde_json::json;

fn config(version: &str) -> String {
    json!({"cniVersion": version, "name": "lo-net", "type": "loopback"}).to_string()
}

#[test]
fn add_check_del_match_the_reference_at_every_version() {
    require_root();
    let install = Installation::new("loopback");
    // The Debian reference speaks up to 1.0.0.
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let (ours_ns, theirs_ns) = (Netns::new("lo-ours"), Netns::new("lo-ref"));
        let ours = run(
            &install.plugin("loopback"),
            &Env::new("ADD", "c1", &ours_ns.path(), "lo", &install.dir),
            &config(version),
        );
        let theirs = run(
            &reference("loopback"),
            &Env::new("ADD", "c1", &theirs_ns.path(), "lo", &install.dir),
            &config(version),
        );
        assert!(ours.success && theirs.success, "{version}: {} / {}", ours.stdout, theirs.stdout);
        let (ours_text, theirs_text) =
            (ours.stdout.replace(&ours_ns.path(), "NETNS"), theirs.stdout.replace(&theirs_ns.path(), "NETNS"));
        if version == "1.0.0" {
            assert_eq!(ours_text, theirs_text, "result at {version}");
        } else {
            // Reference bug: below 1.0.0 it labels its 1.0-shaped result with
            // the old version instead of converting it, printing results the
            // spec forbids (0.3.x/0.4.0 without ips[].version, 0.1/0.2 with
            // ips instead of ip4/ip6). cni-wasm converts.
            assert_known_mislabel(&theirs.json(), version);
            let result = ours.json();
            if version < "0.3.0" {
                assert_eq!(result["ip4"]["ip"], "127.0.0.1/8");
                assert_eq!(result["ip6"]["ip"], "::1/128");
                assert!(result.get("ips").is_none());
            } else {
                assert_eq!(result["ips"][0]["version"], "4");
                assert_eq!(
                    result["interfaces"],
                    theirs.json()["interfaces"]
                        .as_array()
                        .map(|_| json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ours_ns.path()}]))
                        .unwrap()
                );
            }
        }
        assert_eq!(lo_state(&ours_ns), lo_state(&theirs_ns));
        assert!(lo_state(&ours_ns).0, "lo is up after ADD");

        if version >= "0.4.0" {
            let check = run(
                &install.plugin("loopback"),
                &Env::new("CHECK", "c1", &ours_ns.path(), "lo", &install.dir),
                &config(version),
            );
            assert!(check.success && check.stdout.is_empty(), "{}", check.stdout);
        }
        let del = Env::new("DEL", "c1", &ours_ns.path(), "lo", &install.dir);
        assert!(run(&install.plugin("loopback"), &del, &config(version)).success);
        assert!(
            run(
                &reference("loopback"),
                &Env::new("DEL", "c1", &theirs_ns.path(), "lo", &install.dir),
                &config(version)
            )
            .success
        );
        assert_eq!(lo_state(&ours_ns), lo_state(&theirs_ns));
        assert!(!lo_state(&ours_ns).0, "lo is down after DEL");
    }
}

/// The reference's pre-1.0 loopback result: 1.0 shape, old label.
fn assert_known_mislabel(result: &serde_json::Value, version: &str) {
    assert_eq!(result["cniVersion"], version);
    assert!(
        result["ips"][0].get("version").is_none(),
        "if the reference converts now, compare byte for byte: {result}"
    );
}

#[test]
fn check_fails_once_lo_is_down() {
    require_root();
    let install = Installation::new("loopback-check");
    let ns = Netns::new("lo-check");
    let env = Env::new("ADD", "c1", &ns.path(), "lo", &install.dir);
    assert!(run(&install.plugin("loopback"), &env, &config("1.0.0")).success);
    ns.exec("ip", &["link", "set", "lo", "down"]);
    let check = run(&install.plugin("loopback"), &env.with_command("CHECK"), &config("1.0.0"));
    assert!(!check.success);
    assert_eq!(check.json()["msg"], "loopback interface is down");
}

#[test]
fn chained_after_another_plugin_it_passes_prev_result_through() {
    require_root();
    let install = Installation::new("loopback-chain");
    let ns = Netns::new("lo-chain");
    let previous = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": ns.path()}],
        "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.1.2.1"]}
    });
    let mut conf: serde_json::Value = serde_json::from_str(&config("1.0.0")).unwrap();
    conf["prevResult"] = previous.clone();
    let out =
        run(&install.plugin("loopback"), &Env::new("ADD", "c1", &ns.path(), "lo", &install.dir), &conf.to_string());
    assert_eq!(out.json(), previous);
}

#[test]
fn del_succeeds_without_a_netns_or_when_it_is_gone_or_twice() {
    require_root();
    let install = Installation::new("loopback-del");
    let plugin = install.plugin("loopback");
    let no_netns = Env::new("DEL", "c1", "", "lo", &install.dir);
    assert!(run(&plugin, &no_netns, &config("1.0.0")).success);
    let gone = Env::new("DEL", "c1", "/var/run/netns/cnitest-gone-namespace", "lo", &install.dir);
    assert!(run(&plugin, &gone, &config("1.0.0")).success);
    let ns = Netns::new("lo-twice");
    let env = Env::new("DEL", "never-added", &ns.path(), "lo", &install.dir);
    assert!(run(&plugin, &env, &config("1.0.0")).success);
    assert!(run(&plugin, &env, &config("1.0.0")).success);
}
