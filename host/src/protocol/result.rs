//! CNI results in every spec version, and conversion between them.
//!
//! Plugins produce (and receive as prevResult) one normalized shape, the CNI
//! 1.1 result; this module parses whatever version a delegate or a runtime
//! hands us into that shape, and prints it in the version a request asked
//! for, with the field order and omissions of the Go library's structs.

use std::net::IpAddr;

use cni_wasm_capabilities::net::IpNetwork;
use serde_json::{Map, Value};

use super::config::get_ci;
use super::error::{CniError, code};
use super::version::{V0_3_0, V1_0_0, Version};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub sandbox: Option<String>,
    pub socket_path: Option<String>,
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub interface: Option<u32>,
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl CniResult {
    /// Parses a result in `version` (the result's own `cniVersion` wins when
    /// present; a result without one is taken to be in the request's
    /// version, as libcni does).
    pub fn parse(value: &Value, default_version: &str) -> Result<CniResult, CniError> {
        let object = value.as_object().ok_or_else(|| decoding("a result must be a JSON object"))?;
        let version_text = match get_ci(object, "cniVersion") {
            Some(Value::String(v)) if !v.is_empty() => v.as_str(),
            _ => default_version,
        };
        let version = Version::parse(version_text)?;
        if version.at_least(V0_3_0) { parse_current(object) } else { parse_legacy(object) }
    }

    /// The result as the JSON object a runtime expects for `version`.
    pub fn to_json(&self, version_text: &str) -> Result<Value, CniError> {
        let version = Version::parse(version_text)?;
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version_text.into()));
        if version.at_least(V0_3_0) {
            let modern = version.at_least(V1_0_0);
            if !self.interfaces.is_empty() {
                let list = self.interfaces.iter().map(|i| interface_json(i, modern)).collect();
                out.insert("interfaces".into(), Value::Array(list));
            }
            if !self.ips.is_empty() {
                let list = self.ips.iter().map(|ip| ip_json(ip, !modern)).collect();
                out.insert("ips".into(), Value::Array(list));
            }
            if !self.routes.is_empty() {
                out.insert("routes".into(), Value::Array(self.routes.iter().map(route_json).collect()));
            }
        } else {
            // 0.1.0/0.2.0: the first IPv4 and first IPv6 address only, each
            // with the routes of its family.
            let first = |v4: bool| self.ips.iter().find(|ip| ip.address.is_ipv4() == v4);
            let (ip4, ip6) = (first(true), first(false));
            if ip4.is_none() && ip6.is_none() {
                return Err(CniError::new(
                    code::INCOMPATIBLE_VERSION,
                    format!("cannot convert result to version {version_text}: it has no IP addresses"),
                ));
            }
            for (key, ip) in [("ip4", ip4), ("ip6", ip6)] {
                let Some(ip) = ip else { continue };
                let mut entry = Map::new();
                entry.insert("ip".into(), Value::String(ip.address.to_string()));
                if let Some(gateway) = ip.gateway {
                    entry.insert("gateway".into(), Value::String(gateway.to_string()));
                }
                let routes: Vec<Value> =
                    self.routes.iter().filter(|r| r.dst.is_ipv4() == ip.address.is_ipv4()).map(route_json).collect();
                if !routes.is_empty() {
                    entry.insert("routes".into(), Value::Array(routes));
                }
                out.insert(key.into(), Value::Object(entry));
            }
        }
        // Go's `DNS types.DNS json:"dns,omitempty"` never omits a struct.
        out.insert("dns".into(), dns_json(&self.dns));
        Ok(Value::Object(out))
    }

    /// Converts through `version` and back, losing exactly what a runtime
    /// would lose if the result crossed a process boundary at that version
    /// (e.g. 0.2.0 keeps one address per family).
    pub fn through_version(&self, version: &str) -> Result<CniResult, CniError> {
        CniResult::parse(&self.to_json(version)?, version)
    }
}

fn decoding(message: impl Into<String>) -> CniError {
    CniError::new(code::DECODING_FAILURE, message)
}

fn string_field(object: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match get_ci(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decoding(format!("result field {key:?} must be a string, not {other}"))),
    }
}

fn u32_field(object: &Map<String, Value>, key: &str) -> Result<Option<u32>, CniError> {
    match get_ci(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| decoding(format!("result field {key:?} must be a non-negative integer, not {n}"))),
        Some(other) => Err(decoding(format!("result field {key:?} must be a number, not {other}"))),
    }
}

