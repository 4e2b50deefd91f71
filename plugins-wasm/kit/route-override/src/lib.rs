//! route-override: a meta plugin that changes the container's routes after
//! an interface plugin (ptp, bridge, macvlan, ...) ran, as
//! redhat-nfvpe/route-override-cni does: `flushroutes` removes every
//! gateway route and the default routes, `flushgateway` the default routes
//! and the result's gateways, `delroutes` routes by destination, and
//! `addroutes` adds routes via CNI_IFNAME. `args.cni` may set the same keys
//! (the reference's per-pod overrides). It changes the container namespace
//! only, and returns prevResult with its routes updated. DEL does nothing
//! (the routes go with the interface); CHECK checks the routes unless
//! `skipcheck`. If ADD fails half-way, the host removes the routes it had
//! added; the ones it deleted stay deleted (the runtime then DELs the
//! whole attachment).
//!
//! Written from `cni-wasm new`'s template; it needs only the `routes`
//! capability.

use cni_plugin_sdk::config::{self, Route};
use cni_plugin_sdk::error::{Context, Result, internal, invalid_config};
use cni_plugin_sdk::iface::validate_routes;
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, ip_from_wit};
use cni_plugin_sdk::routes::{self, AddMode, RouteFilter, RouteSpec};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, cni};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Conf {
    flushroutes: bool,
    flushgateway: bool,
    delroutes: Vec<Route>,
    addroutes: Vec<Route>,
    skipcheck: bool,
    args: Option<Args>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    cni: Option<Overrides>,
}

/// `args.cni`: each key given replaces the config's, as the reference's.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Overrides {
    flushroutes: Option<bool>,
    flushgateway: Option<bool>,
    delroutes: Option<Vec<Route>>,
    addroutes: Option<Vec<Route>>,
    skipcheck: Option<bool>,
}

impl Conf {
    fn parse(config: &str) -> Result<Conf> {
        let mut conf: Conf = config::parse(config)?;
        if let Some(o) = conf.args.take().and_then(|a| a.cni) {
            conf.flushroutes = o.flushroutes.unwrap_or(conf.flushroutes);
            conf.flushgateway = o.flushgateway.unwrap_or(conf.flushgateway);
            conf.delroutes = o.delroutes.unwrap_or(conf.delroutes);
            conf.addroutes = o.addroutes.unwrap_or(conf.addroutes);
            conf.skipcheck = o.skipcheck.unwrap_or(conf.skipcheck);
        }
        Ok(conf)
    }

    /// The destinations to delete: `delroutes`, and with `flushgateway`
    /// the default routes of both families.
    fn deleted(&self) -> Result<Vec<IpNet>> {
        let mut deleted = self.delroutes.iter().map(|r| destination(&r.dst)).collect::<Result<Vec<_>>>()?;
        if self.flushgateway {
            deleted.extend([any(true), any(false)]);
        }
        Ok(deleted)
    }
}

fn destination(text: &str) -> Result<IpNet> {
    text.parse::<IpNet>().map(|n| n.masked()).map_err(|e| invalid_config(format!("route-override: {e}")))
}

fn any(v4: bool) -> IpNet {
    let addr = if v4 { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    IpNet { addr, prefix: 0 }
}

struct RouteOverride;

impl cni_plugin_sdk::Plugin for RouteOverride {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[Capability::Routes])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = Conf::parse(&call.config)?;
        let mut result = previous_result(call)?;
        let container = namespaces::container()?;
        let deleted = conf.deleted()?;
        if conf.flushgateway {
            for ip in &mut result.ips {
                ip.gateway = None;
            }
        }
        if conf.flushroutes {
            flush_routes(&container)?;
            result.routes.clear();
        } else {
            for dst in &deleted {
                delete_routes_to(&container, dst)?;
            }
            result.routes.retain(|r| !deleted.contains(&IpNet::from_wit(&r.dst).masked()));
        }
        for route in &conf.addroutes {
            let route = route.to_result().context("route-override: addroutes")?;
            add_route(&container, &call.ifname, &route)?;
            result.routes.push(route);
        }
        Ok(result)
    }

    /// The routes go with the interface the plugin before it deletes.
    fn del(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    /// The result's routes are there, and the deleted ones are not (the
    /// reference's CHECK checks nothing).
    fn check(call: &Invocation) -> Result<()> {
        let conf = Conf::parse(&call.config)?;
        if conf.skipcheck {
            return Ok(());
        }
        let previous = previous_result(call)?;
        let container = namespaces::container()?;
        validate_routes(&container, &previous.routes)?;
        let added: Vec<IpNet> = conf.addroutes.iter().map(|r| destination(&r.dst)).collect::<Result<_>>()?;
        let present = main_routes(&container)?;
        for dst in conf.deleted()?.iter().filter(|d| !added.contains(d)) {
            if present.iter().any(|r| IpNet::from_wit(&r.destination).masked() == *dst) {
                return Err(internal(format!("route-override: route to {dst} is in the container, but deleted")));
            }
        }
        Ok(())
    }
}

