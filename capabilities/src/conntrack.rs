//! Connection-tracking entries over ctnetlink (NETLINK_NETFILTER).
//!
//! Why: when a container goes away, the kernel keeps the conntrack entries
//! of flows that were NATed to it. A UDP client that keeps sending (DNS,
//! syslog, VXLAN) refreshes its entry forever and never reaches the new
//! container behind the same host port. Plugins such as portmap therefore
//! delete the entries that point at a port or at a container address.
//!
//! How: dump the family's table (IPCTNL_MSG_CT_GET with NLM_F_DUMP), match
//! the entries against the filter here in userspace, and delete each match
//! by its original tuple (IPCTNL_MSG_CT_DELETE), as the Go reference
//! (vishvananda/netlink's ConntrackDeleteFilters) does.
//!
//! Why not let the kernel filter a flush: a DELETE without a tuple is a
//! flush. The kernel narrows a flush only by mark, status, family or (on
//! recent kernels) zone, never by address or port (it refuses CTA_FILTER
//! there), and a kernel that predates a filter attribute ignores it and
//! empties the whole table. Deleting by exact tuple can at worst miss an
//! entry, never take unrelated ones with it, and works on every kernel.

use std::net::IpAddr;

use netlink_packet_core::{DefaultNla, NLA_TYPE_MASK, Nla};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::addresses::Family;
use crate::error::{Error, Result};
use crate::netlink::NetlinkSocket;
use crate::netns::Netns;

/// CTA_ZONE (linux/netfilter/nfnetlink_conntrack.h); the crate does not
/// name it. An entry in a non-default zone is only found with its zone.
const CTA_ZONE: u16 = 18;

type CtnetlinkSocket = NetlinkSocket<NetfilterMessage>;

/// Matches entries by their original direction (as the client sent it) and
/// reply direction (as the server answered). Unset fields match anything.
#[derive(Debug, Clone)]
pub struct FlowFilter {
    pub family: Family,
    pub protocol: Option<u8>,
    pub original_destination: Option<IpAddr>,
    pub original_destination_port: Option<u16>,
    pub reply_source: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub family: Family,
    pub protocol: u8,
    pub original_source: IpAddr,
    pub original_destination: IpAddr,
    pub original_source_port: Option<u16>,
    pub original_destination_port: Option<u16>,
    pub reply_source: IpAddr,
    pub reply_destination: IpAddr,
    pub reply_source_port: Option<u16>,
    pub reply_destination_port: Option<u16>,
}

/// The entries of `ns`'s table that match `filter`.
pub fn dump(ns: &Netns, filter: &FlowFilter) -> Result<Vec<Flow>> {
    check(filter)?;
    let mut socket = open(ns)?;
    Ok(matching_entries(&mut socket, ns, filter)?.into_iter().map(|entry| entry.flow).collect())
}

/// Deletes every matching entry; returns how many were deleted.
pub fn delete(ns: &Netns, filter: &FlowFilter) -> Result<u32> {
    delete_any(ns, std::slice::from_ref(filter))
}

