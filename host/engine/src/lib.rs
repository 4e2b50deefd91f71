//! The wasmtime `Config` shared by the runtime (`cni-wasm`, no compiler) and
//! the compiler (`cni-wasm-compile` and the host's build script).
//!
//! A precompiled component only loads into an engine configured exactly like
//! the one that compiled it, so this crate is the single place that says how.

use wasmtime::{Config, Engine, Result};

/// Bumped whenever [`config`] changes in a way that affects compiled code, so
/// that cached third-party artifacts are recompiled instead of rejected.
pub const ARTIFACT_FORMAT: u32 = 1;

/// The wasmtime release this crate is pinned to (`=` in Cargo.toml); part
/// of cache keys for compiled third-party plugins.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The target every artifact is compiled for. Naming it explicitly stops
/// Cranelift from using the build machine's CPU extensions, so a binary built
/// on one x86-64 machine runs on any other.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The engine configuration for plugin components.
pub fn config() -> Result<Config> {
    let mut config = Config::new();
    config.target(TARGET)?;
    // Deadlines: a watchdog thread bumps the epoch; guest code checks it at
    // loop back-edges and function entries.
    config.epoch_interruption(true);
    // Plugins are small; a 512 KiB stack is plenty and bounds recursion.
    config.max_wasm_stack(512 << 10);
    Ok(config)
}

/// An engine with [`config`].
pub fn engine() -> Result<Engine> {
    Engine::new(&config()?)
}
