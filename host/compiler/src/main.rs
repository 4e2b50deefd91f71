//! `cni-wasm-compile IN.wasm OUT.cwasm`: precompile one plugin component.
//!
//! The host runs this as a separate process, so the Cranelift compiler never
//! runs inside the privileged plugin host. OUT is written in full before the
//! host renames it into place.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: cni-wasm-compile IN.wasm OUT.cwasm");
        return ExitCode::from(2);
    };
    let result = std::fs::read(input)
        .map_err(|e| format!("reading {input}: {e}"))
        .and_then(|wasm| cni_wasm_compiler::precompile(&wasm).map_err(|e| format!("compiling {input}: {e:#}")))
        .and_then(|artifact| std::fs::write(output, artifact).map_err(|e| format!("writing {output}: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cni-wasm-compile: {message}");
            ExitCode::FAILURE
        }
    }
}
