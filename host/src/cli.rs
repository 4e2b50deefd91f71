//! `cni-wasm` run under its own name: install, list, new, inspect, version,
//! help.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use crate::imports::capability_name;
use crate::policy::PolicyFile;
use crate::process::Process;
use crate::registry::{self, Registry};
use crate::runtime::Runtime;

const HELP: &str = "\
cni-wasm: CNI plugins as sandboxed WebAssembly components

Installed under a plugin's name (a link to this binary in CNI_PATH), cni-wasm
is that CNI plugin. Under its own name it is this tool:

  cni-wasm install DIR [--force]  put cni-wasm, cni-wasm-compile and a link for
                                  every built-in plugin into DIR (e.g. /opt/cni/bin);
                                  --force replaces files that are not ours
  cni-wasm list                   the built-in plugins and what they may do
  cni-wasm run PLUGIN             act as PLUGIN (for testing without links)
  cni-wasm new PLUGIN [DIR] [--sdk PATH]
                                  write a crate for a third-party plugin of type
                                  PLUGIN into DIR (default ./PLUGIN): a chained
                                  plugin to start from, with the guest SDK and the
                                  WIT contract vendored (--sdk PATH: depend on the
                                  SDK crate at PATH instead)
  cni-wasm inspect X.wasm [--json] [--config FILE] [--type TYPE]
                                  a component's imports and manifest, whether this
                                  host would run it, and what the policy grants it
                                  as third-party type X (or TYPE; objects as FILE
                                  names them); exits 1 if the host would refuse it
  cni-wasm dhcp daemon [FLAGS]    the dhcp plugin's lease daemon (also `dhcp daemon`
                                  through the link): -socketpath (/run/cni/dhcp.sock),
                                  -pidfile, -hostprefix, -broadcast, -timeout (10s),
                                  -resendmax (62s); -resendtimeout is accepted, unused
  cni-wasm --version | --help

Environment: CNI_WASM_LOG=error|warn|info|debug, CNI_WASM_LOG_FILE=PATH,
CNI_WASM_POLICY=PATH (default /etc/cni-wasm/policy.json),
CNI_WASM_CACHE_DIR=PATH (default /var/lib/cni-wasm/cache).
";

pub fn main(args: &[String]) -> ExitCode {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["--version" | "version"] => {
            println!(
                "cni-wasm {} (wasmtime {}, CNI spec {})",
                env!("CARGO_PKG_VERSION"),
                registry::wasmtime_version(),
                crate::protocol::version::ALL.join(", ")
            );
            ExitCode::SUCCESS
        }
        [] | ["--help" | "-h" | "help"] => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        ["list"] => report(list()),
        ["install", dir] => report(install(Path::new(dir), false)),
        ["install", dir, "--force"] | ["install", "--force", dir] => report(install(Path::new(dir), true)),
        ["run", plugin] => crate::edge::main(plugin, None),
        ["new", rest @ ..] => report(crate::kit::new_plugin(rest)),
        ["inspect", rest @ ..] => match crate::kit::inspect(rest) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(message) => report(Err(message)),
        },
        ["dhcp", "daemon", flags @ ..] => dhcp_daemon(flags),
        _ => {
            eprint!("cni-wasm: unknown arguments {args:?}\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}

/// Runs the lease daemon until it is stopped.
pub fn dhcp_daemon(flags: &[&str]) -> ExitCode {
    use cni_wasm_capabilities::dhcp::daemon;
    match daemon::Flags::parse(flags) {
        Ok(flags) => report(daemon::run(flags)),
        Err(message) => {
            eprintln!("dhcp daemon: {message}");
            ExitCode::from(2)
        }
    }
}

fn report(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cni-wasm: {message}");
            ExitCode::FAILURE
        }
    }
}

fn list() -> Result<(), String> {
    let runtime = Runtime::new().map_err(|e| format!("starting wasmtime: {e:#}"))?;
    let process = Rc::new(Process::new(runtime, Registry::new(Vec::new()), PolicyFile::default()));
    println!("{:<12} {:<14} capabilities", "plugin", "CNI versions");
    for builtin in registry::builtins() {
        let manifest = crate::dispatch::describe(&process, builtin.name).map_err(|e| e.to_string())?;
        let versions = match (manifest.cni_versions.first(), manifest.cni_versions.last()) {
            (Some(first), Some(last)) => format!("{first}-{last}"),
            _ => "-".to_string(),
        };
        let capabilities: Vec<&str> = manifest.capabilities.iter().map(|c| capability_name(*c)).collect();
        println!("{:<12} {:<14} {}", builtin.name, versions, capabilities.join(", "));
    }
    Ok(())
}

/// Idempotent: rerunning replaces the binaries atomically (safe while
/// plugins run) and re-points the links.
fn install(dir: &Path, force: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding our own executable: {e}"))?;
    copy_atomically(&exe, &dir.join("cni-wasm"))?;
    let compiler = exe.with_file_name("cni-wasm-compile");
    if compiler.is_file() {
        copy_atomically(&compiler, &dir.join("cni-wasm-compile"))?;
    } else {
        eprintln!(
            "cni-wasm: note: {} not found; third-party .wasm plugins need it (cargo build --release -p cni-wasm-compiler)",
            compiler.display()
        );
    }
    for builtin in registry::builtins() {
        let link = dir.join(builtin.name);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if !meta.file_type().is_symlink() && !force => {
                return Err(format!(
                    "{} exists and is not a cni-wasm link; rerun with --force to replace it",
                    link.display()
                ));
            }
            _ => {}
        }
        let temporary = dir.join(format!(".{}.tmp-{}", builtin.name, std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink("cni-wasm", &temporary).map_err(|e| format!("linking {}: {e}", link.display()))?;
        std::fs::rename(&temporary, &link).map_err(|e| format!("installing {}: {e}", link.display()))?;
    }
    let names: Vec<&str> = registry::builtins().iter().map(|b| b.name).collect();
    println!("installed cni-wasm into {} as: {}", dir.display(), names.join(" "));
    Ok(())
}

fn copy_atomically(from: &Path, to: &Path) -> Result<(), String> {
    if same_file(from, to) {
        return Ok(());
    }
    let temporary: PathBuf = to.with_file_name(format!(
        ".{}.tmp-{}",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("cni-wasm"),
        std::process::id()
    ));
    std::fs::copy(from, &temporary)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    std::fs::rename(&temporary, to).map_err(|e| format!("installing {}: {e}", to.display()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
