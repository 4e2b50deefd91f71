//! Container interfaces: the reference's `pkg/ip` veth setup and the
//! validations its plugins run on CHECK.

use std::net::IpAddr;

use crate::error::{Context, Result, internal};
use crate::ipam::no_change;
use crate::links::{self, Link, LinkChange, LinkKind, LinkOptions};
use crate::namespaces::Netns;
use crate::net::{IpNet, format_mac, ip_from_wit};
use crate::routes::{self, RouteFilter};
use crate::{addresses, cni, sysctl, types};

/// "veth" and 8 random hex digits, like the reference's RandomVethName.
pub fn random_veth_name() -> String {
    format!("veth{:08x}", random_u32())
}

/// Randomness without WASI: std's RandomState is seeded by the host.
pub fn random_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(crate::clock::now()) as u32
}

/// A random unicast, locally administered MAC, as the kernel's
/// eth_random_addr makes one.
pub fn random_mac() -> Vec<u8> {
    let mut mac: Vec<u8> = random_u32().to_be_bytes().into_iter().chain(random_u32().to_be_bytes()).take(6).collect();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Creates `ifname` in `container` with its peer (a random `veth…` name,
/// retried on a clash) in `host`, sets the peer up and stops it accepting
/// router advertisements. Returns (host end, container end).
pub fn setup_veth(
    container: &Netns,
    host: &Netns,
    ifname: &str,
    mtu: Option<u32>,
    mac: Option<Vec<u8>>,
) -> Result<(Link, Link)> {
    // The Go reference creates both ends with IFLA_TXQLEN 0 (its netlink
    // library sends the zero value); match it so the kernel state is the
    // same. A veth has no qdisc queue, so the length changes nothing else.
    let container_options = LinkOptions { mtu, mac, tx_queue_len: Some(0) };
    let host_options = LinkOptions { mtu, mac: None, tx_queue_len: Some(0) };
    let mut last_peer = String::new();
    for _ in 0..10 {
        let peer = random_veth_name();
        match links::create_veth(container, ifname, &container_options, host, &peer, &host_options) {
            Ok((container_link, host_link)) => {
                links::set(host, &peer, &LinkChange { up: Some(true), ..no_change() })
                    .context(format!("failed to set {peer:?} up"))?;
                let _ = sysctl::set(host, &format!("net/ipv6/conf/{peer}/accept_ra"), "0");
                // Re-read: the MAC of the host end is known only now.
                let host_link = links::get(host, &peer)?.unwrap_or(host_link);
                return Ok((host_link, container_link));
            }
            Err(e) if e.is_already_exists() => {
                // Only a clash on the random name is worth another try.
                if links::get(host, &peer)?.is_some() {
                    last_peer = peer;
                    continue;
                }
                return Err(internal(format!(
                    "container veth name ({ifname:?}) peer provided ({peer:?}) already exists"
                )));
            }
            Err(e) => return Err(internal(format!("failed to make veth pair: {}", e.message))),
        }
    }
    Err(internal(format!("failed to find a unique veth name (last tried {last_peer})")))
}

/// Creates a link of `kind` in `container` under a temporary random name
/// (`veth` and 8 hex digits, retried on a clash) and renames it `ifname`
/// there, as the reference's macvlan, ipvlan, vlan and tap do: the new link
/// never shows under `ifname` half made, and a name taken in the parent's
/// namespace cannot get in the way. Deleted again if the rename fails.
/// `what` names the kind in messages ("macvlan").
pub fn create_renamed(
    container: &Netns,
    ifname: &str,
    kind: &LinkKind,
    options: &LinkOptions,
    parent_ns: Option<&Netns>,
    what: &str,
) -> Result<Link> {
    let mut temporary = random_veth_name();
    let mut attempts = 0;
    loop {
        match links::create(container, &temporary, kind, options, parent_ns) {
            Ok(_) => break,
            Err(e) if e.is_already_exists() && attempts < 10 => {
                attempts += 1;
                temporary = random_veth_name();
            }
            Err(e) => return Err(internal(format!("failed to create {what}: {}", e.message))),
        }
    }
    let rename = LinkChange { name: Some(ifname.to_string()), ..crate::ipam::no_change() };
    if let Err(e) = links::set(container, &temporary, &rename) {
        let _ = links::delete(container, &temporary);
        return Err(internal(format!("failed to rename {what} to {ifname:?}: {}", e.message)));
    }
    links::get(container, ifname)?.ok_or_else(|| internal(format!("{what} {ifname:?} vanished after its creation")))
}

/// The link of the first IPv4 default route in `ns`'s main table, as the
/// reference's macvlan and ipvlan pick their default master.
pub fn default_route_interface(ns: &Netns) -> Result<Option<String>> {
    let routes = routes::dump(ns, &RouteFilter { family: Some(types::IpFamily::Ipv4), table: None, link: None })?;
    let Some(index) = routes.iter().filter(|r| r.destination.prefix_len == 0).find_map(|r| r.link_index) else {
        return Ok(None);
    };
    Ok(links::get_by_index(ns, index)?.map(|link| link.name))
}

/// A container interface entry for a result: name, MAC, and the sandbox.
pub fn container_interface(link: &Link, sandbox: Option<String>) -> cni::NetworkInterface {
    cni::NetworkInterface {
        name: link.name.clone(),
        mac: Some(mac_string(link)),
        mtu: None,
        sandbox,
        socket_path: None,
        pci_id: None,
    }
}

/// Gratuitous ARP and unsolicited NA when `ifname` comes up, so peers learn
/// a reused address at once (arp_notify as the reference; ndisc_notify too,
/// as upstream sets it now). Failures only mean no announcement.
pub fn announce_on_up(container: &Netns, ifname: &str) {
    let _ = sysctl::set(container, &format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
    let _ = sysctl::set(container, &format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1");
}

/// DEL of a plugin's container interface: gone already, or the namespace
/// gone, is success (the kernel took the link with it).
pub fn delete_container_link(call: &crate::Invocation) -> Result<()> {
    if call.netns.is_none() {
        return Ok(());
    }
    let container = match crate::namespaces::container() {
        Ok(container) => container,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match links::delete(&container, &call.ifname) {
        Err(e) if !e.is_not_found() => Err(internal(format!("failed to delete {:?}: {}", call.ifname, e.message))),
        _ => Ok(()),
    }
}

/// The DEL of a plugin that made one container link, with IPAM when
/// `ipam_type` is not empty (macvlan, ipvlan, vlan, dummy, tap): IPAM's DEL,
/// then the link, each tried whatever the other did, so one failure never
/// leaks the rest.
pub fn del_ipam_and_container_link(call: &crate::Invocation, ipam_type: &str) -> Result<()> {
    let mut errors = crate::error::Errors::new();
    if !ipam_type.is_empty() {
        errors.keep(crate::ipam::exec_del(ipam_type));
    }
    errors.keep(delete_container_link(call));
    errors.finish()
}

/// CHECK: the interface of `previous` that is CNI_IFNAME in CNI_NETNS.
pub fn prev_interface<'a>(call: &crate::Invocation, previous: &'a cni::CniResult) -> Result<&'a cni::NetworkInterface> {
    previous
        .interfaces
        .iter()
        .find(|i| i.name == call.ifname && i.sandbox.as_deref() == call.netns.as_deref())
        .ok_or_else(|| {
            internal(format!(
                "Sandbox in prevResult  doesn't match configured netns: {}",
                call.netns.as_deref().unwrap_or_default()
            ))
        })
}

/// CHECK of a container interface the plugin made: present, of link kind
/// `kind`, and with the MAC the result gave (the reference's messages).
pub fn check_container_link(container: &Netns, entry: &cni::NetworkInterface, kind: &str) -> Result<Link> {
    if entry.name.is_empty() {
        return Err(internal("Container interface name missing in prevResult: "));
    }
    let link = links::get(container, &entry.name)?
        .ok_or_else(|| internal(format!("Container Interface name in prevResult: {} not found", entry.name)))?;
    if link.kind.as_deref() != Some(kind) {
        return Err(internal(format!("Error: Container interface {} not of type {kind}", link.name)));
    }
    if let Some(mac) = entry.mac.as_deref().filter(|m| !m.is_empty())
        && !mac.eq_ignore_ascii_case(&mac_string(&link))
    {
        return Err(internal(format!(
            "Interface {} Mac {mac} doesn't match container Mac: {}",
            entry.name,
            mac_string(&link)
        )));
    }
    Ok(link)
}

/// Deletes a link, returning its global unicast addresses; None when there
/// was no such link.
pub fn delete_link_with_addresses(ns: &Netns, name: &str) -> Result<Option<Vec<IpNet>>> {
    let Some(_) = links::get(ns, name)? else { return Ok(None) };
    let addresses: Vec<IpNet> = addresses::dump(ns, Some(name), None)?
        .iter()
        .map(|a| IpNet::from_wit(&a.address))
        .filter(|a| is_global_unicast(a.addr))
        .collect();
    match links::delete(ns, name) {
        Ok(()) => Ok(Some(addresses)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(internal(format!("failed to delete {name:?}: {}", e.message))),
    }
}

fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_multicast() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The MAC as the reference prints it (lower-case, colons), or "".
pub fn mac_string(link: &Link) -> String {
    link.mac.as_deref().map(format_mac).unwrap_or_default()
}

/// CHECK: every result address is on `ifname`, and a route to its prefix
/// exists (ValidateExpectedInterfaceIPs).
pub fn validate_interface_ips(ns: &Netns, ifname: &str, ips: &[cni::IpConfig]) -> Result<()> {
    let present: Vec<IpNet> = addresses::dump(ns, Some(ifname), None)
        .map_err(|_| internal(format!("Cannot find container link {ifname}")))?
        .iter()
        .map(|a| IpNet::from_wit(&a.address))
        .collect();
    // Every table: a later plugin (sbr, vrf) may have moved the route.
    let routes = routes::dump(ns, &RouteFilter { family: None, table: Some(0), link: None })?;
    for ip in ips {
        let wanted = IpNet::from_wit(&ip.address);
        if !present.contains(&wanted) {
            return Err(internal(format!("Failed to match addr {wanted} on interface {ifname}")));
        }
        let prefix = wanted.masked();
        if !routes.iter().any(|r| IpNet::from_wit(&r.destination) == prefix) {
            let gateway = ip.gateway.as_ref().map(|g| ip_from_wit(g).to_string()).unwrap_or_else(|| "<nil>".into());
            return Err(internal(format!("Failed to find Gateway {gateway} for interface {ifname}")));
        }
    }
    Ok(())
}

/// CHECK: every result route is there (by destination, and by gateway
/// when it has one; a default route by destination only), as the
/// reference's ValidateExpectedRoute does, but in any table: the
/// reference looks only in main, so its CHECK fails once sbr or vrf moved
/// the routes (its #297).
pub fn validate_routes(ns: &Netns, expected: &[cni::Route]) -> Result<()> {
    let routes = routes::dump(ns, &RouteFilter { family: None, table: Some(0), link: None })?;
    for route in expected {
        let dst = IpNet::from_wit(&route.dst);
        let gateway = route.gw.as_ref().map(ip_from_wit);
        let default = dst.prefix == 0;
        let found = routes.iter().any(|r| {
            IpNet::from_wit(&r.destination).masked() == dst.masked()
                && (default || gateway.is_none() || r.gateway.as_ref().map(ip_from_wit) == gateway)
        });
        if !found {
            return Err(internal(format!("Expected Route {} not found in routing table", describe(route))));
        }
    }
    Ok(())
}

fn describe(route: &cni::Route) -> String {
    let dst = IpNet::from_wit(&route.dst);
    match route.gw.as_ref() {
        Some(gw) => format!("{{Dst: {dst} GW: {}}}", ip_from_wit(gw)),
        None => format!("{{Dst: {dst}}}"),
    }
}

/// Enables IPv4 or IPv6 forwarding in `ns` (written only when not already 1).
pub fn enable_forwarding(ns: &Netns, family: types::IpFamily) -> Result<()> {
    let key = match family {
        types::IpFamily::Ipv4 => "net/ipv4/ip_forward",
        types::IpFamily::Ipv6 => "net/ipv6/conf/all/forwarding",
    };
    if sysctl::get(ns, key).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    sysctl::set(ns, key, "1").context("Could not enable IP forwarding")
}
