//! ptp: a veth pair from the container to the host, with the host end as
//! the container's only router. The container's addresses keep their
//! prefix, but every destination, its own subnet included, is reached
//! through the gateway; the host end holds each gateway address as a /32
//! (/128) and routes the container's address back to it. Reads like the
//! reference's cmdAdd / cmdDel / cmdCheck.

use cni_plugin_sdk::config::{self, Dns, IpamConf};
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::iface::{self, mac_string};
use cni_plugin_sdk::masquerade;
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, family_of, ip_from_wit, ip_to_wit};
use cni_plugin_sdk::netfilter::go_quote;
use cni_plugin_sdk::routes::{self, AddMode, RouteSpec};
use cni_plugin_sdk::types::IpFamily;
use cni_plugin_sdk::{Attachment, Capability, CniResult, Invocation, Manifest, addresses, cni, ipam, links};
use serde::Deserialize;

/// The reference's NetConf.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    name: String,
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    /// A Go int: zero or negative leaves the kernel's default.
    mtu: i64,
    ipam: IpamConf,
    dns: Dns,
}

impl NetConf {
    fn load(config: &str) -> Result<NetConf> {
        config::parse(config)
    }

    fn mtu(&self) -> Option<u32> {
        u32::try_from(self.mtu).ok().filter(|m| *m > 0)
    }
}

const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;

struct Ptp;

