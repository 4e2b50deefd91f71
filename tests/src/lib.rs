//! What the end-to-end tests and the benchmark share: running plugins the
//! way a runtime does, scratch network namespaces, and where things are.

pub mod dhcp;
pub mod direct;
pub mod hostile;
pub mod kernel;
pub mod lane;
pub mod libcni;
pub mod netns;
pub mod plugin;
pub mod result;
pub mod side;

use std::path::{Path, PathBuf};

/// The workspace's target directory (test binaries live in
/// target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The release host binary that `cargo build --release` produces.
pub fn cni_wasm_binary() -> PathBuf {
    let path = target_dir().join("release").join("cni-wasm");
    assert!(path.is_file(), "{} is missing: run `cargo build --release` first (tests/run.sh does)", path.display());
    path
}

/// A test-only plugin component, built by host/build.rs but not embedded.
pub fn test_component(name: &str) -> PathBuf {
    let path = target_dir().join("wasm-plugins/wasm32-wasip2/release").join(format!("cni_test_{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run `cargo build --release` first", path.display());
    path
}

/// Where the Debian package `containernetworking-plugins` puts the Go
/// reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

pub fn reference(plugin: &str) -> PathBuf {
    let path = Path::new(REFERENCE_DIR).join(plugin);
    assert!(path.is_file(), "{} is missing: apt-get install containernetworking-plugins", path.display());
    path
}

pub fn reference_available() -> bool {
    Path::new(REFERENCE_DIR).join("loopback").is_file()
}

/// Whether CNI version `version` is `minimum` or later ("0.4.0" >= "0.3.1").
pub fn version_at_least(version: &str, minimum: &str) -> bool {
    let parse = |v: &str| v.split('.').map(|part| part.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    parse(version) >= parse(minimum)
}

/// These tests configure the kernel; they need root and say so.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc_geteuid() };
    assert_eq!(euid, 0, "the end-to-end tests create network namespaces and must run as root");
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A scratch directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "cni-wasm-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A store directory's files as (name, contents), sorted, for comparing the
/// host-local stores of two implementations.
pub fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let contents = std::fs::read_to_string(e.path()).unwrap_or_default();
                (name, contents)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// The probe test plugin installed as a third-party `probe.wasm`, with an
/// admin policy and a private artifact cache.
pub struct Probe {
    pub install: plugin::Installation,
    pub plugin: PathBuf,
    pub policy: PathBuf,
    pub cache: TempDir,
    _policy_dir: TempDir,
}

impl Probe {
    pub fn new(tag: &str, policy: serde_json::Value) -> Probe {
        require_root();
        let install = plugin::Installation::new(tag);
        let plugin = install.add_component("probe", &test_component("probe"));
        let policy_dir = TempDir::new(tag);
        let policy_path = policy_dir.join("policy.json");
        std::fs::write(&policy_path, policy.to_string()).expect("writing a policy");
        Probe { install, plugin, policy: policy_path, cache: TempDir::new(tag), _policy_dir: policy_dir }
    }

    /// An environment for the probe, with its policy and cache.
    pub fn env(&self, command: &str, container: &str, netns: &str) -> plugin::Env {
        plugin::Env::new(command, container, netns, "eth0", &self.install.dir)
            .var("CNI_WASM_POLICY", self.policy.display().to_string())
            .var("CNI_WASM_CACHE_DIR", self.cache.display())
    }

    /// A probe config running `steps` on ADD.
    pub fn config(steps: &[&str], extra: serde_json::Value) -> String {
        let mut config =
            serde_json::json!({"cniVersion": "1.0.0", "name": "probe-net", "type": "probe", "probe": {"steps": steps}});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                config.insert(k.clone(), v.clone());
            }
        }
        config.to_string()
    }
}

/// Names of the links in a namespace.
pub fn link_names(ns: &netns::Netns) -> Vec<String> {
    ns.ip_json(&["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until no `veth…` link the plugins made is left in `ns`. The host
/// end of a container's veth goes when the container's namespace is
/// deleted, but the kernel destroys a deleted namespace's links
/// asynchronously (its cleanup_net work, slow on a loaded machine).
#[track_caller]
pub fn wait_until_no_random_veths(ns: &netns::Netns, what: &str) {
    kernel::eventually(kernel::SETTLE, what, || {
        let veths: Vec<String> = link_names(ns).into_iter().filter(|l| kernel::is_random_veth(l)).collect();
        if veths.is_empty() { Ok(()) } else { Err(format!("links {veths:?}")) }
    });
}

/// Reports a skipped test on the real stderr (libtest captures print
/// macros of passing tests, and a skip must never pass silently).
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {reason}");
}
