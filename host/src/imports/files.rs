//! `files`: read-only host files named by the request config or the manifest.

use cni_wasm_capabilities::{Error, ErrorKind, files};

use super::CallResult;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::files::Host;
use crate::context::HostState;

impl Host for HostState {
    fn read(&mut self, path: String) -> CallResult<Option<Vec<u8>>> {
        self.require_on(Capability::Files, "files.read", &path)?;
        files::validate_path(&path)?;
        if !self.grants.allows_file(&path) {
            return Err(Error::new(
                ErrorKind::Denied,
                format!("{}: reading {path} refused: the request config does not name it", self.grants.plugin),
            )
            .into());
        }
        Ok(files::read(&path)?)
    }
}
