//! macvlan: a macvlan child of a host link (the master), created in the
//! container under a temporary name and renamed to CNI_IFNAME, addressed by
//! IPAM or left at layer 2. Reads like the reference's cmdAdd / cmdDel /
//! cmdCheck; see README.md for where it differs from Debian's 1.1.1.

use cni_plugin_sdk::args;
use cni_plugin_sdk::config::{self, Dns, IpamConf, no_dns};
use cni_plugin_sdk::error::{Context, Result, internal, invalid_config};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, LinkKind, LinkOptions, MacvlanMode, MacvlanOptions};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectKey, ObjectRole, ipam};
use serde::Deserialize;

/// The reference's NetConf, with upstream's later fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    master: String,
    mode: String,
    /// A Go int: 0 leaves the master's MTU.
    mtu: i64,
    mac: String,
    link_in_container: bool,
    #[serde(rename = "bcqueuelen")]
    bc_queue_len: Option<u32>,
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
    fn parse(config: &str) -> Result<NetConf> {
        config::parse(config)
    }

    /// The master's namespace: the host's, or the container's with
    /// `linkInContainer`.
    fn master_ns(&self) -> Result<Netns> {
        if self.link_in_container {
            namespaces::container().context("failed to open netns")
        } else {
            Ok(namespaces::host())
        }
    }

    /// The master, defaulting to the link of the first default route, and
    /// checked to exist; the MTU checked against it.
    fn resolve_master(&mut self, ns: &Netns) -> Result<links::Link> {
        if self.master.is_empty() {
            self.master =
                iface::default_route_interface(ns)?.ok_or_else(|| internal("no default route interface found"))?;
        }
        let master = links::get(ns, &self.master)?
            .ok_or_else(|| internal(format!("failed to lookup master {:?}: Link not found", self.master)))?;
        if self.mtu < 0 || self.mtu > i64::from(master.mtu) {
            return Err(invalid_config(format!("invalid MTU {}, must be [0, master MTU({})]", self.mtu, master.mtu)));
        }
        Ok(master)
    }

    fn mode(&self) -> Result<MacvlanMode> {
        match self.mode.as_str() {
            "" | "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" => Ok(MacvlanMode::Passthru),
            "source" => Ok(MacvlanMode::Source),
            other => Err(invalid_config(format!("unknown macvlan mode: {other:?}"))),
        }
    }
}

struct Macvlan;

impl cni_plugin_sdk::Plugin for Macvlan {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Delegation,
        ]);
        // Children on the master, and nothing else: it is never changed.
        manifest.objects.push(ObjectKey {
            key: "master".into(),
            role: ObjectRole::Parent,
            default: ObjectDefault::DefaultRouteLink,
            sub_interfaces: false,
        });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let mut conf = NetConf::parse(&call.config)?;
        let host = namespaces::host();
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        let master_ns = conf.master_ns()?;
        conf.resolve_master(&master_ns)?;
        let mac = args::chosen_mac(&conf.runtime_config.mac, &call.args, &conf.mac)?;
        let kind = LinkKind::Macvlan(MacvlanOptions {
            parent: conf.master.clone(),
            mode: conf.mode()?,
            broadcast_queue_len: conf.bc_queue_len,
        });
        // The reference sends IFLA_TXQLEN 0; the kernel keeps it.
        let options = LinkOptions { mtu: u32::try_from(conf.mtu).ok().filter(|m| *m > 0), mac, tx_queue_len: Some(0) };
        let parent_ns = (!conf.link_in_container).then_some(&host);
        let link = iface::create_renamed(&container, &call.ifname, &kind, &options, parent_ns, "macvlan")?;
        let interface = container_interface(&link, call.netns.clone());

        // The host deletes the link (and runs IPAM DEL) if anything below fails.
        let mut result = if conf.ipam.plugin_type.is_empty() {
            links::set(&container, &call.ifname, &ipam::set_up())
                .context(format!("failed to set {:?} UP", call.ifname))?;
            CniResult { interfaces: vec![interface], ips: Vec::new(), routes: Vec::new(), dns: no_dns() }
        } else {
            ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {
                iface::announce_on_up(&container, &call.ifname)
            })?
        };
        // The config's DNS, not IPAM's, as the reference.
        result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
        Ok(result)
    }

    /// Needs neither the master nor a default route (the master may be
    /// gone, and the kernel took its macvlans with it).
    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        iface::del_ipam_and_container_link(call, &conf.ipam.plugin_type)
    }

    fn check(call: &Invocation) -> Result<()> {
        let mut conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {netns:?}"))?;
        let master_ns = conf.master_ns()?;
        conf.resolve_master(&master_ns)?;
        if !conf.ipam.plugin_type.is_empty() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        let entry = iface::prev_interface(call, previous)?;
        let link = iface::check_container_link(&container, entry, "macvlan")?;
        let mode = conf.mode()?;
        if link.macvlan_mode != Some(mode) {
            return Err(internal(format!(
                "Container macvlan mode {} does not match expected value: {}",
                link.macvlan_mode.map(mode_name).unwrap_or("unknown"),
                mode_name(mode)
            )));
        }
        iface::validate_interface_ips(&container, &call.ifname, &previous.ips)?;
        iface::validate_routes(&container, &previous.routes)
    }

    fn status(config: &str) -> Result<()> {
        ipam::status_of(config)
    }

    /// The plugin holds no state; its IPAM may.
    fn gc(config: &str, _valid: &[cni_plugin_sdk::Attachment]) -> Result<()> {
        ipam::gc_of(config)
    }
}

fn mode_name(mode: MacvlanMode) -> &'static str {
    match mode {
        MacvlanMode::Bridge => "bridge",
        MacvlanMode::Private => "private",
        MacvlanMode::Vepa => "vepa",
        MacvlanMode::Passthru => "passthru",
        MacvlanMode::Source => "source",
    }
}

cni_plugin_sdk::plugin!(Macvlan);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_the_kernels() {
        for (text, mode) in
            [("", MacvlanMode::Bridge), ("vepa", MacvlanMode::Vepa), ("passthru", MacvlanMode::Passthru)]
        {
            let conf = NetConf::parse(&format!(r#"{{"name":"n","mode":"{text}"}}"#)).unwrap();
            assert_eq!(conf.mode().unwrap(), mode);
        }
        let bogus = NetConf::parse(r#"{"name":"n","mode":"bogus"}"#).unwrap();
        assert_eq!(bogus.mode().unwrap_err().msg, r#"unknown macvlan mode: "bogus""#);
    }
}
