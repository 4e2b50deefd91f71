//! The DHCP client: one exchange (acquire, renew, rebind, release) on a
//! container interface, over a packet socket opened inside the container's
//! namespace.
//!
//! A packet socket, as the reference's nclient4 uses, because before the
//! lease the interface has no address: the kernel's UDP stack would drop a
//! reply unicast to the offered address, and it could not send a renewal
//! after the address is gone. The socket is opened per exchange and closed
//! after it, so the daemon never holds a reference that keeps a deleted
//! namespace alive. Messages are encoded and decoded by `dhcproto`; the
//! IPv4 and UDP headers around them are the few lines below.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable};

use super::wire::{self, LeaseRoute};
use crate::error::{Error, ErrorKind, Result};
use crate::links::{self, LinkChange};
use crate::netns::Netns;

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// Retransmissions, each ±1 s: as the reference's client, a few fast ones
/// (servers such as dnsmasq stay silent on the first DISCOVER of a client
/// while they ping-check the address they mean to offer), then RFC 2131
/// §4.4.1's 4 s, doubling up to `resend_max`.
const FAST_RETRANSMIT: Duration = Duration::from_secs(2);
const FAST_RETRANSMITS: u32 = 4;
const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
/// RFC 2131 §4.4.5: T1 and T2 when the server sends neither, and an hour
/// when it sends no lease time (as the reference assumes).
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);

/// How the daemon runs exchanges (its command-line flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Ask servers to broadcast their replies (`-broadcast`; ipvlan needs it).
    pub broadcast: bool,
    /// The most one acquisition may take (`-timeout`).
    pub timeout: Duration,
    /// The longest wait between retransmissions (`-resendmax`).
    pub resend_max: Duration,
}

/// What the client sends on every message of a lease.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Option 61's value (type byte included).
    pub client_id: Vec<u8>,
    pub provide: Vec<wire::DhcpOption>,
    /// The parameter request list (55).
    pub request: Vec<u8>,
}

/// A lease as the server granted it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Granted {
    pub lease: wire::Lease,
    pub server_id: Ipv4Addr,
    pub server_mac: [u8; 6],
    /// Seconds from the moment of the ACK.
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
}

pub enum Renewal {
    Granted(Granted),
    /// The server said no (DHCPNAK): the address must be given up.
    Refused,
}

/// A container interface with a DHCP socket open on it.
pub struct Interface {
    socket: OwnedFd,
    index: u32,
    mac: [u8; 6],
    label: String,
}

