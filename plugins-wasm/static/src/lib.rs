//! static: returns the addresses, routes and DNS it is configured with.
//! Addresses come from `ipam.addresses`, CNI_ARGS `IP`/`GATEWAY` (appended),
//! `args.cni.ips` (replaces them) and `runtimeConfig.ips` (replaces again),
//! as in the reference. Nothing is stored, so DEL has nothing to do.

use std::net::IpAddr;

use cni_plugin_sdk::args::CniArgs;
use cni_plugin_sdk::config::{self, Dns, Route};
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::net::{IpNet, ip_from_wit, ip_to_wit, parse_ip};
use cni_plugin_sdk::{CniResult, Invocation, Manifest, cni};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Net {
    cni_version: String,
    ipam: Option<IpamConfig>,
    runtime_config: RuntimeConfig,
    args: Option<Args>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    ips: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    cni: Option<ArgsIps>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArgsIps {
    ips: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IpamConfig {
    routes: Vec<Route>,
    addresses: Vec<AddressJson>,
    dns: Dns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AddressJson {
    address: String,
    gateway: Option<String>,
}

#[derive(Debug)]
struct Address {
    address: IpNet,
    gateway: Option<IpAddr>,
}

#[derive(Debug)]
struct Conf {
    addresses: Vec<Address>,
    routes: Vec<Route>,
    dns: Dns,
}

fn load(config: &str, cni_args: &str) -> Result<Conf> {
    let net: Net = config::parse(config)?;
    let ipam = net.ipam.ok_or_else(|| internal("IPAM config missing 'ipam' key"))?;
    let mut addresses = Vec::new();
    for entry in &ipam.addresses {
        let address = entry.address.parse::<IpNet>().map_err(|_| {
            internal(format!("the 'address' field is expected to be in CIDR notation, got: '{}'", entry.address))
        })?;
        let gateway = match entry.gateway.as_deref().filter(|g| !g.is_empty()) {
            Some(text) => Some(parse_ip(text).ok_or_else(|| internal(format!("invalid IP address: {text}")))?),
            None => None,
        };
        addresses.push(Address { address, gateway });
    }

    let args = CniArgs::parse(cni_args, &["IP", "GATEWAY"])?;
    if let Some(ips) = args.get("IP").filter(|s| !s.is_empty()) {
        for item in ips.split(',').map(str::trim) {
            let address = item
                .parse::<IpNet>()
                .map_err(|_| internal(format!("the 'ip' field is expected to be in CIDR notation, got: '{item}'")))?;
            addresses.push(Address { address, gateway: None });
        }
    }
    if let Some(gateways) = args.get("GATEWAY").filter(|s| !s.is_empty()) {
        for item in gateways.split(',') {
            let gateway = parse_ip(item.trim()).ok_or_else(|| internal(format!("invalid gateway address: {item}")))?;
            for address in addresses.iter_mut().filter(|a| a.address.contains(gateway)) {
                address.gateway = Some(gateway);
            }
        }
    }
    // args.cni.ips, then runtimeConfig.ips, replace what came before.
    let replacements = [net.args.and_then(|a| a.cni).map(|c| c.ips).unwrap_or_default(), net.runtime_config.ips];
    for list in replacements.into_iter().filter(|l| !l.is_empty()) {
        addresses = list
            .iter()
            .map(|text| {
                text.parse::<IpNet>().map(|address| Address { address, gateway: None }).map_err(|_| {
                    internal(format!("an entry in the 'ips' field is NOT in CIDR notation, got: '{text}'"))
                })
            })
            .collect::<Result<_>>()?;
    }

    let v4 = addresses.iter().filter(|a| a.address.is_ipv4()).count();
    let v6 = addresses.len() - v4;
    let old = matches!(net.cni_version.as_str(), "" | "0.1.0" | "0.2.0");
    if (v4 > 1 || v6 > 1) && old {
        return Err(internal(format!(
            "CNI version {} does not support more than 1 address per family",
            net.cni_version
        )));
    }
    Ok(Conf { addresses, routes: ipam.routes, dns: ipam.dns })
}

struct Static;

impl cni_plugin_sdk::Plugin for Static {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = load(&call.config, &call.args)?;
        Ok(CniResult {
            interfaces: Vec::new(),
            ips: conf
                .addresses
                .iter()
                .map(|a| cni::IpConfig {
                    interface_index: None,
                    address: a.address.to_wit(),
                    gateway: a.gateway.map(ip_to_wit),
                })
                .collect(),
            routes: conf.routes.iter().map(Route::to_result).collect::<Result<_>>().context("invalid route")?,
            dns: conf.dns.to_result(),
        })
    }

    fn del(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    /// Every configured address found in prevResult must have the
    /// configured gateway (addresses missing from prevResult are not checked,
    /// as in the reference).
    fn check(call: &Invocation) -> Result<()> {
        let conf = load(&call.config, &call.args)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        for wanted in &conf.addresses {
            let found = previous.ips.iter().find(|ip| ip_from_wit(&ip.address.address) == wanted.address.addr);
            if let (Some(found), Some(gateway)) = (found, wanted.gateway)
                && found.gateway.as_ref().map(ip_from_wit) != Some(gateway)
            {
                return Err(internal(format!(
                    "static: Failed to match addr {} on interface {}",
                    wanted.address.addr, call.ifname
                )));
            }
        }
        Ok(())
    }
}

cni_plugin_sdk::plugin!(Static);

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"static",
        "addresses":[{"address":"10.10.0.1/24","gateway":"10.10.0.254"},{"address":"3ffe:ffff:0:01ff::1/64"}],
        "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["8.8.8.8"]}}}"#;

    #[test]
    fn configured_addresses_keep_host_bits_and_gateways() {
        let conf = load(CONFIG, "").unwrap();
        assert_eq!(conf.addresses[0].address.to_string(), "10.10.0.1/24");
        assert_eq!(conf.addresses[0].gateway.unwrap().to_string(), "10.10.0.254");
        assert_eq!(conf.addresses[1].address.to_string(), "3ffe:ffff:0:1ff::1/64");
    }

    #[test]
    fn cni_args_append_addresses_and_assign_gateways() {
        let conf = load(CONFIG, "IP=10.11.0.5/24,10.12.0.5/24;GATEWAY=10.11.0.1").unwrap();
        assert_eq!(conf.addresses.len(), 4);
        assert_eq!(conf.addresses[2].gateway.unwrap().to_string(), "10.11.0.1");
        assert!(conf.addresses[3].gateway.is_none());
    }

    #[test]
    fn runtime_config_ips_replace_everything() {
        let config = CONFIG.replacen("{\"cniVersion\"", "{\"runtimeConfig\":{\"ips\":[\"10.99.0.9/16\"]},\"args\":{\"cni\":{\"ips\":[\"10.98.0.9/16\"]}},\"cniVersion\"", 1);
        let conf = load(&config, "").unwrap();
        assert_eq!(conf.addresses.len(), 1);
        assert_eq!(conf.addresses[0].address.to_string(), "10.99.0.9/16");
    }

    #[test]
    fn addresses_must_be_cidrs() {
        assert!(load(CONFIG, "IP=10.0.0.1").unwrap_err().msg.contains("CIDR notation"));
    }
}
