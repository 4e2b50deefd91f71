//! portmap: forwards host ports to the container (the `portMappings`
//! capability), with iptables or nftables. A chained plugin: it passes
//! prevResult through. Reads like the reference's cmdAdd / cmdDel /
//! cmdCheck, plus what the reference lacks:
//!
//! - stale UDP conntrack entries for a mapped port are deleted on DEL too
//!   (reference #1190: otherwise a client keeps sending into the void);
//! - CHECK only looks at the families the container has addresses in (the
//!   Debian reference fails CHECK on every IPv4-only network);
//! - GC removes the rules of attachments the runtime no longer lists.

mod config;
mod iptables;
mod nftables;

use cni_plugin_sdk::conntrack::{self, FlowFilter};
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, family_of, ip_to_wit};
use cni_plugin_sdk::netfilter::{NftHandles, iptables_unusable};
use cni_plugin_sdk::types::IpFamily;
use cni_plugin_sdk::{
    Attachment, Capability, CniResult, Invocation, Manifest, ObjectRole, StateLocation, links, masquerade, routes,
    state, sysctl,
};

use crate::config::{Backend, PortMap, container_addresses};

const UDP: u8 = 17;
/// Attachments set up with nftables, for GC: nft rules carry only the
/// container id (as upstream writes them), not the network.
const NFT_RECORDS: &str = "nftables";

struct Portmap;

