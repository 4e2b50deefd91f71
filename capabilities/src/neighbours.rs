//! Neighbour announcements: a gratuitous ARP (IPv4) or an unsolicited
//! neighbour advertisement (IPv6) for an address, so that peers which still
//! map a reused address to a deleted container's MAC learn the new one at
//! once instead of after their neighbour entry times out.
//!
//! The kernel's own `arp_notify` fires when the link comes up, which for a
//! fresh veth is before the bridge port on the other end forwards (the
//! port's carrier change is processed later, by linkwatch), so it is lost;
//! an announcement sent afterwards is not.
//!
//! For IPv4 the kernel sends the gratuitous ARPs itself: setting the link's
//! MAC (to the same value) raises NETDEV_CHANGEADDR, on which a link with
//! `arp_notify` announces its IPv4 addresses. A packet socket would do too,
//! but closing one waits for an RCU grace period (synchronize_net: 8-16 ms
//! on this kind of machine), which every plugin run would pay.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::links::{self, LinkChange};
use crate::netns::Netns;
use crate::sysctl;

const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Override flag: replace whatever MAC a peer has for the address.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;

/// Announces `address` out of `link` in `ns`.
pub fn announce(ns: &Netns, link: &str, address: IpAddr) -> Result<()> {
    let found = links::get(ns, link)?.ok_or_else(|| Error::not_found(format!("link {link:?} in {}", ns.label())))?;
    let mac: [u8; 6] = found
        .mac
        .as_deref()
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| Error::invalid(format!("link {link:?} has no Ethernet address to announce")))?;
    match address {
        IpAddr::V4(_) => kernel_arp_notify(ns, link, mac.to_vec()),
        IpAddr::V6(ip) => {
            let doing = format!("announcing {address} on {link:?}");
            ns.run(&doing, || unsolicited_advertisement(found.index, mac, ip))
        }
    }
}

/// Re-sets the MAC with `arp_notify` on (for the moment, if it was off), so
/// the kernel announces the link's IPv4 addresses.
fn kernel_arp_notify(ns: &Netns, link: &str, mac: Vec<u8>) -> Result<()> {
    let key = format!("net/ipv4/conf/{link}/arp_notify");
    let before = sysctl::get(ns, &key)?;
    if before != "1" {
        sysctl::set(ns, &key, "1")?;
    }
    let result = links::set(ns, link, &LinkChange { mac: Some(mac), ..LinkChange::default() });
    if before != "1" {
        sysctl::set(ns, &key, &before)?;
    }
    result
}

fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory-safety preconditions; a valid fd is
    // owned by the returned OwnedFd.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor no one else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(result: isize) -> io::Result<()> {
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// An unsolicited, overriding neighbour advertisement to all nodes
/// (RFC 4861 §7.2.6). The kernel fills in the ICMPv6 checksum.
fn unsolicited_advertisement(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    let hops: i32 = 255;
    let index = ifindex as i32;
    for (option, value) in [(libc::IPV6_MULTICAST_HOPS, hops), (libc::IPV6_MULTICAST_IF, index)] {
        // SAFETY: value is a valid i32 for the length given.
        check(unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::IPPROTO_IPV6, option, (&value as *const i32).cast(), 4) as isize
        })?;
    }
    let mut packet = Vec::with_capacity(32);
    packet.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    packet.extend_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    packet.extend_from_slice(&ip.octets());
    packet.extend_from_slice(&[ND_OPT_TARGET_LL_ADDR, 1]);
    packet.extend_from_slice(&mac);
    // SAFETY: sockaddr_in6 is plain data; zeroed is a valid value.
    let mut to: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    to.sin6_family = libc::AF_INET6 as u16;
    to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    to.sin6_scope_id = ifindex;
    // SAFETY: the buffer and address are valid for the lengths given.
    check(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&to as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    })
}
