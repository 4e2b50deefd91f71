//! Ahead-of-time compilation of plugin components.
//!
//! Compiling is the only step that needs Cranelift, so it lives here, apart
//! from the privileged runtime: the host's build script uses this library for
//! the built-in plugins, and `cni-wasm-compile` does the same for third-party
//! `.wasm` plugins when the host first meets them.

use wasmtime::Result;

/// Compiles a component (`.wasm` bytes) to an artifact the runtime can load
/// with `Component::deserialize`.
pub fn precompile(wasm: &[u8]) -> Result<Vec<u8>> {
    let engine = cni_wasm_engine::engine()?;
    engine.precompile_component(wasm)
}
