//! The firewall plugin's config (the reference's FirewallNetConf), checked
//! before anything is changed: the reference validates `ingressPolicy`
//! only after it has added the container's rules, and leaves them behind
//! when the policy is unknown.

use cni_plugin_sdk::CniResult;
use cni_plugin_sdk::error::{Result, internal, invalid_config};
use cni_plugin_sdk::net::IpNet;
use serde::Deserialize;

pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";
pub const DEFAULT_ZONE: &str = "trusted";
/// iptables' longest chain name (XT_EXTENSION_MAXNAMELEN - 1).
const MAX_CHAIN_NAME: usize = 28;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Raw {
    name: String,
    backend: String,
    iptables_admin_chain_name: String,
    firewalld_zone: String,
    ingress_policy: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Firewalld,
    /// Not in the reference (which treats "nftables" like an unset
    /// backend): the container's rules in table `inet cni_firewall`.
    Nftables,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Firewalld => "firewalld",
            Backend::Nftables => "nftables",
        }
    }

    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "iptables" => Some(Backend::Iptables),
            "firewalld" => Some(Backend::Firewalld),
            "nftables" => Some(Backend::Nftables),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressPolicy {
    /// Every inbound connection is accepted (the default).
    Open,
    /// Connections from other bridges with this policy are dropped.
    SameBridge,
    /// Like same-bridge, and containers on the same bridge cannot reach
    /// each other either (upstream, after the Debian 1.1.1 reference).
    Isolated,
}

impl IngressPolicy {
    pub fn name(self) -> &'static str {
        match self {
            IngressPolicy::Open => "open",
            IngressPolicy::SameBridge => "same-bridge",
            IngressPolicy::Isolated => "isolated",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Conf {
    pub name: String,
    /// None: firewalld when it is running, iptables otherwise.
    pub backend: Option<Backend>,
    pub admin_chain: String,
    pub zone: String,
    pub ingress_policy: IngressPolicy,
    /// A `backend` value that is none of the three, ignored.
    pub unknown_backend: Option<String>,
}

impl Conf {
    pub fn load(config: &str) -> Result<Conf> {
        Conf::parse(config, true)
    }

    /// For DEL, which needs neither: an unknown ingressPolicy or a bad
    /// admin chain name does not stop the cleanup (the reference's DEL
    /// fails on an unknown policy, so a runtime could never delete the
    /// container).
    pub fn load_for_del(config: &str) -> Result<Conf> {
        Conf::parse(config, false)
    }

    fn parse(config: &str, strict: bool) -> Result<Conf> {
        let raw: Raw = cni_plugin_sdk::config::parse(config)?;
        // The reference silently falls back to the default for any other
        // value (an empty one included); configs that work there work here.
        let backend = Backend::from_name(&raw.backend);
        let ingress_policy = match raw.ingress_policy.as_str() {
            "" | "open" => IngressPolicy::Open,
            "same-bridge" => IngressPolicy::SameBridge,
            "isolated" => IngressPolicy::Isolated,
            _ if !strict => IngressPolicy::Open,
            other => return Err(internal(format!("unknown ingress policy: {other:?}"))),
        };
        let admin_chain = if raw.iptables_admin_chain_name.is_empty() {
            DEFAULT_ADMIN_CHAIN.to_string()
        } else {
            raw.iptables_admin_chain_name
        };
        if strict {
            check_chain_name(&admin_chain)?;
        }
        let zone = if raw.firewalld_zone.is_empty() { DEFAULT_ZONE.to_string() } else { raw.firewalld_zone };
        let unknown_backend = (backend.is_none() && !raw.backend.is_empty()).then_some(raw.backend);
        Ok(Conf { name: raw.name, backend, admin_chain, zone, ingress_policy, unknown_backend })
    }
}

/// A chain name iptables accepts and that stays one token in
/// iptables-restore input.
fn check_chain_name(name: &str) -> Result<()> {
    let plain = name.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'));
    if name.len() > MAX_CHAIN_NAME || !plain || name.starts_with(['-', '!']) {
        return Err(invalid_config(format!(
            "invalid iptablesAdminChainName {name:?}: an iptables chain name is at most {MAX_CHAIN_NAME} printable characters, without quotes"
        )));
    }
    Ok(())
}

/// The container's addresses as the rules name them (/32 or /128),
/// without duplicates, in prevResult's order.
pub fn container_ips(result: &CniResult) -> Vec<IpNet> {
    let mut ips: Vec<IpNet> = Vec::new();
    for ip in &result.ips {
        let host = IpNet::host(IpNet::from_wit(&ip.address).addr);
        if !ips.contains(&host) {
            ips.push(host);
        }
    }
    ips
}

/// The bridge the isolation rules name: the first interface of prevResult
/// (bridge puts its bridge there), as in the reference.
pub fn isolation_bridge(conf: &Conf, result: &CniResult) -> Result<Option<String>> {
    if conf.ingress_policy == IngressPolicy::Open {
        return Ok(None);
    }
    let Some(first) = result.interfaces.first() else {
        return Err(internal(format!(
            "interface needs to be set for ingress policy {:?}, make sure to chain \"firewall\" plugin with \"bridge\"",
            conf.ingress_policy.name()
        )));
    };
    let name = &first.name;
    if name.is_empty() {
        return Err(internal("got empty bridge name"));
    }
    // The name becomes part of iptables-restore lines and nft rules: only
    // the characters link names are made of in practice ('+' would be an
    // iptables wildcard).
    if name.len() > 15 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(internal(format!("bridge name {name:?} cannot be used in isolation rules")));
    }
    Ok(Some(name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let conf = Conf::load(r#"{"cniVersion": "1.0.0", "name": "n", "type": "firewall"}"#).unwrap();
        assert_eq!(conf.backend, None);
        assert_eq!(conf.admin_chain, "CNI-ADMIN");
        assert_eq!(conf.zone, "trusted");
        assert_eq!(conf.ingress_policy, IngressPolicy::Open);
    }

    #[test]
    fn keys_match_case_insensitively_and_unknown_backends_fall_back() {
        let conf = Conf::load(
            r#"{"name": "n", "Backend": "nftables", "IPTABLESADMINCHAINNAME": "MY-ADMIN", "firewalldzone": "z", "ingresspolicy": "isolated"}"#,
        )
        .unwrap();
        assert_eq!(conf.backend, Some(Backend::Nftables));
        assert_eq!(conf.admin_chain, "MY-ADMIN");
        assert_eq!(conf.zone, "z");
        assert_eq!(conf.ingress_policy, IngressPolicy::Isolated);
        assert_eq!(Conf::load(r#"{"name": "n", "backend": "bogus"}"#).unwrap().backend, None);
    }

    #[test]
    fn bad_policies_and_chain_names_are_refused() {
        assert_eq!(
            Conf::load(r#"{"name": "n", "ingressPolicy": "closed"}"#).unwrap_err().msg,
            "unknown ingress policy: \"closed\""
        );
        assert!(
            Conf::load_for_del(r#"{"name": "n", "ingressPolicy": "closed", "iptablesAdminChainName": "-X"}"#).is_ok(),
            "DEL goes on"
        );
        for bad in ["A-CHAIN-NAME-LONGER-THAN-28-CHARS", "with space", "-X", "quo\"te"] {
            let config = serde_json::json!({"name": "n", "iptablesAdminChainName": bad}).to_string();
            assert_eq!(Conf::load(&config).unwrap_err().code, 7, "{bad}");
        }
    }
}
