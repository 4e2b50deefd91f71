//! `state`: the plugin's private directory (see wit/state.wit).

use cni_wasm_capabilities::state::{FileLock, StateDir};
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::state::{Host, HostFileLock};
use crate::context::HostState;
use crate::journal::Entry;

/// A held flock; dropping the resource releases it.
pub struct LockHandle {
    _lock: FileLock,
}

impl HostState {
    fn state(&mut self, call: &str) -> CallResult<&StateDir> {
        self.require(Capability::State, call)?;
        if self.state_dir.is_none() {
            let Some(root) = self.grants.state_root() else {
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!("{}: {call} refused: no state directory was granted", self.grants.plugin),
                )
                .into());
            };
            self.state_dir = Some(StateDir::open(root)?);
        }
        Ok(self.state_dir.as_ref().expect("just opened"))
    }
}

impl Host for HostState {
    fn read(&mut self, path: String) -> CallResult<Option<Vec<u8>>> {
        Ok(self.state("state.read")?.read(&path)?)
    }

    fn create(&mut self, path: String, contents: Vec<u8>) -> CallResult<()> {
        self.state("state.create")?.create(&path, &contents)?;
        self.journal.record(Entry::StateFileCreated { path });
        Ok(())
    }

    fn replace(&mut self, path: String, contents: Vec<u8>) -> CallResult<()> {
        Ok(self.state("state.replace")?.replace(&path, &contents)?)
    }

    fn remove(&mut self, path: String) -> CallResult<bool> {
        Ok(self.state("state.remove")?.remove(&path)?)
    }

    fn files(&mut self, dir: String) -> CallResult<Vec<String>> {
        Ok(self.state("state.files")?.files(&dir)?)
    }

    fn lock(&mut self, path: String) -> CallResult<Resource<LockHandle>> {
        let deadline = self.session.deadline();
        let lock = self.state("state.lock")?.lock(&path, deadline)?;
        Ok(self.table.push(LockHandle { _lock: lock })?)
    }
}

impl HostFileLock for HostState {
    fn drop(&mut self, handle: Resource<LockHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
