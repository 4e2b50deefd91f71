//! `cni-wasm install`, and how third-party components are compiled and
//! cached: the host loads only artifacts it produced and protects.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{
    Env, Installation, assert_versions_are_upstreams, assert_versions_extend_the_references, run,
};
use cni_wasm_tests::{Probe, TempDir, cni_wasm_binary, require_root};
use serde_json::json;

fn install(dir: &std::path::Path, force: bool) -> std::process::Output {
    let mut command = Command::new(cni_wasm_binary());
    command.arg("install").arg(dir);
    if force {
        command.arg("--force");
    }
    command.output().unwrap()
}

#[test]
fn install_links_every_built_in_plugin_and_is_idempotent() {
    require_root();
    let dir = TempDir::new("install");
    for _ in 0..2 {
        assert!(install(&dir.path, false).status.success());
    }
    for plugin in ["loopback", "host-local", "static"] {
        let link = dir.join(plugin);
        assert_eq!(std::fs::read_link(&link).unwrap().to_str(), Some("cni-wasm"), "{plugin}");
        let out = run(&link, &Env { command: "VERSION".into(), ..Env::default() }, "");
        assert!(out.json()["supportedVersions"].as_array().unwrap().contains(&json!("1.1.0")));
    }
    assert!(dir.join("cni-wasm-compile").is_file(), "third-party plugins need the compiler");
    let mode = std::fs::metadata(dir.join("cni-wasm")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

/// The reference set (win-* aside: they need Windows HNS), as issue 9 has it.
const REFERENCE_SET: [&str; 19] = [
    "bridge",
    "ptp",
    "macvlan",
    "ipvlan",
    "vlan",
    "host-device",
    "dummy",
    "tap",
    "loopback",
    "vrf",
    "host-local",
    "static",
    "dhcp",
    "portmap",
    "firewall",
    "tuning",
    "bandwidth",
    "sbr",
    "flannel",
];

/// After one install every reference plugin name runs, and VERSION lists
/// the reference's versions and 1.1.0 (upstream's, for the plugins the
/// Debian package lacks: dummy, tap, flannel).
#[test]
fn every_reference_plugin_is_installed_and_answers_version() {
    require_root();
    let install = Installation::new("install-all");
    for plugin in REFERENCE_SET {
        if std::path::Path::new(cni_wasm_tests::REFERENCE_DIR).join(plugin).is_file() {
            assert_versions_extend_the_references(&install, plugin);
        } else {
            assert_versions_are_upstreams(&install, plugin);
        }
    }
}

#[test]
fn install_does_not_replace_other_files_unless_forced() {
    require_root();
    let dir = TempDir::new("install-force");
    std::fs::write(dir.join("loopback"), "#!/bin/sh\n").unwrap();
    let out = install(&dir.path, false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(install(&dir.path, true).status.success());
    assert!(std::fs::symlink_metadata(dir.join("loopback")).unwrap().file_type().is_symlink());
}

#[test]
fn third_party_components_are_compiled_once_into_a_private_cache() {
    let probe = Probe::new("install-cache", json!({"plugins": {"probe": {"capabilities": []}}}));
    let ns = Netns::new("install-cache");
    let ok = Probe::config(&[], json!({}));
    assert!(run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &ok).success);
    let artifacts: Vec<_> = std::fs::read_dir(&probe.cache.path).unwrap().filter_map(Result::ok).collect();
    assert_eq!(artifacts.len(), 1, "one compiled artifact");
    let artifact = artifacts[0].path();
    let meta = std::fs::metadata(&artifact).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    let modified = meta.modified().unwrap();
    assert!(run(&probe.plugin, &probe.env("ADD", "c2", &ns.path()), &ok).success);
    assert_eq!(std::fs::metadata(&artifact).unwrap().modified().unwrap(), modified, "reused, not recompiled");

    // A damaged artifact is not trusted: it is compiled again.
    std::fs::write(&artifact, b"not an artifact").unwrap();
    assert!(run(&probe.plugin, &probe.env("ADD", "c3", &ns.path()), &ok).success);
    assert!(std::fs::read(&artifact).unwrap().len() > 1000);

    // A cache others can write to is refused outright.
    std::fs::set_permissions(&probe.cache.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&probe.plugin, &probe.env("ADD", "c4", &ns.path()), &ok);
    assert!(out.json()["msg"].as_str().unwrap().contains("refusing to load compiled code"), "{}", out.stdout);
}

#[test]
fn an_invalid_component_is_a_clear_error() {
    let probe = Probe::new("install-invalid", json!({}));
    std::fs::write(probe.install.dir.join("probe.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    let ns = Netns::new("install-invalid");
    let out = run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &Probe::config(&[], json!({})));
    assert!(!out.success);
    assert!(out.json()["msg"].as_str().unwrap().contains("probe.wasm"), "{}", out.stdout);
}
