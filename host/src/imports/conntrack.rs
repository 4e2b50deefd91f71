//! `conntrack`: connection-tracking entries. The host side arrives with portmap.

use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::conntrack::{Flow, FlowFilter, Host};
use crate::context::HostState;

impl Host for HostState {
    fn dump(&mut self, _ns: Resource<NetnsHandle>, _filter: FlowFilter) -> CallResult<Vec<Flow>> {
        self.require(Capability::Conntrack, "conntrack.dump")?;
        Err(self.not_implemented("conntrack.dump"))
    }

    fn delete(&mut self, _ns: Resource<NetnsHandle>, _filter: FlowFilter) -> CallResult<u32> {
        self.require(Capability::Conntrack, "conntrack.delete")?;
        Err(self.not_implemented("conntrack.delete"))
    }
}
