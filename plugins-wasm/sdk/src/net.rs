//! IP addresses and prefixes: parsing the way Go does, arithmetic for IPAM,
//! and conversions to and from the WIT types.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::types;

/// An address with a prefix length. Host bits are kept ("10.1.0.5/24" is an
/// interface address; "10.1.0.0/24" a network), as in CNI's types.IPNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= bits(addr)).then_some(IpNet { addr, prefix })
    }

    /// A host route: /32 or /128.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet { addr, prefix: bits(addr) }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn max_prefix(&self) -> u8 {
        bits(self.addr)
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        from_u128(to_u128(self.addr) & self.mask(), self.addr.is_ipv4())
    }

    /// The same prefix with host bits cleared.
    pub fn masked(&self) -> IpNet {
        IpNet { addr: self.network(), prefix: self.prefix }
    }

    /// The last address of the prefix (IPv4 broadcast).
    pub fn last(&self) -> IpAddr {
        from_u128(to_u128(self.addr) | !self.mask() & max_value(self.addr), self.addr.is_ipv4())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && to_u128(ip) & self.mask() == to_u128(self.addr) & self.mask()
    }

    /// Whether two prefixes share any address.
    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    fn mask(&self) -> u128 {
        let bits = self.max_prefix() as u32;
        let host_bits = bits - self.prefix as u32;
        let all = max_value(self.addr);
        if host_bits >= 128 { 0 } else { all & !((1u128 << host_bits) - 1) }
    }

    pub fn to_wit(self) -> types::IpNetwork {
        types::IpNetwork { address: ip_to_wit(self.addr), prefix_len: self.prefix }
    }

    pub fn from_wit(network: &types::IpNetwork) -> IpNet {
        IpNet { addr: ip_from_wit(&network.address), prefix: network.prefix_len }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// Go's net.ParseCIDR syntax: "addr/prefix", decimal prefix.
    fn from_str(text: &str) -> Result<IpNet, String> {
        let invalid = || format!("invalid CIDR address: {text}");
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr = parse_ip(addr).ok_or_else(invalid)?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        IpNet::new(addr, prefix.parse().map_err(|_| invalid())?).ok_or_else(invalid)
    }
}

/// Parses an address as Go's net.ParseIP does (IPv4 dotted quad or IPv6).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    // Go prints IPv4-mapped IPv6 addresses as IPv4.
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    })
}

pub fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn max_value(ip: IpAddr) -> u128 {
    if ip.is_ipv4() { u32::MAX as u128 } else { u128::MAX }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4(Ipv4Addr::from(value as u32)) } else { IpAddr::V6(Ipv6Addr::from(value)) }
}

/// The next address, wrapping at the end of the family's space (as Go's
/// ip.NextIP does).
pub fn next_ip(ip: IpAddr) -> IpAddr {
    from_u128(to_u128(ip).wrapping_add(1) & max_value(ip), ip.is_ipv4())
}

pub fn prev_ip(ip: IpAddr) -> IpAddr {
    from_u128(to_u128(ip).wrapping_sub(1) & max_value(ip), ip.is_ipv4())
}

/// Orders addresses numerically within a family (IPv4 before IPv6).
pub fn compare(a: IpAddr, b: IpAddr) -> std::cmp::Ordering {
    (a.is_ipv6(), to_u128(a)).cmp(&(b.is_ipv6(), to_u128(b)))
}

pub fn ip_to_wit(ip: IpAddr) -> types::IpAddress {
    match ip {
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

pub fn ip_from_wit(ip: &types::IpAddress) -> IpAddr {
    match *ip {
        types::IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        types::IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
    }
}

pub fn family_of(ip: IpAddr) -> types::IpFamily {
    if ip.is_ipv4() { types::IpFamily::Ipv4 } else { types::IpFamily::Ipv6 }
}

/// "aa:bb:cc:dd:ee:ff".
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses a MAC as Go's net.ParseMAC does for the common forms
/// (colon- or dash-separated hex pairs).
pub fn parse_mac(text: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if !matches!(parts.len(), 6 | 8 | 20) {
        return None;
    }
    parts.iter().map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn keeps_host_bits_and_computes_prefix_bounds() {
        let n = net("10.1.2.3/24");
        assert_eq!(n.to_string(), "10.1.2.3/24");
        assert_eq!(n.network().to_string(), "10.1.2.0");
        assert_eq!(n.last().to_string(), "10.1.2.255");
        assert!(n.contains("10.1.2.200".parse().unwrap()));
        assert!(!n.contains("10.1.3.1".parse().unwrap()));
        assert_eq!(net("fd00::5/64").last().to_string(), "fd00::ffff:ffff:ffff:ffff");
        assert_eq!(net("0.0.0.0/0").last().to_string(), "255.255.255.255");
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["10.0.0.1", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1/+1", "x/24", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn next_and_prev_wrap_within_the_family() {
        assert_eq!(next_ip("10.0.0.255".parse().unwrap()).to_string(), "10.0.1.0");
        assert_eq!(next_ip("255.255.255.255".parse().unwrap()).to_string(), "0.0.0.0");
        assert_eq!(prev_ip("fd00::".parse().unwrap()).to_string(), "fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    #[test]
    fn parses_macs() {
        assert_eq!(parse_mac("C2:11:22:33:44:55"), Some(vec![0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(parse_mac("c2-11-22-33-44-55").map(|m| format_mac(&m)), Some("c2:11:22:33:44:55".into()));
        assert_eq!(parse_mac("c2:11:22"), None);
    }
}
