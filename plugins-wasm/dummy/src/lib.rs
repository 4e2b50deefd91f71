//! dummy: a `dummy` link created as CNI_IFNAME inside the container and
//! addressed by IPAM, e.g. to give a pod a stable address of its own. Reads
//! like the reference's cmdAdd / cmdDel / cmdCheck (upstream's plugin; the
//! Debian 1.1.1 package has none).

use cni_plugin_sdk::config::{self, IpamConf};
use cni_plugin_sdk::error::{Context, Result, internal, invalid_config};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, LinkKind, LinkOptions};
use cni_plugin_sdk::namespaces;
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetConf {
    ipam: IpamConf,
}

impl NetConf {
    /// IPAM is what a dummy link is for: ADD and CHECK refuse a config
    /// without it, as the reference does.
    fn parse_with_ipam(config: &str) -> Result<NetConf> {
        let conf: NetConf = config::parse(config)?;
        if conf.ipam.plugin_type.is_empty() {
            return Err(invalid_config("dummy interface requires an IPAM configuration"));
        }
        Ok(conf)
    }
}

struct Dummy;

impl cni_plugin_sdk::Plugin for Dummy {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Delegation,
        ])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse_with_ipam(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        let options = LinkOptions { mtu: None, mac: None, tx_queue_len: None };
        let link = links::create(&container, &call.ifname, &LinkKind::Dummy, &options, None)
            .map_err(|e| internal(format!("failed to create dummy {:?}: {}", call.ifname, e.message)))?;
        let interface = container_interface(&link, call.netns.clone());
        // The host deletes the link (and runs IPAM DEL) if this fails. The
        // result keeps IPAM's DNS, as the reference's does.
        ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {})
    }

    /// Neither the netns nor the link need to exist any more.
    fn del(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        iface::del_ipam_and_container_link(call, &conf.ipam.plugin_type)
    }

    /// The reference's: a dummy link with the result's MAC, up, with the
    /// result's addresses (routes are not checked).
    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse_with_ipam(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        ipam::exec_check(&conf.ipam.plugin_type)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        let entry = iface::prev_interface(call, previous)?;
        let link = iface::check_container_link(&container, entry, "dummy")?;
        if !link.up {
            return Err(internal(format!("Error: Container interface {} is down", link.name)));
        }
        iface::validate_interface_ips(&container, &call.ifname, &previous.ips)
    }

    fn status(config: &str) -> Result<()> {
        ipam::status_of(config)
    }

    fn gc(config: &str, _valid: &[cni_plugin_sdk::Attachment]) -> Result<()> {
        ipam::gc_of(config)
    }
}

cni_plugin_sdk::plugin!(Dummy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_is_required() {
        let error = NetConf::parse_with_ipam(r#"{"name":"n","type":"dummy"}"#).unwrap_err();
        assert_eq!(error.msg, "dummy interface requires an IPAM configuration");
        assert!(NetConf::parse_with_ipam(r#"{"name":"n","ipam":{"type":"host-local"}}"#).is_ok());
    }
}
