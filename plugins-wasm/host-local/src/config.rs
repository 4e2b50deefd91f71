//! The IPAM config: `ranges` (and the legacy top-level range), requested
//! addresses from CNI_ARGS / args / runtimeConfig, routes, dataDir,
//! resolvConf. Mirrors the reference's allocator.LoadIPAMConfig.

use std::net::IpAddr;

use cni_plugin_sdk::args::CniArgs;
use cni_plugin_sdk::config::Route;
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::{IpNet, compare, next_ip, parse_ip};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Net {
    name: String,
    cni_version: String,
    ipam: Option<IpamJson>,
    runtime_config: RuntimeConfigJson,
    args: Option<ArgsJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RuntimeConfigJson {
    ip_ranges: Vec<Vec<RangeJson>>,
    ips: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArgsJson {
    cni: Option<IpsJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IpsJson {
    ips: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IpamJson {
    // The legacy single range, inline in `ipam`.
    range_start: Option<String>,
    range_end: Option<String>,
    subnet: Option<String>,
    gateway: Option<String>,
    routes: Vec<Route>,
    data_dir: String,
    resolv_conf: String,
    ranges: Vec<Vec<RangeJson>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RangeJson {
    range_start: Option<String>,
    range_end: Option<String>,
    subnet: String,
    gateway: Option<String>,
}

/// One range: a subnet and the inclusive part of it to allocate from.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// The subnet, host bits cleared.
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// Ranges of one family; one address is allocated per range set.
pub type RangeSet = Vec<Range>;

#[derive(Debug)]
pub struct IpamConfig {
    /// The network name: the store's subdirectory.
    pub name: String,
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: String,
    /// Addresses the runtime asked for, in the order given.
    pub requested: Vec<IpAddr>,
}

pub fn load(config: &str, cni_args: &str) -> Result<IpamConfig> {
    let net: Net = cni_plugin_sdk::config::parse(config)?;
    let Some(ipam) = net.ipam else {
        return Err(internal("IPAM config missing 'ipam' key"));
    };

    let mut requested = Vec::new();
    let args = CniArgs::parse(cni_args, &["IP"])?;
    if let Some(ip) = args.get("IP").filter(|ip| !ip.is_empty()) {
        requested.push(parse_ip_arg(ip)?);
    }
    for ip in net.args.and_then(|a| a.cni).map(|c| c.ips).unwrap_or_default() {
        requested.push(parse_ip_arg(&ip)?);
    }
    for ip in &net.runtime_config.ips {
        requested.push(parse_ip_arg(ip)?);
    }

    // runtimeConfig.ipRanges, then the legacy range, then `ranges`.
    let mut raw_sets = net.runtime_config.ip_ranges;
    if let Some(subnet) = ipam.subnet.filter(|s| !s.is_empty()) {
        raw_sets.push(vec![RangeJson {
            range_start: ipam.range_start,
            range_end: ipam.range_end,
            subnet,
            gateway: ipam.gateway,
        }]);
    }
    raw_sets.extend(ipam.ranges);
    if raw_sets.is_empty() {
        return Err(internal("no IP ranges specified"));
    }
    let mut ranges = Vec::with_capacity(raw_sets.len());
    for (index, set) in raw_sets.iter().enumerate() {
        ranges.push(canonicalize_set(set).map_err(|e| internal(format!("invalid range set {index}: {e}")))?);
    }

    let v4 = ranges.iter().filter(|set| set[0].start.is_ipv4()).count();
    let v6 = ranges.len() - v4;
    if (v4 > 1 || v6 > 1) && !version_at_least_0_3_0(&net.cni_version) {
        return Err(internal(format!(
            "CNI version {} does not support more than 1 address per family",
            net.cni_version
        )));
    }
    for i in 0..ranges.len() {
        for j in i + 1..ranges.len() {
            if sets_overlap(&ranges[i], &ranges[j]) {
                return Err(internal(format!("range set {i} overlaps with {j}")));
            }
        }
    }
    Ok(IpamConfig { name: net.name, ranges, routes: ipam.routes, resolv_conf: ipam.resolv_conf, requested })
}

/// `ip.IP`: an address, or a CIDR whose address is taken.
fn parse_ip_arg(text: &str) -> Result<IpAddr> {
    let parsed = if text.contains('/') { text.parse::<IpNet>().ok().map(|n| n.addr) } else { parse_ip(text) };
    parsed.ok_or_else(|| internal(format!("invalid IP address: {text}")))
}

fn version_at_least_0_3_0(version: &str) -> bool {
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.as_slice() >= [0, 3, 0].as_slice()
}

fn canonicalize_set(set: &[RangeJson]) -> std::result::Result<RangeSet, String> {
    if set.is_empty() {
        return Err("empty range set".into());
    }
    let ranges: Vec<Range> = set.iter().map(canonicalize).collect::<std::result::Result<_, _>>()?;
    if ranges.iter().any(|r| r.start.is_ipv4() != ranges[0].start.is_ipv4()) {
        return Err("mixed address families".into());
    }
    for i in 0..ranges.len() {
        for other in &ranges[i + 1..] {
            if ranges[i].overlaps(other) {
                return Err(format!("subnets {} and {} overlap", ranges[i], other));
            }
        }
    }
    Ok(ranges)
}

/// Fills in start, end and gateway, and checks them (Range.Canonicalize).
fn canonicalize(range: &RangeJson) -> std::result::Result<Range, String> {
    let subnet: IpNet = range.subnet.parse()?;
    if subnet.prefix > subnet.max_prefix() - 2 {
        return Err(format!("Network {subnet} too small to allocate from"));
    }
    if subnet.addr != subnet.network() {
        return Err(format!(
            "Network has host bits set. For a subnet mask of length {} the network address is {}",
            subnet.prefix,
            subnet.network()
        ));
    }
    let address = |text: &Option<String>| -> std::result::Result<Option<IpAddr>, String> {
        match text.as_deref().filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => parse_ip(t).map(Some).ok_or_else(|| format!("invalid IP address: {t}")),
        }
    };
    let gateway = address(&range.gateway)?.unwrap_or_else(|| next_ip(subnet.addr));
    let mut bounds = Range { subnet, start: subnet.addr, end: subnet.addr, gateway };
    let unbounded = |r: &Range, ip: IpAddr| r.subnet.contains(ip);
    let start = match address(&range.range_start)? {
        Some(start) if !unbounded(&bounds, start) => return Err(format!("RangeStart {start} not in network {subnet}")),
        Some(start) => start,
        None => next_ip(subnet.addr),
    };
    let end = match address(&range.range_end)? {
        Some(end) if !unbounded(&bounds, end) => return Err(format!("RangeEnd {end} not in network {subnet}")),
        Some(end) => end,
        // The last address, less the broadcast address for IPv4.
        None if subnet.is_ipv4() => cni_plugin_sdk::net::prev_ip(subnet.last()),
        None => subnet.last(),
    };
    bounds.start = start;
    bounds.end = end;
    Ok(bounds)
}

impl Range {
    /// In the subnet and between start and end, inclusive.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(ip) && compare(ip, self.start).is_ge() && compare(ip, self.end).is_le()
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

pub fn set_contains(set: &RangeSet, ip: IpAddr) -> bool {
    set.iter().any(|r| r.contains(ip))
}

pub fn set_to_string(set: &RangeSet) -> String {
    set.iter().map(Range::to_string).collect::<Vec<_>>().join(",")
}

fn sets_overlap(a: &RangeSet, b: &RangeSet) -> bool {
    a.iter().any(|r| b.iter().any(|o| r.overlaps(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(subnet: &str) -> Range {
        canonicalize(&RangeJson { subnet: subnet.into(), ..Default::default() }).unwrap()
    }

    #[test]
    fn defaults_skip_the_network_and_ipv4_broadcast() {
        let r = range("10.1.2.0/24");
        assert_eq!(
            (r.start.to_string(), r.end.to_string(), r.gateway.to_string()),
            ("10.1.2.1".into(), "10.1.2.254".into(), "10.1.2.1".into())
        );
        let r = range("fd00::/120");
        assert_eq!(r.end.to_string(), "fd00::ff", "IPv6 has no broadcast address");
    }

    #[test]
    fn rejects_small_and_misaligned_subnets() {
        assert!(
            canonicalize(&RangeJson { subnet: "10.0.0.0/31".into(), ..Default::default() })
                .unwrap_err()
                .contains("too small")
        );
        assert!(
            canonicalize(&RangeJson { subnet: "10.0.0.5/24".into(), ..Default::default() })
                .unwrap_err()
                .contains("host bits")
        );
        let outside =
            RangeJson { subnet: "10.0.0.0/24".into(), range_start: Some("10.0.1.1".into()), ..Default::default() };
        assert!(canonicalize(&outside).unwrap_err().contains("RangeStart"));
    }

    #[test]
    fn range_sets_must_not_overlap() {
        let config = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/25"}]]}}"#;
        assert!(load(config, "").unwrap_err().msg.contains("overlaps"));
    }

    #[test]
    fn old_versions_get_one_address_per_family() {
        let config = r#"{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}}"#;
        assert!(load(config, "").unwrap_err().msg.contains("more than 1 address per family"));
    }

    #[test]
    fn requested_addresses_come_from_every_source_in_order() {
        let config = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},
            "args":{"cni":{"ips":["10.0.0.7/24"]}},"runtimeConfig":{"ips":["10.0.0.8"]}}"#;
        let conf = load(config, "IgnoreUnknown=1;IP=10.0.0.6;K8S_POD_NAME=p").unwrap();
        let text: Vec<String> = conf.requested.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(text, ["10.0.0.6", "10.0.0.7", "10.0.0.8"]);
    }

    #[test]
    fn runtime_ip_ranges_come_first() {
        let config = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]},
            "runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24"}]]}}"#;
        assert_eq!(load(config, "").unwrap().ranges[0][0].subnet.to_string(), "10.9.0.0/24");
    }
}
