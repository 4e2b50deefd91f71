//! `neighbours`: ARP/NDP entries and announcements. Announcements are
//! built; the entry functions arrive with the plugins that need them.

use cni_wasm_capabilities::addresses as native_addresses;
use cni_wasm_capabilities::neighbours as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::ip_from_wit;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::neighbours::{Host, Neighbour};
use crate::bindings::cni_wasm::plugin::types::{IpAddress, IpFamily, MacAddress};
use crate::context::HostState;

impl Host for HostState {
    fn dump(
        &mut self,
        _ns: Resource<NetnsHandle>,
        _link: Option<String>,
        _family: Option<IpFamily>,
    ) -> CallResult<Vec<Neighbour>> {
        self.require_on(Capability::Neighbours, "neighbours.dump", &"")?;
        Err(self.not_implemented("neighbours.dump"))
    }

    fn set(
        &mut self,
        _ns: Resource<NetnsHandle>,
        _link: String,
        _address: IpAddress,
        _mac: MacAddress,
    ) -> CallResult<()> {
        self.require_on(Capability::Neighbours, "neighbours.set", &"")?;
        Err(self.not_implemented("neighbours.set"))
    }

    fn delete(&mut self, _ns: Resource<NetnsHandle>, _link: String, _address: IpAddress) -> CallResult<()> {
        self.require_on(Capability::Neighbours, "neighbours.delete", &"")?;
        Err(self.not_implemented("neighbours.delete"))
    }

    /// Only for links the invocation may change, and only for an address
    /// that link holds: a plugin cannot claim someone else's address.
    fn announce(&mut self, ns: Resource<NetnsHandle>, link: String, address: IpAddress) -> CallResult<()> {
        self.require_on(Capability::Neighbours, "neighbours.announce", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &link, &format!("announcing an address on {link:?}"))?;
        let address = ip_from_wit(address);
        let held = native_addresses::dump(&netns, Some(&link), None)?.iter().any(|a| a.address.address == address);
        if !held {
            return Err(Error::new(
                ErrorKind::Denied,
                format!("{}: neighbours.announce refused: {link:?} does not hold {address}", self.grants.plugin),
            )
            .into());
        }
        Ok(native::announce(&netns, &link, address)?)
    }
}
