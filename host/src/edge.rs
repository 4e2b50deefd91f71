//! The CNI process edge: what happens when a runtime runs us as a plugin.
//! Environment and stdin in, exactly one JSON document (result or error) on
//! stdout, exit status 0 or 1.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use cni_wasm_capabilities::netns::Netns;

use crate::context::Origin;
use crate::dispatch::{self, Response};
use crate::policy::PolicyFile;
use crate::process::Process;
use crate::protocol::config::RequestConfig;
use crate::protocol::env::{Command, Environment};
use crate::protocol::error::{CniError, code};
use crate::protocol::{json, version};
use crate::registry::Registry;
use crate::runtime::Runtime;

/// Runs plugin `plugin` for the invocation in our environment.
pub fn main(plugin: &str, invoked_from: Option<PathBuf>) -> ExitCode {
    let mut config_version = None;
    match run(plugin, invoked_from, &mut config_version) {
        Ok(output) => {
            if let Some(output) = output {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(output.as_bytes());
                let _ = stdout.flush();
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            // Like the Go skel: code, msg, details (no cniVersion).
            let text = json::to_go_pretty(&error.to_json(None));
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            crate::log::log_at!(Debug, plugin, "failed (config version {config_version:?}): {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    plugin: &str,
    invoked_from: Option<PathBuf>,
    config_version: &mut Option<String>,
) -> Result<Option<String>, CniError> {
    let runtime = Runtime::new().map_err(|e| CniError::internal(format!("starting wasmtime: {e:#}")))?;
    crate::timing::mark("engine and linker");
    let policy = PolicyFile::load().map_err(CniError::internal)?;
    crate::timing::mark("policy");

    if std::env::var_os("CNI_COMMAND").is_none_or(|c| c.is_empty()) {
        // As the Go skel: no command prints what the plugin is, to stderr.
        let search = invoked_from.into_iter().collect();
        let process = Rc::new(Process::new(runtime, Registry::new(search), policy));
        let versions = versions(&process, plugin)?;
        eprintln!("CNI {plugin} plugin (cni-wasm {})", env!("CARGO_PKG_VERSION"));
        eprintln!("CNI protocol versions supported: {}", versions.join(", "));
        return Ok(None);
    }
    let env = Environment::from_process()?;
    let search: Vec<PathBuf> = invoked_from.into_iter().chain(env.path.iter().cloned()).collect();
    let process = Rc::new(Process::new(runtime, Registry::new(search), policy));
    // Never dropped: the process exits right after answering.
    std::mem::forget(process.clone());

    if env.command == Command::Version {
        let versions = versions(&process, plugin)?;
        let reply = serde_json::json!({ "cniVersion": version::CURRENT, "supportedVersions": versions });
        return Ok(Some(format!("{reply}\n")));
    }

    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("error reading from stdin: {e}")))?;
    let config = RequestConfig::parse(stdin)?;
    *config_version = Some(config.cni_version.clone());
    if env.command.is_attachment() {
        check_not_own_netns(&env, &process)?;
    }
    let version = config.cni_version.clone();
    crate::timing::mark("stdin and config");
    match dispatch::invoke(&process, plugin, env, config, Origin::default())? {
        Response::Added(result) => {
            let output = json::to_go_pretty(&result.to_json(&version)?);
            crate::timing::mark("result");
            Ok(Some(output))
        }
        Response::Versions(_) | Response::Done => Ok(None),
    }
}

fn versions(process: &Rc<Process>, plugin: &str) -> Result<Vec<String>, CniError> {
    let env = Environment::read(|key| (key == "CNI_COMMAND").then(|| "VERSION".to_string()))?;
    match dispatch::invoke(process, plugin, env, RequestConfig::empty(), Origin::default())? {
        Response::Versions(versions) => Ok(versions),
        _ => unreachable!("VERSION answers with versions"),
    }
}

/// CNI_NETNS must not be our own namespace (unless CNI_NETNS_OVERRIDE):
/// a plugin told to reconfigure "the container" would reconfigure the host.
/// The Go skel checks this only after ADD/DEL has run; we check before.
fn check_not_own_netns(env: &Environment, process: &Process) -> Result<(), CniError> {
    let Some(path) = env.netns.as_deref() else { return Ok(()) };
    if env.netns_override || !cni_wasm_capabilities::netns::exists(path) {
        return Ok(());
    }
    let Ok(target) = Netns::open(path) else { return Ok(()) };
    match target.same_as(&process.session.host_ns) {
        Ok(true) => {
            Err(CniError::new(code::INVALID_NETNS, "plugin's netns and netns from CNI_NETNS should not be the same"))
        }
        _ => Ok(()),
    }
}
