//! The firewalld backend: the container's addresses become sources of a
//! zone (`firewalldZone`, default "trusted"), over D-Bus through the
//! netfilter capability.

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter_capability as netfilter;

pub fn running() -> bool {
    netfilter::firewalld_running()
}

/// The error for a config that asks for firewalld where it is not running.
pub fn not_running() -> cni_plugin_sdk::Error {
    internal(
        "backend \"firewalld\" requested, but firewalld is not running \
         (nothing owns org.fedoraproject.FirewallD1 on the D-Bus system bus)",
    )
}

/// Adds every address (an address already in the zone is fine); on a
/// failure takes back the ones added.
pub fn add(zone: &str, ips: &[IpNet]) -> Result<()> {
    for (i, ip) in ips.iter().enumerate() {
        if let Err(e) = netfilter::firewalld_add_source(zone, &ip.to_string()) {
            remove(zone, &ips[..i]);
            return Err(internal(format!("failed to add the address {ip} to {zone} zone: {}", e.message)));
        }
    }
    Ok(())
}

/// Removes the addresses; failures (an address not in the zone) are only
/// logged, as the reference ignores them.
pub fn remove(zone: &str, ips: &[IpNet]) {
    for ip in ips {
        if let Err(e) = netfilter::firewalld_remove_source(zone, &ip.to_string()) {
            cni_plugin_sdk::debug!("firewall: removing {ip} from firewalld zone {zone}: {}", e.message);
        }
    }
}

/// Every address must be a source of the zone.
pub fn check(zone: &str, ips: &[IpNet]) -> Result<()> {
    for ip in ips {
        match netfilter::firewalld_query_source(zone, &ip.to_string()) {
            Ok(true) => {}
            Ok(false) => return Err(internal(format!("failed to find the address {ip} in {zone} zone"))),
            Err(e) => return Err(internal(format!("failed to find the address {ip} in {zone} zone: {}", e.message))),
        }
    }
    Ok(())
}
