//! Running a CNI plugin binary as a runtime does: CNI_* environment, config
//! on stdin, result or error JSON on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One invocation's environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
    /// Extra variables (CNI_WASM_*, or unsetting via empty values).
    pub extra: Vec<(String, String)>,
    /// Run the plugin inside this named namespace, which then plays the
    /// host: tests that change "host" links never touch the real host.
    pub host_netns: Option<String>,
}

impl Env {
    pub fn new(command: &str, container_id: &str, netns: &str, ifname: &str, path: &Path) -> Env {
        Env {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            args: String::new(),
            path: path.display().to_string(),
            extra: Vec::new(),
            host_netns: None,
        }
    }

    pub fn var(mut self, key: &str, value: impl Into<String>) -> Env {
        self.extra.push((key.to_string(), value.into()));
        self
    }

    pub fn with_command(&self, command: &str) -> Env {
        Env { command: command.into(), ..self.clone() }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// The CNI error code, for a failed run.
    pub fn code(&self) -> u64 {
        assert!(!self.success, "expected a failure, got {}", self.stdout);
        self.json()["code"].as_u64().expect("error JSON has a code")
    }
}

/// Runs `program` (a plugin binary, or a link to one) with a clean
/// environment plus the CNI variables.
pub fn run(program: &Path, env: &Env, stdin: &str) -> Outcome {
    run_measured(program, env, stdin).0
}

/// [`run`], also returning the process's peak resident set size in KiB
/// (its rusage at exit, which `ip netns exec` shares: it execs the plugin).
// The child is reaped by wait4, which std cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_measured(program: &Path, env: &Env, stdin: &str) -> (Outcome, u64) {
    let mut command = match &env.host_netns {
        Some(name) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", name]).arg(program);
            c
        }
        None => Command::new(program),
    };
    command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (key, value) in [
        ("CNI_COMMAND", &env.command),
        ("CNI_CONTAINERID", &env.container_id),
        ("CNI_NETNS", &env.netns),
        ("CNI_IFNAME", &env.ifname),
        ("CNI_ARGS", &env.args),
        ("CNI_PATH", &env.path),
    ] {
        if !value.is_empty() {
            command.env(key, value);
        }
    }
    for (key, value) in &env.extra {
        command.env(key, value);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
    // A plugin may rightly exit before reading stdin (bad environment).
    match child.stdin.take().expect("stdin").write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
        _ => {}
    }
    // Read both pipes to the end, then reap the child with wait4 for its
    // rusage (std's wait does not return it).
    let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    let err = reader.join().unwrap_or_default();
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid, and the pid is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "waiting for {}", program.display());
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (Outcome { success, stdout: out, stderr: err }, usage.ru_maxrss as u64)
}

/// A directory with `cni-wasm install`ed into it (a fresh temp dir).
pub struct Installation {
    pub dir: PathBuf,
    _temp: crate::TempDir,
}

impl Installation {
    pub fn new(tag: &str) -> Installation {
        let temp = crate::TempDir::new(tag);
        let dir = temp.path.clone();
        let status = Command::new(crate::cni_wasm_binary())
            .arg("install")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("running cni-wasm install");
        assert!(status.success(), "cni-wasm install failed");
        Installation { dir, _temp: temp }
    }

    pub fn plugin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Adds a third-party component as `<name>.wasm`, and a `<name>` link
    /// to the host so the runtime can run it directly.
    pub fn add_component(&self, name: &str, wasm: &Path) -> PathBuf {
        std::fs::copy(wasm, self.dir.join(format!("{name}.wasm"))).expect("copying a component");
        let link = self.dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("cni-wasm", &link).expect("linking a plugin name");
        link
    }
}

/// The `supportedVersions` a plugin binary answers VERSION with.
pub fn supported_versions(program: &Path) -> Vec<String> {
    let env = Env::new("VERSION", "", "", "", program.parent().expect("a plugin lives in a directory"));
    let outcome = run(program, &env, r#"{"cniVersion": "1.0.0"}"#);
    assert!(outcome.success, "VERSION of {}: {}", program.display(), outcome.stdout);
    let versions = outcome.json()["supportedVersions"].as_array().expect("supportedVersions is a list").clone();
    versions.iter().map(|v| v.as_str().expect("a version string").to_string()).collect()
}

/// Asserts that ours answers VERSION with the reference's versions and 1.1.0.
#[track_caller]
pub fn assert_versions_extend_the_references(install: &Installation, plugin: &str) {
    let ours = supported_versions(&install.plugin(plugin));
    let mut expected = supported_versions(&crate::reference(plugin));
    if !expected.iter().any(|v| v == "1.1.0") {
        expected.push("1.1.0".into());
    }
    assert_eq!(ours, expected, "{plugin}: VERSION");
}

/// Every CNI version upstream's plugins support today.
pub const UPSTREAM_VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// For plugins the Debian package lacks (dummy, tap): ours answers VERSION
/// with upstream's list.
#[track_caller]
pub fn assert_versions_are_upstreams(install: &Installation, plugin: &str) {
    assert_eq!(supported_versions(&install.plugin(plugin)), UPSTREAM_VERSIONS, "{plugin}: VERSION");
}

/// The host's audit log (CNI_WASM_AUDIT): one line per capability call,
/// so a test can say what an invocation read.
pub struct Audit {
    dir: crate::TempDir,
}

impl Audit {
    pub fn new(tag: &str) -> Audit {
        Audit { dir: crate::TempDir::new(&format!("{tag}-audit")) }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// `env`, logging to this audit log.
    pub fn on(&self, env: Env) -> Env {
        env.var("CNI_WASM_AUDIT", self.path().display().to_string())
    }

    /// How many `interface.function` calls were logged since the last
    /// count (e.g. "netfilter.nft-list-table"); starts the log afresh.
    pub fn take_count(&self, call: &str) -> usize {
        let text = std::fs::read_to_string(self.path()).unwrap_or_default();
        let _ = std::fs::remove_file(self.path());
        let needle = format!("\"{call}\"");
        text.lines().filter(|l| l.contains(&needle)).count()
    }
}
