//! portmap's config (the reference's PortMapConf): which backend, how to
//! masquerade, the mappings from `runtimeConfig.portMappings`, and the
//! container addresses taken from prevResult.

use std::net::IpAddr;

use cni_plugin_sdk::error::{Result, internal, invalid_config};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::{IpNet, parse_ip};
use cni_plugin_sdk::{CniResult, config, masquerade};
use serde::Deserialize;

/// Kubernetes uses bits 14 and 15, Calico 20-31.
pub const DEFAULT_MARK_BIT: i64 = 13;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetConf {
    pub name: String,
    pub backend: Option<String>,
    pub snat: Option<bool>,
    pub masq_all: bool,
    pub mark_masq_bit: Option<i64>,
    pub external_set_mark_chain: Option<String>,
    #[serde(rename = "conditionsV4")]
    pub conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6")]
    pub conditions_v6: Option<Vec<String>>,
    pub runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    #[serde(rename = "portMappings")]
    pub port_mappings: Vec<PortMapping>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: i64,
    #[serde(rename = "containerPort")]
    pub container_port: i64,
    pub protocol: String,
    #[serde(rename = "hostIP")]
    pub host_ip: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

/// A mapping after validation: ports in range, protocol lower-case (iptables
/// and nft both spell protocols that way), host IP parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

impl Mapping {
    /// Whether this mapping applies to a container address of the given
    /// family: a host IP of the other family is skipped, as the reference does.
    pub fn applies_to(&self, container: IpAddr) -> bool {
        self.host_ip.is_none_or(|h| h.is_ipv4() == container.is_ipv4())
    }

    /// The destination to match, when the host IP is a specific address.
    pub fn host_destination(&self) -> Option<IpAddr> {
        self.host_ip.filter(|h| !h.is_unspecified())
    }
}

/// The parsed config plus what is derived from it.
#[derive(Debug)]
pub struct PortMap {
    pub name: String,
    /// None: the reference's default (iptables unless only nftables works),
    /// resolved when the iptables tables are first read, not by a probe.
    pub backend: Option<Backend>,
    pub snat: bool,
    pub masq_all: bool,
    pub mark_bit: u32,
    pub external_set_mark_chain: Option<String>,
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
    pub mappings: Vec<Mapping>,
}

impl PortMap {
    pub fn load(raw: &str, host: &Netns) -> Result<PortMap> {
        let conf: NetConf = config::parse(raw).map_err(|e| internal(format!("failed to parse config: {}", e.msg)))?;
        if conf.mark_masq_bit.is_some() && conf.external_set_mark_chain.is_some() {
            return Err(internal("Cannot specify externalSetMarkChain and markMasqBit"));
        }
        let mark_bit = conf.mark_masq_bit.unwrap_or(DEFAULT_MARK_BIT);
        if !(0..=31).contains(&mark_bit) {
            return Err(internal("MasqMarkBit must be between 0 and 31"));
        }
        for (conditions, key) in [(&conf.conditions_v4, "conditionsV4"), (&conf.conditions_v6, "conditionsV6")] {
            // A condition is one argument (iptables) or one expression
            // (nftables): a line break or other control character in it
            // would end the rule and start another.
            if let Some(bad) = conditions.iter().flatten().find(|c| c.chars().any(char::is_control)) {
                return Err(invalid_config(format!("{key} entry {bad:?} holds a control character (a line break?)")));
            }
        }
        let backend = choose_backend(&conf, host)?;
        // Validated above; without options tied to a backend, the default is
        // resolved lazily.
        let mappings = conf.runtime_config.port_mappings.iter().map(validate).collect::<Result<Vec<_>>>()?;
        Ok(PortMap {
            name: conf.name,
            backend,
            snat: conf.snat.unwrap_or(true),
            masq_all: conf.masq_all,
            mark_bit: mark_bit as u32,
            external_set_mark_chain: conf.external_set_mark_chain,
            conditions_v4: conf.conditions_v4.unwrap_or_default(),
            conditions_v6: conf.conditions_v6.unwrap_or_default(),
            mappings,
        })
    }

    pub fn conditions(&self, v4: bool) -> &[String] {
        if v4 { &self.conditions_v4 } else { &self.conditions_v6 }
    }
}

fn validate(entry: &PortMapping) -> Result<Mapping> {
    if entry.container_port <= 0 || entry.container_port > 65535 {
        return Err(internal(format!("Invalid container port number: {}", entry.container_port)));
    }
    if entry.host_port <= 0 || entry.host_port > 65535 {
        return Err(internal(format!("Invalid host port number: {}", entry.host_port)));
    }
    let protocol = entry.protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(internal(format!(
            "Invalid protocol {:?} for host port {}: must be tcp, udp or sctp",
            entry.protocol, entry.host_port
        )));
    }
    let host_ip = match entry.host_ip.as_str() {
        "" => None,
        text => Some(
            parse_ip(text)
                .ok_or_else(|| internal(format!("Invalid host IP {text:?} for host port {}", entry.host_port)))?,
        ),
    };
    Ok(Mapping { host_port: entry.host_port as u16, container_port: entry.container_port as u16, protocol, host_ip })
}

