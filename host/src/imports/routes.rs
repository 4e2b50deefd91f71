//! `routes`: routes and route lookups. A host-namespace route must name an
//! output link the invocation may change.

use cni_wasm_capabilities::routes as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::{family_from_wit, ip_from_wit, ip_to_wit, network_from_wit, network_to_wit};
use super::namespaces::{NetnsHandle, Which};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::routes::{AddMode, Host, Route, RouteFilter, RouteSpec};
use crate::bindings::cni_wasm::plugin::types::IpAddress;
use crate::context::HostState;
use crate::journal::Entry;

fn spec(route: RouteSpec) -> Result<native::RouteSpec, Error> {
    Ok(native::RouteSpec {
        destination: Some(network_from_wit(route.destination)?),
        gateway: route.gateway.map(ip_from_wit),
        link: route.link,
        source: route.source.map(ip_from_wit),
        table: route.table,
        scope: route.scope,
        priority: route.priority,
        mtu: route.mtu,
        advmss: route.advmss,
        protocol: route.protocol,
    })
}

fn route(route: native::Route) -> Route {
    Route {
        destination: network_to_wit(route.destination),
        gateway: route.gateway.map(ip_to_wit),
        link_index: route.link_index,
        source: route.source.map(ip_to_wit),
        table: route.table,
        scope: route.scope,
        priority: route.priority,
        route_type: route.route_type,
        protocol: route.protocol,
        mtu: route.mtu,
        advmss: route.advmss,
    }
}

impl HostState {
    fn check_host_route(&self, which: Which, spec: &native::RouteSpec, doing: &str) -> CallResult<()> {
        if which == Which::Container {
            return Ok(());
        }
        match &spec.link {
            Some(link) => self.check_host_link(which, link, doing),
            None => Err(self.refuse_route(doing, "a route in the host netns must name its output link".into())),
        }
    }

    /// A new host route may not take over traffic the host already sends
    /// somewhere the plugin may not change: it may not be a default route,
    /// replace a route, or narrow one through another link (a /25 of
    /// eth0's /24). What only the default route covers is free: a container
    /// address (ptp) or a pod subnet.
    fn check_new_host_route(&self, which: Which, spec: &native::RouteSpec, mode: native::AddMode) -> CallResult<()> {
        if which == Which::Container {
            return Ok(());
        }
        let doing = "adding a route";
        let Some(destination) = spec.destination else { return Ok(()) };
        if destination.prefix_len == 0 {
            return Err(self.refuse_route(doing, "the host netns's default route is the node's".into()));
        }
        if mode == native::AddMode::Replace {
            return Err(
                self.refuse_route(doing, "a route in the host netns may not replace one (it may be another's)".into())
            );
        }
        let host = self.session.host_ns.clone();
        let Ok(covering) = native::covering_route(&host, destination.address) else { return Ok(()) };
        if covering.destination.prefix_len == 0 {
            return Ok(());
        }
        let link = match covering.link_index {
            Some(index) => cni_wasm_capabilities::links::get_by_index(&host, index)?.map(|l| l.name),
            None => None,
        };
        match link {
            Some(link) if self.check_host_link(which, &link, doing).is_ok() => Ok(()),
            other => Err(self.refuse_route(
                doing,
                format!(
                    "{}/{} is already routed through {} ({}/{}), which is not the plugin's",
                    destination.address,
                    destination.prefix_len,
                    other.as_deref().unwrap_or("another route"),
                    covering.destination.address,
                    covering.destination.prefix_len
                ),
            )),
        }
    }

    fn refuse_route(&self, doing: &str, why: String) -> super::CallError {
        Error::new(ErrorKind::Denied, format!("{}: {doing} refused: {why}", self.grants.plugin)).into()
    }
}

impl Host for HostState {
    fn dump(&mut self, ns: Resource<NetnsHandle>, filter: RouteFilter) -> CallResult<Vec<Route>> {
        self.require_on(Capability::Routes, "routes.dump", &filter)?;
        let (_, ns) = self.netns(&ns)?;
        let filter =
            native::RouteFilter { family: filter.family.map(family_from_wit), table: filter.table, link: filter.link };
        Ok(native::dump(&ns, &filter)?.into_iter().map(route).collect())
    }

    fn add(&mut self, ns: Resource<NetnsHandle>, wanted: RouteSpec, mode: AddMode) -> CallResult<()> {
        self.require_on(Capability::Routes, "routes.add", &wanted)?;
        let (which, netns) = self.netns(&ns)?;
        let wanted = spec(wanted)?;
        self.check_host_route(which, &wanted, "adding a route")?;
        let mode = match mode {
            AddMode::Exclusive => native::AddMode::Exclusive,
            AddMode::Append => native::AddMode::Append,
            AddMode::Replace => native::AddMode::Replace,
        };
        self.check_new_host_route(which, &wanted, mode)?;
        native::add(&netns, &wanted, mode)?;
        // A replaced container route is undone with its namespace's links;
        // the host allows no replace.
        if mode != native::AddMode::Replace {
            self.journal.record(Entry::RouteAdded { ns: which, route: wanted });
        }
        Ok(())
    }

    fn delete(&mut self, ns: Resource<NetnsHandle>, wanted: RouteSpec) -> CallResult<()> {
        self.require_on(Capability::Routes, "routes.delete", &wanted)?;
        let (which, netns) = self.netns(&ns)?;
        let wanted = spec(wanted)?;
        self.check_host_route(which, &wanted, "deleting a route")?;
        native::delete(&netns, &wanted)?;
        Ok(())
    }

    fn lookup(&mut self, ns: Resource<NetnsHandle>, destination: IpAddress) -> CallResult<Route> {
        self.require_on(Capability::Routes, "routes.lookup", &"")?;
        let (_, ns) = self.netns(&ns)?;
        Ok(route(native::lookup(&ns, ip_from_wit(destination))?))
    }
}
