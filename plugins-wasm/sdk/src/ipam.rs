//! Running the IPAM plugin and applying its result to an interface: the Go
//! reference's `pkg/ipam` (ExecAdd/ExecDel/..., ConfigureIface).

use crate::cni::CniResult;
use crate::delegation::{self, Command};
use crate::error::{Context, Result, internal};
use crate::links::{self, LinkChange};
use crate::namespaces::Netns;
use crate::net::{IpNet, ip_from_wit, ip_to_wit};
use crate::routes::{self, AddMode, RouteSpec};
use crate::{addresses, clock, sysctl, types};

/// IPAM ADD with this invocation's stdin; an IPAM result must have addresses.
pub fn exec_add(plugin_type: &str) -> Result<CniResult> {
    delegation::invoke(plugin_type, Command::Add, None)?
        .ok_or_else(|| internal(format!("IPAM plugin {plugin_type} returned no result")))
}

pub fn exec_del(plugin_type: &str) -> Result<()> {
    delegation::invoke(plugin_type, Command::Del, None).map(drop)
}

pub fn exec_check(plugin_type: &str) -> Result<()> {
    delegation::invoke(plugin_type, Command::Check, None).map(drop)
}

pub fn exec_status(plugin_type: &str) -> Result<()> {
    delegation::invoke(plugin_type, Command::Status, None).map(drop)
}

pub fn exec_gc(plugin_type: &str) -> Result<()> {
    delegation::invoke(plugin_type, Command::Gc, None).map(drop)
}

/// The `ipam` section of a plugin config, for the plugins whose only state
/// is their IPAM's.
fn ipam_of(config: &str) -> Result<crate::config::IpamConf> {
    #[derive(serde::Deserialize)]
    struct WithIpam {
        #[serde(default)]
        ipam: crate::config::IpamConf,
    }
    Ok(crate::config::parse::<WithIpam>(config)?.ipam)
}

/// STATUS of such a plugin: its IPAM's, or fine without one.
pub fn status_of(config: &str) -> Result<()> {
    let ipam = ipam_of(config)?;
    if ipam.plugin_type.is_empty() { Ok(()) } else { exec_status(&ipam.plugin_type) }
}

/// GC of such a plugin: its IPAM's, or nothing to do without one.
pub fn gc_of(config: &str) -> Result<()> {
    let ipam = ipam_of(config)?;
    if ipam.plugin_type.is_empty() { Ok(()) } else { exec_gc(&ipam.plugin_type) }
}

/// IPAM ADD for a plugin's one container interface: its addresses all on
/// that interface (index 0), applied with [`configure_iface`]; `prepare`
/// runs first in the container (sysctls such as arp_notify). The result's
/// interfaces are just `interface`.
pub fn add_to_interface(
    plugin_type: &str,
    container: &Netns,
    interface: crate::cni::NetworkInterface,
    prepare: impl FnOnce(),
) -> Result<CniResult> {
    let mut result = exec_add(plugin_type)?;
    if result.ips.is_empty() {
        return Err(internal("IPAM plugin returned missing IP config"));
    }
    let ifname = interface.name.clone();
    result.interfaces = vec![interface];
    for ip in &mut result.ips {
        ip.interface_index = Some(0);
    }
    prepare();
    configure_iface(container, &ifname, &result)?;
    Ok(result)
}

/// How long to wait for IPv6 duplicate address detection.
const SETTLE_TIMEOUT_MS: u64 = 5_000;

