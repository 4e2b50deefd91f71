//! Where plugins come from.
//!
//! - Built-in plugins are compiled into this binary at build time (see
//!   build.rs) and loaded from its own read-only data.
//! - A third-party plugin is a component `<type>.wasm` in the directory the
//!   host was invoked from or in CNI_PATH. Loading native code is unsafe, so
//!   the host never loads an artifact it did not produce: it compiles the
//!   `.wasm` with `cni-wasm-compile` (a separate program, so Cranelift never
//!   runs inside the privileged host) into a root-only cache directory,
//!   keyed by the component's SHA-256 and the engine's artifact format.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::protocol::CniError;
use crate::runtime::Runtime;

pub struct Builtin {
    pub name: &'static str,
    /// A precompiled component produced by build.rs.
    pub artifact: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// Where compiled third-party plugins are kept; CNI_WASM_CACHE_DIR overrides.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni-wasm/cache";
const COMPILER: &str = "cni-wasm-compile";

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

pub fn builtins() -> &'static [Builtin] {
    BUILTINS
}

#[derive(Debug, Clone)]
pub enum Source {
    Builtin(&'static str),
    ThirdParty(PathBuf),
}

#[derive(Clone)]
pub struct Loaded {
    pub component: Component,
    pub third_party: bool,
}

pub struct Registry {
    /// Directories searched for `<type>.wasm` (and the compiler), in order.
    search: Vec<PathBuf>,
    /// Components already loaded by this process. A built-in runs in place
    /// from the binary, so its code must be registered with wasmtime once.
    loaded: RefCell<HashMap<String, Loaded>>,
}

impl Registry {
    pub fn new(search: Vec<PathBuf>) -> Self {
        Registry { search, loaded: RefCell::new(HashMap::new()) }
    }

    pub fn find(&self, name: &str) -> Option<Source> {
        if builtin(name).is_some() {
            return Some(Source::Builtin(builtin(name)?.name));
        }
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        self.search
            .iter()
            .map(|dir| dir.join(format!("{name}.wasm")))
            .find(|path| path.is_file())
            .map(Source::ThirdParty)
    }

    pub fn load(&self, runtime: &Runtime, name: &str, deadline: Instant) -> Result<Loaded, CniError> {
        if let Some(loaded) = self.loaded.borrow().get(name) {
            return Ok(loaded.clone());
        }
        let loaded = self.load_new(runtime, name, deadline)?;
        self.loaded.borrow_mut().insert(name.to_string(), loaded.clone());
        Ok(loaded)
    }

    fn load_new(&self, runtime: &Runtime, name: &str, deadline: Instant) -> Result<Loaded, CniError> {
        match self.find(name) {
            Some(Source::Builtin(name)) => {
                let artifact = builtin(name).expect("found above").artifact;
                // SAFETY: the artifact was produced by our own build with the
                // same engine configuration and is part of this executable:
                // page-aligned, read-only and alive for the whole process, so
                // wasmtime can use it in place (it only ever makes the code
                // pages executable, never writable).
                let component =
                    unsafe { Component::deserialize_raw(runtime.engine(), std::ptr::NonNull::from(artifact)) }
                        .map_err(|e| CniError::internal(format!("loading built-in plugin {name}: {e:#}")))?;
                Ok(Loaded { component, third_party: false })
            }
            Some(Source::ThirdParty(path)) => {
                Ok(Loaded { component: self.load_third_party(runtime, &path, deadline)?, third_party: true })
            }
            None => Err(CniError::internal(format!(
                "no plugin {name:?}: it is not built into cni-wasm and no {name}.wasm was found in {}",
                self.search.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
            ))),
        }
    }

    /// Loads the component at `wasm` as a third-party plugin, whatever its
    /// name (for `cni-wasm inspect`: a `bridge.wasm` is still that file).
    pub fn load_file(&self, runtime: &Runtime, wasm: &Path, deadline: Instant) -> Result<Component, CniError> {
        self.load_third_party(runtime, wasm, deadline)
    }

    fn load_third_party(&self, runtime: &Runtime, wasm: &Path, deadline: Instant) -> Result<Component, CniError> {
        let fail = |what: String| CniError::internal(format!("loading plugin {}: {what}", wasm.display()));
        let bytes = std::fs::read(wasm).map_err(|e| fail(format!("reading it: {e}")))?;
        let digest = Sha256::digest(&bytes);
        let key: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let cache = cache_dir();
        ensure_private_dir(&cache).map_err(fail)?;
        let artifact = cache.join(format!("{key}-{}-{}.cwasm", cni_wasm_engine::ARTIFACT_FORMAT, wasmtime_version()));
        for attempt in 0..2 {
            if !artifact.exists() {
                self.compile(wasm, &artifact, deadline).map_err(fail)?;
            }
            check_private_file(&artifact).map_err(fail)?;
            // SAFETY: the artifact was written by cni-wasm-compile, run by
            // this host, into a directory only this user can write, under a
            // name bound to the component's hash; nothing else produces it.
            match unsafe { Component::deserialize_file(runtime.engine(), &artifact) } {
                Ok(component) => return Ok(component),
                // An artifact of another wasmtime build: compile it again.
                Err(_) if attempt == 0 => {
                    let _ = std::fs::remove_file(&artifact);
                }
                Err(e) => return Err(fail(format!("loading compiled {}: {e:#}", artifact.display()))),
            }
        }
        unreachable!("the loop returns")
    }

    fn compile(&self, wasm: &Path, artifact: &Path, deadline: Instant) -> Result<(), String> {
        let compiler = self.compiler().ok_or_else(|| {
            format!("{COMPILER} was not found next to cni-wasm or in CNI_PATH; `cni-wasm install` puts it there")
        })?;
        let temporary = artifact.with_extension(format!("tmp-{}", std::process::id()));
        let (input, output) = (wasm.to_string_lossy(), temporary.to_string_lossy());
        let outcome = cni_wasm_capabilities::process::run(&compiler, &[&input, &output], &[], &[], deadline)
            .map_err(|e| e.message)?;
        if !outcome.status.success() {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("{} failed ({})", compiler.display(), outcome.status));
        }
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        std::fs::rename(&temporary, artifact).map_err(|e| format!("installing {}: {e}", artifact.display()))
    }

    fn compiler(&self) -> Option<PathBuf> {
        let own_dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf));
        own_dir.into_iter().chain(self.search.iter().cloned()).map(|dir| dir.join(COMPILER)).find(|path| path.is_file())
    }
}

pub fn wasmtime_version() -> &'static str {
    cni_wasm_engine::WASMTIME_VERSION
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CNI_WASM_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_CACHE_DIR.into())
}

/// Creates `dir` (0700) if needed and checks that only we can write it.
fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    }
    check_owner(dir)
}

fn check_private_file(path: &Path) -> Result<(), String> {
    check_owner(path)
}

/// Owned by our effective user and not writable by group or others.
fn check_owner(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be owned by uid {euid} and writable by it alone; refusing to load compiled code from it",
            path.display()
        ));
    }
    Ok(())
}
