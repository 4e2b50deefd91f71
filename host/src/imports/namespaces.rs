//! `namespaces`: hands out the host and container namespaces as resources.

use std::rc::Rc;

use cni_wasm_capabilities::Error;
use cni_wasm_capabilities::netns::Netns;
use wasmtime::component::Resource;

use super::CallResult;
use crate::bindings::cni_wasm::plugin::namespaces::{Host, HostNetns};
use crate::context::HostState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Host,
    Container,
}

/// What a `netns` resource stands for in the host's table.
pub struct NetnsHandle {
    pub which: Which,
}

impl HostState {
    /// Resolves a guest's netns handle.
    pub fn netns(&self, handle: &Resource<NetnsHandle>) -> CallResult<(Which, Rc<Netns>)> {
        let which = self.table.get(handle)?.which;
        Ok((which, self.namespace(which)?))
    }

    /// The container namespace of this invocation (CNI_NETNS).
    pub fn container_netns(&self) -> CallResult<Rc<Netns>> {
        let Some(path) = self.call.env.netns.as_deref() else {
            return Err(Error::not_found(format!(
                "{}: CNI_NETNS is empty: there is no container namespace",
                self.grants.plugin
            ))
            .into());
        };
        if let Some(open) = self.session.open_container_ns(path) {
            return Ok(open);
        }
        if !cni_wasm_capabilities::netns::exists(path) {
            return Err(
                Error::not_found(format!("{}: container netns {path} does not exist", self.grants.plugin)).into()
            );
        }
        Ok(self.session.container_ns(path)?)
    }

    pub fn namespace(&self, which: Which) -> CallResult<Rc<Netns>> {
        match which {
            Which::Host => Ok(self.session.host_ns.clone()),
            Which::Container => self.container_netns(),
        }
    }
}

impl Host for HostState {
    fn host(&mut self) -> wasmtime::Result<Resource<NetnsHandle>> {
        Ok(self.table.push(NetnsHandle { which: Which::Host })?)
    }

    fn container(&mut self) -> CallResult<Resource<NetnsHandle>> {
        // Open it now, so a missing namespace is reported here.
        self.container_netns()?;
        Ok(self.table.push(NetnsHandle { which: Which::Container })?)
    }
}

impl HostNetns for HostState {
    fn drop(&mut self, handle: Resource<NetnsHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
