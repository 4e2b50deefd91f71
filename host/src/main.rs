//! cni-wasm: one binary that is every CNI plugin (chosen by the name it was
//! run as) and runs each plugin as a sandboxed WebAssembly component.

mod bindings;
mod cli;
mod context;
mod delegate;
mod dispatch;
mod edge;
mod imports;
mod journal;
mod log;
mod policy;
mod protocol;
mod registry;
mod runtime;
mod timing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    timing::start();
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args.first().map(PathBuf::from).unwrap_or_default();
    let name = invoked_as.file_name().and_then(|n| n.to_str()).unwrap_or("cni-wasm").to_string();
    if name == "cni-wasm" || name.starts_with("cni-wasm-") {
        return cli::main(&args[1..]);
    }
    // Third-party `<name>.wasm` may sit next to the link we were run through.
    let invoked_from = invoked_as.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    edge::main(&name, invoked_from)
}