fn list_field<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], CniError> {
    match get_ci(object, key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(decoding(format!("result field {key:?} must be a list, not {other}"))),
    }
}

fn strings_field(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, CniError> {
    list_field(object, key)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| decoding(format!("{key:?} must hold strings"))))
        .collect()
}

fn cidr(text: &str) -> Result<IpNetwork, CniError> {
    text.parse().map_err(|e: cni_wasm_capabilities::Error| decoding(e.message))
}

fn ip(text: &str) -> Result<IpAddr, CniError> {
    text.parse().map_err(|_| decoding(format!("invalid IP address: {text}")))
}

fn object_of<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, CniError> {
    value.as_object().ok_or_else(|| decoding(format!("each {what} must be a JSON object")))
}

fn parse_current(object: &Map<String, Value>) -> Result<CniResult, CniError> {
    let mut result = CniResult::default();
    for value in list_field(object, "interfaces")? {
        let entry = object_of(value, "interface")?;
        result.interfaces.push(Interface {
            name: string_field(entry, "name")?.unwrap_or_default(),
            mac: string_field(entry, "mac")?,
            mtu: u32_field(entry, "mtu")?.filter(|m| *m != 0),
            sandbox: string_field(entry, "sandbox")?,
            socket_path: string_field(entry, "socketPath")?,
            pci_id: string_field(entry, "pciID")?,
        });
    }
    for value in list_field(object, "ips")? {
        let entry = object_of(value, "ips entry")?;
        let address = string_field(entry, "address")?.ok_or_else(|| decoding("an ips entry has no address"))?;
        result.ips.push(IpConfig {
            interface: u32_field(entry, "interface")?,
            address: cidr(&address)?,
            gateway: string_field(entry, "gateway")?.map(|g| ip(&g)).transpose()?,
        });
    }
    for value in list_field(object, "routes")? {
        result.routes.push(parse_route(object_of(value, "route")?)?);
    }
    result.dns = parse_dns(object)?;
    Ok(result)
}

fn parse_legacy(object: &Map<String, Value>) -> Result<CniResult, CniError> {
    let mut result = CniResult::default();
    for key in ["ip4", "ip6"] {
        let Some(value) = get_ci(object, key).filter(|v| !v.is_null()) else { continue };
        let entry = object_of(value, key)?;
        let address = string_field(entry, "ip")?.ok_or_else(|| decoding(format!("{key} has no ip")))?;
        result.ips.push(IpConfig {
            interface: None,
            address: cidr(&address)?,
            gateway: string_field(entry, "gateway")?.map(|g| ip(&g)).transpose()?,
        });
        for route in list_field(entry, "routes")? {
            result.routes.push(parse_route(object_of(route, "route")?)?);
        }
    }
    result.dns = parse_dns(object)?;
    Ok(result)
}

fn parse_route(entry: &Map<String, Value>) -> Result<Route, CniError> {
    let dst = string_field(entry, "dst")?.ok_or_else(|| decoding("a route has no dst"))?;
    Ok(Route {
        dst: cidr(&dst)?,
        gw: string_field(entry, "gw")?.map(|g| ip(&g)).transpose()?,
        mtu: u32_field(entry, "mtu")?.filter(|v| *v != 0),
        advmss: u32_field(entry, "advmss")?.filter(|v| *v != 0),
        priority: u32_field(entry, "priority")?.filter(|v| *v != 0),
        table: u32_field(entry, "table")?,
        scope: u32_field(entry, "scope")?,
    })
}

fn parse_dns(object: &Map<String, Value>) -> Result<Dns, CniError> {
    let Some(value) = get_ci(object, "dns").filter(|v| !v.is_null()) else { return Ok(Dns::default()) };
    let dns = object_of(value, "dns")?;
    Ok(Dns {
        nameservers: strings_field(dns, "nameservers")?,
        domain: string_field(dns, "domain")?,
        search: strings_field(dns, "search")?,
        options: strings_field(dns, "options")?,
    })
}

fn interface_json(interface: &Interface, modern: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::String(interface.name.clone()));
    if let Some(mac) = &interface.mac {
        out.insert("mac".into(), Value::String(mac.clone()));
    }
    if modern && let Some(mtu) = interface.mtu {
        out.insert("mtu".into(), Value::from(mtu));
    }
    if let Some(sandbox) = &interface.sandbox {
        out.insert("sandbox".into(), Value::String(sandbox.clone()));
    }
    if modern {
        if let Some(path) = &interface.socket_path {
            out.insert("socketPath".into(), Value::String(path.clone()));
        }
        if let Some(id) = &interface.pci_id {
            out.insert("pciID".into(), Value::String(id.clone()));
        }
    }
    Value::Object(out)
}

