//! The wasmtime `Config` shared by the runtime (`cni-wasm`, no compiler) and
//! the compiler (`cni-wasm-compile` and the host's build script).
//!
//! A precompiled component only loads into an engine configured exactly like
//! the one that compiled it, so this crate is the single place that says how.

use std::sync::Arc;

use wasmtime::{Config, CustomCodeMemory, Engine, Result};

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

/// An engine with [`config`], for compiling.
pub fn engine() -> Result<Engine> {
    Engine::new(&config()?)
}

/// The engine the runtime uses: [`config`], plus code publishing that works
/// on memory wasmtime did not allocate, so the built-in artifacts can run
/// in place from the binary's read-only data instead of being copied.
pub fn runtime_engine() -> Result<Engine> {
    let mut config = config()?;
    config.with_custom_code_memory(Some(Arc::new(InPlaceCode::new())));
    Engine::new(&config)
}

/// Makes a compiled image's text executable with mprotect(2): read-only
/// pages become read+execute, never writable (W^X holds throughout). A
/// `.cwasm` has no load-time relocations, so nothing ever writes to it.
struct InPlaceCode {
    page_size: usize,
}

impl InPlaceCode {
    fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        InPlaceCode { page_size: usize::try_from(page_size).ok().filter(|p| *p > 0).unwrap_or(4096) }
    }

    fn protect(&self, ptr: *const u8, len: usize, protection: libc::c_int) -> Result<()> {
        // SAFETY: wasmtime passes a page-aligned range of an image it owns
        // (or that the host keeps alive for the process's lifetime).
        let rc = unsafe { libc::mprotect(ptr as *mut libc::c_void, len, protection) };
        if rc == 0 { Ok(()) } else { Err(wasmtime::format_err!("mprotect: {}", std::io::Error::last_os_error())) }
    }
}

impl CustomCodeMemory for InPlaceCode {
    fn required_alignment(&self) -> usize {
        self.page_size
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> Result<()> {
        self.protect(ptr, len, libc::PROT_READ | libc::PROT_EXEC)
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> Result<()> {
        self.protect(ptr, len, libc::PROT_READ)
    }
}
