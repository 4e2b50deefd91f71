//! Conversions between WIT types and the native types of the capabilities
//! and protocol modules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_wasm_capabilities::Error;
use cni_wasm_capabilities::addresses::Family;
use cni_wasm_capabilities::net::IpNetwork;

use crate::bindings::cni_wasm::plugin::{cni, types};
use crate::protocol::result as protocol;

pub fn ip_from_wit(address: types::IpAddress) -> IpAddr {
    match address {
        types::IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        types::IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
    }
}

pub fn ip_to_wit(address: IpAddr) -> types::IpAddress {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            types::IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

/// Checks the prefix length, which the WIT type cannot.
pub fn network_from_wit(network: types::IpNetwork) -> Result<IpNetwork, Error> {
    let network = IpNetwork::new(ip_from_wit(network.address), network.prefix_len);
    network.validate()?;
    Ok(network)
}

pub fn network_to_wit(network: IpNetwork) -> types::IpNetwork {
    types::IpNetwork { address: ip_to_wit(network.address), prefix_len: network.prefix_len }
}

pub fn family_from_wit(family: types::IpFamily) -> Family {
    match family {
        types::IpFamily::Ipv4 => Family::V4,
        types::IpFamily::Ipv6 => Family::V6,
    }
}

pub fn family_to_wit(family: Family) -> types::IpFamily {
    match family {
        Family::V4 => types::IpFamily::Ipv4,
        Family::V6 => types::IpFamily::Ipv6,
    }
}

pub fn result_to_wit(result: &protocol::CniResult) -> cni::CniResult {
    cni::CniResult {
        interfaces: result
            .interfaces
            .iter()
            .map(|i| cni::NetworkInterface {
                name: i.name.clone(),
                mac: i.mac.clone(),
                mtu: i.mtu,
                sandbox: i.sandbox.clone(),
                socket_path: i.socket_path.clone(),
                pci_id: i.pci_id.clone(),
            })
            .collect(),
        ips: result
            .ips
            .iter()
            .map(|ip| cni::IpConfig {
                interface_index: ip.interface,
                address: network_to_wit(ip.address),
                gateway: ip.gateway.map(ip_to_wit),
            })
            .collect(),
        routes: result
            .routes
            .iter()
            .map(|r| cni::Route {
                dst: network_to_wit(r.dst),
                gw: r.gw.map(ip_to_wit),
                mtu: r.mtu,
                advmss: r.advmss,
                priority: r.priority,
                table: r.table,
                scope: r.scope,
            })
            .collect(),
        dns: cni::Dns {
            nameservers: result.dns.nameservers.clone(),
            domain: result.dns.domain.clone(),
            search: result.dns.search.clone(),
            options: result.dns.options.clone(),
        },
    }
}

/// A plugin's result; an invalid prefix length is the plugin's bug.
pub fn result_from_wit(result: cni::CniResult) -> Result<protocol::CniResult, Error> {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(protocol::CniResult {
        interfaces: result
            .interfaces
            .into_iter()
            .map(|i| protocol::Interface {
                name: i.name,
                mac: non_empty(i.mac),
                mtu: i.mtu.filter(|m| *m != 0),
                sandbox: non_empty(i.sandbox),
                socket_path: non_empty(i.socket_path),
                pci_id: non_empty(i.pci_id),
            })
            .collect(),
        ips: result
            .ips
            .into_iter()
            .map(|ip| {
                Ok(protocol::IpConfig {
                    interface: ip.interface_index,
                    address: network_from_wit(ip.address)?,
                    gateway: ip.gateway.map(ip_from_wit),
                })
            })
            .collect::<Result<_, Error>>()?,
        routes: result
            .routes
            .into_iter()
            .map(|r| {
                Ok(protocol::Route {
                    dst: network_from_wit(r.dst)?,
                    gw: r.gw.map(ip_from_wit),
                    mtu: r.mtu,
                    advmss: r.advmss,
                    priority: r.priority,
                    table: r.table,
                    scope: r.scope,
                })
            })
            .collect::<Result<_, Error>>()?,
        dns: protocol::Dns {
            nameservers: result.dns.nameservers,
            domain: non_empty(result.dns.domain),
            search: result.dns.search,
            options: result.dns.options,
        },
    })
}