impl Interface {
    /// Finds `ifname` in `ns` (and sets it up if it is down, as the
    /// reference does), then opens the packet socket inside `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> Result<Interface> {
        let link = links::require(ns, ifname)?;
        let mac: [u8; 6] = link.mac.as_deref().and_then(|m| m.try_into().ok()).ok_or_else(|| {
            Error::new(ErrorKind::Unsupported, format!("{ifname} in {} is not an Ethernet link", ns.label()))
        })?;
        if !link.up {
            links::set(ns, ifname, &LinkChange { up: Some(true), ..Default::default() })?;
        }
        let index = link.index;
        let socket = ns.run("opening a DHCP packet socket", move || packet_socket(index))?;
        Ok(Interface { socket, index, mac, label: format!("{ifname} in {}", ns.label()) })
    }

    /// DISCOVER, OFFER, REQUEST, ACK, retransmitting as RFC 2131 says, until
    /// `settings.timeout`.
    pub fn acquire(&self, identity: &Identity, settings: &Settings) -> Result<Granted> {
        let deadline = Instant::now() + settings.timeout;
        loop {
            let xid = random_u32();
            let discover = self.message(xid, MessageType::Discover, identity, settings, Ipv4Addr::UNSPECIFIED);
            let offer = self
                .transact(&discover, BROADCAST_MAC, Ipv4Addr::BROADCAST, deadline, settings, |m| {
                    m.opts().has_msg_type(MessageType::Offer)
                })
                .map_err(|e| self.timed_out(e, "DHCPOFFER", settings.timeout))?;
            let Some(DhcpOption::ServerIdentifier(server)) = offer.0.opts().get(OptionCode::ServerIdentifier).cloned()
            else {
                continue;
            };
            let mut request = self.message(xid, MessageType::Request, identity, settings, Ipv4Addr::UNSPECIFIED);
            request.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.0.yiaddr()));
            request.opts_mut().insert(DhcpOption::ServerIdentifier(server));
            let (reply, mac) = self
                .transact(&request, BROADCAST_MAC, Ipv4Addr::BROADCAST, deadline, settings, |m| {
                    m.opts().has_msg_type(MessageType::Ack) || m.opts().has_msg_type(MessageType::Nak)
                })
                .map_err(|e| self.timed_out(e, "DHCPACK", settings.timeout))?;
            if reply.opts().has_msg_type(MessageType::Ack) {
                return self.granted(&reply, mac, server);
            }
            // A NAK: start over (RFC 2131 §3.1.5).
            if Instant::now() >= deadline {
                return Err(Error::new(ErrorKind::Io, format!("DHCP servers refused every offer on {}", self.label)));
            }
        }
    }

    /// A REQUEST for the held address: unicast to its server (renewing), or
    /// broadcast to any server (rebinding, after T2).
    pub fn renew(&self, held: &Granted, identity: &Identity, settings: &Settings, rebind: bool) -> Result<Renewal> {
        let deadline = Instant::now() + settings.timeout;
        let mut request = self.message(random_u32(), MessageType::Request, identity, settings, held.lease.address);
        // RFC 2131 §4.3.2: renewing and rebinding clients set ciaddr and
        // leave out the requested address and the server identifier.
        request.set_flags(Flags::default());
        let (mac, ip) = if rebind { (BROADCAST_MAC, Ipv4Addr::BROADCAST) } else { (held.server_mac, held.server_id) };
        let (reply, from) = self
            .transact_from(&request, mac, ip, held.lease.address, deadline, settings, |m| {
                m.opts().has_msg_type(MessageType::Ack) || m.opts().has_msg_type(MessageType::Nak)
            })
            .map_err(|e| self.timed_out(e, "an answer to a renewal", settings.timeout))?;
        if reply.opts().has_msg_type(MessageType::Nak) {
            return Ok(Renewal::Refused);
        }
        let server = match reply.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(server)) => *server,
            _ => held.server_id,
        };
        self.granted(&reply, from, server).map(Renewal::Granted)
    }

    /// DHCPRELEASE to the server that granted `held` (no answer comes).
    pub fn release(&self, held: &Granted, identity: &Identity, settings: &Settings) -> Result<()> {
        let mut release = self.message(random_u32(), MessageType::Release, identity, settings, held.lease.address);
        release.set_flags(Flags::default());
        release.opts_mut().remove(OptionCode::ParameterRequestList);
        release.opts_mut().insert(DhcpOption::ServerIdentifier(held.server_id));
        let payload = encode(&release)?;
        self.send(held.server_mac, held.lease.address, held.server_id, &payload)
            .map_err(|e| Error::from_io(&e, format!("sending DHCPRELEASE on {}", self.label)))
    }

    fn message(
        &self,
        xid: u32,
        kind: MessageType,
        identity: &Identity,
        settings: &Settings,
        ciaddr: Ipv4Addr,
    ) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut message = Message::new_with_id(xid, ciaddr, unspecified, unspecified, unspecified, &self.mac);
        if settings.broadcast {
            message.set_flags(Flags::default().set_broadcast());
        }
        let options = message.opts_mut();
        options.insert(DhcpOption::MessageType(kind));
        options.insert(DhcpOption::ClientIdentifier(identity.client_id.clone()));
        options.insert(DhcpOption::MaxMessageSize(1500));
        options.insert(DhcpOption::ParameterRequestList(
            identity.request.iter().map(|code| OptionCode::from(*code)).collect(),
        ));
        for option in &identity.provide {
            options.insert(raw_option(option));
        }
        message
    }

    fn granted(&self, ack: &Message, server_mac: [u8; 6], server_id: Ipv4Addr) -> Result<Granted> {
        let options = ack.opts();
        let Some(DhcpOption::SubnetMask(mask)) = options.get(OptionCode::SubnetMask) else {
            return Err(Error::new(
                ErrorKind::Io,
                format!("the DHCP server {server_id} sent no subnet mask for {} on {}", ack.yiaddr(), self.label),
            ));
        };
        let prefix_len = u32::from(*mask).leading_ones() as u8;
        let gateway = match options.get(OptionCode::Router) {
            Some(DhcpOption::Router(routers)) => routers.first().copied(),
            _ => None,
        };
        let mut routes = Vec::new();
        if let Some(DhcpOption::ClasslessStaticRoute(classless)) = options.get(OptionCode::ClasslessStaticRoute) {
            // RFC 3442: with classless routes, the router option and the
            // static routes are ignored for routing.
            for (net, router) in classless {
                let gw = (!router.is_unspecified()).then_some(*router);
                routes.push(LeaseRoute { dst: net.network(), prefix_len: net.prefix_len(), gw });
            }
        } else {
            if let Some(DhcpOption::StaticRoutingTable(table)) = options.get(OptionCode::StaticRoutingTable) {
                for (dst, router) in table {
                    routes.push(LeaseRoute { dst: *dst, prefix_len: classful_prefix(*dst), gw: Some(*router) });
                }
            }
            if let Some(router) = gateway {
                routes.push(LeaseRoute { dst: Ipv4Addr::UNSPECIFIED, prefix_len: 0, gw: Some(router) });
            }
        }
        let seconds = |code| match options.get(code) {
            Some(DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s)) => Some(*s),
            _ => None,
        };
        let lease_secs = seconds(OptionCode::AddressLeaseTime).unwrap_or(DEFAULT_LEASE.as_secs() as u32);
        let t1_secs = seconds(OptionCode::Renewal).unwrap_or(lease_secs / 2);
        let t2_secs = seconds(OptionCode::Rebinding).unwrap_or((lease_secs as u64 * 7 / 8) as u32);
        Ok(Granted {
            lease: wire::Lease { address: ack.yiaddr(), prefix_len, gateway, routes },
            server_id,
            server_mac,
            lease_secs,
            t1_secs,
            t2_secs,
        })
    }

    fn timed_out(&self, error: Error, waiting_for: &str, timeout: Duration) -> Error {
        if error.kind == ErrorKind::Timeout {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "no DHCP server answered on {} within {}s (waiting for {waiting_for})",
                    self.label,
                    timeout.as_secs()
                ),
            )
        } else {
            error
        }
    }

    fn transact(
        &self,
        message: &Message,
        mac: [u8; 6],
        ip: Ipv4Addr,
        deadline: Instant,
        settings: &Settings,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<(Message, [u8; 6])> {
        self.transact_from(message, mac, ip, Ipv4Addr::UNSPECIFIED, deadline, settings, wanted)
    }

    /// Sends `message` and waits for a reply to it that `wanted` accepts,
    /// retransmitting with exponential backoff until `deadline`.
    #[allow(clippy::too_many_arguments)]
    fn transact_from(
        &self,
        message: &Message,
        mac: [u8; 6],
        ip: Ipv4Addr,
        source: Ipv4Addr,
        deadline: Instant,
        settings: &Settings,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<(Message, [u8; 6])> {
        let payload = encode(message)?;
        let mut wait = FAST_RETRANSMIT;
        let mut sent = 0;
        loop {
            self.send(mac, source, ip, &payload)
                .map_err(|e| Error::from_io(&e, format!("sending a DHCP message on {}", self.label)))?;
            // ±1 s of jitter, so that clients started together spread out.
            let jitter = Duration::from_millis(u64::from(random_u32() % 2000));
            let until = (Instant::now() + wait + jitter - Duration::from_secs(1)).min(deadline);
            while let Some((bytes, from)) = self
                .receive(until)
                .map_err(|e| Error::from_io(&e, format!("receiving DHCP messages on {}", self.label)))?
            {
                let Ok(reply) = Message::decode(&mut Decoder::new(&bytes)) else { continue };
                if reply.opcode() == Opcode::BootReply
                    && reply.xid() == message.xid()
                    && reply.chaddr().get(..6) == Some(&self.mac[..])
                    && wanted(&reply)
                {
                    return Ok((reply, from));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::new(ErrorKind::Timeout, format!("no DHCP answer on {}", self.label)));
            }
            sent += 1;
            wait = match sent {
                ..FAST_RETRANSMITS => FAST_RETRANSMIT,
                FAST_RETRANSMITS => FIRST_RETRANSMIT,
                _ => wait * 2,
            }
            .min(settings.resend_max.max(Duration::from_secs(1)));
        }
    }

    fn send(&self, mac: [u8; 6], source: Ipv4Addr, destination: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let datagram = ipv4_udp(source, destination, payload);
        let address = link_address(self.index, mac);
        // SAFETY: the buffer and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                datagram.as_ptr().cast(),
                datagram.len(),
                0,
                (&raw const address).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// The next DHCP payload sent to the client port, with the sender's
    /// MAC, or None at `until`.
    fn receive(&self, until: Instant) -> io::Result<Option<(Vec<u8>, [u8; 6])>> {
        let mut buffer = vec![0u8; 2048];
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            let mut poll = libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let millis = remaining.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if ready == 0 {
                continue;
            }
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer and the address are valid for the lengths given.
            let read = unsafe {
                libc::recvfrom(
                    self.socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            if read < 0 {
                let error = io::Error::last_os_error();
                if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                    continue;
                }
                return Err(error);
            }
            if let Some(payload) = udp_payload(&buffer[..read as usize], CLIENT_PORT) {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&from.sll_addr[..6]);
                return Ok(Some((payload.to_vec(), mac)));
            }
        }
    }
}

fn packet_socket(index: u32) -> io::Result<OwnedFd> {
    let protocol = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(protocol)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let address = link_address(index, [0; 6]);
    // SAFETY: the address is valid for its length.
    let bound =
        unsafe { libc::bind(fd, (&raw const address).cast(), size_of::<libc::sockaddr_ll>() as libc::socklen_t) };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn link_address(index: u32, mac: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    address.sll_ifindex = index as i32;
    address.sll_halen = 6;
    address.sll_addr[..6].copy_from_slice(&mac);
    address
}

fn encode(message: &Message) -> Result<Vec<u8>> {
    message.to_vec().map_err(|e| Error::invalid(format!("encoding a DHCP message: {e}")))
}

/// A provided option, sent as the bytes the config gave (as the reference
/// does), whatever shape dhcproto expects for its code: a value it would
/// not parse is still sent, never dropped.
fn raw_option(option: &wire::DhcpOption) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(option.code), option.value.clone()))
}