impl cni_plugin_sdk::Plugin for Portmap {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Netfilter,
            Capability::Conntrack,
            Capability::Routes,
            Capability::Links,
            Capability::Sysctl,
            Capability::State,
        ]);
        // Localhost traffic to a mapped port crosses into the container's
        // link only with route_localnet on the host link routing to it.
        manifest.host_sysctls = vec!["net/ipv4/conf/*/route_localnet".into()];
        manifest.iptables_chains = vec!["CNI-HOSTPORT-*".into(), "CNI-DN-*".into(), "CNI-SN-*".into()];
        // kube-proxy's mark chain, or whichever the admin names.
        manifest.objects.push(cni_plugin_sdk::object("externalSetMarkChain", ObjectRole::Chain));
        manifest.nft_tables = vec![format!("ip {}", nftables::TABLE), format!("ip6 {}", nftables::TABLE)];
        // The lock that serializes edits of the shared chains, and the
        // records GC needs for nftables.
        manifest.state = Some(StateLocation { default_dir: "/run/cni-wasm/portmap".into(), config_key: None });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let host = namespaces::host();
        let conf = PortMap::load(&call.config, &host)?;
        let prev = call.prev_result.as_ref().ok_or_else(|| internal("must be called as chained plugin"))?;
        if conf.mappings.is_empty() {
            return Ok(prev.clone());
        }
        let (v4, v6) = container_addresses(prev, &call.ifname);
        let _lock = state::lock("netfilter.lock")?;
        let outcome = (|| -> Result<()> {
            let previous = read_record(&conf.name, &call.container_id)?;
            let mut record = nftables::Record::new(&call.container_id);
            for container in [v4, v6].into_iter().flatten() {
                if let Some(handles) = forward_ports(&host, &conf, &call.container_id, container, previous.as_ref())? {
                    record.families.push((nftables::family(&container).to_string(), handles));
                }
            }
            if !record.families.is_empty() {
                state::replace(&record_path(&conf.name, &call.container_id), record.encode().as_bytes())?;
            }
            // After the rules are in place, so new datagrams use them.
            let families: Vec<IpFamily> = [v4, v6].into_iter().flatten().map(|ip| family_of(ip.addr)).collect();
            delete_stale_udp_flows(&host, &conf, &families);
            Ok(())
        })();
        if let Err(e) = outcome {
            // Nothing half-configured: take back what this ADD wrote.
            if let Err(undo) =
                unforward_ports(&host, &conf, &call.container_id, &[IpFamily::Ipv4, IpFamily::Ipv6], None)
            {
                cni_plugin_sdk::warn!("portmap: rolling back after a failed ADD: {}", undo.msg);
            }
            return Err(e);
        }
        Ok(prev.clone())
    }

    fn del(call: &Invocation) -> Result<()> {
        let host = namespaces::host();
        let conf = match PortMap::load(&call.config, &host) {
            Ok(conf) => conf,
            // A config ADD refused can still reach DEL (a runtime cleaning
            // up); whatever it might have left is found by name.
            Err(e) => return del_without_config(&host, &call.config, &call.container_id, &e.msg),
        };
        // Without mappings there is nothing of ours (and no lock churn).
        if conf.mappings.is_empty() {
            return Ok(());
        }
        let _lock = state::lock("netfilter.lock")?;
        let families = masquerade::families_of(call.prev_result.as_ref());
        let record = read_record(&conf.name, &call.container_id)?;
        if unforward_ports(&host, &conf, &call.container_id, &families, record.as_ref())? == Backend::Nftables {
            state::remove(&record_path(&conf.name, &call.container_id))?;
        }
        delete_stale_udp_flows(&host, &conf, &families);
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        let host = namespaces::host();
        let conf = PortMap::load(&call.config, &host)?;
        let prev = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        if conf.mappings.is_empty() {
            return Ok(());
        }
        let (v4, v6) = container_addresses(prev, &call.ifname);
        for container in [v4, v6].into_iter().flatten() {
            let nat = match conf.backend {
                Some(Backend::Nftables) => None,
                Some(Backend::Iptables) => Some(iptables::read_nat(&host, container)?),
                None => match iptables::read_nat(&host, container) {
                    Ok(nat) => Some(nat),
                    Err(e) if iptables_unusable(&e) => None,
                    Err(e) => return Err(e.into()),
                },
            };
            match nat {
                Some(nat) => iptables::check_ports(&conf, &call.container_id, container, &nat)?,
                None => nftables::check_ports(&host, &conf, &call.container_id, container)?,
            }
        }
        Ok(())
    }

    /// Removes the port forwarding of this network's attachments that the
    /// runtime no longer lists (the reference has no GC).
    fn gc(config: &str, valid: &[Attachment]) -> Result<()> {
        let host = namespaces::host();
        let conf = PortMap::load(config, &host)?;
        let _lock = state::lock("netfilter.lock")?;
        let mut errors = Vec::new();
        if let Err(e) = iptables::gc(&host, &conf.name, valid) {
            errors.push(e.msg);
        }
        let dir = format!("{NFT_RECORDS}/{}", conf.name);
        for container_id in state::files(&dir)? {
            if valid.iter().any(|a| a.container_id == container_id) {
                continue;
            }
            let record = read_record(&conf.name, &container_id)?;
            match nftables::unforward_ports(&host, &container_id, record.as_ref()) {
                Ok(()) => {
                    state::remove(&record_path(&conf.name, &container_id))?;
                }
                Err(e) => errors.push(e.msg),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
    }
}

/// DEL for a config that does not validate: removes the container's rules
/// from both backends, found by network name and container id.
fn del_without_config(host: &Netns, config: &str, container_id: &str, why: &str) -> Result<()> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Named {
        name: String,
    }
    cni_plugin_sdk::warn!("portmap: DEL with an invalid config ({why}); removing any rules by name");
    let named: Named = cni_plugin_sdk::config::parse(config)?;
    let _lock = state::lock("netfilter.lock")?;
    iptables::unforward_ports(host, &named.name, container_id, &[IpFamily::Ipv4, IpFamily::Ipv6], None)?;
    if masquerade::nftables_usable(host) {
        let record = read_record(&named.name, container_id)?;
        nftables::unforward_ports(host, container_id, record.as_ref())?;
    }
    state::remove(&record_path(&named.name, container_id))?;
    Ok(())
}

fn record_path(network: &str, container_id: &str) -> String {
    format!("{NFT_RECORDS}/{network}/{container_id}")
}