impl cni_plugin_sdk::Plugin for Ptp {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Netfilter,
            Capability::State,
            Capability::Delegation,
        ]);
        masquerade::grant(&mut manifest, "ptp");
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::load(&call.config)?;
        let host = namespaces::host();
        // Checked before anything changes (the reference finds out last).
        let backend = masquerade::configured_backend(conf.ip_masq_backend.as_deref())?;

        // The host rolls the reservation back (IPAM DEL) if anything below
        // fails, and removes the links, addresses and routes made here.
        let ipam_result = ipam::exec_add(&conf.ipam.plugin_type)?;
        if ipam_result.ips.is_empty() {
            return Err(internal("IPAM plugin returned missing IP config"));
        }
        for ip in &ipam_result.ips {
            gateway_of(ip)?;
        }
        for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
            if ipam_result.ips.iter().any(|ip| family_of(IpNet::from_wit(&ip.address).addr) == family) {
                iface::enable_forwarding(&host, family)?;
            }
        }

        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {}", go_quote(&netns)))?;
        let mut result = setup_container_veth(&container, &host, &conf, call, ipam_result)?;
        let host_veth = result.interfaces[0].name.clone();
        setup_host_veth(&host, &host_veth, &result)?;

        if conf.ip_masq {
            let ips: Vec<IpNet> = result.ips.iter().map(|ip| IpNet::from_wit(&ip.address)).collect();
            let outcome = with_netfilter_lock(|| {
                masquerade::setup(&host, backend, &ips, &conf.name, &call.ifname, &call.container_id)
            });
            if let Err(error) = outcome {
                // Rules are not in the host's journal: remove any half set.
                let _ = with_netfilter_lock(|| {
                    masquerade::teardown(&host, &conf.name, &call.ifname, &call.container_id, Some(&result))
                });
                return Err(error);
            }
        }
        if conf.dns.is_set() {
            result.dns = conf.dns.to_result();
        }
        Ok(result)
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::load(&call.config)?;
        let host = namespaces::host();
        let mut errors = Vec::new();
        // The container end takes the host end with it; a namespace that is
        // gone took both.
        if call.netns.is_some() {
            match namespaces::container() {
                Ok(container) => {
                    if let Err(e) = iface::delete_link_with_addresses(&container, &call.ifname) {
                        errors.push(e.msg);
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(e.message),
            }
        }
        // Keyed by network and container id, so removed even when the
        // namespace or the link is already gone (the reference leaks the
        // rules then: it only tears down for addresses it found on the link).
        if conf.ip_masq
            && let Err(e) = with_netfilter_lock(|| {
                masquerade::teardown(&host, &conf.name, &call.ifname, &call.container_id, call.prev_result.as_ref())
            })
        {
            errors.push(e.msg);
        }
        if let Err(e) = ipam::exec_del(&conf.ipam.plugin_type) {
            errors.push(e.msg);
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::load(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container = namespaces::container().context(format!("failed to open netns {}", go_quote(&netns)))?;
        ipam::exec_check(&conf.ipam.plugin_type)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("ptp: Required prevResult missing"))?;
        let Some(entry) =
            previous.interfaces.iter().find(|i| i.name == call.ifname && i.sandbox.as_deref() == call.netns.as_deref())
        else {
            return Err(internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}")));
        };
        validate_container_interface(&container, entry)?;
        // Unlike the reference (its #886), a result route without a gateway
        // matches the installed route through the gateway.
        iface::validate_interface_ips(&container, &call.ifname, &previous.ips)?;
        iface::validate_routes(&container, &previous.routes)
    }

    fn status(config: &str) -> Result<()> {
        let conf = NetConf::load(config)?;
        ipam::exec_status(&conf.ipam.plugin_type)
    }

    /// Forwards GC to IPAM and removes the masquerading of attachments the
    /// runtime no longer lists (the reference has no GC).
    fn gc(config: &str, valid: &[Attachment]) -> Result<()> {
        let conf = NetConf::load(config)?;
        let host = namespaces::host();
        let mut errors = Vec::new();
        if let Err(e) = ipam::exec_gc(&conf.ipam.plugin_type) {
            errors.push(e.msg);
        }
        if let Err(e) = with_netfilter_lock(|| masquerade::gc(&host, &conf.name, valid)) {
            errors.push(e.msg);
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
    }
}

/// Serializes the read-modify-write of shared netfilter chains with other
/// ptp invocations.
fn with_netfilter_lock<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    let _lock = cni_plugin_sdk::state::lock("netfilter.lock")?;
    work()
}

/// The veth pair, the container's addresses and IPAM routes, then the
/// point-to-point routing: the kernel's subnet route is replaced by a link
/// route to the gateway and the subnet through the gateway, so the
/// container asks the host (ARP) for nothing but its gateway.
fn setup_container_veth(
    container: &Netns,
    host: &Netns,
    conf: &NetConf,
    call: &Invocation,
    ipam_result: CniResult,
) -> Result<CniResult> {
    let ifname = &call.ifname;
    let (host_veth, container_veth) = iface::setup_veth(container, host, ifname, conf.mtu(), None)?;
    let mut result = ipam_result;
    result.interfaces = vec![
        interface(&host_veth.name, &mac_string(&host_veth), None),
        interface(&container_veth.name, &mac_string(&container_veth), call.netns.clone()),
    ];
    for ip in &mut result.ips {
        ip.interface_index = Some(1);
    }
    ipam::configure_iface(container, ifname, &result)?;

    for ip in &result.ips {
        let address = IpNet::from_wit(&ip.address);
        let gateway = gateway_of(ip)?;
        let subnet = address.masked();
        let kernel_route = route(subnet, None, ifname, None, None);
        routes::delete(container, &kernel_route).context(format!("failed to delete route {subnet} dev {ifname}"))?;
        let to_gateway = route(IpNet::host(gateway), None, ifname, Some(address), Some(RT_SCOPE_LINK));
        let via_gateway = route(subnet, Some(gateway), ifname, Some(address), None);
        for (spec, text) in [
            (to_gateway, format!("{gateway} dev {ifname}")),
            (via_gateway, format!("{subnet} via {gateway} dev {ifname}")),
        ] {
            routes::add(container, &spec, AddMode::Exclusive).context(format!("failed to add route {text}"))?;
        }
    }
    Ok(result)
}

/// Every gateway address as a /32 (/128) on the host end (each ptp host
/// veth holds the same ones), and a host route to each container address.
fn setup_host_veth(host: &Netns, veth: &str, result: &CniResult) -> Result<()> {
    for ip in &result.ips {
        let address = IpNet::from_wit(&ip.address);
        let gateway = IpNet::host(gateway_of(ip)?);
        addresses::add(host, veth, gateway.to_wit()).context(format!("failed to add IP addr {gateway} to veth"))?;
        let spec = route(IpNet::host(address.addr), None, veth, None, Some(RT_SCOPE_HOST));
        match routes::add(host, &spec, AddMode::Exclusive) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(internal(format!("failed to add route on host: {}", e.message))),
        }
    }
    Ok(())
}