/// An IPv4 header and a UDP header (client port to server port) around
/// `payload`.
fn ipv4_udp(source: Ipv4Addr, destination: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut packet = Vec::with_capacity(total);
    packet.extend_from_slice(&[0x45, 0x10]); // version 4, 20-byte header; TOS low delay, as dhclient
    packet.extend_from_slice(&(total as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
    packet.extend_from_slice(&[64, libc::IPPROTO_UDP as u8, 0, 0]);
    packet.extend_from_slice(&source.octets());
    packet.extend_from_slice(&destination.octets());
    let header_sum = checksum(&packet[..20], 0);
    packet[10..12].copy_from_slice(&header_sum.to_be_bytes());
    packet.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    packet.extend_from_slice(&SERVER_PORT.to_be_bytes());
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    // The UDP checksum covers a pseudo-header of addresses, protocol, length.
    let mut pseudo = 0u32;
    for chunk in [source.octets(), destination.octets()] {
        pseudo +=
            u32::from(u16::from_be_bytes([chunk[0], chunk[1]])) + u32::from(u16::from_be_bytes([chunk[2], chunk[3]]));
    }
    pseudo += libc::IPPROTO_UDP as u32 + udp_len as u32;
    let udp_sum = match checksum(&packet[20..], pseudo) {
        0 => 0xffff,
        sum => sum,
    };
    packet[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    packet
}

fn checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The UDP payload of an unfragmented IPv4 packet to `port`.
fn udp_payload(packet: &[u8], port: u16) -> Option<&[u8]> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x3fff;
    if packet[0] >> 4 != 4 || packet.get(9)? != &(libc::IPPROTO_UDP as u8) || fragment != 0 || header_len < 20 {
        return None;
    }
    let packet = packet.get(..total)?;
    let udp = packet.get(header_len..)?;
    if u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]) != port {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    udp.get(8..udp_len)
}

/// The prefix length of a classful network (option 33's destinations).
fn classful_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: the buffer is valid for 4 bytes. getrandom without flags
    // blocks only before the kernel's pool is initialised, long before this.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 4, 0) };
    if filled != 4 {
        return std::process::id() ^ Instant::now().elapsed().subsec_nanos();
    }
    u32::from_ne_bytes(bytes)
}

