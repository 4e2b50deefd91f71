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

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
}

/// Runs `program` with our environment plus `env` overrides.
pub fn run(program: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8], deadline: Instant) -> Result<Output> {
    let doing = format!("running {}", program.display());
    let mut attempts = 0;
    let mut child = loop {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        match command.spawn() {
            Ok(child) => break child,
            // The binary is being replaced (e.g. by an upgrade); libcni
            // retries this too.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(Error::from_io(&e, &doing)),
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

    let mut wait = Duration::from_micros(500);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::new(ErrorKind::Timeout, format!("{doing}: killed at the deadline")));
            }
            Ok(None) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::from_io(&e, &doing)),
        }
    };
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    Ok(Output { status, stdout })
}
