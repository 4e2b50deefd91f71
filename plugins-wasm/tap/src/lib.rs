//! tap: a persistent tap device created in the container (under a
//! temporary name, renamed to CNI_IFNAME), optionally enslaved to a bridge
//! there and addressed by IPAM, for VM runtimes such as Kata that open the
//! tap themselves. Reads like upstream's cmdAdd / cmdDel / cmdCheck (the
//! Debian 1.1.1 package has no tap plugin).

use cni_plugin_sdk::config::{self, Dns, IpamConf, no_dns};
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, LinkChange, LinkKind, LinkOptions, Master, TapOptions};
use cni_plugin_sdk::namespaces;
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, args, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    multi_queue: bool,
    mtu: u32,
    mac: String,
    owner: Option<u32>,
    group: Option<u32>,
    selinux_context: String,
    /// A bridge inside the container to enslave the tap to.
    bridge: String,
    ipam: IpamConf,
    dns: Dns,
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    mac: String,
}

impl NetConf {
    /// The reference makes the tap with netlink, which sets IFF_VNET_HDR,
    /// only when both owner and group are given and no SELinux label is;
    /// otherwise it runs `ip tuntap`, which does not.
    fn tap_options(&self) -> TapOptions {
        let netlink_path = self.owner.is_some() && self.group.is_some() && self.selinux_context.is_empty();
        TapOptions { multi_queue: self.multi_queue, vnet_hdr: netlink_path, owner: self.owner, group: self.group }
    }
}

struct Tap;

impl cni_plugin_sdk::Plugin for Tap {
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
        let conf: NetConf = config::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        if !conf.selinux_context.is_empty() {
            // The reference applies the label to the `ip` process it runs;
            // cni-wasm creates the tap itself and runs no process to label.
            cni_plugin_sdk::warn!("selinuxContext {:?} ignored: no process is run to label", conf.selinux_context);
        }
        let options = LinkOptions {
            mtu: Some(conf.mtu).filter(|m| *m > 0),
            mac: args::chosen_mac(&conf.runtime_config.mac, &call.args, &conf.mac)?,
            tx_queue_len: None,
        };
        let kind = LinkKind::Tap(conf.tap_options());
        let link = iface::create_renamed(&container, &call.ifname, &kind, &options, None, "tap")?;
        // The host deletes the tap (and runs IPAM DEL) if anything below fails.
        if !conf.bridge.is_empty() {
            if links::get(&container, &conf.bridge)?.is_none() {
                return Err(internal(format!("failed to get bridge {}: Link not found", conf.bridge)));
            }
            let enslave = LinkChange { master: Some(Master::Attach(conf.bridge.clone())), ..ipam::no_change() };
            links::set(&container, &call.ifname, &enslave)
                .map_err(|e| internal(format!("failed to set master {}: {}", conf.bridge, e.message)))?;
        }
        let interface = container_interface(&link, call.netns.clone());
        let mut result = if conf.ipam.plugin_type.is_empty() {
            links::set(&container, &call.ifname, &ipam::set_up())
                .context(format!("failed to set {:?} UP", call.ifname))?;
            CniResult { interfaces: vec![interface], ips: Vec::new(), routes: Vec::new(), dns: no_dns() }
        } else {
            ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {
                iface::announce_on_up(&container, &call.ifname)
            })?
        };
        result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
        Ok(result)
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        iface::del_ipam_and_container_link(call, &conf.ipam.plugin_type)
    }

    /// As the reference: the sandbox, the addresses and the routes (the
    /// link's kind and MAC are not checked).
    fn check(call: &Invocation) -> Result<()> {
        let conf: NetConf = config::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        if !conf.ipam.plugin_type.is_empty() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        iface::prev_interface(call, previous)?;
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

cni_plugin_sdk::plugin!(Tap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_hdr_only_on_the_references_netlink_path() {
        let conf = |json: &str| config::parse::<NetConf>(json).unwrap().tap_options().vnet_hdr;
        assert!(conf(r#"{"name":"n","owner":1000,"group":1000}"#));
        assert!(!conf(r#"{"name":"n","owner":1000}"#));
        assert!(!conf(r#"{"name":"n","owner":1000,"group":1000,"selinuxContext":"system_u:system_r:container_t:s0"}"#));
    }
}
