//! tuning side by side with the reference: the same result (the previous
//! result, with the new MAC), the same sysctls and link settings, the same
//! backup file, each restoring the other's backup. Then what the Debian
//! reference lacks or gets wrong: txQLen, the allowlist, restoring sysctls,
//! undoing a failed ADD, DEL after the namespace is gone, GC. Each test
//! makes its own container namespace with an `eth0` veth, as the plugin
//! before tuning in a chain would have left it.

use std::path::{Path, PathBuf};

use cni_wasm_tests::kernel::{self, assert_same};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, Outcome, run};
use cni_wasm_tests::{Probe, TempDir, reference, require_root};
use serde_json::{Value, json};

/// A namespace with `eth0` (a veth whose peer stays beside it), up.
fn container(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.exec("ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
    ns.exec("ip", &["link", "set", "eth0", "up"]);
    ns.exec("ip", &["link", "set", "peer0", "up"]);
    ns
}

fn mac(ns: &Netns) -> String {
    ns.ip_json(&["link", "show", "eth0"])[0]["address"].as_str().unwrap().to_string()
}

/// The previous plugin's result for `eth0` in `ns`.
fn prev_result(ns: &Netns, version: &str) -> Value {
    let mut result = json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": mac(ns), "sandbox": ns.path()}],
        "ips": [{"interface": 0, "address": "10.97.0.5/24", "gateway": "10.97.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    });
    if version < "1.0.0" {
        result["ips"][0]["version"] = json!("4");
    }
    result
}

fn config(version: &str, name: &str, ns: &Netns, data_dir: &TempDir, extra: Value) -> String {
    let mut config = json!({"cniVersion": version, "name": name, "type": "tuning", "dataDir": data_dir.display(), "prevResult": prev_result(ns, version)});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config.to_string()
}

struct Plugin {
    program: PathBuf,
    dir: PathBuf,
}

impl Plugin {
    fn ours(install: &Installation) -> Plugin {
        Plugin { program: install.plugin("tuning"), dir: install.dir.clone() }
    }

    fn reference(install: &Installation) -> Plugin {
        Plugin { program: reference("tuning"), dir: install.dir.clone() }
    }

    fn run(&self, command: &str, id: &str, netns: &str, config: &str, args: &str) -> Outcome {
        let env = Env { args: args.into(), ..Env::new(command, id, netns, "eth0", &self.dir) };
        run(&self.program, &env, config)
    }

    /// Runs and insists on success.
    fn ok(&self, command: &str, id: &str, ns: &Netns, config: &str) -> Outcome {
        let outcome = self.run(command, id, &ns.path(), config, "");
        assert!(outcome.success, "{command} with {}: {} {}", self.program.display(), outcome.stdout, outcome.stderr);
        outcome
    }
}

/// Everything tuning may change in the container namespace.
fn container_state(ns: &Netns) -> Value {
    let sysctls: Vec<String> = ["net/core/somaxconn", "net/ipv4/conf/eth0/arp_filter", "net/ipv4/conf/eth0/proxy_arp"]
        .iter()
        .map(|k| kernel::sysctl(ns, k))
        .collect();
    json!({"links": kernel::links(ns), "mac": mac(ns), "sysctls": sysctls})
}

/// Results with the namespace path and the interface's original (random)
/// MAC, which differ by side, replaced.
fn normalize(result: &Value, ns: &Netns, original_mac: &str) -> Value {
    serde_json::from_str(&result.to_string().replace(&ns.path(), "NETNS").replace(original_mac, "ORIGINAL")).unwrap()
}

/// The backups in a data dir: file name and the reference's keys.
fn backups(dir: &TempDir) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir.path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let full: Value = serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
                    let reference_keys: serde_json::Map<String, Value> = full
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| ["mac", "promisc", "mtu", "allmulti", "txQLen"].contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    (e.file_name().to_string_lossy().to_string(), Value::Object(reference_keys))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// [`backups`], with the namespace's own (random) original MAC replaced,
/// to compare the two sides.
fn backups_of(dir: &TempDir, original_mac: &str) -> Vec<(String, Value)> {
    let mut out = backups(dir);
    for (_, backup) in &mut out {
        if backup["mac"] == original_mac {
            backup["mac"] = json!("ORIGINAL");
        }
    }
    out
}

fn all_settings() -> Value {
    json!({
        "sysctl": {"net.core.somaxconn": "500", "net.ipv4.conf.IFNAME.arp_filter": "1", "net.ipv4.conf.eth0.proxy_arp": "1"},
        "mac": "c2:11:22:33:44:55", "mtu": 1400, "promisc": true, "allmulti": true
    })
}

#[test]
fn sysctls_and_link_settings_match_the_reference_and_del_restores_them() {
    require_root();
    let install = Installation::new("tun-sbs");
    let (ours, theirs) = (Plugin::ours(&install), Plugin::reference(&install));
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let (our_ns, their_ns) = (container("tun-sbs-o"), container("tun-sbs-r"));
        let (our_dir, their_dir) = (TempDir::new("tun-sbs-o"), TempDir::new("tun-sbs-r"));
        let our_config = config(version, "tnet", &our_ns, &our_dir, all_settings());
        let their_config = config(version, "tnet", &their_ns, &their_dir, all_settings());
        let (our_before, their_before) = (container_state(&our_ns), container_state(&their_ns));
        let (our_mac, their_mac) = (mac(&our_ns), mac(&their_ns));

        let our_result = ours.ok("ADD", "c1", &our_ns, &our_config).json();
        let their_result = theirs.ok("ADD", "c1", &their_ns, &their_config).json();
        assert_same(
            &normalize(&our_result, &our_ns, &our_mac),
            &normalize(&their_result, &their_ns, &their_mac),
            &format!("{version}: result"),
        );
        assert_eq!(our_result["interfaces"][0]["mac"], "c2:11:22:33:44:55", "the result carries the new MAC");
        assert_same(&container_state(&our_ns), &container_state(&their_ns), &format!("{version}: container after ADD"));
        assert_eq!(kernel::sysctl(&our_ns, "net/core/somaxconn"), "500");
        assert_eq!(backups_of(&our_dir, &our_mac), backups_of(&their_dir, &their_mac), "{version}: the same backup");
        assert_eq!(backups_of(&our_dir, &our_mac)[0].1["mac"], "ORIGINAL");

        if version >= "0.4.0" {
            ours.ok("CHECK", "c1", &our_ns, &our_config);
            // The Debian reference's CHECK does not replace IFNAME in the
            // keys it reads back (fixed upstream after 1.1.1).
            let check = theirs.run("CHECK", "c1", &their_ns.path(), &their_config, "");
            assert!(
                check.success
                    || check.json()["msg"]
                        == "open /proc/sys/net/ipv4/conf/IFNAME/arp_filter: no such file or directory",
                "the reference's CHECK fails another way: {}",
                check.stdout
            );
        }

        ours.ok("DEL", "c1", &our_ns, &our_config);
        theirs.ok("DEL", "c1", &their_ns, &their_config);
        assert_same(&container_state(&our_ns), &our_before, &format!("{version}: cni-wasm restores everything"));
        // The reference restores the link, never the sysctls.
        let mut theirs_after = container_state(&their_ns);
        assert_eq!(
            theirs_after["sysctls"],
            json!(["500", "1", "1"]),
            "if the reference restores sysctls now, compare all"
        );
        theirs_after["sysctls"] = their_before["sysctls"].clone();
        assert_same(&theirs_after, &their_before, &format!("{version}: the reference restores the link"));
        assert!(backups(&our_dir).is_empty() && backups(&their_dir).is_empty(), "backups removed");
    }
}

#[test]
fn args_runtime_config_and_cni_args_override_like_the_reference() {
    require_root();
    let install = Installation::new("tun-args");
    let (ours, theirs) = (Plugin::ours(&install), Plugin::reference(&install));
    let cases: [(Value, &str); 5] = [
        (json!({"mac": "02:00:00:00:00:01"}), "IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
        (
            json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
        ),
        (
            json!({"runtimeConfig": {"mac": "02:00:00:00:00:03"}, "args": {"cni": {"mac": "02:00:00:00:00:04"}}}),
            "MAC=02:00:00:00:00:02",
        ),
        (
            json!({"sysctl": {"net.core.somaxconn": "600"}, "promisc": true, "mtu": 1400,
                   "args": {"cni": {"sysctl": {"net.core.somaxconn": "700", "net.ipv4.conf.eth0.proxy_arp": "1"}, "promisc": false, "mtu": 1300, "allmulti": true}}}),
            "",
        ),
        (json!({"MTU": 1280, "Promisc": true, "AllMulti": false}), ""),
    ];
    for (extra, args) in cases {
        let (our_ns, their_ns) = (container("tun-args-o"), container("tun-args-r"));
        let (our_dir, their_dir) = (TempDir::new("tun-args-o"), TempDir::new("tun-args-r"));
        let (our_mac, their_mac) = (mac(&our_ns), mac(&their_ns));
        let our_out =
            ours.run("ADD", "c1", &our_ns.path(), &config("1.0.0", "tnet", &our_ns, &our_dir, extra.clone()), args);
        let their_out = theirs.run(
            "ADD",
            "c1",
            &their_ns.path(),
            &config("1.0.0", "tnet", &their_ns, &their_dir, extra.clone()),
            args,
        );
        assert!(our_out.success && their_out.success, "{extra} {args}: {} / {}", our_out.stdout, their_out.stdout);
        let (our_result, their_result) =
            (normalize(&our_out.json(), &our_ns, &our_mac), normalize(&their_out.json(), &their_ns, &their_mac));
        assert_same(&our_result, &their_result, &format!("result with {extra} {args}"));
        let unchanged_mac = |ns: &Netns, original: &str| {
            let mut state = container_state(ns);
            if state["mac"] == original {
                state["mac"] = json!("ORIGINAL");
            }
            state
        };
        assert_same(
            &unchanged_mac(&our_ns, &our_mac),
            &unchanged_mac(&their_ns, &their_mac),
            &format!("container with {extra} {args}"),
        );
        assert_eq!(backups_of(&our_dir, &our_mac), backups_of(&their_dir, &their_mac), "backup with {extra} {args}");
    }
}

#[test]
fn args_cni_sysctls_work_without_a_sysctl_map() {
    // The reference writes them into a nil map: a Go panic.
    require_root();
    let install = Installation::new("tun-nilmap");
    let ns = container("tun-nilmap");
    let dir = TempDir::new("tun-nilmap");
    let config =
        config("1.0.0", "tnet", &ns, &dir, json!({"args": {"cni": {"sysctl": {"net.core.somaxconn": "800"}}}}));
    Plugin::ours(&install).ok("ADD", "c1", &ns, &config);
    assert_eq!(kernel::sysctl(&ns, "net/core/somaxconn"), "800");
    let theirs = Plugin::reference(&install).run("ADD", "c1", &container("tun-nilmap-r").path(), &config, "");
    assert!(!theirs.success, "if the reference handles this now, compare it: {}", theirs.stdout);
}

#[test]
fn tx_queue_length_is_set_checked_and_restored() {
    // The Debian reference (1.1.1) predates txQLen.
    require_root();
    let install = Installation::new("tun-txq");
    let ours = Plugin::ours(&install);
    let ns = container("tun-txq");
    let dir = TempDir::new("tun-txq");
    let before = container_state(&ns);
    let config = config("1.0.0", "tnet", &ns, &dir, json!({"txQLen": 42, "allmulti": false}));
    ours.ok("ADD", "c1", &ns, &config);
    assert_eq!(ns.ip_json(&["link", "show", "eth0"])[0]["txqlen"], 42);
    assert_eq!(backups(&dir)[0].1, json!({"allmulti": false, "txQLen": 1000}), "the original length");
    ours.ok("CHECK", "c1", &ns, &config);
    ns.exec("ip", &["link", "set", "eth0", "txqueuelen", "7"]);
    let check = ours.run("CHECK", "c1", &ns.path(), &config, "");
    assert!(
        check.json()["msg"].as_str().unwrap().contains("Transmit Queue Length of eth0 is 42, current value is 7"),
        "{}",
        check.stdout
    );
    ns.exec("ip", &["link", "set", "eth0", "txqueuelen", "42"]);
    ours.ok("DEL", "c1", &ns, &config);
    assert_same(&container_state(&ns), &before, "after DEL");
}

#[test]
fn a_sysctl_outside_net_is_refused_with_a_cni_error_and_nothing_changes() {
    require_root();
    let install = Installation::new("tun-nonnet");
    let (ours, theirs) = (Plugin::ours(&install), Plugin::reference(&install));
    // Read-only kernel keys: even a broken check could not change them.
    for key in ["kernel.ostype", "kernel/osrelease", "fs.file-nr", "net"] {
        let ns = container("tun-nonnet");
        let dir = TempDir::new("tun-nonnet");
        let before = container_state(&ns);
        // A good key first: the reference writes it before refusing.
        let extra = json!({"sysctl": {"net.core.somaxconn": "900", key: "1"}, "mtu": 1300});
        let config = config("1.0.0", "tnet", &ns, &dir, extra);
        let outcome = ours.run("ADD", "c1", &ns.path(), &config, "");
        assert!(!outcome.success);
        let error = outcome.json();
        assert_eq!(error["code"], 999, "{error}");
        assert!(error["msg"].as_str().unwrap().starts_with("invalid net sysctl key: "), "{error}");
        assert_same(&container_state(&ns), &before, &format!("{key}: nothing changed"));
        assert!(backups(&dir).is_empty());
        assert!(!theirs.run("ADD", "c1", &ns.path(), &config, "").success, "the reference refuses {key} too");
    }
}

#[test]
fn the_host_keeps_sysctl_writes_under_net_whatever_a_plugin_asks() {
    // The probe writes whatever key it is given, straight to the host's
    // sysctl capability: the host, not the plugin, must refuse.
    let everything = ["links", "addresses", "routes", "sysctl", "delegation", "state", "files"];
    let probe = Probe::new("tun-hostcheck", json!({"plugins": {"probe": {"capabilities": everything}}}));
    let ns = container("tun-hostcheck");
    let write = |key: &str| {
        let config = Probe::config(
            &["write-container-sysctl"],
            json!({"probe": {"steps": ["write-container-sysctl"], "sysctlKey": key}}),
        );
        run(&probe.plugin, &probe.env("ADD", "c1", &ns.path()), &config)
    };
    for key in [
        "kernel/ostype",
        "net/../kernel/ostype",
        "net/ipv4/../../kernel/ostype",
        "net/./core/somaxconn",
        "net//core/somaxconn",
        "/net/core/somaxconn",
        "/proc/sys/kernel/ostype",
        "net/core/somaxconn\u{0}",
        "kernel.ostype",
        "",
    ] {
        let outcome = write(key);
        assert!(!outcome.success, "{key:?} was accepted");
        let msg = outcome.json()["msg"].as_str().unwrap().to_string();
        assert!(msg.contains("is not a path below /proc/sys/net"), "{key:?}: {msg}");
    }
    assert!(write("net/core/somaxconn").success, "a key under net/ is written");
    assert_eq!(kernel::sysctl(&ns, "net/core/somaxconn"), "1");
}

/// A wrapper running `plugin` in a private mount namespace whose /etc has
/// `allowlist` as /etc/cni/tuning/allowlist.conf (an overlay: the real /etc
/// is untouched).
fn with_allowlist(plugin: &Path, allowlist: &str, scratch: &TempDir) -> PathBuf {
    for dir in ["upper", "work"] {
        std::fs::create_dir_all(scratch.join(dir)).unwrap();
    }
    std::fs::write(scratch.join("allowlist.conf"), allowlist).unwrap();
    let script = format!(
        "#!/bin/sh\nexec unshare -m /bin/sh -c 'mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc || exit 90\n\
         mkdir -p /etc/cni/tuning && cp {list} /etc/cni/tuning/allowlist.conf || exit 91\nexec {plugin}'\n",
        upper = scratch.join("upper").display(),
        work = scratch.join("work").display(),
        list = scratch.join("allowlist.conf").display(),
        plugin = plugin.display(),
    );
    let wrapper = scratch.join("tuning-with-allowlist");
    std::fs::write(&wrapper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// Whether this kernel can mount the overlay [`with_allowlist`] needs.
fn overlay_supported(scratch: &TempDir) -> Result<(), String> {
    for dir in ["probe-upper", "probe-work"] {
        std::fs::create_dir_all(scratch.join(dir)).unwrap();
    }
    let options = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        scratch.join("probe-upper").display(),
        scratch.join("probe-work").display()
    );
    let output = std::process::Command::new("unshare")
        .args(["-m", "mount", "-t", "overlay", "overlay", "-o", &options, "/etc"])
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("running unshare: {e}")),
    }
}

#[test]
fn the_allowlist_admits_only_the_keys_it_matches() {
    require_root();
    let install = Installation::new("tun-allow");
    let scratch = TempDir::new("tun-allow");
    if let Err(why) = overlay_supported(&scratch) {
        cni_wasm_tests::skip(
            "the_allowlist_admits_only_the_keys_it_matches",
            &format!("no overlay mount for a private /etc ({why})"),
        );
        return;
    }
    let wrapper =
        with_allowlist(&install.plugin("tuning"), "\n  ^net\\.core\\.somaxconn$  \nconf\\.IFNAME\\.arp_\n", &scratch);
    let plugin = Plugin { program: wrapper, dir: install.dir.clone() };
    let ns = container("tun-allow");
    let dir = TempDir::new("tun-allow-data");

    let allowed = config(
        "1.0.0",
        "tnet",
        &ns,
        &dir,
        json!({"sysctl": {"net.core.somaxconn": "321", "net.ipv4.conf.IFNAME.arp_filter": "1"}}),
    );
    plugin.ok("ADD", "c1", &ns, &allowed);
    assert_eq!(kernel::sysctl(&ns, "net/core/somaxconn"), "321");
    plugin.ok("DEL", "c1", &ns, &allowed);

    let before = container_state(&ns);
    let refused = config(
        "1.0.0",
        "tnet",
        &ns,
        &dir,
        json!({"sysctl": {"net.core.somaxconn": "321", "net.ipv4.conf.eth0.proxy_arp": "1"}, "mtu": 1300}),
    );
    let outcome = plugin.run("ADD", "c1", &ns.path(), &refused, "");
    assert!(!outcome.success, "{}", outcome.stdout);
    assert_eq!(
        outcome.json()["msg"],
        "Sysctl net.ipv4.conf.eth0.proxy_arp is not allowed. Only the following sysctls are allowed: [^net\\.core\\.somaxconn$ conf\\.IFNAME\\.arp_]"
    );
    assert_same(&container_state(&ns), &before, "nothing changed");

    // Without the file every net key is allowed (the same plugin, no wrapper).
    Plugin::ours(&install).ok("ADD", "c2", &ns, &refused);
    assert_eq!(kernel::sysctl(&ns, "net/ipv4/conf/eth0/proxy_arp"), "1");
}

#[test]
fn a_failed_add_changes_nothing() {
    require_root();
    let install = Installation::new("tun-fail");
    let ours = Plugin::ours(&install);
    let ns = container("tun-fail");
    let dir = TempDir::new("tun-fail");
    let before = container_state(&ns);
    // The sysctls, the MAC and promisc mode are set before the MTU, which
    // a veth refuses.
    let extra = json!({"sysctl": {"net.core.somaxconn": "555", "net.ipv4.conf.IFNAME.proxy_arp": "1"},
                       "mac": "c2:11:22:33:44:66", "promisc": true, "mtu": 70000, "allmulti": true});
    let outcome = ours.run("ADD", "c1", &ns.path(), &config("1.0.0", "tnet", &ns, &dir, extra.clone()), "");
    assert!(!outcome.success);
    assert!(outcome.json()["msg"].as_str().unwrap().contains("failed to set MTU 70000"), "{}", outcome.stdout);
    assert_same(&container_state(&ns), &before, "after a failed ADD");
    assert!(backups(&dir).is_empty(), "no backup left");

    // A second attachment's failure leaves the first one's backup alone.
    let good = config("1.0.0", "tnet", &ns, &dir, json!({"mtu": 1400}));
    ours.ok("ADD", "c1", &ns, &good);
    let saved = backups(&dir);
    let outcome = ours.run("ADD", "c1", &ns.path(), &config("1.0.0", "tnet", &ns, &dir, extra), "");
    assert!(!outcome.success);
    assert_eq!(backups(&dir), saved, "the earlier backup is as it was");
    ours.ok("DEL", "c1", &ns, &good);
    assert_same(&container_state(&ns), &before, "after DEL");
}

#[test]
fn del_succeeds_twice_never_added_and_after_the_netns_is_gone() {
    require_root();
    let install = Installation::new("tun-del");
    let ours = Plugin::ours(&install);
    let dir = TempDir::new("tun-del");
    let ns = container("tun-del");
    let added = config("1.0.0", "tnet", &ns, &dir, all_settings());
    ours.ok("ADD", "c1", &ns, &added);
    let path = ns.path();
    drop(ns);
    for (id, netns) in
        [("c1", path.as_str()), ("c1", path.as_str()), ("never-added", path.as_str()), ("never-added", ""), ("c1", "")]
    {
        let outcome = ours.run("DEL", id, netns, &added, "");
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    assert!(backups(&dir).is_empty(), "the backup of a vanished namespace is removed");

    // A live attachment, deleted twice: restored once, then nothing to do.
    let ns = container("tun-del-live");
    let before = container_state(&ns);
    let live = config("1.0.0", "tnet", &ns, &dir, all_settings());
    ours.ok("ADD", "c2", &ns, &live);
    for _ in 0..2 {
        ours.ok("DEL", "c2", &ns, &live);
        assert_same(&container_state(&ns), &before, "after DEL");
    }
    assert!(backups(&dir).is_empty());
}

#[test]
fn check_fails_when_a_setting_drifts() {
    require_root();
    let install = Installation::new("tun-chk");
    let ours = Plugin::ours(&install);
    let ns = container("tun-chk");
    let dir = TempDir::new("tun-chk");
    // An upper-case MAC: the reference compares text and never passes.
    let mut settings = all_settings();
    settings["mac"] = json!("C2:11:22:33:44:77");
    let tuned = config("1.0.0", "tnet", &ns, &dir, settings);
    ours.ok("ADD", "c1", &ns, &tuned);
    ours.ok("CHECK", "c1", &ns, &tuned);
    let drifts: [(&[&str], &str); 4] = [
        (
            &["sysctl", "-qw", "net.core.somaxconn=501"],
            "configured value of /proc/sys/net/core/somaxconn is 500, current value is 501",
        ),
        (&["ip", "link", "set", "eth0", "mtu", "1500"], "configured MTU of eth0 is 1400, current value is 1500"),
        (
            &["ip", "link", "set", "eth0", "allmulticast", "off"],
            "all-multicast mode of eth0 is true, current value is false",
        ),
        (
            &["ip", "link", "set", "eth0", "address", "c2:11:22:33:44:78"],
            "Ethernet of eth0 is C2:11:22:33:44:77, current value is c2:11:22:33:44:78",
        ),
    ];
    let undo: [&[&str]; 4] = [
        &["sysctl", "-qw", "net.core.somaxconn=500"],
        &["ip", "link", "set", "eth0", "mtu", "1400"],
        &["ip", "link", "set", "eth0", "allmulticast", "on"],
        &["ip", "link", "set", "eth0", "address", "c2:11:22:33:44:77"],
    ];
    for ((change, expected), undo) in drifts.iter().zip(undo) {
        ns.exec(change[0], &change[1..]);
        let outcome = ours.run("CHECK", "c1", &ns.path(), &tuned, "");
        assert!(!outcome.success);
        assert!(outcome.json()["msg"].as_str().unwrap().contains(expected), "{}", outcome.stdout);
        ns.exec(undo[0], &undo[1..]);
        ours.ok("CHECK", "c1", &ns, &tuned);
    }
    // Promiscuous mode must be off when not configured (as the reference).
    let plain = config("1.0.0", "tnet", &ns, &dir, json!({}));
    ns.exec("ip", &["link", "set", "eth0", "promisc", "on"]);
    let outcome = ours.run("CHECK", "c1", &ns.path(), &plain, "");
    assert!(
        outcome.json()["msg"].as_str().unwrap().contains("configured promisc is false, current value is 1"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn bad_configs_are_cni_errors() {
    require_root();
    let install = Installation::new("tun-bad");
    let ours = Plugin::ours(&install);
    let ns = container("tun-bad");
    let dir = TempDir::new("tun-bad");
    let duplicate = config("1.0.0", "tnet", &ns, &dir, json!({})).replacen(
        "\"type\":\"tuning\"",
        "\"type\":\"tuning\",\"sysctl\":{\"net.core.somaxconn\":\"1\",\"net.core.somaxconn\":\"2\"}",
        1,
    );
    let mut no_prev: Value = serde_json::from_str(&config("1.0.0", "tnet", &ns, &dir, json!({"mtu": 1400}))).unwrap();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    let cases = [
        (duplicate, "duplicated sysctl keys are not allowed"),
        (no_prev.to_string(), "Required prevResult missing"),
        (config("1.0.0", "tnet", &ns, &dir, json!({"mac": "not-a-mac"})), "invalid args not-a-mac for MAC addr"),
        (config("1.0.0", "tnet", &ns, &dir, json!({"sysctl": {"net.core.somaxconn": 5}})), "failed to load netconf"),
    ];
    let before = container_state(&ns);
    for (config, expected) in cases {
        assert!(config.contains("tuning"));
        let outcome = ours.run("ADD", "c1", &ns.path(), &config, "");
        assert!(!outcome.success);
        assert!(outcome.json()["msg"].as_str().unwrap().contains(expected), "{expected}: {}", outcome.stdout);
    }
    assert_same(&container_state(&ns), &before, "nothing changed");
    assert!(backups(&dir).is_empty());
}

#[test]
fn each_implementation_restores_the_others_backup() {
    require_root();
    let install = Installation::new("tun-interop");
    let (ours, theirs) = (Plugin::ours(&install), Plugin::reference(&install));
    let settings = json!({"mac": "c2:11:22:33:44:99", "mtu": 1300, "promisc": true, "allmulti": true});
    for (adder, deleter) in [(&theirs, &ours), (&ours, &theirs)] {
        let ns = container("tun-interop");
        let dir = TempDir::new("tun-interop");
        let before = container_state(&ns);
        let config = config("1.0.0", "tnet", &ns, &dir, settings.clone());
        adder.ok("ADD", "c1", &ns, &config);
        deleter.ok("DEL", "c1", &ns, &config);
        assert_same(
            &container_state(&ns),
            &before,
            &format!("ADD by {} then DEL by {}", adder.program.display(), deleter.program.display()),
        );
        assert!(backups(&dir).is_empty());
    }
}

#[test]
fn gc_removes_backups_of_this_networks_attachments_not_listed() {
    require_root();
    let install = Installation::new("tun-gc");
    let ours = Plugin::ours(&install);
    let dir = TempDir::new("tun-gc");
    let namespaces: Vec<Netns> = (0..3).map(|_| container("tun-gc")).collect();
    for (id, network, ns) in
        [("keep", "tnet", &namespaces[0]), ("stale", "tnet", &namespaces[1]), ("other", "othernet", &namespaces[2])]
    {
        ours.ok("ADD", id, ns, &config("1.0.0", network, ns, &dir, json!({"mtu": 1400})));
    }
    // A backup the reference wrote names no network: GC cannot tell whose.
    std::fs::write(dir.join("refid_eth0.json"), "{\n \"mtu\": 1500\n}").unwrap();
    let gc = json!({"cniVersion": "1.1.0", "name": "tnet", "type": "tuning", "dataDir": dir.display(),
                    "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]});
    let outcome = ours.run("GC", "", "", &gc.to_string(), "");
    assert!(outcome.success, "GC: {} {}", outcome.stdout, outcome.stderr);
    let names: Vec<String> = backups(&dir).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["keep_eth0.json", "other_eth0.json", "refid_eth0.json"]);
    let status = ours.run("STATUS", "", "", &gc.to_string(), "");
    assert!(status.success, "STATUS: {}", status.stdout);
}
