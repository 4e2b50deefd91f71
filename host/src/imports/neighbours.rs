//! `neighbours`: ARP/NDP entries and announcements. The host side arrives
//! with the plugins that need it.

use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::neighbours::{Host, Neighbour};
use crate::bindings::cni_wasm::plugin::types::{IpAddress, IpFamily, MacAddress};
use crate::context::HostState;

impl Host for HostState {
    fn dump(&mut self, _ns: Resource<NetnsHandle>, _link: Option<String>, _family: Option<IpFamily>) -> CallResult<Vec<Neighbour>> {
        self.require(Capability::Neighbours, "neighbours.dump")?;
        Err(self.not_implemented("neighbours.dump"))
    }

    fn set(&mut self, _ns: Resource<NetnsHandle>, _link: String, _address: IpAddress, _mac: MacAddress) -> CallResult<()> {
        self.require(Capability::Neighbours, "neighbours.set")?;
        Err(self.not_implemented("neighbours.set"))
    }

    fn delete(&mut self, _ns: Resource<NetnsHandle>, _link: String, _address: IpAddress) -> CallResult<()> {
        self.require(Capability::Neighbours, "neighbours.delete")?;
        Err(self.not_implemented("neighbours.delete"))
    }

    fn announce(&mut self, _ns: Resource<NetnsHandle>, _link: String, _address: IpAddress) -> CallResult<()> {
        self.require(Capability::Neighbours, "neighbours.announce")?;
        Err(self.not_implemented("neighbours.announce"))
    }
}