/// Deletes every entry matching any of `filters`, in one walk of the table:
/// a dump walks the kernel's whole (global) conntrack hash, which costs
/// milliseconds however few entries the namespace has.
pub fn delete_any(ns: &Netns, filters: &[FlowFilter]) -> Result<u32> {
    let Some(first) = filters.first() else { return Ok(0) };
    filters.iter().try_for_each(check)?;
    let family = filters.iter().all(|f| f.family == first.family).then_some(first.family);
    let mut socket = open(ns)?;
    let doing = format!("dumping conntrack entries in {}", ns.label());
    let request = NetfilterMessage::new(header(family), ConntrackMessage::Get(vec![]));
    let entries: Vec<Entry> = socket
        .dump(request, &doing)?
        .iter()
        .filter_map(entry)
        .filter(|entry| filters.iter().any(|filter| matches(filter, &entry.flow)))
        .collect();
    let mut deleted = 0;
    for entry in entries {
        if delete_entry(&mut socket, ns, &entry)? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// A dumped entry: what callers see, and what the kernel needs to find it
/// again for a delete.
struct Entry {
    flow: Flow,
    /// CTA_TUPLE_ORIG exactly as dumped, so that protocol-specific members
    /// (ICMP type/code/id, a directional zone) go back unchanged.
    original_tuple: Vec<Tuple>,
    /// CTA_ZONE as dumped, if the entry is not in the default zone.
    zone: Option<DefaultNla>,
}

/// One direction of an entry, decoded from its CTA_TUPLE_* attribute.
struct Endpoints {
    protocol: u8,
    source: IpAddr,
    destination: IpAddr,
    source_port: Option<u16>,
    destination_port: Option<u16>,
}

/// An address of the other family can never match: say so rather than
/// return nothing.
fn check(filter: &FlowFilter) -> Result<()> {
    for address in [filter.original_destination, filter.reply_source].into_iter().flatten() {
        if family_of(&address) != filter.family {
            let family = match filter.family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            };
            return Err(Error::invalid(format!("an {family} conntrack filter names the address {address}")));
        }
    }
    Ok(())
}

fn open(ns: &Netns) -> Result<CtnetlinkSocket> {
    ns.run("opening a ctnetlink socket", || CtnetlinkSocket::open_protocol(NETLINK_NETFILTER))
}

fn matching_entries(socket: &mut CtnetlinkSocket, ns: &Netns, filter: &FlowFilter) -> Result<Vec<Entry>> {
    let doing = format!("dumping conntrack entries in {}", ns.label());
    let request = NetfilterMessage::new(header(Some(filter.family)), ConntrackMessage::Get(vec![]));
    let replies = socket.dump(request, &doing)?;
    Ok(replies.iter().filter_map(entry).filter(|entry| matches(filter, &entry.flow)).collect())
}

/// Sends IPCTNL_MSG_CT_DELETE for one entry, by its original tuple (never
/// without one: that would be a flush). Returns false when the entry was
/// already gone (it expired or someone else deleted it meanwhile).
fn delete_entry(socket: &mut CtnetlinkSocket, ns: &Netns, entry: &Entry) -> Result<bool> {
    let doing = format!("deleting conntrack entry {} in {}", describe(&entry.flow), ns.label());
    let mut attributes = vec![ConntrackAttribute::CtaTupleOrig(entry.original_tuple.clone())];
    attributes.extend(entry.zone.clone().map(ConntrackAttribute::Other));
    let request = NetfilterMessage::new(header(Some(entry.flow.family)), ConntrackMessage::Delete(attributes));
    match socket.execute(request, 0, &doing) {
        Ok(()) => Ok(true),
        Err(error) if error.errno == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

fn matches(filter: &FlowFilter, flow: &Flow) -> bool {
    flow.family == filter.family
        && filter.protocol.is_none_or(|protocol| protocol == flow.protocol)
        && filter.original_destination.is_none_or(|address| address == flow.original_destination)
        && filter.original_destination_port.is_none_or(|port| Some(port) == flow.original_destination_port)
        && filter.reply_source.is_none_or(|address| address == flow.reply_source)
}

/// Decodes one dumped entry; None for anything that is not an IPv4/IPv6
/// entry with both tuples complete (such an entry is skipped).
fn entry(reply: &NetfilterMessage) -> Option<Entry> {
    let family = match reply.header.family {
        NetfilterProtoFamily::IPv4 => Family::V4,
        NetfilterProtoFamily::IPv6 => Family::V6,
        _ => return None,
    };
    // Dumped entries come as IPCTNL_MSG_CT_NEW.
    let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)) = &reply.inner else {
        return None;
    };
    let mut original_tuple = None;
    let mut reply_tuple = None;
    let mut zone = None;
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(tuple) => original_tuple = Some(tuple),
            ConntrackAttribute::CtaTupleReply(tuple) => reply_tuple = Some(tuple),
            ConntrackAttribute::Other(nla) if nla.kind() & NLA_TYPE_MASK == CTA_ZONE => zone = Some(nla.clone()),
            _ => {}
        }
    }
    let original_tuple = original_tuple?;
    let original = endpoints(original_tuple)?;
    let reply = endpoints(reply_tuple?)?;
    if [original.source, original.destination, reply.source, reply.destination].iter().any(|a| family_of(a) != family) {
        return None;
    }
    let flow = Flow {
        family,
        protocol: original.protocol,
        original_source: original.source,
        original_destination: original.destination,
        original_source_port: original.source_port,
        original_destination_port: original.destination_port,
        reply_source: reply.source,
        reply_destination: reply.destination,
        reply_source_port: reply.source_port,
        reply_destination_port: reply.destination_port,
    };
    Some(Entry { flow, original_tuple: original_tuple.clone(), zone })
}

/// The addresses, protocol and ports of one tuple; None if the addresses
/// or the protocol are missing. Ports are absent for portless protocols
/// such as ICMP (the crate decodes them from network byte order).
fn endpoints(tuple: &[Tuple]) -> Option<Endpoints> {
    let (mut protocol, mut source, mut destination) = (None, None, None);
    let (mut source_port, mut destination_port) = (None, None);
    for member in tuple {
        match member {
            Tuple::Ip(addresses) => {
                for address in addresses {
                    match address {
                        IPTuple::SourceAddress(ip) => source = Some(*ip),
                        IPTuple::DestinationAddress(ip) => destination = Some(*ip),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(fields) => {
                for field in fields {
                    match field {
                        ProtoTuple::Protocol(number) => protocol = Some(u8::from(*number)),
                        ProtoTuple::SourcePort(port) => source_port = Some(*port),
                        ProtoTuple::DestinationPort(port) => destination_port = Some(*port),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Endpoints { protocol: protocol?, source: source?, destination: destination?, source_port, destination_port })
}

/// None dumps every family.
fn header(family: Option<Family>) -> NetfilterHeader {
    let family = match family {
        Some(Family::V4) => NetfilterProtoFamily::IPv4,
        Some(Family::V6) => NetfilterProtoFamily::IPv6,
        None => NetfilterProtoFamily::Unspec,
    };
    NetfilterHeader::new(family, 0, 0)
}

fn family_of(address: &IpAddr) -> Family {
    match address {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// "proto 17 10.0.0.1:5000 -> 10.0.0.2:5353", for messages.
fn describe(flow: &Flow) -> String {
    let endpoint = |address: IpAddr, port: Option<u16>| match (address, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, None) => a.to_string(),
    };
    format!(
        "proto {} {} -> {}",
        flow.protocol,
        endpoint(flow.original_source, flow.original_source_port),
        endpoint(flow.original_destination, flow.original_destination_port)
    )
}
