//! vlan: an 802.1Q VLAN of a host link (the master) in the container,
//! addressed by IPAM. Reads like the reference's cmdAdd / cmdDel /
//! cmdCheck.

use cni_plugin_sdk::config::{self, Dns, IpamConf, no_dns};
use cni_plugin_sdk::error::{Context, Result, internal, invalid_config};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, LinkKind, LinkOptions, VlanOptions};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ObjectRole, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    master: String,
    vlan_id: i64,
    mtu: i64,
    link_in_container: bool,
    ipam: IpamConf,
    dns: Dns,
}

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        let conf: NetConf = config::parse(config)?;
        if conf.master.is_empty() {
            return Err(invalid_config(
                "\"master\" field is required. It specifies the host interface name to create the VLAN for",
            ));
        }
        if !(0..=4094).contains(&conf.vlan_id) {
            return Err(invalid_config(format!(
                "invalid VLAN ID {} (must be between 0 and 4094 inclusive)",
                conf.vlan_id
            )));
        }
        Ok(conf)
    }

    fn master_ns(&self) -> Result<Netns> {
        if self.link_in_container {
            namespaces::container().context("failed to open netns")
        } else {
            Ok(namespaces::host())
        }
    }

    fn master(&self, ns: &Netns) -> Result<links::Link> {
        let master = links::get(ns, &self.master)?
            .ok_or_else(|| internal(format!("failed to lookup master {:?}: Link not found", self.master)))?;
        if self.mtu < 0 || self.mtu > i64::from(master.mtu) {
            return Err(invalid_config(format!("invalid MTU {}, must be [0, master MTU({})]", self.mtu, master.mtu)));
        }
        Ok(master)
    }
}

struct Vlan;

impl cni_plugin_sdk::Plugin for Vlan {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Delegation,
        ]);
        manifest.objects.push(cni_plugin_sdk::object("master", ObjectRole::Parent));
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse(&call.config)?;
        if conf.ipam.plugin_type.is_empty() {
            return Err(invalid_config("vlan needs an IPAM configuration"));
        }
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        let master_ns = conf.master_ns()?;
        conf.master(&master_ns)?;
        let kind = LinkKind::Vlan(VlanOptions { parent: conf.master.clone(), id: conf.vlan_id as u16 });
        let options =
            LinkOptions { mtu: u32::try_from(conf.mtu).ok().filter(|m| *m > 0), mac: None, tx_queue_len: Some(0) };
        let host = namespaces::host();
        let parent_ns = (!conf.link_in_container).then_some(&host);
        let link = iface::create_renamed(&container, &call.ifname, &kind, &options, parent_ns, "vlan")?;
        let interface = container_interface(&link, call.netns.clone());
        // No arp_notify: the reference sets none for vlan.
        let mut result = ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {})?;
        result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
        Ok(result)
    }

    /// Needs no master (the reference fails without it, leaking the
    /// reservation): the kernel deleted the VLAN with its master.
    fn del(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        iface::del_ipam_and_container_link(call, &conf.ipam.plugin_type)
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        if !conf.ipam.plugin_type.is_empty() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("vlan: Required prevResult missing"))?;
        let entry = iface::prev_interface(call, previous)?;
        conf.master(&conf.master_ns()?)?;
        let link = iface::check_container_link(&container, entry, "vlan")?;
        if link.vlan_id != Some(conf.vlan_id as u16) {
            return Err(internal(format!(
                "Error: Container interface {} has VLAN id {}, configured {}",
                link.name,
                link.vlan_id.map(|id| id.to_string()).unwrap_or_else(|| "none".into()),
                conf.vlan_id
            )));
        }
        if conf.mtu > 0 && i64::from(link.mtu) != conf.mtu {
            return Err(internal(format!(
                "Error: configured MTU of {} is {}, current value is {}",
                link.name, conf.mtu, link.mtu
            )));
        }
        iface::validate_interface_ips(&container, &call.ifname, &previous.ips)?;
        iface::validate_routes(&container, &previous.routes)
    }

    fn status(config: &str) -> Result<()> {
        ipam::status_of(config)
    }

    fn gc(config: &str, _valid: &[cni_plugin_sdk::Attachment]) -> Result<()> {
        ipam::gc_of(config)
    }
}

cni_plugin_sdk::plugin!(Vlan);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_vlan_id_are_checked() {
        assert!(NetConf::parse(r#"{"name":"n"}"#).unwrap_err().msg.contains("\"master\" field is required"));
        assert!(
            NetConf::parse(r#"{"name":"n","master":"m","vlanId":4095}"#)
                .unwrap_err()
                .msg
                .contains("invalid VLAN ID 4095")
        );
        assert_eq!(NetConf::parse(r#"{"name":"n","master":"m","vlanId":4094}"#).unwrap().vlan_id, 4094);
    }
}