/// The nftables record of an attachment; one that is not text is no
/// record (its rules are then found by listing).
fn read_record(network: &str, container_id: &str) -> Result<Option<nftables::Record>> {
    let bytes = state::read(&record_path(network, container_id))?;
    Ok(bytes.and_then(|b| String::from_utf8(b).ok()).map(|text| nftables::Record::decode(&text)))
}

/// Sets up the mappings for one container address; returns, when it used
/// nftables, how to find its rules again (the default backend is iptables
/// unless its table cannot be read and nftables works).
fn forward_ports(
    host: &Netns,
    conf: &PortMap,
    container_id: &str,
    container: IpNet,
    previous: Option<&nftables::Record>,
) -> Result<Option<Option<NftHandles>>> {
    if conf.snat && container.is_ipv4() {
        enable_localnet_routing(host, container)?;
    }
    let nat = match conf.backend {
        Some(Backend::Nftables) => None,
        Some(Backend::Iptables) => Some(iptables::read_nat(host, container)?),
        None => match iptables::read_nat(host, container) {
            Ok(nat) => Some(nat),
            Err(e) if iptables_unusable(&e) && masquerade::nftables_usable(host) => None,
            Err(e) => return Err(e.into()),
        },
    };
    match nat {
        Some(nat) => iptables::forward_ports(host, conf, container_id, container, nat).map(|()| None),
        None => nftables::forward_ports(host, conf, container_id, container, previous).map(Some),
    }
}

/// Removes the container's mappings; returns the backend they were in.
fn unforward_ports(
    host: &Netns,
    conf: &PortMap,
    container_id: &str,
    families: &[IpFamily],
    record: Option<&nftables::Record>,
) -> Result<Backend> {
    if conf.backend == Some(Backend::Nftables) {
        return nftables::unforward_ports(host, container_id, record).map(|()| Backend::Nftables);
    }
    if iptables::unforward_ports(host, &conf.name, container_id, families, Some(conf))? {
        return Ok(Backend::Iptables);
    }
    // The default is nftables only where iptables is not usable.
    if conf.backend.is_none() && masquerade::nftables_usable(host) {
        return nftables::unforward_ports(host, container_id, record).map(|()| Backend::Nftables);
    }
    Err(internal("neither iptables nor ip6tables usable"))
}

/// Lets 127.0.0.0/8 sources cross into the link that routes to the
/// container, so `curl 127.0.0.1:<hostPort>` works (never reverted, as in
/// the reference: other containers behind the link rely on it too).
fn enable_localnet_routing(host: &Netns, container: IpNet) -> Result<()> {
    let Ok(route) = routes::lookup(host, ip_to_wit(container.addr)) else { return Ok(()) };
    let Some(link) = route.link_index.map(|i| links::get_by_index(host, i)).transpose()?.flatten() else {
        return Ok(());
    };
    sysctl::set(host, &format!("net/ipv4/conf/{}/route_localnet", link.name), "1")
        .context("unable to enable route_localnet")
}

/// Deletes conntrack entries of UDP datagrams sent to a mapped host port:
/// a client that keeps sending would otherwise stay bound to a flow
/// created before the mapping existed (or to a container that is gone).
/// One walk of the table for every port and family; failures are only
/// logged, as in the reference.
fn delete_stale_udp_flows(host: &Netns, conf: &PortMap, families: &[IpFamily]) {
    let mut ports: Vec<u16> = conf.mappings.iter().filter(|m| m.protocol == "udp").map(|m| m.host_port).collect();
    ports.sort();
    ports.dedup();
    let filters: Vec<FlowFilter> = families
        .iter()
        .flat_map(|family| {
            ports.iter().map(|port| FlowFilter {
                family: *family,
                protocol: Some(UDP),
                original_destination: None,
                original_destination_port: Some(*port),
                reply_source: None,
            })
        })
        .collect();
    if filters.is_empty() {
        return;
    }
    if let Err(e) = conntrack::delete(host, &filters) {
        cni_plugin_sdk::warn!(
            "portmap: failed to delete stale UDP conntrack entries for ports {ports:?}: {}",
            e.message
        );
    }
}

cni_plugin_sdk::plugin!(Portmap);
