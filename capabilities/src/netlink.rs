//! A small synchronous netlink client: send one request, collect its replies,
//! turn NLMSG_ERROR into an [`Error`] with the kernel's extended-ack text.
//!
//! One request is in flight at a time, so a reply belongs to the request with
//! the same sequence number; anything else is a bug worth failing loudly on.

use std::marker::PhantomData;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols};

use crate::error::{Error, ErrorKind, Result};

/// Kernel replies to a dump come in datagrams of up to 32 KiB by default.
const RECV_BUFFER: usize = 64 * 1024;
/// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried
/// this many times, as the Go reference's netlinksafe does.
const DUMP_ATTEMPTS: usize = 5;

const NLMSGERR_ATTR_MSG: u16 = 1;

pub type RouteSocket = NetlinkSocket<RouteNetlinkMessage>;

pub struct NetlinkSocket<M> {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
    _message: PhantomData<M>,
}

impl NetlinkSocket<RouteNetlinkMessage> {
    /// Opens an rtnetlink socket in the calling thread's namespace.
    pub fn open() -> std::io::Result<Self> {
        Self::open_protocol(protocols::NETLINK_ROUTE)
    }
}

impl<M> NetlinkSocket<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
{
    pub fn open_protocol(protocol: isize) -> std::io::Result<Self> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Error replies carry only the request's header (not the whole
        // request) plus the kernel's explanation as a TLV.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // Let the kernel filter dumps by the header fields we set.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(NetlinkSocket { socket, sequence: 0, buffer: vec![0; RECV_BUFFER], _message: PhantomData })
    }

    /// Sends a request that changes something and waits for its ACK.
    /// `flags` adds NLM_F_CREATE / EXCL / REPLACE / APPEND as needed.
    pub fn execute(&mut self, message: M, flags: u16, doing: &dyn std::fmt::Display) -> Result<()> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags, doing).map(drop)
    }

    /// Sends a request that expects one reply message (a GET of one object).
    pub fn get(&mut self, message: M, doing: &dyn std::fmt::Display) -> Result<M> {
        let mut replies = self.exchange(message, NLM_F_REQUEST, doing)?;
        match replies.len() {
            1 => Ok(replies.pop().expect("one reply")),
            n => Err(Error::new(ErrorKind::Io, format!("{doing}: expected one reply, got {n}"))),
        }
    }

    /// Dumps a table; retried when the kernel says the dump was interrupted
    /// by a concurrent change.
    pub fn dump(&mut self, message: M, doing: &dyn std::fmt::Display) -> Result<Vec<M>>
    where
        M: Clone,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.exchange_checked(message.clone(), NLM_F_REQUEST | NLM_F_DUMP, doing)? {
                (replies, false) => return Ok(replies),
                (replies, true) if attempt >= DUMP_ATTEMPTS => return Ok(replies),
                (_, true) => continue,
            }
        }
    }

    fn exchange(&mut self, message: M, flags: u16, doing: &dyn std::fmt::Display) -> Result<Vec<M>> {
        self.exchange_checked(message, flags, doing).map(|(replies, _)| replies)
    }

    /// Returns the replies and whether the dump was interrupted.
    fn exchange_checked(&mut self, message: M, flags: u16, doing: &dyn std::fmt::Display) -> Result<(Vec<M>, bool)> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(|e| Error::from_io(&e, format!("{doing} (netlink send)")))?;

        let expects_ack = flags & NLM_F_ACK != 0;
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let size = self
                .socket
                .recv(&mut &mut self.buffer[..], 0)
                .map_err(|e| Error::from_io(&e, format!("{doing} (netlink recv)")))?;
            let mut offset = 0;
            while offset < size {
                let reply = NetlinkMessage::<M>::deserialize(&self.buffer[offset..size])
                    .map_err(|e| Error::new(ErrorKind::Io, format!("{doing}: undecodable netlink reply: {e}")))?;
                let length = reply.header.length as usize;
                if length == 0 {
                    return Err(Error::new(ErrorKind::Io, format!("{doing}: zero-length netlink reply")));
                }
                offset += (length + 3) & !3;
                if reply.header.sequence_number != sequence {
                    // A late reply to an earlier request that timed out; skip it.
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                let multipart = reply.header.flags & NLM_F_MULTIPART != 0;
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok((replies, interrupted)),
                    NetlinkPayload::Error(error) => match error.code {
                        None => return Ok((replies, interrupted)),
                        Some(code) => {
                            let errno = -code.get();
                            let explanation = extended_ack_message(&error.header);
                            let doing = match explanation {
                                Some(text) => format!("{doing} (kernel: {text})"),
                                None => doing.to_string(),
                            };
                            return Err(Error::from_errno(errno, doing));
                        }
                    },
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if !multipart && !is_dump && !expects_ack {
                            return Ok((replies, interrupted));
                        }
                    }
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
            }
        }
    }
}

/// The NLMSGERR_ATTR_MSG text of an extended ACK. With NETLINK_CAP_ACK the
/// error payload is the request's 16-byte header followed by the TLVs.
fn extended_ack_message(payload: &[u8]) -> Option<String> {
    let text = find_attribute(payload.get(16..)?, NLMSGERR_ATTR_MSG)?;
    let text = text.split(|b| *b == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(text).into_owned()).filter(|t| !t.is_empty())
}

/// The payload of the first netlink attribute of `kind` in `tlvs` (for
/// messages no typed crate parses), or None when absent or malformed.
pub(crate) fn find_attribute(tlvs: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(tlvs).find(|(this, _)| *this == kind).map(|(_, payload)| payload)
}

/// The netlink attributes in `tlvs` as (kind without the nested and
/// byte-order flags, payload), up to the first malformed one.
pub(crate) fn attributes(mut tlvs: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if tlvs.len() < 4 {
            return None;
        }
        let length = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if length < 4 || length > tlvs.len() {
            return None;
        }
        let payload = &tlvs[4..length];
        tlvs = tlvs.get(length.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}
