//! cni-wasm: one binary that is every CNI plugin (chosen by the name it was
//! run as) and runs each plugin as a sandboxed WebAssembly component.

mod audit;
mod bindings;
mod cli;
mod context;
mod delegate;
mod dispatch;
mod edge;
mod imports;
mod journal;
mod kit;
mod ledger;
mod log;
mod policy;
mod process;
mod protocol;
mod registry;
mod runtime;
mod timing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    timing::start();
    report_panics_as_cni_errors();
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args.first().map(PathBuf::from).unwrap_or_default();
    let name = invoked_as.file_name().and_then(|n| n.to_str()).unwrap_or("cni-wasm").to_string();
    if name == "cni-wasm" || name.starts_with("cni-wasm-") {
        return cli::main(&args[1..]);
    }
    // The dhcp plugin's lease daemon is started through the plugin's name,
    // as the reference's is: `dhcp daemon [flags]`.
    if name == "dhcp" && args.get(1).map(String::as_str) == Some("daemon") {
        return cli::dhcp_daemon(&args[2..].iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Third-party `<name>.wasm` may sit next to the link we were run through.
    let invoked_from = invoked_as.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    edge::main(&name, invoked_from)
}

/// A panic is a bug in cni-wasm; the runtime still gets an error it can
/// parse instead of an empty stdout.
fn report_panics_as_cni_errors() {
    std::panic::set_hook(Box::new(|info| {
        let error = protocol::CniError::internal(format!("internal error in cni-wasm (please report it): {info}"));
        let text = protocol::json::to_go_pretty(&error.to_json(None));
        use std::io::Write;
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
        eprintln!("cni-wasm: {info}");
    }));
}
