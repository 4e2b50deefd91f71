//! `rules`: policy-routing rules. The host side arrives with the sbr plugin.

use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::rules::{Host, Rule};
use crate::bindings::cni_wasm::plugin::types::IpFamily;
use crate::context::HostState;

impl Host for HostState {
    fn dump(&mut self, _ns: Resource<NetnsHandle>, _family: IpFamily) -> CallResult<Vec<Rule>> {
        self.require(Capability::Rules, "rules.dump")?;
        Err(self.not_implemented("rules.dump"))
    }

    fn add(&mut self, _ns: Resource<NetnsHandle>, _rule: Rule) -> CallResult<()> {
        self.require(Capability::Rules, "rules.add")?;
        Err(self.not_implemented("rules.add"))
    }

    fn delete(&mut self, _ns: Resource<NetnsHandle>, _rule: Rule) -> CallResult<()> {
        self.require(Capability::Rules, "rules.delete")?;
        Err(self.not_implemented("rules.delete"))
    }
}
