//! `tc`: token-bucket shaping. The host side arrives with the bandwidth plugin.

use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::tc::{Host, Qdisc, TokenBucket};
use crate::context::HostState;

impl Host for HostState {
    fn list_qdiscs(&mut self, _ns: Resource<NetnsHandle>, _link: String) -> CallResult<Vec<Qdisc>> {
        self.require(Capability::Tc, "tc.list-qdiscs")?;
        Err(self.not_implemented("tc.list-qdiscs"))
    }

    fn add_root_tbf(&mut self, _ns: Resource<NetnsHandle>, _link: String, _bucket: TokenBucket) -> CallResult<()> {
        self.require(Capability::Tc, "tc.add-root-tbf")?;
        Err(self.not_implemented("tc.add-root-tbf"))
    }

    fn add_ingress(&mut self, _ns: Resource<NetnsHandle>, _link: String) -> CallResult<()> {
        self.require(Capability::Tc, "tc.add-ingress")?;
        Err(self.not_implemented("tc.add-ingress"))
    }

    fn add_ingress_redirect(&mut self, _ns: Resource<NetnsHandle>, _link: String, _target: String) -> CallResult<()> {
        self.require(Capability::Tc, "tc.add-ingress-redirect")?;
        Err(self.not_implemented("tc.add-ingress-redirect"))
    }

    fn delete_qdisc(&mut self, _ns: Resource<NetnsHandle>, _link: String, _parent: u32) -> CallResult<()> {
        self.require(Capability::Tc, "tc.delete-qdisc")?;
        Err(self.not_implemented("tc.delete-qdisc"))
    }
}
