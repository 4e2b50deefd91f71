//! `addresses`: interface addresses. In the host namespace only on links the
//! invocation may change (see `links`).

use cni_wasm_capabilities::addresses as native;
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::{family_from_wit, network_from_wit, network_to_wit};
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::addresses::{Address, Host};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::types::{IpFamily, IpNetwork};
use crate::context::HostState;
use crate::journal::Entry;

impl Host for HostState {
    fn dump(
        &mut self,
        ns: Resource<NetnsHandle>,
        link: Option<String>,
        family: Option<IpFamily>,
    ) -> CallResult<Vec<Address>> {
        self.require_on(Capability::Addresses, "addresses.dump", &link)?;
        let (_, ns) = self.netns(&ns)?;
        let addresses = native::dump(&ns, link.as_deref(), family.map(family_from_wit))?;
        Ok(addresses
            .into_iter()
            .map(|a| Address {
                link_index: a.link_index,
                address: network_to_wit(a.address),
                scope: a.scope,
                tentative: a.tentative,
                dad_failed: a.dad_failed,
            })
            .collect())
    }

    fn add(&mut self, ns: Resource<NetnsHandle>, link: String, address: IpNetwork) -> CallResult<()> {
        self.require_on(Capability::Addresses, "addresses.add", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &link, "adding an address")?;
        let address = network_from_wit(address)?;
        native::add(&netns, &link, address)?;
        self.journal.record(Entry::AddressAdded { ns: which, link, address });
        Ok(())
    }

    fn delete(&mut self, ns: Resource<NetnsHandle>, link: String, address: IpNetwork) -> CallResult<()> {
        self.require_on(Capability::Addresses, "addresses.delete", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &link, "deleting an address")?;
        native::delete(&netns, &link, network_from_wit(address)?)?;
        Ok(())
    }
}
