//! bridge: connects the container to a host bridge with a veth pair, runs
//! IPAM, and optionally makes the bridge the containers' gateway and
//! masquerades their traffic. Reads like the reference's cmdAdd / cmdDel /
//! cmdCheck; every field of its config is supported.

mod config;
mod spoofcheck;

use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::iface::{self, mac_string};
use cni_plugin_sdk::ipam::{self, no_change};
use cni_plugin_sdk::links::{
    self, BridgeOptions, BridgePort, BridgeVlan, Link, LinkChange, LinkKind, LinkOptions, Master, OperState,
};
use cni_plugin_sdk::masquerade;
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::{IpNet, ip_from_wit, ip_to_wit, next_ip, parse_mac};
use cni_plugin_sdk::types::IpFamily;
use cni_plugin_sdk::{
    Attachment, Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectKey, ObjectRole, addresses, clock,
    cni, neighbours, sysctl,
};

use crate::config::{DEFAULT_BRIDGE, NetConf};

struct Bridge;

impl cni_plugin_sdk::Plugin for Bridge {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::Netfilter,
            Capability::State,
            Capability::Delegation,
            Capability::Neighbours,
        ]);
        // The bridge (created if missing), with its VLAN gateway
        // interfaces "<bridge>.<vlan>".
        manifest.objects.push(ObjectKey {
            key: "bridge".into(),
            role: ObjectRole::Managed,
            default: ObjectDefault::Name(DEFAULT_BRIDGE.into()),
            sub_interfaces: true,
        });
        masquerade::grant(&mut manifest, "bridge");
        // The MAC spoof check's table.
        manifest.nft_tables.push("bridge nat".into());
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::load(&call.config, &call.args)?;
        if conf.is_layer3() && conf.disable_container_interface {
            return Err(internal("cannot use IPAM when DisableContainerInterface flag is set"));
        }
        if conf.hairpin_mode && conf.promisc_mode {
            return Err(internal("cannot set hairpin mode and promiscuous mode at the same time"));
        }
        let host = namespaces::host();
        let bridge = ensure_bridge(&host, &conf).context(format!("failed to create bridge {:?}", conf.bridge))?;
        let container = namespaces::container()
            .context(format!("failed to open netns {:?}", call.netns.clone().unwrap_or_default()))?;
        let (host_veth, container_veth) = setup_veth(&container, &host, &conf, &call.ifname)?;

        let mut result = CniResult {
            interfaces: vec![
                interface(&bridge.name, &mac_string(&bridge), None),
                interface(&host_veth.name, &mac_string(&host_veth), None),
                interface(&container_veth.name, &mac_string(&container_veth), call.netns.clone()),
            ],
            ips: Vec::new(),
            routes: Vec::new(),
            dns: cni_plugin_sdk::config::no_dns(),
        };

        // Steps that are not links or addresses are undone here on failure;
        // the host rolls back links, addresses and the IPAM reservation.
        let spoof_id = spoofcheck::ref_id(&call.container_id, &call.ifname);
        let outcome = (|| -> Result<()> {
            if conf.mac_spoof_check {
                let mac = mac_string(&container_veth);
                spoofcheck::setup(&host, &host_veth.name, &mac, &spoof_id)?;
            }
            if conf.is_layer3() {
                configure_layer3(&conf, call, &host, &container, &bridge, &mut result)?;
            } else if !conf.disable_container_interface {
                links::set(&container, &call.ifname, &LinkChange { up: Some(true), ..no_change() })
                    .context(format!("failed to set {:?} up", call.ifname))?;
            }
            if !conf.disable_container_interface {
                wait_until_up(&host, &host_veth.name)?;
                if conf.is_layer3() {
                    announce(&container, &call.ifname, &result, conf.enable_dad);
                }
            }
            Ok(())
        })();
        if let Err(error) = outcome {
            if conf.mac_spoof_check {
                let _ = spoofcheck::teardown(&host, &spoof_id);
            }
            if conf.ip_masq {
                let _ = with_netfilter_lock(|| {
                    masquerade::teardown(&host, &conf.name, &call.ifname, &call.container_id, None)
                });
            }
            return Err(error);
        }

        // Both MACs may have changed since: enslaving and addressing do that.
        let host_veth = links::get(&host, &host_veth.name)?.unwrap_or(host_veth);
        result.interfaces[1].mac = Some(mac_string(&host_veth));
        let bridge =
            links::get(&host, &conf.bridge)?.ok_or_else(|| internal(format!("could not lookup {:?}", conf.bridge)))?;
        result.interfaces[0].mac = Some(mac_string(&bridge));
        if conf.dns.is_set() {
            result.dns = conf.dns.to_result();
        }
        Ok(result)
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::load(&call.config, &call.args)?;
        let host = namespaces::host();
        // The container side is gone with its namespace; everything below
        // is keyed by network and container id, so it is cleaned up even
        // then (the reference skips masquerading cleanup: its #810).
        let mut link_addresses = None;
        if call.netns.is_some() {
            match namespaces::container() {
                Ok(container) => {
                    link_addresses = iface::delete_link_with_addresses(&container, &call.ifname)?;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if conf.is_layer3() {
            ipam::exec_del(&conf.ipam.plugin_type)?;
        }
        if conf.mac_spoof_check
            && let Err(e) = spoofcheck::teardown(&host, &spoofcheck::ref_id(&call.container_id, &call.ifname))
        {
            cni_plugin_sdk::warn!("tearing down the MAC spoof check: {e}");
        }
        if conf.is_layer3() && conf.ip_masq {
            // Without a prevResult, the addresses the container's link had
            // say which rules to remove (as the reference tears down by
            // them), so neither family's whole nat table is read.
            let known = call.prev_result.clone().or_else(|| {
                let addresses = link_addresses.filter(|a| !a.is_empty())?;
                Some(CniResult {
                    interfaces: Vec::new(),
                    ips: addresses
                        .into_iter()
                        .map(|a| cni::IpConfig { interface_index: None, address: a.to_wit(), gateway: None })
                        .collect(),
                    routes: Vec::new(),
                    dns: cni_plugin_sdk::config::no_dns(),
                })
            });
            with_netfilter_lock(|| {
                masquerade::teardown(&host, &conf.name, &call.ifname, &call.container_id, known.as_ref())
            })?;
        }
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::load(&call.config, &call.args)?;
        let container = namespaces::container()
            .context(format!("failed to open netns {:?}", call.netns.clone().unwrap_or_default()))?;
        // The reference runs IPAM CHECK even without IPAM, which fails.
        if conf.is_layer3() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        check_interfaces(&conf, call, &container, previous)?;
        iface::validate_interface_ips(&container, &call.ifname, &previous.ips)?;
        iface::validate_routes(&container, &previous.routes)
    }

    fn status(config: &str) -> Result<()> {
        let conf = NetConf::load(config, "")?;
        if conf.is_layer3() {
            ipam::exec_status(&conf.ipam.plugin_type)?;
        }
        Ok(())
    }

    /// Forwards GC to IPAM and removes the masquerading and MAC spoof
    /// checks of attachments the runtime no longer lists.
    fn gc(config: &str, valid: &[Attachment]) -> Result<()> {
        let conf = NetConf::load(config, "")?;
        let host = namespaces::host();
        let mut errors = Vec::new();
        if conf.is_layer3()
            && let Err(e) = ipam::exec_gc(&conf.ipam.plugin_type)
        {
            errors.push(e.msg);
        }
        if let Err(e) = with_netfilter_lock(|| masquerade::gc(&host, &conf.name, valid)) {
            errors.push(e.msg);
        }
        if let Err(e) = spoofcheck::gc(&host, valid) {
            errors.push(e.msg);
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
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

/// Serializes the read-modify-write of shared netfilter chains with other
/// bridge invocations.
fn with_netfilter_lock<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    let _lock = cni_plugin_sdk::state::lock("netfilter.lock")?;
    work()
}

/// Creates the bridge unless it exists (an existing bridge is not
/// reconfigured), then promisc, no router advertisements, up.
///
/// A new bridge is created with its MAC set. A bridge whose MAC the kernel
/// chose takes the lowest MAC of its ports and changes as they come and go,
/// which breaks the CHECK of every earlier attachment. The reference pins the
/// MAC only after adding a gateway address, so an L2 bridge keeps changing,
/// and an ADD racing the first one can report a MAC that the pin then
/// replaces.
fn ensure_bridge(host: &Netns, conf: &NetConf) -> Result<Link> {
    let mac = Some(iface::random_mac());
    let options = LinkOptions { mtu: (conf.mtu > 0).then_some(conf.mtu), mac, tx_queue_len: None };
    let kind = LinkKind::Bridge(BridgeOptions { vlan_filtering: conf.vlan_filtering() });
    match links::create(host, &conf.bridge, &kind, &options, None) {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(internal(format!("could not add {:?}: {}", conf.bridge, e.message))),
    }
    let bridge =
        links::get(host, &conf.bridge)?.ok_or_else(|| internal(format!("could not lookup {:?}", conf.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(internal(format!("{:?} already exists but is not a bridge", conf.bridge)));
    }
    if conf.promisc_mode {
        links::set(host, &conf.bridge, &LinkChange { promiscuous: Some(true), ..no_change() })
            .context(format!("could not set promiscuous mode on {:?}", conf.bridge))?;
    }
    let _ = sysctl::set(host, &format!("net/ipv6/conf/{}/accept_ra", conf.bridge), "0");
    links::set(host, &conf.bridge, &LinkChange { up: Some(true), ..no_change() })?;
    Ok(bridge)
}

/// The veth pair, its host end enslaved with the port flags and VLANs.
fn setup_veth(container: &Netns, host: &Netns, conf: &NetConf, ifname: &str) -> Result<(Link, Link)> {
    let mac = match &conf.mac {
        Some(text) => Some(parse_mac(text).ok_or_else(|| internal(format!("invalid MAC address: {text}")))?),
        None => None,
    };
    let (host_veth, container_veth) =
        iface::setup_veth(container, host, ifname, (conf.mtu > 0).then_some(conf.mtu), mac)?;
    let name = &host_veth.name;
    links::set(host, name, &LinkChange { master: Some(Master::Attach(conf.bridge.clone())), ..no_change() })
        .context(format!("failed to connect {name:?} to bridge {}", conf.bridge))?;
    let port = BridgePort { hairpin: Some(conf.hairpin_mode), isolated: Some(conf.port_isolation) };
    links::set_bridge_port(host, name, port).context(format!("failed to set up the bridge port {name}"))?;
    setup_vlans(host, name, conf)?;
    Ok((host_veth, container_veth))
}

fn setup_vlans(host: &Netns, port: &str, conf: &NetConf) -> Result<()> {
    if !conf.vlan_filtering() {
        return Ok(());
    }
    if !conf.preserve_default_vlan {
        for existing in links::bridge_vlans(host, port)? {
            links::delete_bridge_vlan(host, port, existing.id)
                .context(format!("failed to remove default vlan on interface {port:?}"))?;
        }
    }
    if conf.vlan != 0 {
        let vlan = BridgeVlan { id: conf.vlan as u16, pvid: true, untagged: true };
        links::add_bridge_vlan(host, port, vlan).context(format!("failed to setup vlan tag on interface {port:?}"))?;
    }
    for id in &conf.vlans {
        let vlan = BridgeVlan { id: *id, pvid: false, untagged: false };
        links::add_bridge_vlan(host, port, vlan).context(format!("failed to setup vlan tag on interface {port:?}"))?;
    }
    if conf.vlan == 0 && !conf.vlans.is_empty() {
        let native = BridgeVlan { id: 1, pvid: true, untagged: true };
        links::add_bridge_vlan(host, port, native)
            .context(format!("failed to setup default native vlan tag on interface {port:?}"))?;
    }
    Ok(())
}

/// IPAM, the container's addresses and routes, the gateways on the bridge,
/// forwarding and masquerading.
fn configure_layer3(
    conf: &NetConf,
    call: &Invocation,
    host: &Netns,
    container: &Netns,
    bridge: &Link,
    result: &mut CniResult,
) -> Result<()> {
    let ipam_result = ipam::exec_add(&conf.ipam.plugin_type)?;
    result.ips = ipam_result.ips;
    result.routes = ipam_result.routes;
    result.dns = ipam_result.dns;
    if result.ips.is_empty() {
        return Err(internal("IPAM plugin returned missing IP config"));
    }
    let gateways = calculate_gateways(conf, result);

    let ifname = &call.ifname;
    if conf.enable_dad {
        let _ = sysctl::set(container, &format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = sysctl::set(container, &format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
    } else {
        let _ = sysctl::set(container, &format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
    }
    // A gratuitous ARP when the link comes up, so a reused address is
    // reachable at once.
    let _ = sysctl::set(container, &format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
    ipam::configure_iface(container, ifname, result)?;

    if conf.is_gateway {
        let mut vlan_interface_added = false;
        for (family, family_gateways) in [(IpFamily::Ipv4, &gateways.0), (IpFamily::Ipv6, &gateways.1)] {
            for gateway in family_gateways {
                let (target, mac) = if conf.vlan != 0 {
                    let vlan_link = ensure_vlan_interface(host, bridge, conf)?;
                    if !vlan_interface_added {
                        result.interfaces.push(interface(&vlan_link.name, &mac_string(&vlan_link), None));
                        vlan_interface_added = true;
                    }
                    (vlan_link.name, vlan_link.mac)
                } else {
                    // The MAC the bridge had before this ADD enslaved the
                    // veth, as the reference pins it.
                    (conf.bridge.clone(), bridge.mac.clone())
                };
                ensure_address(host, &target, family, *gateway, conf.force_address, mac)
                    .context(format!("failed to set bridge addr on {target}"))?;
            }
            if !family_gateways.is_empty() {
                iface::enable_forwarding(host, family).context("failed to enable forwarding")?;
            }
        }
    }
    if conf.ip_masq {
        let ips: Vec<IpNet> = result.ips.iter().map(|ip| IpNet::from_wit(&ip.address)).collect();
        let backend = masquerade::configured_backend(conf.ip_masq_backend.as_deref())?;
        with_netfilter_lock(|| masquerade::setup(host, backend, &ips, &conf.name, &call.ifname, &call.container_id))?;
    }
    Ok(())
}

/// Fills in gateways (network + 1 when the bridge is the gateway and IPAM
/// gave none), adds default routes for isDefaultGateway, and returns the
/// gateway addresses the bridge must hold, per family (calcGateways).
fn calculate_gateways(conf: &NetConf, result: &mut CniResult) -> (Vec<IpNet>, Vec<IpNet>) {
    let mut gateways = (Vec::new(), Vec::new());
    let mut default_route_found = (false, false);
    for index in 0..result.ips.len() {
        let address = IpNet::from_wit(&result.ips[index].address);
        result.ips[index].interface_index = Some(2);
        if result.ips[index].gateway.is_none() && conf.is_gateway {
            result.ips[index].gateway = Some(ip_to_wit(next_ip(address.network())));
        }
        let v4 = address.is_ipv4();
        let found = if v4 { &mut default_route_found.0 } else { &mut default_route_found.1 };
        if conf.is_default_gateway && !*found {
            let default =
                IpNet { addr: if v4 { "0.0.0.0".parse().unwrap() } else { "::".parse().unwrap() }, prefix: 0 };
            *found = result.routes.iter().any(|r| r.gw.is_some() && IpNet::from_wit(&r.dst) == default);
            if !*found {
                result.routes.push(cni::Route {
                    dst: default.to_wit(),
                    gw: result.ips[index].gateway,
                    mtu: None,
                    advmss: None,
                    priority: None,
                    table: None,
                    scope: None,
                });
                *found = true;
            }
        }
        if conf.is_gateway
            && let Some(gateway) = result.ips[index].gateway.as_ref()
        {
            let gateway = IpNet { addr: ip_from_wit(gateway), prefix: address.prefix };
            if v4 { gateways.0.push(gateway) } else { gateways.1.push(gateway) }
        }
    }
    gateways
}

/// Puts `address` on `link` (ensureAddr): an IPv4 bridge holds one address,
/// an IPv6 one may hold several unless prefixes overlap; `force` replaces
/// a conflicting address instead of failing. Then pins the link's MAC to
/// `mac`.
fn ensure_address(
    host: &Netns,
    link: &str,
    family: IpFamily,
    address: IpNet,
    force: bool,
    mac: Option<Vec<u8>>,
) -> Result<()> {
    for existing in addresses::dump(host, Some(link), Some(family)).context("could not get list of IP addresses")? {
        let existing = IpNet::from_wit(&existing.address);
        if existing == address {
            return Ok(());
        }
        if family == IpFamily::Ipv4 || existing.contains(address.addr) || address.contains(existing.addr) {
            if !force {
                return Err(internal(format!("{link:?} already has an IP address different from {address}")));
            }
            addresses::delete(host, link, existing.to_wit())
                .context(format!("could not remove IP address from {link:?}"))?;
        }
    }
    match addresses::add(host, link, address.to_wit()) {
        Ok(()) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(internal(format!("could not add IP address {address} to {link:?}: {}", e.message))),
    }
    // Setting the MAC explicitly stops a bridge's MAC from following its
    // lowest-numbered port.
    if let Some(mac) = mac {
        links::set(host, link, &LinkChange { mac: Some(mac), ..no_change() }).context("could not set bridge's mac")?;
    }
    Ok(())
}

/// `<bridge>.<vlan>`: a veth in the host, its peer a bridge port tagged
/// with the VLAN, that holds the VLAN's gateway address. Created once and
/// kept, as in the reference.
fn ensure_vlan_interface(host: &Netns, bridge: &Link, conf: &NetConf) -> Result<Link> {
    let name = format!("{}.{}", bridge.name, conf.vlan);
    if let Some(existing) = links::get(host, &name)? {
        return Ok(existing);
    }
    let (peer, gateway) = iface::setup_veth(host, host, &name, Some(bridge.mtu), None)
        .context(format!("failed to create vlan gateway {name:?}"))?;
    let peer_name = &peer.name;
    links::set(host, peer_name, &LinkChange { master: Some(Master::Attach(conf.bridge.clone())), ..no_change() })?;
    if !conf.preserve_default_vlan {
        for existing in links::bridge_vlans(host, peer_name)? {
            links::delete_bridge_vlan(host, peer_name, existing.id)?;
        }
    }
    links::add_bridge_vlan(host, peer_name, BridgeVlan { id: conf.vlan as u16, pvid: true, untagged: true })?;
    links::set(host, &gateway.name, &LinkChange { up: Some(true), ..no_change() })?;
    links::get(host, &name)?.ok_or_else(|| internal(format!("failed to lookup {name:?}")))
}

/// Waits for the host end to come up (the reference sleeps 0, 50, 500,
/// 1000, 1000 ms between looks; the first looks here are sooner, since it
/// usually takes a millisecond or two).
fn wait_until_up(host: &Netns, name: &str) -> Result<()> {
    let mut state = OperState::Unknown;
    for sleep in [0, 1, 2, 5, 10, 30, 500, 1000, 1000] {
        if sleep > 0 {
            clock::sleep(sleep)?;
        }
        state = links::get(host, name)?.ok_or_else(|| internal(format!("could not lookup {name:?}")))?.oper_state;
        if state == OperState::Up {
            return Ok(());
        }
    }
    Err(internal(format!("bridge port in error state: {state:?}")))
}

/// Announces the container's addresses once its bridge port forwards, so a
/// peer that still maps a reused address to the previous container's MAC
/// learns the new one now. (arp_notify fires when the link comes up, before
/// the port forwards, and is lost.) IPv6 addresses are announced only when
/// they skip DAD: a tentative address must not be advertised.
fn announce(container: &Netns, ifname: &str, result: &CniResult, dad: bool) {
    for ip in &result.ips {
        let address = ip_from_wit(&ip.address.address);
        if address.is_ipv6() && dad {
            continue;
        }
        if let Err(e) = neighbours::announce(container, ifname, ip_to_wit(address)) {
            cni_plugin_sdk::warn!("announcing {address} on {ifname:?}: {e}");
        }
    }
}

/// CHECK of the interfaces in prevResult: the bridge, the container veth,
/// and a host veth that is its peer and the bridge's port.
fn check_interfaces(conf: &NetConf, call: &Invocation, container: &Netns, previous: &CniResult) -> Result<()> {
    let host = namespaces::host();
    let bridge_entry = previous.interfaces.iter().find(|i| i.name == conf.bridge);
    let container_entry =
        previous.interfaces.iter().find(|i| i.name == call.ifname && i.sandbox.as_deref() == call.netns.as_deref());
    let bridge_entry = bridge_entry.ok_or_else(|| internal("Interface name missing "))?;
    let bridge = links::get(&host, &bridge_entry.name)?
        .ok_or_else(|| internal(format!("Interface name {} not found", bridge_entry.name)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(internal(format!("Interface {} does not have link type of bridge", bridge.name)));
    }
    if let Some(mac) = bridge_entry.mac.as_deref().filter(|m| !m.is_empty())
        && mac != mac_string(&bridge)
    {
        return Err(internal(format!("Bridge interface {} Mac doesn't match: {mac}", bridge.name)));
    }
    if bridge.promiscuous != conf.promisc_mode {
        return Err(internal(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {} ",
            bridge.name, conf.promisc_mode, bridge.promiscuous
        )));
    }
    let Some(container_entry) = container_entry else {
        return Err(internal(format!(
            "Sandbox in prevResult  doesn't match configured netns: {}",
            call.netns.clone().unwrap_or_default()
        )));
    };
    let container_link = links::get(container, &container_entry.name)?
        .ok_or_else(|| internal(format!("Interface name {} not found", container_entry.name)))?;
    if container_link.kind.as_deref() != Some("veth") {
        return Err(internal(format!("Error: Container interface {} not of type veth", container_link.name)));
    }
    if let Some(mac) = container_entry.mac.as_deref().filter(|m| !m.is_empty())
        && mac != mac_string(&container_link)
    {
        return Err(internal(format!(
            "Interface {} Mac {mac} doesn't match container Mac: {}",
            container_link.name,
            mac_string(&container_link)
        )));
    }
    for entry in previous.interfaces.iter().filter(|i| i.name != bridge_entry.name && i.name != container_entry.name) {
        let Some(link) = links::get(&host, &entry.name)? else {
            return Err(internal(format!("Interface name {} not found", entry.name)));
        };
        let is_our_port = link.kind.as_deref() == Some("veth")
            && Some(link.index) == container_link.parent_index
            && link.parent_index == Some(container_link.index)
            && link.master == Some(bridge.index);
        if is_our_port {
            if let Some(mac) = entry.mac.as_deref().filter(|m| !m.is_empty())
                && mac != mac_string(&link)
            {
                return Err(internal(format!("Interface {} Mac doesn't match: {mac} not found", link.name)));
            }
            return Ok(());
        }
    }
    Err(internal(format!("CNI veth created for bridge {} was not found", conf.bridge)))
}

cni_plugin_sdk::plugin!(Bridge);