/// Applies `result` to `ifname` inside `ns`: its addresses (those whose
/// `interface` index names `ifname`), link up, then its routes, using the
/// first gateway of each family for routes that have none.
pub fn configure_iface(ns: &Netns, ifname: &str, result: &CniResult) -> Result<()> {
    if result.interfaces.is_empty() {
        return Err(internal("no interfaces to configure"));
    }
    let mut v4_gateway = None;
    let mut v6_gateway = None;
    let mut ipv6_enabled = false;
    for ip in &result.ips {
        let Some(index) = ip.interface_index else { continue };
        let address = IpNet::from_wit(&ip.address);
        if result.interfaces.get(index as usize).is_none_or(|i| i.name != ifname) {
            return Err(internal(format!("failed to add IP addr {address} to {ifname:?}: invalid interface index")));
        }
        if !ipv6_enabled && !address.is_ipv4() {
            enable_ipv6(ns, ifname)?;
            ipv6_enabled = true;
        }
        addresses::add(ns, ifname, ip.address).context(format!("failed to add IP addr {address} to {ifname:?}"))?;
        if let Some(gateway) = ip.gateway.as_ref().map(ip_from_wit) {
            if gateway.is_ipv4() {
                v4_gateway.get_or_insert(gateway);
            } else {
                v6_gateway.get_or_insert(gateway);
            }
        }
    }
    links::set(ns, ifname, &set_up()).context(format!("failed to set {ifname:?} UP"))?;
    if v6_gateway.is_some() {
        settle_addresses(ns, ifname, SETTLE_TIMEOUT_MS)?;
    }
    for route in &result.routes {
        let dst = IpNet::from_wit(&route.dst);
        let gateway = route.gw.as_ref().map(ip_from_wit).or(if dst.is_ipv4() { v4_gateway } else { v6_gateway });
        let spec = RouteSpec {
            destination: route.dst,
            gateway: gateway.map(ip_to_wit),
            link: Some(ifname.to_string()),
            source: None,
            table: route.table,
            scope: route.scope.map(|s| s as u8),
            priority: route.priority,
            mtu: None,
            advmss: None,
            protocol: None,
        };
        routes::add(ns, &spec, AddMode::Append).context(format!("failed to add route '{dst}'"))?;
    }
    Ok(())
}

/// disable_ipv6=0 on lo and the interface (only where it is not already),
/// and keep addresses when the link goes down.
fn enable_ipv6(ns: &Netns, ifname: &str) -> Result<()> {
    for link in ["lo", ifname] {
        let key = format!("net/ipv6/conf/{link}/disable_ipv6");
        match sysctl::get(ns, &key) {
            Ok(value) if value == "0" => continue,
            Ok(_) => sysctl::set(ns, &key, "0").context(format!("failed to enable IPv6 on {link:?}"))?,
            // As the reference: an unreadable value is only worth a log line.
            Err(e) => crate::warn!("failed to read sysctl {key}: {e}"),
        }
    }
    let key = format!("net/ipv6/conf/{ifname}/keep_addr_on_down");
    if let Err(e) = sysctl::set(ns, &key, "1") {
        crate::warn!("failed to set {key}: {e}");
    }
    Ok(())
}

/// Waits until no IPv6 address on `ifname` is tentative (DAD done); fails
/// if DAD failed, or at the timeout if the link is up.
pub fn settle_addresses(ns: &Netns, ifname: &str, timeout_ms: u64) -> Result<()> {
    let start = clock::now();
    loop {
        let tentative: Vec<_> = addresses::dump(ns, Some(ifname), Some(types::IpFamily::Ipv6))?
            .into_iter()
            .filter(|a| a.tentative || a.dad_failed)
            .collect();
        if let Some(failed) = tentative.iter().find(|a| a.dad_failed) {
            return Err(internal(format!(
                "link {ifname} has address {} in DADFAILED state",
                IpNet::from_wit(&failed.address)
            )));
        }
        if tentative.is_empty() {
            return Ok(());
        }
        if clock::now().saturating_sub(start) >= timeout_ms * 1_000_000 {
            let link = links::get(ns, ifname)?;
            return match link {
                Some(link) if link.oper_state == links::OperState::Up => {
                    Err(internal(format!("link {ifname} still has tentative addresses after {timeout_ms} ms")))
                }
                _ => Ok(()),
            };
        }
        clock::sleep(50)?;
    }
}

/// A link change that only sets the link up.
pub fn set_up() -> LinkChange {
    LinkChange { up: Some(true), ..no_change() }
}

/// A link change that changes nothing; set the fields you want.
pub fn no_change() -> LinkChange {
    LinkChange {
        up: None,
        mtu: None,
        mac: None,
        promiscuous: None,
        all_multicast: None,
        tx_queue_len: None,
        master: None,
        name: None,
        alias: None,
    }
}