/// The host end answers for the gateway: without one there is nothing to
/// route through (the reference fails later, obscurely).
fn gateway_of(ip: &cni::IpConfig) -> Result<std::net::IpAddr> {
    ip.gateway.map(|g| ip_from_wit(&g)).ok_or_else(|| {
        internal(format!(
            "IPAM plugin returned no gateway for {}: ptp routes everything through it",
            IpNet::from_wit(&ip.address)
        ))
    })
}

fn route(
    destination: IpNet,
    gateway: Option<std::net::IpAddr>,
    link: &str,
    source: Option<IpNet>,
    scope: Option<u8>,
) -> RouteSpec {
    RouteSpec {
        destination: destination.to_wit(),
        gateway: gateway.map(ip_to_wit),
        link: Some(link.to_string()),
        source: source.map(|s| ip_to_wit(s.addr)),
        table: None,
        scope,
        priority: None,
        mtu: None,
        advmss: None,
        protocol: None,
    }
}

fn interface(name: &str, mac: &str, sandbox: Option<String>) -> cni::NetworkInterface {
    cni::NetworkInterface {
        name: name.into(),
        mac: Some(mac.into()),
        mtu: None,
        sandbox,
        socket_path: None,
        pci_id: None,
    }
}

/// CHECK of the container end named in prevResult: present, a veth, and
/// with the MAC the result gave.
fn validate_container_interface(container: &Netns, entry: &cni::NetworkInterface) -> Result<()> {
    if entry.name.is_empty() {
        return Err(internal("Container interface name missing in prevResult: "));
    }
    let link = links::get(container, &entry.name)?
        .ok_or_else(|| internal(format!("ptp: Container Interface name in prevResult: {} not found", entry.name)))?;
    if link.kind.as_deref() != Some("veth") {
        return Err(internal(format!("Error: Container interface {} not of type veth/p2p", link.name)));
    }
    if let Some(mac) = entry.mac.as_deref().filter(|m| !m.is_empty())
        && mac != mac_string(&link)
    {
        return Err(internal(format!(
            "ptp: Interface {} Mac {mac} doesn't match container Mac: {}",
            entry.name,
            mac_string(&link)
        )));
    }
    Ok(())
}

cni_plugin_sdk::plugin!(Ptp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_reference_field_case_insensitively() {
        let conf = NetConf::load(
            r#"{"name":"n","IPMASQ":true,"ipMasqBackend":"nftables","MTU":1400,"ipam":{"type":"host-local"},"dns":{"nameservers":["1.1.1.1"]}}"#,
        )
        .unwrap();
        assert!(conf.ip_masq);
        assert_eq!(conf.ip_masq_backend.as_deref(), Some("nftables"));
        assert_eq!(conf.mtu(), Some(1400));
        assert_eq!(conf.ipam.plugin_type, "host-local");
        assert!(conf.dns.is_set());
    }

    #[test]
    fn a_zero_or_negative_mtu_leaves_the_default() {
        assert_eq!(NetConf::load(r#"{"name":"n","mtu":0}"#).unwrap().mtu(), None);
        assert_eq!(NetConf::load(r#"{"name":"n","mtu":-1}"#).unwrap().mtu(), None);
    }
}
