//! sbr (source-based routing): a chained plugin that gives CNI_IFNAME a
//! routing table of its own inside the container, with a rule sending
//! traffic from each of its addresses there, so a multi-homed pod answers
//! out of the interface a connection came in on. Reads like the
//! reference's cmdAdd / cmdDel.

use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Errors, Result, internal};
use cni_plugin_sdk::links;
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, ip_from_wit};
use cni_plugin_sdk::routes::{self, AddMode, Route, RouteFilter, RouteSpec};
use cni_plugin_sdk::rules::{self, Rule};
use cni_plugin_sdk::types::{IpAddress, IpFamily};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, addresses};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetConf {
    /// A table to put only the source rules in (no routes are moved).
    table: Option<u32>,
}

/// The first table sbr considers, as the reference.
const FIRST_TABLE: u32 = 100;
const MAIN_TABLE: u32 = 254;

/// An address of CNI_IFNAME from the previous result, and its gateway.
struct IpCfg {
    address: IpNet,
    gateway: Option<IpAddress>,
}

fn family(address: &IpNet) -> IpFamily {
    if address.is_ipv4() { IpFamily::Ipv4 } else { IpFamily::Ipv6 }
}

struct Sbr;

impl cni_plugin_sdk::Plugin for Sbr {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[Capability::Links, Capability::Addresses, Capability::Routes, Capability::Rules])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf: NetConf = config::parse(&call.config)?;
        let previous =
            call.prev_result.clone().ok_or_else(|| internal("This plugin must be called as chained plugin"))?;
        let ip_cfgs = ip_cfgs(call, &previous)?;
        let container = namespaces::container()?;
        match conf.table {
            Some(table) => {
                for ip in &ip_cfgs {
                    add_source_rule(&container, ip, table)?;
                }
            }
            None => do_routes(&container, &call.ifname, &ip_cfgs)?,
        }
        Ok(previous)
    }

    /// Deletes the rules from CNI_IFNAME's addresses (the table's routes
    /// go with the interface). Nothing to do without the netns or the
    /// interface.
    fn del(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        if call.netns.is_none() {
            return Ok(());
        }
        let container = match namespaces::container() {
            Ok(container) => container,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if links::get(&container, &call.ifname)?.is_none() {
            return Ok(());
        }
        let addresses: Vec<IpNet> = addresses::dump(&container, Some(&call.ifname), None)?
            .iter()
            .map(|a| IpNet::from_wit(&a.address))
            .collect();
        let mut errors = Errors::new();
        for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
            for rule in rules::dump(&container, family)? {
                let Some(source) = rule.source.as_ref().map(IpNet::from_wit) else { continue };
                let ours = conf.table.is_none_or(|table| rule.table == table);
                if ours && addresses.iter().any(|a| a.addr == source.addr) {
                    errors.keep(rules::delete(&container, &rule).map_err(|e| internal(e.message)));
                }
            }
        }
        errors.finish()
    }

    /// The interface's rules point at a table that has its routes; unlike
    /// the reference's (a no-op), and without the main-table checks other
    /// plugins' CHECKs make (sbr moved those routes: reference #297).
    fn check(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        let previous =
            call.prev_result.as_ref().ok_or_else(|| internal("This plugin must be called as chained plugin"))?;
        let container = namespaces::container()?;
        for ip in ip_cfgs(call, previous)? {
            let source = IpNet::host(ip.address.addr);
            let rule = rules::dump(&container, family(&ip.address))?
                .into_iter()
                .find(|r| {
                    r.source.as_ref().map(IpNet::from_wit) == Some(source) && conf.table.is_none_or(|t| r.table == t)
                })
                .ok_or_else(|| internal(format!("no rule for source {source}")))?;
            if conf.table.is_none() {
                let table = routes::dump(
                    &container,
                    &RouteFilter { family: Some(family(&ip.address)), table: Some(rule.table), link: None },
                )?;
                if table.is_empty() {
                    return Err(internal(format!("table {} of source {source} has no routes", rule.table)));
                }
            }
        }
        Ok(())
    }
}