fn previous_result(call: &Invocation) -> Result<CniResult> {
    call.prev_result.clone().ok_or_else(|| {
        invalid_config("route-override must be called as a chained plugin (after an interface plugin): no prevResult")
    })
}

fn main_routes(ns: &Netns) -> Result<Vec<routes::Route>> {
    routes::dump(ns, &RouteFilter { family: None, table: None, link: None }).context("route-override: listing routes")
}

/// The reference's flushroutes: every main-table route of universe scope
/// that is a default route or goes via a gateway (not to a link-local
/// destination); connected and link routes stay.
fn flush_routes(ns: &Netns) -> Result<()> {
    for route in main_routes(ns)? {
        let dst = IpNet::from_wit(&route.destination);
        let link_local = match dst.addr {
            std::net::IpAddr::V4(a) => a.is_link_local(),
            std::net::IpAddr::V6(a) => a.is_unicast_link_local(),
        };
        let flushed = route.route_type == 1
            && route.scope != 253
            && (dst.prefix == 0 || (route.gateway.is_some() && !link_local));
        if flushed {
            delete(ns, &route)?;
        }
    }
    Ok(())
}

/// Every main-table route to `dst`, on any link.
fn delete_routes_to(ns: &Netns, dst: &IpNet) -> Result<()> {
    for route in main_routes(ns)? {
        if IpNet::from_wit(&route.destination).masked() == *dst && route.route_type == 1 {
            delete(ns, &route)?;
        }
    }
    Ok(())
}

/// Deletes the route as dumped; one already gone is no error.
fn delete(ns: &Netns, route: &routes::Route) -> Result<()> {
    let spec = RouteSpec {
        destination: route.destination,
        gateway: route.gateway,
        link: None,
        source: None,
        table: Some(route.table),
        scope: Some(route.scope),
        priority: route.priority,
        mtu: None,
        advmss: None,
        protocol: None,
    };
    match routes::delete(ns, &spec) {
        Err(e) if e.is_not_found() => Ok(()),
        outcome => {
            outcome.context(format!("route-override: deleting the route to {}", IpNet::from_wit(&route.destination)))
        }
    }
}

/// Adds `route` via CNI_IFNAME; without a gateway it is a link route, as
/// `ip route add DST dev IFNAME` makes it.
fn add_route(ns: &Netns, ifname: &str, route: &cni::Route) -> Result<()> {
    let spec = RouteSpec {
        destination: route.dst,
        gateway: route.gw,
        link: Some(ifname.to_string()),
        source: None,
        table: route.table,
        scope: if route.gw.is_none() { Some(253) } else { route.scope.map(|s| s as u8) },
        priority: route.priority,
        mtu: route.mtu,
        advmss: route.advmss,
        protocol: None,
    };
    let dst = IpNet::from_wit(&route.dst);
    match routes::add(ns, &spec, AddMode::Exclusive) {
        Err(e) if e.is_already_exists() => Err(internal(format!(
            "route-override: a route to {dst} is already in the container; list it in delroutes to replace it"
        ))),
        outcome => outcome.context(format!(
            "route-override: adding the route to {dst}{} dev {ifname}",
            route.gw.as_ref().map(|g| format!(" via {}", ip_from_wit(g))).unwrap_or_default()
        )),
    }
}

cni_plugin_sdk::plugin!(RouteOverride);
