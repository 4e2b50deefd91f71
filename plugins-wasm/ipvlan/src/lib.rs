//! ipvlan: an ipvlan child of a host link (the master) in the container,
//! sharing the master's MAC, addressed by IPAM or, chained after another
//! plugin, with that plugin's addresses (the master then being the one
//! interface of its result). Reads like the reference's cmdAdd / cmdDel /
//! cmdCheck.

use cni_plugin_sdk::config::{self, Dns, IpamConf, no_dns};
use cni_plugin_sdk::error::{Context, Result, internal, invalid_config};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, IpvlanMode, IpvlanOptions, LinkKind, LinkOptions};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectKey, ObjectRole, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    master: String,
    mode: String,
    /// A Go int; not checked against the master, as in the reference.
    mtu: i64,
    link_in_container: bool,
    ipam: IpamConf,
    dns: Dns,
}

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        config::parse(config)
    }

    fn master_ns(&self) -> Result<Netns> {
        if self.link_in_container {
            namespaces::container().context("failed to open netns")
        } else {
            Ok(namespaces::host())
        }
    }

    /// The master: the config's; chained, the previous result's one named
    /// interface; else the link of the first default route.
    fn resolve_master(&mut self, call: &Invocation, ns: &Netns) -> Result<()> {
        if !self.master.is_empty() {
            return Ok(());
        }
        self.master = match &call.prev_result {
            Some(previous) => match previous.interfaces.as_slice() {
                [only] if !only.name.is_empty() => only.name.clone(),
                _ => return Err(internal("chained master failure. PrevResult lacks a single named interface")),
            },
            None => iface::default_route_interface(ns)?.ok_or_else(|| internal("no default route interface found"))?,
        };
        Ok(())
    }

    fn mode(&self) -> Result<IpvlanMode> {
        match self.mode.as_str() {
            "" | "l2" => Ok(IpvlanMode::L2),
            "l3" => Ok(IpvlanMode::L3),
            "l3s" => Ok(IpvlanMode::L3s),
            other => Err(invalid_config(format!("unknown ipvlan mode: {other:?}"))),
        }
    }
}

fn mode_name(mode: IpvlanMode) -> &'static str {
    match mode {
        IpvlanMode::L2 => "l2",
        IpvlanMode::L3 => "l3",
        IpvlanMode::L3s => "l3s",
    }
}

struct Ipvlan;

impl cni_plugin_sdk::Plugin for Ipvlan {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Delegation,
        ]);
        let parent = |key: &str, default| ObjectKey {
            key: key.into(),
            role: ObjectRole::Parent,
            default,
            sub_interfaces: false,
        };
        manifest.objects.push(parent("master", ObjectDefault::DefaultRouteLink));
        // Chained: the previous plugin's one interface is the master.
        manifest.objects.push(parent("prevResult.interfaces.0.name", ObjectDefault::None));
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let mut conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        let master_ns = conf.master_ns()?;
        conf.resolve_master(call, &master_ns)?;
        links::get(&master_ns, &conf.master)?
            .ok_or_else(|| internal(format!("failed to lookup master {:?}: Link not found", conf.master)))?;
        let kind = LinkKind::Ipvlan(IpvlanOptions { parent: conf.master.clone(), mode: conf.mode()? });
        let options =
            LinkOptions { mtu: u32::try_from(conf.mtu).ok().filter(|m| *m > 0), mac: None, tx_queue_len: Some(0) };
        let host = namespaces::host();
        let parent_ns = (!conf.link_in_container).then_some(&host);
        let link = iface::create_renamed(&container, &call.ifname, &kind, &options, parent_ns, "ipvlan")?;
        let interface = container_interface(&link, call.netns.clone());

        // Chained without IPAM: the previous plugin's addresses and routes.
        let chained = call.prev_result.as_ref().filter(|p| conf.ipam.plugin_type.is_empty() && !p.ips.is_empty());
        let mut result = match chained {
            Some(previous) => {
                let mut result = previous.clone();
                result.interfaces = vec![interface];
                for ip in &mut result.ips {
                    ip.interface_index = Some(0);
                }
                iface::announce_on_up(&container, &call.ifname);
                ipam::configure_iface(&container, &call.ifname, &result)?;
                result
            }
            None if conf.ipam.plugin_type.is_empty() => {
                return Err(invalid_config("ipvlan needs an IPAM configuration, or a previous result with addresses"));
            }
            None => ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {
                iface::announce_on_up(&container, &call.ifname)
            })?,
        };
        result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
        Ok(result)
    }

    /// Needs no master: it may be gone, and the kernel took its ipvlans.
    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        iface::del_ipam_and_container_link(call, &conf.ipam.plugin_type)
    }

    fn check(call: &Invocation) -> Result<()> {
        let mut conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        if !conf.ipam.plugin_type.is_empty() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        let entry = iface::prev_interface(call, previous)?;
        // The master of a chained ipvlan came from the result before it,
        // which CHECK does not have: only a configured one is checked.
        if !conf.master.is_empty() {
            let master_ns = conf.master_ns()?;
            conf.resolve_master(call, &master_ns)?;
            links::get(&master_ns, &conf.master)?
                .ok_or_else(|| internal(format!("failed to lookup master {:?}: Link not found", conf.master)))?;
        }
        let link = iface::check_container_link(&container, entry, "ipvlan")?;
        let mode = conf.mode()?;
        if link.ipvlan_mode != Some(mode) {
            return Err(internal(format!(
                "Container IPVlan mode {} does not match expected value: {}",
                link.ipvlan_mode.map(mode_name).unwrap_or("unknown"),
                mode_name(mode)
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

cni_plugin_sdk::plugin!(Ipvlan);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_l2_l3_and_l3s() {
        for (text, mode) in [("", IpvlanMode::L2), ("l3", IpvlanMode::L3), ("l3s", IpvlanMode::L3s)] {
            assert_eq!(NetConf::parse(&format!(r#"{{"name":"n","mode":"{text}"}}"#)).unwrap().mode().unwrap(), mode);
        }
        let bridge = NetConf::parse(r#"{"name":"n","mode":"bridge"}"#).unwrap();
        assert_eq!(bridge.mode().unwrap_err().msg, r#"unknown ipvlan mode: "bridge""#);
    }
}
