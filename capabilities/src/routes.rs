//! Routes (RTM_NEWROUTE / DELROUTE / GETROUTE).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addresses::Family;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::links;
use crate::net::IpNetwork;
use crate::netns::Netns;

pub const MAIN_TABLE: u32 = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub link_index: Option<u32>,
    pub source: Option<IpAddr>,
    pub table: u32,
    pub scope: u8,
    pub priority: Option<u32>,
    pub route_type: u8,
    pub protocol: u8,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteSpec {
    pub destination: Option<IpNetwork>,
    pub gateway: Option<IpAddr>,
    pub link: Option<String>,
    pub source: Option<IpAddr>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
    pub priority: Option<u32>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    /// rtm_protocol; None: boot.
    pub protocol: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMode {
    Exclusive,
    Append,
    Replace,
}

#[derive(Debug, Clone, Default)]
pub struct RouteFilter {
    pub family: Option<Family>,
    /// None: main table; Some(0): every table.
    pub table: Option<u32>,
    pub link: Option<String>,
}

pub fn dump(ns: &Netns, filter: &RouteFilter) -> Result<Vec<Route>> {
    let doing = format!("listing routes in {}", ns.label());
    let link_index = match &filter.link {
        Some(name) => Some(links::require(ns, name).context(&doing)?.index),
        None => None,
    };
    let table = filter.table.unwrap_or(MAIN_TABLE);
    let families: &[AddressFamily] = match filter.family {
        Some(Family::V4) => &[AddressFamily::Inet],
        Some(Family::V6) => &[AddressFamily::Inet6],
        None => &[AddressFamily::Inet, AddressFamily::Inet6],
    };
    let mut routes = Vec::new();
    for family in families {
        let mut request = RouteMessage::default();
        request.header.address_family = *family;
        let replies = ns.route()?.dump(RouteNetlinkMessage::GetRoute(request), &doing)?;
        routes.extend(
            replies
                .iter()
                .filter_map(|reply| match reply {
                    RouteNetlinkMessage::NewRoute(message) => parse(message),
                    _ => None,
                })
                .filter(|route| table == 0 || route.table == table)
                .filter(|route| link_index.is_none() || route.link_index == link_index),
        );
    }
    Ok(routes)
}

/// The link of the first IPv4 default route in the main table, as the
/// reference's macvlan and ipvlan pick their default master.
pub fn default_route_link(ns: &Netns) -> Result<Option<String>> {
    let routes = dump(ns, &RouteFilter { family: Some(Family::V4), table: None, link: None })?;
    let Some(index) = routes.iter().filter(|r| r.destination.prefix_len == 0).find_map(|r| r.link_index) else {
        return Ok(None);
    };
    Ok(links::get_by_index(ns, index)?.map(|link| link.name))
}

pub fn add(ns: &Netns, spec: &RouteSpec, mode: AddMode) -> Result<()> {
    let doing = format!("adding route {} in {}", describe(spec), ns.label());
    let message = message_for(ns, spec, &doing)?;
    let flags = match mode {
        AddMode::Exclusive => NLM_F_CREATE | NLM_F_EXCL,
        AddMode::Append => NLM_F_CREATE | NLM_F_APPEND,
        AddMode::Replace => NLM_F_CREATE | NLM_F_REPLACE,
    };
    ns.route()?.execute(RouteNetlinkMessage::NewRoute(message), flags, &doing)
}

pub fn delete(ns: &Netns, spec: &RouteSpec) -> Result<()> {
    let doing = format!("deleting route {} in {}", describe(spec), ns.label());
    let mut message = message_for(ns, spec, &doing)?;
    // Match any protocol and, unless given, any scope (RT_SCOPE_NOWHERE), as
    // `ip route del` does.
    message.header.protocol = RouteProtocol::Unspec;
    if spec.scope.is_none() {
        message.header.scope = RouteScope::NoWhere;
    }
    ns.route()?.execute(RouteNetlinkMessage::DelRoute(message), 0, &doing)
}

/// The route the kernel picks for `destination` (like `ip route get`).
pub fn lookup(ns: &Netns, destination: IpAddr) -> Result<Route> {
    lookup_with(ns, destination, false)
}

/// The routing-table entry (main table and rules, as a packet would go)
/// that covers `destination`, with its own prefix (RTM_F_FIB_MATCH), where
/// [`lookup`] answers with the resolved /32 or /128.
pub fn covering_route(ns: &Netns, destination: IpAddr) -> Result<Route> {
    lookup_with(ns, destination, true)
}

fn lookup_with(ns: &Netns, destination: IpAddr, fib_match: bool) -> Result<Route> {
    let doing = format!("looking up the route to {destination} in {}", ns.label());
    let mut request = RouteMessage::default();
    if fib_match {
        request.header.flags |= netlink_packet_route::route::RouteFlags::FibMatch;
    }
    request.header.address_family = family_of(destination);
    request.header.destination_prefix_length = if destination.is_ipv4() { 32 } else { 128 };
    request.attributes.push(RouteAttribute::Destination(RouteAddress::from(destination)));
    match ns.route()?.get(RouteNetlinkMessage::GetRoute(request), &doing)? {
        RouteNetlinkMessage::NewRoute(message) => {
            parse(&message).ok_or_else(|| Error::new(ErrorKind::Io, format!("{doing}: undecodable route")))
        }
        other => Err(Error::new(ErrorKind::Io, format!("{doing}: unexpected reply {other:?}"))),
    }
}

fn message_for(ns: &Netns, spec: &RouteSpec, doing: &str) -> Result<RouteMessage> {
    let destination =
        spec.destination.ok_or_else(|| Error::invalid(format!("{doing}: a route needs a destination")))?;
    destination.validate()?;
    if let Some(gateway) = spec.gateway
        && gateway.is_ipv4() != destination.is_ipv4()
    {
        return Err(Error::invalid(format!("{doing}: gateway {gateway} is not in the destination's address family")));
    }
    let table = spec.table.unwrap_or(MAIN_TABLE);
    let mut message = RouteMessage::default();
    message.header = RouteHeader {
        address_family: family_of(destination.address),
        destination_prefix_length: destination.prefix_len,
        table: if table < 256 { table as u8 } else { 0 },
        // Like vishvananda/netlink (and so the Go reference): proto boot,
        // unless the route keeps its own.
        protocol: spec.protocol.map(RouteProtocol::from).unwrap_or(RouteProtocol::Boot),
        scope: RouteScope::from(spec.scope.unwrap_or(0)),
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    message.attributes.push(RouteAttribute::Table(table));
    message.attributes.push(RouteAttribute::Destination(RouteAddress::from(destination.network())));
    if let Some(gateway) = spec.gateway {
        message.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    if let Some(name) = &spec.link {
        let index = links::require(ns, name).context(doing)?.index;
        message.attributes.push(RouteAttribute::Oif(index));
    }
    if let Some(source) = spec.source {
        message.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(source)));
    }
    if let Some(priority) = spec.priority {
        message.attributes.push(RouteAttribute::Priority(priority));
    }
    let mut metrics = Vec::new();
    if let Some(mtu) = spec.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = spec.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        message.attributes.push(RouteAttribute::Metrics(metrics));
    }
    Ok(message)
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 }
}

