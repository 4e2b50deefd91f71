//! `tc`: token-bucket shaping. In the container namespace anything; in the
//! host namespace only on links this invocation may change (created,
//! managed) or on the host end of its own container interface: the veth
//! whose peer is CNI_IFNAME in the invocation's namespace (the bandwidth
//! plugin shapes that one, which the plugin before it created).

use cni_wasm_capabilities::tc as native;
use cni_wasm_capabilities::{Error, ErrorKind, links};
use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::{NetnsHandle, Which};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::tc::{Host, Qdisc, QdiscKind, TokenBucket};
use crate::context::HostState;

impl HostState {
    /// Whether `name` in the host is the peer of the container's CNI_IFNAME
    /// veth, checked from both ends.
    fn is_container_peer(&self, name: &str) -> CallResult<bool> {
        let Ok(container) = self.container_netns() else { return Ok(false) };
        let host = self.session.host_ns.clone();
        let (Some(inner), Some(outer)) = (links::get(&container, &self.call.env.ifname)?, links::get(&host, name)?)
        else {
            return Ok(false);
        };
        let veths = inner.kind.as_deref() == Some("veth") && outer.kind.as_deref() == Some("veth");
        Ok(veths && inner.parent_index == Some(outer.index) && outer.parent_index == Some(inner.index))
    }

    fn check_tc_link(&self, which: Which, link: &str, doing: &str) -> CallResult<()> {
        if which == Which::Container
            || self.check_host_link(which, link, doing).is_ok()
            || self.is_container_peer(link)?
        {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{}: {doing} refused: link {link:?} in the host netns is neither this invocation's nor the host end of its container interface",
                self.grants.plugin
            ),
        )
        .into())
    }
}

fn bucket_from_wit(bucket: TokenBucket) -> native::TokenBucket {
    native::TokenBucket { rate: bucket.rate, burst: bucket.burst, limit: bucket.limit }
}

impl Host for HostState {
    fn list_qdiscs(&mut self, ns: Resource<NetnsHandle>, link: String) -> CallResult<Vec<Qdisc>> {
        self.require_on(Capability::Tc, "tc.list-qdiscs", &link)?;
        let (_, ns) = self.netns(&ns)?;
        let qdiscs = native::list_qdiscs(&ns, &link)?;
        Ok(qdiscs
            .into_iter()
            .map(|q| Qdisc {
                handle: q.handle,
                parent: q.parent,
                kind: match q.kind {
                    native::QdiscKind::Tbf(b) => {
                        QdiscKind::Tbf(TokenBucket { rate: b.rate, burst: b.burst, limit: b.limit })
                    }
                    native::QdiscKind::Ingress => QdiscKind::Ingress,
                    native::QdiscKind::Other(kind) => QdiscKind::Other(kind),
                },
            })
            .collect())
    }

    fn add_root_tbf(&mut self, ns: Resource<NetnsHandle>, link: String, bucket: TokenBucket) -> CallResult<()> {
        self.require_on(Capability::Tc, "tc.add-root-tbf", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_tc_link(which, &link, "adding a root qdisc")?;
        Ok(native::add_root_tbf(&netns, &link, bucket_from_wit(bucket))?)
    }

    fn add_ingress(&mut self, ns: Resource<NetnsHandle>, link: String) -> CallResult<()> {
        self.require_on(Capability::Tc, "tc.add-ingress", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_tc_link(which, &link, "adding the ingress qdisc")?;
        Ok(native::add_ingress(&netns, &link)?)
    }

    fn add_ingress_redirect(&mut self, ns: Resource<NetnsHandle>, link: String, target: String) -> CallResult<()> {
        self.require_on(Capability::Tc, "tc.add-ingress-redirect", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_tc_link(which, &link, "redirecting a link's ingress")?;
        // Traffic may only be redirected to a link the invocation may change.
        self.check_host_link(which, &target, "redirecting traffic to a link")?;
        Ok(native::add_ingress_redirect(&netns, &link, &target)?)
    }

    fn delete_qdisc(&mut self, ns: Resource<NetnsHandle>, link: String, parent: u32) -> CallResult<()> {
        self.require_on(Capability::Tc, "tc.delete-qdisc", &link)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_tc_link(which, &link, "deleting a qdisc")?;
        Ok(native::delete_qdisc(&netns, &link, parent)?)
    }
}