/// The zero-type client identifier the reference sends.
pub fn default_client_id(text: &str) -> Vec<u8> {
    let mut id = vec![0u8];
    id.extend_from_slice(text.as_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_checksums_verify() {
        let packet = ipv4_udp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, b"hello");
        assert_eq!(checksum(&packet[..20], 0), 0, "a header with its checksum sums to zero");
        // Swap the ports, so that it reads as a reply to the client port.
        let mut reply = packet.clone();
        reply[20..24].copy_from_slice(&[0, 67, 0, 68]);
        assert_eq!(udp_payload(&reply, CLIENT_PORT), Some(&b"hello"[..]));
        assert_eq!(udp_payload(&packet, CLIENT_PORT), None);
    }

    #[test]
    fn classful_networks() {
        assert_eq!(classful_prefix(Ipv4Addr::new(10, 1, 0, 0)), 8);
        assert_eq!(classful_prefix(Ipv4Addr::new(172, 16, 0, 0)), 16);
        assert_eq!(classful_prefix(Ipv4Addr::new(192, 168, 3, 0)), 24);
    }

    #[test]
    fn provided_options_go_out_as_given() {
        // A user class that is not RFC 3004's shape, as the reference sends it.
        for (code, value) in [(12u8, b"pod-a".to_vec()), (77, b"plain".to_vec()), (224, vec![1, 2])] {
            let encoded = raw_option(&wire::DhcpOption { code, value: value.clone() }).to_vec().unwrap();
            assert_eq!(encoded, [vec![code, value.len() as u8], value].concat());
        }
    }
}
