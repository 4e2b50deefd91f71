//! The firewalld backend: the container's addresses become sources of a
//! zone (`firewalldZone`, default "trusted"), over D-Bus through the
//! netfilter capability. The calls go through [`Zones`] so the logic can be
//! tested without a system bus.

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter_capability as netfilter;

/// firewalld's zone interface (org.fedoraproject.FirewallD1.zone).
pub trait Zones {
    /// Binds `source` to `zone`; one already there is not an error.
    fn add_source(&self, zone: &str, source: &str) -> Result<(), String>;
    fn remove_source(&self, zone: &str, source: &str) -> Result<(), String>;
    fn query_source(&self, zone: &str, source: &str) -> Result<bool, String>;
}

/// The system bus, through the host.
pub struct SystemBus;

impl Zones for SystemBus {
    fn add_source(&self, zone: &str, source: &str) -> Result<(), String> {
        netfilter::firewalld_add_source(zone, source).map_err(|e| e.message)
    }

    fn remove_source(&self, zone: &str, source: &str) -> Result<(), String> {
        netfilter::firewalld_remove_source(zone, source).map_err(|e| e.message)
    }

    fn query_source(&self, zone: &str, source: &str) -> Result<bool, String> {
        netfilter::firewalld_query_source(zone, source).map_err(|e| e.message)
    }
}

pub fn running() -> bool {
    netfilter::firewalld_running()
}

/// The error for a config that asks for firewalld where it is not running.
pub fn not_running() -> cni_plugin_sdk::Error {
    internal(
        "backend \"firewalld\" requested, but firewalld is not running \
         (nothing owns org.fedoraproject.FirewallD1 on the D-Bus system bus)",
    )
}

/// Adds every address as `<ip>/32` or `<ip>/128`; on a failure takes back
/// the ones this call added.
pub fn add(zones: &impl Zones, zone: &str, ips: &[IpNet]) -> Result<()> {
    for (i, ip) in ips.iter().enumerate() {
        if let Err(e) = zones.add_source(zone, &ip.to_string()) {
            let _ = remove(zones, zone, &ips[..i]);
            return Err(internal(format!("failed to add the address {ip} to {zone} zone: {e}")));
        }
    }
    Ok(())
}

/// Removes every address, going on past failures (an address not in the
/// zone), which it returns for the log: the reference ignores them.
pub fn remove(zones: &impl Zones, zone: &str, ips: &[IpNet]) -> Vec<String> {
    ips.iter()
        .filter_map(|ip| {
            zones.remove_source(zone, &ip.to_string()).err().map(|e| format!("removing {ip} from zone {zone}: {e}"))
        })
        .collect()
}

/// Every address must be a source of the zone (the reference only asks
/// whether the query fails, not what it answers).
pub fn check(zones: &impl Zones, zone: &str, ips: &[IpNet]) -> Result<()> {
    for ip in ips {
        match zones.query_source(zone, &ip.to_string()) {
            Ok(true) => {}
            Ok(false) => return Err(internal(format!("failed to find the address {ip} in {zone} zone"))),
            Err(e) => return Err(internal(format!("failed to find the address {ip} in {zone} zone: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    /// A zone table in memory; sources listed in `refuse` fail to be added.
    #[derive(Default)]
    struct FakeFirewalld {
        sources: RefCell<BTreeSet<(String, String)>>,
        calls: RefCell<Vec<String>>,
        refuse: Vec<String>,
    }

    impl Zones for FakeFirewalld {
        fn add_source(&self, zone: &str, source: &str) -> Result<(), String> {
            self.calls.borrow_mut().push(format!("addSource {zone} {source}"));
            if self.refuse.iter().any(|r| r == source) {
                return Err("INVALID_ADDR".into());
            }
            self.sources.borrow_mut().insert((zone.into(), source.into()));
            Ok(())
        }

        fn remove_source(&self, zone: &str, source: &str) -> Result<(), String> {
            self.calls.borrow_mut().push(format!("removeSource {zone} {source}"));
            if self.sources.borrow_mut().remove(&(zone.into(), source.into())) {
                Ok(())
            } else {
                Err("UNKNOWN_SOURCE".into())
            }
        }

        fn query_source(&self, zone: &str, source: &str) -> Result<bool, String> {
            Ok(self.sources.borrow().contains(&(zone.into(), source.into())))
        }
    }

    fn ips(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_become_host_sources_of_the_zone_and_check_finds_them() {
        let firewalld = FakeFirewalld::default();
        let addresses = ips(&["10.88.0.2/32", "fd88::2/128"]);
        add(&firewalld, "trusted", &addresses).unwrap();
        assert_eq!(*firewalld.calls.borrow(), ["addSource trusted 10.88.0.2/32", "addSource trusted fd88::2/128"]);
        check(&firewalld, "trusted", &addresses).unwrap();
        assert!(
            check(&firewalld, "public", &addresses)
                .unwrap_err()
                .msg
                .contains("failed to find the address 10.88.0.2/32 in public zone")
        );
        assert!(remove(&firewalld, "trusted", &addresses).is_empty());
        assert!(firewalld.sources.borrow().is_empty());
        assert!(check(&firewalld, "trusted", &addresses).is_err(), "CHECK fails once the sources are gone");
    }

    #[test]
    fn a_failed_add_takes_back_the_sources_it_added() {
        let firewalld = FakeFirewalld { refuse: vec!["fd88::2/128".into()], ..FakeFirewalld::default() };
        let error = add(&firewalld, "trusted", &ips(&["10.88.0.2/32", "fd88::2/128"])).unwrap_err();
        assert_eq!(error.msg, "failed to add the address fd88::2/128 to trusted zone: INVALID_ADDR");
        assert!(firewalld.sources.borrow().is_empty(), "the IPv4 source was removed again");
    }

    #[test]
    fn remove_goes_on_past_sources_that_are_not_there() {
        let firewalld = FakeFirewalld::default();
        add(&firewalld, "trusted", &ips(&["10.88.0.3/32"])).unwrap();
        let failures = remove(&firewalld, "trusted", &ips(&["10.88.0.2/32", "10.88.0.3/32"]));
        assert_eq!(failures, ["removing 10.88.0.2/32 from zone trusted: UNKNOWN_SOURCE"]);
        assert!(firewalld.sources.borrow().is_empty());
    }
}
