//! Driving network configuration lists through the real libcni, as container
//! runtimes do: `tests/libcni/main.go` (the `cni-libcni` driver, see its
//! README) built once per test run with the Debian Go toolchain and libcni
//! sources, and a small runtime around it.
//!
//! libcni finds the plugins in the bin dirs, injects `name`, `cniVersion`,
//! `prevResult` and `runtimeConfig` (capability arguments, only for plugins
//! declaring them), chains the plugins, caches the ADD result and feeds it
//! back to CHECK and DEL. Debian 12 ships libcni 1.1.2: no GC, no STATUS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

/// Where the Debian package golang-github-appc-cni-dev puts libcni, as a
/// GOPATH.
pub const GOPATH: &str = "/usr/share/gocode";

const INSTALL: &str = "apt-get install -y golang-go golang-github-appc-cni-dev (scripts/setup.sh does)";

/// The driver's source directory.
pub fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("libcni")
}

/// The `cni-libcni` driver, built on first use in this process (into
/// `<target>/libcni/cni-libcni`, with its Go build cache in
/// `<target>/libcni/go-cache`), and rebuilt only when `main.go` is newer than
/// the binary. Concurrent builds (several test binaries) each build to a
/// private name and rename it into place, so a reader never sees a partial
/// binary.
pub fn driver() -> PathBuf {
    static DRIVER: OnceLock<PathBuf> = OnceLock::new();
    DRIVER.get_or_init(build).clone()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build() -> PathBuf {
    let source = source_dir();
    let main = source.join("main.go");
    let out_dir = crate::target_dir().join("libcni");
    let binary = out_dir.join("cni-libcni");
    match (modified(&main), modified(&binary)) {
        (Some(src), Some(bin)) if bin >= src => return binary,
        (None, _) => panic!("{} is missing", main.display()),
        _ => {}
    }
    let libcni = Path::new(GOPATH).join("src/github.com/containernetworking/cni/libcni");
    assert!(libcni.is_dir(), "libcni sources are missing ({}): {INSTALL}", libcni.display());
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("creating {}: {e}", out_dir.display()));
    let temp = out_dir.join(format!(".cni-libcni.{}.tmp", std::process::id()));
    // GOPATH mode: libcni and its packages resolve from the Debian GOPATH;
    // no go.mod, no module proxy, no network.
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&temp)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", out_dir.join("go-cache"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("running `go build` for the libcni driver ({e}): Go is missing? {INSTALL}"));
    if !output.status.success() {
        let _ = std::fs::remove_file(&temp);
        panic!(
            "building the libcni driver ({}) failed: {}\n(needs Go and libcni: {INSTALL})",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&temp, &binary).unwrap_or_else(|e| panic!("renaming {} into place: {e}", temp.display()));
    binary
}

/// One run of the driver.
#[derive(Debug)]
pub struct Invocation {
    /// The exit code: 0 success, 1 the operation failed, 2 bad command line,
    /// 3 not supported by this libcni.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    /// Ok(stdout), or Err(stderr) (which, for a CNI error, ends with its
    /// JSON: see [`cni_error`]).
    pub fn into_result(self) -> Result<String, String> {
        if self.code == 0 { Ok(self.stdout) } else { Err(self.stderr.trim_end().to_string()) }
    }
}

/// The CNI error (`{"code":N,"msg":...,"details":...}`) a plugin returned, from
/// the driver's stderr (its last line), if the failure was one.
pub fn cni_error(stderr: &str) -> Option<serde_json::Value> {
    let last = stderr.trim_end().lines().last()?;
    let value: serde_json::Value = serde_json::from_str(last).ok()?;
    value.get("code")?.as_u64()?;
    Some(value)
}

/// A container runtime in miniature: bin dirs to find plugins in, and its own
/// libcni cache directory (results cached by ADD, read back by CHECK/DEL).
pub struct Runtime {
    bin_dirs: String,
    cache_dir: crate::TempDir,
    env: Vec<(String, String)>,
    /// A scratch namespace the runtime runs in, playing the host.
    host_netns: Option<String>,
}

impl Runtime {
    /// `bin_dirs` is colon-separated, searched in order (libcni's CNI_PATH).
    pub fn new(bin_dirs: &str) -> Runtime {
        Runtime {
            bin_dirs: bin_dirs.to_string(),
            cache_dir: crate::TempDir::new("libcni"),
            env: Vec::new(),
            host_netns: None,
        }
    }

