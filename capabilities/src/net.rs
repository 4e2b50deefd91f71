//! Small IP helpers shared by the netlink modules.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// An address with a prefix length (host bits kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl IpNetwork {
    pub fn new(address: IpAddr, prefix_len: u8) -> Self {
        IpNetwork { address, prefix_len }
    }

    pub fn max_prefix_len(&self) -> u8 {
        if self.address.is_ipv4() { 32 } else { 128 }
    }

    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    /// The IPv4 broadcast address, for prefixes shorter than /31.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.address {
            IpAddr::V4(v4) if self.prefix_len < 31 => {
                let host_mask = u32::MAX >> self.prefix_len;
                Some(Ipv4Addr::from(u32::from(v4) | host_mask))
            }
            _ => None,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(v4) => {
                let mask = if self.prefix_len == 0 { 0 } else { u32::MAX << (32 - self.prefix_len as u32) };
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = if self.prefix_len == 0 { 0 } else { u128::MAX << (128 - self.prefix_len as u32) };
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    pub fn validate(&self) -> crate::Result<()> {
        if self.prefix_len > self.max_prefix_len() {
            return Err(crate::Error::invalid(format!(
                "prefix length {} is too long for {}",
                self.prefix_len, self.address
            )));
        }
        Ok(())
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = crate::Error;

    /// "10.1.0.5/24" or "fd00::5/64"; host bits are kept, as CNI's
    /// `types.ParseCIDR` keeps them.
    fn from_str(text: &str) -> crate::Result<Self> {
        let invalid = || crate::Error::invalid(format!("invalid CIDR address: {text}"));
        let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix_len: u8 = prefix.parse().map_err(|_| invalid())?;
        let network = IpNetwork::new(address, prefix_len);
        network.validate().map_err(|_| invalid())?;
        Ok(network)
    }
}
