//! What the host and the lease daemon say to each other on the daemon's
//! unix socket: one JSON request line, one JSON response line.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The longest request or response line either side accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// Whose lease: the reference's key, `<container id>/<network>/<ifname>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseKey {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
}

impl LeaseKey {
    /// The default client identifier's text, as the reference builds it
    /// (option 61 holds a zero type byte and then this, at most 254 bytes).
    pub fn client_id(&self) -> String {
        let mut id = format!("{}/{}/{}", self.container_id, self.network, self.ifname);
        if id.len() > 254 {
            let mut end = 254;
            while !id.is_char_boundary(end) {
                end -= 1;
            }
            id.truncate(end);
        }
        id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOption {
    pub code: u8,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// `netns` is an absolute path as the host sees it (the daemon adds
    /// its `-hostprefix`).
    /// `timeout_ms`: how long the caller waits for the answer.
    Acquire {
        key: LeaseKey,
        netns: String,
        provide: Vec<DhcpOption>,
        request: Vec<u8>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    Release {
        key: LeaseKey,
    },
    /// The lease held for `key`, if any; nothing is sent to a server.
    Held {
        key: LeaseKey,
    },
    Status,
    /// Release the leases of `network` whose (container id, ifname) is not
    /// in `valid`.
    Gc {
        network: String,
        valid: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRoute {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub gw: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub routes: Vec<LeaseRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub kind: String,
    pub errno: Option<i32>,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl Response {
    pub fn failed(error: &Error) -> Response {
        Response {
            lease: None,
            error: Some(WireError {
                kind: kind_name(error.kind).to_string(),
                errno: error.errno,
                message: error.message.clone(),
            }),
        }
    }

    /// The lease (or nothing), or the daemon's error as ours.
    pub fn into_result(self) -> Result<Option<Lease>> {
        match self.error {
            Some(e) => Err(Error { kind: kind_from_name(&e.kind), errno: e.errno, message: e.message }),
            None => Ok(self.lease),
        }
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not-found",
        ErrorKind::AlreadyExists => "already-exists",
        ErrorKind::Busy => "busy",
        ErrorKind::InvalidArgument => "invalid-argument",
        ErrorKind::Denied => "denied",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::NotImplemented => "not-implemented",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Io => "io",
    }
}

fn kind_from_name(name: &str) -> ErrorKind {
    [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Busy,
        ErrorKind::InvalidArgument,
        ErrorKind::Denied,
        ErrorKind::Unsupported,
        ErrorKind::NotImplemented,
        ErrorKind::Timeout,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
    .unwrap_or(ErrorKind::Io)
}

/// Sends one request to the daemon at `socket` and waits for its answer,
/// at most until `deadline`.
pub fn ask(socket: &Path, request: &Request, deadline: Instant) -> Result<Option<Lease>> {
    let where_ = format!("the dhcp daemon at {}", socket.display());
    let stream = UnixStream::connect(socket).map_err(|e| {
        let mut error = Error::from_io(&e, format!("connecting to {where_}"));
        if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) {
            error.message.push_str(" (is it running? start it with `dhcp daemon` or the cni-dhcp.socket unit)");
        }
        error
    })?;
    let remaining = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
    let timeout = |e: std::io::Error| Error::from_io(&e, format!("setting a timeout on {where_}"));
    stream.set_read_timeout(Some(remaining)).map_err(timeout)?;
    stream.set_write_timeout(Some(remaining)).map_err(timeout)?;
    let mut line = serde_json::to_vec(request).map_err(|e| Error::invalid(format!("encoding a request: {e}")))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| Error::from_io(&e, format!("writing to {where_}")))?;
    let response = read_line(&stream).map_err(|e| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            Error::new(ErrorKind::Timeout, format!("{where_} did not answer before the invocation's deadline"))
        } else {
            Error::from_io(&e, format!("reading the answer of {where_}"))
        }
    })?;
    let response: Response = serde_json::from_slice(&response)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{where_} sent an answer that is not one: {e}")))?;
    response.into_result()
}

/// One newline-terminated line of at most [`MAX_LINE`] bytes.
pub fn read_line(stream: &UnixStream) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let read = BufReader::new(std::io::Read::take(stream, MAX_LINE as u64 + 1)).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed without an answer"));
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long or not terminated"));
    }
    line.pop();
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_the_references_and_fit_option_61() {
        let key = LeaseKey { container_id: "c1".into(), network: "lan".into(), ifname: "eth0".into() };
        assert_eq!(key.client_id(), "c1/lan/eth0");
        let long = LeaseKey { container_id: "x".repeat(300), ..key };
        assert_eq!(long.client_id().len(), 254);
    }

    #[test]
    fn errors_cross_the_socket_with_their_kind() {
        let error = Error::new(ErrorKind::Timeout, "no DHCP server answered");
        let back = serde_json::from_slice::<Response>(&serde_json::to_vec(&Response::failed(&error)).unwrap())
            .unwrap()
            .into_result()
            .unwrap_err();
        assert_eq!((back.kind, back.message.as_str()), (ErrorKind::Timeout, "no DHCP server answered"));
    }
}