/// The previous result's addresses on CNI_IFNAME (or on no interface).
fn ip_cfgs(call: &Invocation, previous: &CniResult) -> Result<Vec<IpCfg>> {
    let index = previous
        .interfaces
        .iter()
        .position(|i| i.name == call.ifname && (i.sandbox.is_none() || i.sandbox == call.netns));
    let cfgs: Vec<IpCfg> = previous
        .ips
        .iter()
        .filter(|ip| ip.interface_index.is_none() || ip.interface_index.map(|i| i as usize) == index)
        .map(|ip| IpCfg { address: IpNet::from_wit(&ip.address), gateway: ip.gateway })
        .collect();
    if cfgs.is_empty() {
        return Err(internal(format!("no IP addresses found for interface {}", call.ifname)));
    }
    Ok(cfgs)
}

fn add_source_rule(ns: &Netns, ip: &IpCfg, table: u32) -> Result<()> {
    let rule = Rule {
        family: family(&ip.address),
        priority: None,
        source: Some(IpNet::host(ip.address.addr).to_wit()),
        destination: None,
        table,
        in_link: None,
        out_link: None,
    };
    rules::add(ns, &rule).map_err(|e| internal(format!("Failed to add rule: {}", e.message)))
}

/// For each address, the next table (from 100 on) no rule and no route
/// uses: a rule from the address to it, a default route through the
/// address's gateway, and the interface's main-table routes that belong to
/// the address (source or gateway inside its subnet) or to none (neither),
/// as the reference copies them. The interface's main-table routes go last
/// (not while copying: two addresses may share a subnet).
fn do_routes(ns: &Netns, ifname: &str, ip_cfgs: &[IpCfg]) -> Result<()> {
    let mut used: Vec<u32> = Vec::new();
    for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
        used.extend(rules::dump(ns, family)?.iter().map(|r| r.table));
    }
    used.extend(routes::dump(ns, &RouteFilter { family: None, table: Some(0), link: None })?.iter().map(|r| r.table));
    let main_routes: Vec<Route> =
        routes::dump(ns, &RouteFilter { family: None, table: Some(MAIN_TABLE), link: Some(ifname.into()) })?;
    let spec = |route: &Route, table: u32| RouteSpec {
        destination: route.destination,
        gateway: route.gateway,
        link: Some(ifname.to_string()),
        source: route.source,
        table: Some(table),
        scope: Some(route.scope),
        priority: route.priority,
        mtu: route.mtu,
        advmss: route.advmss,
        protocol: Some(route.protocol),
    };
    for ip in ip_cfgs {
        let table = (FIRST_TABLE..FIRST_TABLE + 1000)
            .find(|t| !used.contains(t))
            .ok_or_else(|| internal("Failed to find table"))?;
        used.push(table);
        add_source_rule(ns, ip, table)?;
        if let Some(gateway) = ip.gateway {
            let any = if ip.address.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            let default = RouteSpec {
                destination: any.parse::<IpNet>().map_err(internal)?.to_wit(),
                gateway: Some(gateway),
                link: Some(ifname.to_string()),
                source: None,
                table: Some(table),
                scope: None,
                priority: None,
                mtu: None,
                advmss: None,
                protocol: None,
            };
            routes::add(ns, &default, AddMode::Exclusive).map_err(|e| {
                internal(format!("Failed to add default route to {}: {}", ip_from_wit(&gateway), e.message))
            })?;
        }
        let subnet = ip.address.masked();
        let inside = |address: &Option<IpAddress>| address.as_ref().is_some_and(|a| subnet.contains(ip_from_wit(a)));
        for route in &main_routes {
            if inside(&route.source) || inside(&route.gateway) || (route.source.is_none() && route.gateway.is_none()) {
                routes::add(ns, &spec(route, table), AddMode::Replace)
                    .map_err(|e| internal(format!("Failed to readd route: {}", e.message)))?;
            }
        }
    }
    for route in &main_routes {
        routes::delete(ns, &spec(route, MAIN_TABLE))
            .map_err(|e| internal(format!("Failed to delete route: {}", e.message)))?;
    }
    Ok(())
}

cni_plugin_sdk::plugin!(Sbr);