    /// Runs libcni (and so every plugin) inside the named namespace, which
    /// then plays the host: bridges, iptables and sysctls stay inside it.
    pub fn in_netns(mut self, name: &str) -> Runtime {
        self.host_netns = Some(name.to_string());
        self
    }

    /// An extra environment variable for the driver, which libcni passes on
    /// to the plugins (otherwise they get only PATH and the CNI_* variables).
    pub fn env(mut self, key: &str, value: &str) -> Runtime {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// libcni's cache directory for this runtime.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir.path
    }

    /// What libcni cached for an attachment after ADD (its `result` is the
    /// one CHECK and DEL receive as prevResult), if anything.
    pub fn cached(&self, network: &str, container_id: &str, ifname: &str) -> Option<serde_json::Value> {
        let path = self.cache_dir().join("results").join(format!("{network}-{container_id}-{ifname}"));
        let text = std::fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).expect("libcni's cache file is JSON"))
    }

    fn write_conflist(&self, conflist: &str) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = self.cache_dir.join("conflists");
        std::fs::create_dir_all(&dir).expect("creating the conflist dir");
        let path = dir.join(format!("{}.conflist", COUNTER.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, conflist).expect("writing a conflist");
        path
    }

    /// Runs the driver: `command` with the conflist, this runtime's bin dirs
    /// and cache, then `args` (e.g. `--container-id`, `--cap`, `--valid`).
    pub fn invoke(&self, command: &str, conflist: &str, args: &[String]) -> Invocation {
        let conflist = self.write_conflist(conflist);
        let mut cmd = match &self.host_netns {
            Some(name) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", name]).arg(driver());
                cmd
            }
            None => Command::new(driver()),
        };
        cmd.arg(command)
            .arg("--conflist")
            .arg(&conflist)
            .arg("--bin-dir")
            .arg(&self.bin_dirs)
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let output = cmd.output().expect("running the libcni driver");
        let _ = std::fs::remove_file(&conflist);
        Invocation {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn attachment(
        container_id: &str,
        netns_path: &str,
        ifname: &str,
        caps: &[(&str, serde_json::Value)],
    ) -> Vec<String> {
        let mut args = vec![
            "--container-id".to_string(),
            container_id.to_string(),
            "--netns".to_string(),
            netns_path.to_string(),
            "--ifname".to_string(),
            ifname.to_string(),
        ];
        for (name, value) in caps {
            args.push("--cap".to_string());
            args.push(format!("{name}={value}"));
        }
        args
    }

    /// ADD through libcni: the final result, converted to the conflist's
    /// cniVersion. Err is the driver's stderr.
    pub fn add(
        &self,
        conflist: &str,
        container_id: &str,
        netns_path: &str,
        ifname: &str,
        caps: &[(&str, serde_json::Value)],
    ) -> Result<serde_json::Value, String> {
        let stdout =
            self.invoke("add", conflist, &Self::attachment(container_id, netns_path, ifname, caps)).into_result()?;
        serde_json::from_str(&stdout).map_err(|e| format!("the driver printed no JSON result ({e}): {stdout:?}"))
    }

    /// DEL through libcni (plugins in reverse order, with the cached result
    /// as prevResult; then the cache entry is removed).
    pub fn del(
        &self,
        conflist: &str,
        container_id: &str,
        netns_path: &str,
        ifname: &str,
        caps: &[(&str, serde_json::Value)],
    ) -> Result<(), String> {
        self.invoke("del", conflist, &Self::attachment(container_id, netns_path, ifname, caps)).into_result().map(drop)
    }

    /// CHECK through libcni (with the cached result as prevResult).
    pub fn check(
        &self,
        conflist: &str,
        container_id: &str,
        netns_path: &str,
        ifname: &str,
        caps: &[(&str, serde_json::Value)],
    ) -> Result<(), String> {
        self.invoke("check", conflist, &Self::attachment(container_id, netns_path, ifname, caps))
            .into_result()
            .map(drop)
    }

    /// GC through libcni, keeping the `(container id, ifname)` attachments.
    /// libcni 1.1.2 has no GC: today this is always an Err saying so (the
    /// driver exits 3).
    pub fn gc(&self, conflist: &str, valid: &[(&str, &str)]) -> Result<(), String> {
        let args: Vec<String> =
            valid.iter().flat_map(|(id, ifname)| ["--valid".to_string(), format!("{id}/{ifname}")]).collect();
        self.invoke("gc", conflist, &args).into_result().map(drop)
    }
}