fn describe(spec: &RouteSpec) -> String {
    let mut text = match spec.destination {
        Some(destination) => destination.to_string(),
        None => "(no destination)".to_string(),
    };
    if let Some(gateway) = spec.gateway {
        text += &format!(" via {gateway}");
    }
    if let Some(link) = &spec.link {
        text += &format!(" dev {link}");
    }
    if let Some(source) = spec.source {
        text += &format!(" src {source}");
    }
    if let Some(table) = spec.table {
        text += &format!(" table {table}");
    }
    if let Some(scope) = spec.scope {
        text += &format!(" scope {scope}");
    }
    if let Some(priority) = spec.priority {
        text += &format!(" metric {priority}");
    }
    text
}

fn address_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn parse(message: &RouteMessage) -> Option<Route> {
    let header = &message.header;
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut route = Route {
        destination: IpNetwork::new(unspecified, header.destination_prefix_length),
        gateway: None,
        link_index: None,
        source: None,
        table: header.table as u32,
        scope: header.scope.into(),
        priority: None,
        route_type: header.kind.into(),
        protocol: header.protocol.into(),
        mtu: None,
        advmss: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => {
                route.destination.address = address_of(address)?;
            }
            RouteAttribute::Gateway(address) => route.gateway = address_of(address),
            RouteAttribute::Oif(index) => route.link_index = Some(*index),
            RouteAttribute::PrefSource(address) => route.source = address_of(address),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::Priority(priority) => route.priority = Some(*priority),
            RouteAttribute::Metrics(metrics) => {
                for metric in metrics {
                    match metric {
                        RouteMetric::Mtu(mtu) => route.mtu = Some(*mtu),
                        RouteMetric::Advmss(advmss) => route.advmss = Some(*advmss),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(route)
}
