//! Connection-tracking entries over ctnetlink (NETLINK_NETFILTER).
//! (Being implemented; see the API below.)

use std::net::IpAddr;

use crate::addresses::Family;
use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;

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
pub fn dump(_ns: &Netns, _filter: &FlowFilter) -> Result<Vec<Flow>> {
    Err(Error::new(ErrorKind::NotImplemented, "conntrack dump is not implemented yet"))
}

/// Deletes every matching entry; returns how many were deleted.
pub fn delete(_ns: &Netns, _filter: &FlowFilter) -> Result<u32> {
    Err(Error::new(ErrorKind::NotImplemented, "conntrack delete is not implemented yet"))
}
