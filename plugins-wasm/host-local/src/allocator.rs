//! Allocation within one range set (the reference's IPAllocator): a
//! requested address if there is one, otherwise round-robin from the last
//! reserved address, skipping gateways, wrapping across the set's ranges.

use std::net::IpAddr;

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::{IpNet, next_ip};

use crate::config::{RangeSet, set_contains, set_to_string};
use crate::store::Store;

pub struct Allocation {
    pub address: IpNet,
    pub gateway: IpAddr,
}

pub fn allocate(
    store: &Store,
    set: &RangeSet,
    index: usize,
    container_id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
    held: &[IpAddr],
) -> Result<Allocation> {
    if let Some(ip) = requested {
        let range = set
            .iter()
            .find(|r| r.contains(ip))
            .ok_or_else(|| internal(format!("{ip} not in range set {}", set_to_string(set))))?;
        if ip == range.gateway {
            return Err(internal(format!("requested ip {ip} is subnet's gateway")));
        }
        if !store.reserve(container_id, ifname, ip, index)? {
            return Err(internal(format!(
                "requested IP address {ip} is not available in range set {}",
                set_to_string(set)
            )));
        }
        return Ok(Allocation { address: IpNet { addr: ip, prefix: range.subnet.prefix }, gateway: range.gateway });
    }

    // The CNI spec does not allow a second ADD for the same attachment.
    for &ip in held {
        if set_contains(set, ip) {
            return Err(internal(format!(
                "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
            )));
        }
    }
    let mut candidates = Candidates::new(set, store.last_reserved(index)?);
    while let Some((address, gateway)) = candidates.next() {
        if store.reserve(container_id, ifname, address.addr, index)? {
            return Ok(Allocation { address, gateway });
        }
    }
    Err(internal(format!("no IP addresses available in range set: {}", set_to_string(set))))
}

/// How many addresses of `set` are free (gateways and reservations aside).
pub fn free_addresses(set: &RangeSet, reserved: &[IpAddr]) -> u128 {
    set.iter()
        .map(|range| {
            let size = cni_plugin_sdk::net::to_u128(range.end) - cni_plugin_sdk::net::to_u128(range.start) + 1;
            let taken = reserved.iter().filter(|ip| range.contains(**ip) && **ip != range.gateway).count() as u128;
            let gateway = range.contains(range.gateway) as u128;
            size.saturating_sub(taken + gateway)
        })
        .sum()
}

/// The reference's RangeIter: starts after the last reserved address (or
/// at the first range's start) and stops when it comes back around.
struct Candidates<'a> {
    set: &'a RangeSet,
    range: usize,
    current: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> Candidates<'a> {
    fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> Self {
        // A stale last address (ranges changed) just loses round-robin once.
        match last_reserved.and_then(|ip| set.iter().position(|r| r.contains(ip)).map(|i| (i, ip))) {
            Some((range, ip)) => Candidates { set, range, current: Some(ip), start: None },
            None => Candidates { set, range: 0, current: None, start: Some(set[0].start) },
        }
    }

    fn next(&mut self) -> Option<(IpNet, IpAddr)> {
        loop {
            let mut range = &self.set[self.range];
            match self.current {
                None => {
                    self.current = Some(range.start);
                    self.start = Some(range.start);
                }
                Some(current) => {
                    let next = if current == range.end {
                        self.range = (self.range + 1) % self.set.len();
                        range = &self.set[self.range];
                        range.start
                    } else {
                        next_ip(current)
                    };
                    self.current = Some(next);
                    match self.start {
                        None => self.start = Some(next),
                        Some(start) if start == next => return None,
                        Some(_) => {}
                    }
                }
            }
            let current = self.current.expect("set above");
            if current != range.gateway {
                return Some((IpNet { addr: current, prefix: range.subnet.prefix }, range.gateway));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn set(config: &str) -> RangeSet {
        load(config, "").unwrap().ranges.remove(0)
    }

    fn walk(set: &RangeSet, last: Option<&str>) -> Vec<String> {
        let mut c = Candidates::new(set, last.map(|l| l.parse().unwrap()));
        std::iter::from_fn(|| c.next()).map(|(a, _)| a.addr.to_string()).collect()
    }

    #[test]
    fn walks_the_whole_set_once_skipping_the_gateway() {
        let s = set(r#"{"name":"n","cniVersion":"1.0.0","ipam":{"ranges":[[{"subnet":"10.0.0.0/29"}]]}}"#);
        assert_eq!(walk(&s, None), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
    }

    #[test]
    fn round_robin_resumes_after_the_last_reservation_and_wraps() {
        let s = set(r#"{"name":"n","cniVersion":"1.0.0","ipam":{"ranges":[[{"subnet":"10.0.0.0/29"}]]}}"#);
        assert_eq!(walk(&s, Some("10.0.0.4")), ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    }

    #[test]
    fn crosses_from_one_range_to_the_next() {
        let s = set(
            r#"{"name":"n","cniVersion":"1.0.0","ipam":{"ranges":[[{"subnet":"10.0.0.0/30"},{"subnet":"10.0.1.0/30","gateway":"10.0.1.2"}]]}}"#,
        );
        assert_eq!(walk(&s, None), ["10.0.0.2", "10.0.1.1"]);
    }

    #[test]
    fn counts_free_addresses() {
        let s = set(r#"{"name":"n","cniVersion":"1.0.0","ipam":{"ranges":[[{"subnet":"10.0.0.0/29"}]]}}"#);
        assert_eq!(free_addresses(&s, &[]), 5);
        assert_eq!(free_addresses(&s, &["10.0.0.2".parse().unwrap(), "10.9.9.9".parse().unwrap()]), 4);
    }
}
