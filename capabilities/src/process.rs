//! Running another program: a delegate plugin that is a native executable,
//! or the plugin compiler. Stdin is written and stdout collected on helper
//! threads so a chatty child cannot deadlock us; stderr passes through to
//! ours, as the CNI spec asks for delegate logs; a child that outlives the
//! deadline is killed.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Empty unless stderr was captured (see [`run_tool`]).
    pub stderr: Vec<u8>,
}

/// Runs `program` with our environment plus `env` overrides; its stderr is
/// ours (delegate plugins log there).
pub fn run(program: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8], deadline: Instant) -> Result<Output> {
    spawn_and_wait(None, program, args, env, stdin, false, deadline)
}

/// Runs a system tool (nft, iptables-restore) inside `ns`, capturing its
/// stderr for the error message. The child is forked from a thread inside
/// the namespace, so it starts there.
pub fn run_tool(ns: &Netns, program: &Path, args: &[&str], stdin: &[u8], deadline: Instant) -> Result<Output> {
    let start = Instant::now();
    let output = spawn_and_wait(Some(ns), program, args, &[], stdin, true, deadline);
    // CNI_WASM_TIMING=1 (see host/src/timing.rs): what each tool costs.
    if std::env::var_os("CNI_WASM_TIMING").is_some() {
        eprintln!(
            "cni-wasm timing:   tool {} {}: {:.3} ms",
            program.display(),
            args.join(" "),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    output
}

/// Finds a system tool in PATH or the usual sbin directories (a runtime
/// may run plugins with a minimal PATH).
pub fn find_tool(name: &str) -> Result<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::new(ErrorKind::Unsupported, format!("{name} is not installed (not in PATH or /usr/sbin)"))
        })
}

fn spawn_and_wait(
    ns: Option<&Netns>,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
    capture_stderr: bool,
    deadline: Instant,
) -> Result<Output> {
    let doing = format!("running {}", program.display());
    let mut attempts = 0;
    let mut child = loop {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
        command.stderr(if capture_stderr { Stdio::piped() } else { Stdio::inherit() });
        for (key, value) in env {
            command.env(key, value);
        }
        let spawned = match ns {
            Some(ns) if !ns.is_host() => ns.run(&doing, move || command.spawn()),
            _ => command.spawn().map_err(|e| Error::from_io(&e, &doing)),
        };
        match spawned {
            Ok(child) => break child,
            // The binary is being replaced (e.g. by an upgrade); libcni
            // retries this too.
            Err(e) if e.errno == Some(libc::ETXTBSY) && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    };

    let mut child_stdin = child.stdin.take().expect("piped stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A child that does not read its stdin closes the pipe: not our error.
        let _ = child_stdin.write_all(&input);
    });
    let mut child_stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = child_stdout.read_to_end(&mut out);
        out
    });
    let error_reader = child.stderr.take().map(|mut child_stderr| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = child_stderr.read_to_end(&mut out);
            out
        })
    });

    // Block on the child (no polling latency) on a helper thread, so the
    // deadline can still stop it.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match finished.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(Error::from_io(&e, &doing)),
        Err(_) => {
            // SAFETY: signalling our own child by pid; it cannot have been
            // reaped (the waiter has not returned), so the pid is still ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            return Err(Error::new(ErrorKind::Timeout, format!("{doing}: killed at the deadline")));
        }
    };
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = error_reader.map(|r| r.join().unwrap_or_default()).unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}
