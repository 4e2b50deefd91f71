//! vrf: a chained plugin that puts CNI_IFNAME into a VRF inside the
//! container, creating the VRF (with a free routing table unless one is
//! given) for its first member and deleting it with its last. Reads like
//! upstream's cmdAdd / cmdDel / cmdCheck, including what upstream added
//! after Debian's 1.1.1: the interface's routes follow it into the VRF's
//! table, and DEL succeeds when the interface is already gone.

use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Context, Error, Result, internal};
use cni_plugin_sdk::links::{self, Link, LinkChange, LinkKind, LinkOptions, Master};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, ip_from_wit};
use cni_plugin_sdk::routes::{self, AddMode, Route, RouteFilter, RouteSpec};
use cni_plugin_sdk::types::IpFamily;
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, addresses, clock, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetConf {
    #[serde(rename = "vrfname")]
    vrf_name: String,
    /// 0: the lowest table no VRF in the container uses.
    table: u32,
}

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        let conf: NetConf = config::parse(config)?;
        if conf.vrf_name.is_empty() {
            return Err(internal("configuration is expected to have a valid vrf name"));
        }
        Ok(conf)
    }
}

const MAIN_TABLE: u32 = 254;

struct Vrf;

impl cni_plugin_sdk::Plugin for Vrf {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::Links, Capability::Addresses, Capability::Routes]);
        manifest.cni_versions = cni_plugin_sdk::versions_from("0.3.1");
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse(&call.config)?;
        let previous = call.prev_result.clone().ok_or_else(|| internal("missing prevResult from earlier plugin"))?;
        // Everything inside the netns fails as "cmdAdd failed: ...", as the
        // reference's errors do.
        let in_netns = || -> Result<()> {
            let container = namespaces::container()?;
            let vrf = match find_vrf(&container, &conf.vrf_name)? {
                Some(vrf) => vrf,
                None => create_vrf(&container, &conf.vrf_name, conf.table)?,
            };
            let table = vrf.vrf_table.unwrap_or_default();
            if conf.table != 0 && conf.table != table {
                return Err(internal(format!(
                    "VRF {} already exist with different routing table {table}",
                    conf.vrf_name
                )));
            }
            add_interface(&container, &vrf, table, &call.ifname)
        };
        in_netns().map_err(|e| Error { msg: format!("cmdAdd failed: {}", e.msg), ..e })?;
        Ok(previous)
    }

    /// Succeeds when there is nothing left to undo: no netns, no VRF, or
    /// no interface (upstream's #1282; Debian's 1.1.1 fails then).
    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        if call.netns.is_none() {
            return Ok(());
        }
        let container = match namespaces::container() {
            Ok(container) => container,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(vrf) = find_vrf(&container, &conf.vrf_name)? else { return Ok(()) };
        if let Some(link) = links::get(&container, &call.ifname)?
            && link.master == Some(vrf.index)
        {
            let detach = LinkChange { master: Some(Master::Detach), ..ipam::no_change() };
            links::set(&container, &call.ifname, &detach).map_err(|e| {
                internal(format!("cmdDel failed: failed to reset master of {}: {}", call.ifname, e.message))
            })?;
        }
        if members(&container, &vrf)?.is_empty() {
            match links::delete(&container, &conf.vrf_name) {
                Err(e) if !e.is_not_found() => {
                    return Err(internal(format!("cmdDel failed: deleting VRF {}: {}", conf.vrf_name, e.message)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        if call.prev_result.is_none() {
            return Err(internal("missing prevResult from earlier plugin"));
        }
        let container = namespaces::container().context("cmdCheck failed")?;
        let vrf = find_vrf(&container, &conf.vrf_name)?
            .ok_or_else(|| internal(format!("cmdCheck failed: Link not found: {}", conf.vrf_name)))?;
        if !members(&container, &vrf)?.iter().any(|l| l.name == call.ifname) {
            return Err(internal(format!(
                "cmdCheck failed: Failed to find {} associated to vrf {}",
                call.ifname, conf.vrf_name
            )));
        }
        Ok(())
    }
}

/// The VRF called `name`, if there is a link of that name; an error if
/// that link is something else.
fn find_vrf(ns: &Netns, name: &str) -> Result<Option<Link>> {
    match links::get(ns, name)? {
        Some(link) if link.kind.as_deref() == Some("vrf") => Ok(Some(link)),
        Some(_) => Err(internal(format!("Netlink {name} is not a VRF"))),
        None => Ok(None),
    }
}

/// A new VRF, up, on `table` or the lowest table no VRF in `ns` uses.
fn create_vrf(ns: &Netns, name: &str, table: u32) -> Result<Link> {
    let table = match table {
        0 => {
            let taken: Vec<u32> = links::dump(ns)?.iter().filter_map(|l| l.vrf_table).collect();
            (1..u32::MAX)
                .find(|t| !taken.contains(t))
                .ok_or_else(|| internal("findFreeDeviceID: Failed to find an available routing id"))?
        }
        table => table,
    };
    let options = LinkOptions { mtu: None, mac: None, tx_queue_len: None };
    links::create(ns, name, &LinkKind::Vrf(table), &options, None)
        .map_err(|e| internal(format!("could not add VRF {name}: {}", e.message)))?;
    links::set(ns, name, &ipam::set_up())
        .map_err(|e| internal(format!("could not set link up for VRF {name}: {}", e.message)))?;
    links::get(ns, name)?.ok_or_else(|| internal(format!("could not find VRF {name} after creating it")))
}

fn members(ns: &Netns, vrf: &Link) -> Result<Vec<Link>> {
    Ok(links::dump(ns)?.into_iter().filter(|l| l.master == Some(vrf.index)).collect())
}

/// Enslaves `ifname` to the VRF. Enslaving cycles the link, which drops
/// its IPv6 addresses (unless keep_addr_on_down) and its routes from the
/// main table: the addresses are put back, and the routes re-added in the
/// VRF's table.
fn add_interface(ns: &Netns, vrf: &Link, table: u32, ifname: &str) -> Result<()> {
    let link = links::get(ns, ifname)?.ok_or_else(|| internal(format!("could not get link by name {ifname}")))?;
    if let Some(master) = link.master {
        let name = links::get_by_index(ns, master)?.map(|m| m.name).unwrap_or_default();
        return Err(internal(format!("interface {ifname} has already a master set: {name}")));
    }
    // Link-local addresses are left out: the kernel makes them anew.
    let before: Vec<IpNet> = addresses::dump(ns, Some(ifname), Some(IpFamily::Ipv6))?
        .iter()
        .map(|a| IpNet::from_wit(&a.address))
        .filter(|a| !is_link_local(a))
        .collect();
    // Scope-universe routes through the link (not its connected and local
    // ones, which the kernel makes again in the VRF's table).
    let routes: Vec<Route> =
        routes::dump(ns, &RouteFilter { family: None, table: Some(MAIN_TABLE), link: Some(ifname.into()) })?
            .into_iter()
            .filter(|r| r.scope == 0 && r.route_type == 1)
            .collect();
    let enslave = LinkChange { master: Some(Master::Attach(vrf.name.clone())), ..ipam::no_change() };
    links::set(ns, ifname, &enslave)
        .map_err(|e| internal(format!("could not set vrf {} as master of {ifname}: {}", vrf.name, e.message)))?;

    let after: Vec<IpNet> =
        addresses::dump(ns, Some(ifname), Some(IpFamily::Ipv6))?.iter().map(|a| IpNet::from_wit(&a.address)).collect();
    for address in before.iter().filter(|a| !after.contains(a)) {
        addresses::add(ns, ifname, address.to_wit()).map_err(|e| {
            internal(format!("could not restore address {address} to {ifname} @ {}: {}", vrf.name, e.message))
        })?;
        wait_for_local_route(ns, table, ifname, address)?;
    }
    for route in &routes {
        let spec = RouteSpec {
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
        routes::add(ns, &spec, AddMode::Replace).map_err(|e| {
            let via = route.gateway.as_ref().map(|g| format!(" via {}", ip_from_wit(g))).unwrap_or_default();
            internal(format!(
                "could not add route '{}{via}' to table {table}: {}",
                IpNet::from_wit(&route.destination),
                e.message
            ))
        })?;
    }
    Ok(())
}

/// The kernel adds a restored address's local route to the VRF's table
/// once duplicate address detection is done (up to about two seconds);
/// routes through that address need it first. Upstream backs off from
/// 10 ms for about 2.5 s; this waits up to 5 s, since the address comes
/// back tentative even if it was added with `nodad`.
fn wait_for_local_route(ns: &Netns, table: u32, ifname: &str, address: &IpNet) -> Result<()> {
    let host = IpNet::host(address.addr);
    let deadline = clock::now() + 5_000_000_000;
    let mut delay = 10;
    loop {
        let local = routes::dump(
            ns,
            &RouteFilter { family: Some(IpFamily::Ipv6), table: Some(table), link: Some(ifname.into()) },
        )?;
        if local.iter().any(|r| IpNet::from_wit(&r.destination) == host) {
            return Ok(());
        }
        if clock::now() >= deadline {
            return Err(internal(format!(
                "failed getting local/host addresses for {ifname} in table {table} with dst {}",
                address.masked()
            )));
        }
        clock::sleep(delay)?;
        delay = (delay * 2).min(250);
    }
}

fn is_link_local(address: &IpNet) -> bool {
    matches!(address.addr, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

cni_plugin_sdk::plugin!(Vrf);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrfname_is_required() {
        assert_eq!(
            NetConf::parse(r#"{"name":"n"}"#).unwrap_err().msg,
            "configuration is expected to have a valid vrf name"
        );
        let conf = NetConf::parse(r#"{"name":"n","vrfname":"blue","table":1001}"#).unwrap();
        assert_eq!((conf.vrf_name.as_str(), conf.table), ("blue", 1001));
    }
}
