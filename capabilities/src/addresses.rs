//! Interface addresses (RTM_NEWADDR / DELADDR / GETADDR).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Context, Result};
use crate::links;
use crate::net::IpNetwork;
use crate::netns::Netns;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub link_index: u32,
    pub address: IpNetwork,
    pub scope: u8,
    pub tentative: bool,
    pub dad_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Addresses in `ns`, optionally only one link's or one family's.
pub fn dump(ns: &Netns, link: Option<&str>, family: Option<Family>) -> Result<Vec<Address>> {
    let doing =
        format!("listing addresses{} in {}", link.map(|l| format!(" of {l:?}")).unwrap_or_default(), ns.label());
    let mut request = AddressMessage::default();
    if let Some(name) = link {
        request.header.index = links::require(ns, name).context(&doing)?.index;
    }
    request.header.family = match family {
        Some(Family::V4) => AddressFamily::Inet,
        Some(Family::V6) => AddressFamily::Inet6,
        None => AddressFamily::Unspec,
    };
    let wanted_index = request.header.index;
    let replies = ns.route()?.dump(RouteNetlinkMessage::GetAddress(request), &doing)?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewAddress(message) => parse(message),
            _ => None,
        })
        // Strict dump filtering is best-effort on old kernels; filter again.
        .filter(|address| wanted_index == 0 || address.link_index == wanted_index)
        .filter(|address| match family {
            Some(Family::V4) => address.address.is_ipv4(),
            Some(Family::V6) => !address.address.is_ipv4(),
            None => true,
        })
        .collect())
}

pub fn add(ns: &Netns, link: &str, address: IpNetwork) -> Result<()> {
    address.validate()?;
    let doing = format!("adding address {address} to {link:?} in {}", ns.label());
    let message = message_for(ns, link, address, &doing)?;
    ns.route()?.execute(RouteNetlinkMessage::NewAddress(message), NLM_F_CREATE | NLM_F_EXCL, &doing)
}

pub fn delete(ns: &Netns, link: &str, address: IpNetwork) -> Result<()> {
    address.validate()?;
    let doing = format!("deleting address {address} from {link:?} in {}", ns.label());
    let message = message_for(ns, link, address, &doing)?;
    ns.route()?.execute(RouteNetlinkMessage::DelAddress(message), 0, &doing)
}

fn message_for(ns: &Netns, link: &str, address: IpNetwork, doing: &str) -> Result<AddressMessage> {
    let index = links::require(ns, link).context(doing)?.index;
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = address.prefix_len;
    message.header.family = if address.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    // As iproute2 does: IFA_LOCAL and IFA_ADDRESS both carry the address
    // (they differ only for point-to-point peers), plus the broadcast.
    message.attributes.push(AddressAttribute::Local(address.address));
    message.attributes.push(AddressAttribute::Address(address.address));
    if let Some(broadcast) = address.broadcast() {
        message.attributes.push(AddressAttribute::Broadcast(broadcast));
    }
    Ok(message)
}

fn parse(message: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut peer = None;
    let mut flags = AddressFlags::from_bits_truncate(message.header.flags.bits() as u32);
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => peer = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address when present (IPv4);
    // IPv6 carries only IFA_ADDRESS.
    let ip: IpAddr = local.or(peer)?;
    Some(Address {
        link_index: message.header.index,
        address: IpNetwork::new(ip, message.header.prefix_len),
        scope: message.header.scope.into(),
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}