fn ip_json(ip: &IpConfig, with_version: bool) -> Value {
    let mut out = Map::new();
    if with_version {
        let family = if ip.address.is_ipv4() { "4" } else { "6" };
        out.insert("version".into(), Value::String(family.into()));
    }
    if let Some(index) = ip.interface {
        out.insert("interface".into(), Value::from(index));
    }
    out.insert("address".into(), Value::String(ip.address.to_string()));
    if let Some(gateway) = ip.gateway {
        out.insert("gateway".into(), Value::String(gateway.to_string()));
    }
    Value::Object(out)
}

fn route_json(route: &Route) -> Value {
    let mut out = Map::new();
    out.insert("dst".into(), Value::String(route.dst.to_string()));
    if let Some(gw) = route.gw {
        out.insert("gw".into(), Value::String(gw.to_string()));
    }
    for (key, value) in [("mtu", route.mtu), ("advmss", route.advmss), ("priority", route.priority)] {
        if let Some(value) = value.filter(|v| *v != 0) {
            out.insert(key.into(), Value::from(value));
        }
    }
    for (key, value) in [("table", route.table), ("scope", route.scope)] {
        if let Some(value) = value {
            out.insert(key.into(), Value::from(value));
        }
    }
    Value::Object(out)
}

fn dns_json(dns: &Dns) -> Value {
    let mut out = Map::new();
    let list = |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
    if !dns.nameservers.is_empty() {
        out.insert("nameservers".into(), list(&dns.nameservers));
    }
    if let Some(domain) = &dns.domain {
        out.insert("domain".into(), Value::String(domain.clone()));
    }
    if !dns.search.is_empty() {
        out.insert("search".into(), list(&dns.search));
    }
    if !dns.options.is_empty() {
        out.insert("options".into(), list(&dns.options));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult::parse(
            &json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1400, "sandbox": "/run/netns/x"}],
                "ips": [
                    {"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                    {"interface": 0, "address": "fd00::5/64", "gateway": "fd00::1"},
                    {"interface": 0, "address": "10.2.0.5/24"}
                ],
                "routes": [{"dst": "0.0.0.0/0", "table": 0}, {"dst": "::/0", "gw": "fd00::1"}],
                "dns": {"nameservers": ["10.1.0.1"]}
            }),
            "1.1.0",
        )
        .unwrap()
    }

    #[test]
    fn round_trips_at_1_1_0() {
        let value = sample().to_json("1.1.0").unwrap();
        assert_eq!(CniResult::parse(&value, "1.1.0").unwrap(), sample());
        assert_eq!(value["interfaces"][0]["mtu"], 1400);
        assert_eq!(value["routes"][0]["table"], 0, "0 is meaningful and must be emitted");
    }

    #[test]
    fn version_0_4_0_adds_ip_versions_and_drops_1_1_interface_fields() {
        let value = sample().to_json("0.4.0").unwrap();
        assert_eq!(value["ips"][0]["version"], "4");
        assert_eq!(value["ips"][1]["version"], "6");
        assert!(value["interfaces"][0].get("mtu").is_none());
        assert_eq!(value["ips"][0]["interface"], 0);
    }

    #[test]
    fn version_0_2_0_keeps_one_address_per_family_with_its_routes() {
        let value = sample().to_json("0.2.0").unwrap();
        assert_eq!(value["ip4"]["ip"], "10.1.0.5/24");
        assert_eq!(value["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(value["ip6"]["routes"][0]["gw"], "fd00::1");
        assert!(value.get("interfaces").is_none());
        let back = CniResult::parse(&value, "0.2.0").unwrap();
        assert_eq!(back.ips.len(), 2);
    }

    #[test]
    fn version_0_2_0_needs_an_address() {
        assert_eq!(CniResult::default().to_json("0.2.0").unwrap_err().code, code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn empty_dns_is_printed_like_go() {
        let value = CniResult::default().to_json("1.0.0").unwrap();
        assert_eq!(value, json!({"cniVersion": "1.0.0", "dns": {}}));
    }

    #[test]
    fn result_without_version_takes_the_requests() {
        let legacy = json!({"ip4": {"ip": "10.0.0.2/24"}});
        assert_eq!(CniResult::parse(&legacy, "0.2.0").unwrap().ips.len(), 1);
    }
}