/// The reference's ensureBackend: an explicit backend, or iptables unless
/// only nftables works; options of the other backend are an error. Only a
/// config with backend-specific options needs the default decided now.
fn choose_backend(conf: &NetConf, host: &Netns) -> Result<Option<Backend>> {
    let mut wants: Vec<(Backend, &str)> = Vec::new();
    if conf.external_set_mark_chain.is_some() {
        wants.push((Backend::Iptables, "externalSetMarkChain"));
    }
    for (conditions, key) in [(&conf.conditions_v4, "conditionsV4"), (&conf.conditions_v6, "conditionsV6")] {
        if let Some(backend) = conditions.as_deref().and_then(backend_of_conditions) {
            wants.push((backend, key));
        }
    }
    let backend = match conf.backend.as_deref() {
        Some("iptables") => Backend::Iptables,
        Some("nftables") => Backend::Nftables,
        Some(other) => return Err(internal(format!("unrecognized backend {other:?}"))),
        None if wants.is_empty() => return Ok(None),
        None if !masquerade::iptables_usable(host) && masquerade::nftables_usable(host) => Backend::Nftables,
        None => Backend::Iptables,
    };
    let wrong: Vec<&str> = wants.iter().filter(|(b, _)| *b != backend).map(|(_, key)| *key).collect();
    if !wrong.is_empty() {
        let (name, other) = match backend {
            Backend::Iptables => ("iptables", "nftables"),
            Backend::Nftables => ("nftables", "iptables"),
        };
        return Err(internal(format!(
            "{name} backend was requested but configuration contains {other}-specific options [{}]",
            wrong.join(" ")
        )));
    }
    Ok(Some(backend))
}

/// iptables conditions start with `-` or `!`; nothing in nft syntax does.
fn backend_of_conditions(conditions: &[String]) -> Option<Backend> {
    let first = conditions.first().filter(|c| !c.is_empty())?;
    Some(if first.starts_with('-') || first.starts_with('!') { Backend::Iptables } else { Backend::Nftables })
}

/// The container's first IPv4 and first IPv6 address in prevResult, on
/// the interface being attached (addresses of known host-side interfaces
/// are skipped, as in the reference).
pub fn container_addresses(result: &CniResult, ifname: &str) -> (Option<IpNet>, Option<IpNet>) {
    let (mut v4, mut v6) = (None, None);
    for ip in &result.ips {
        let address = IpNet::from_wit(&ip.address);
        let slot = if address.is_ipv4() { &mut v4 } else { &mut v6 };
        if slot.is_some() {
            continue;
        }
        if let Some(index) = ip.interface_index
            && let Some(interface) = result.interfaces.get(index as usize)
            && (interface.name != ifname || interface.sandbox.as_deref().unwrap_or_default().is_empty())
        {
            continue;
        }
        *slot = Some(address);
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: i64, container: i64, protocol: &str, host_ip: &str) -> PortMapping {
        PortMapping { host_port: host, container_port: container, protocol: protocol.into(), host_ip: host_ip.into() }
    }

    #[test]
    fn ports_must_be_positive_and_protocols_known() {
        assert!(validate(&entry(0, 80, "tcp", "")).unwrap_err().msg.contains("Invalid host port number: 0"));
        assert!(validate(&entry(80, -1, "tcp", "")).unwrap_err().msg.contains("Invalid container port number: -1"));
        assert!(validate(&entry(80, 80, "icmp", "")).is_err());
        assert!(validate(&entry(80, 80, "tcp", "not-an-ip")).is_err());
        let mapping = validate(&entry(8080, 80, "TCP", "0.0.0.0")).unwrap();
        assert_eq!(mapping.protocol, "tcp");
        assert_eq!(mapping.host_destination(), None);
    }

    #[test]
    fn a_host_ip_of_the_other_family_skips_the_mapping() {
        let mapping = validate(&entry(8080, 80, "tcp", "::1")).unwrap();
        assert!(!mapping.applies_to("10.0.0.2".parse().unwrap()));
        assert!(mapping.applies_to("fd00::2".parse().unwrap()));
    }

    #[test]
    fn conditions_name_their_backend() {
        assert_eq!(backend_of_conditions(&["-s".into(), "1.2.3.4".into()]), Some(Backend::Iptables));
        assert_eq!(backend_of_conditions(&["!".into(), "-d".into()]), Some(Backend::Iptables));
        assert_eq!(backend_of_conditions(&["ip saddr 1.2.3.4".into()]), Some(Backend::Nftables));
        assert_eq!(backend_of_conditions(&[]), None);
    }
}
