//! Links (RTM_NEWLINK / DELLINK / GETLINK), addressed by name.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData, InfoIpVlan, InfoKind,
    InfoMacVlan, InfoPortData, InfoPortKind, InfoVeth, InfoVlan, InfoVrf, IpVlanMode as NlIpVlanMode, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanMode as NlMacVlanMode, State,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::netns::Netns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanMode {
    L2,
    L3,
    L3s,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub mac: Option<Vec<u8>>,
    pub mtu: u32,
    pub up: bool,
    pub oper_state: OperState,
    pub promiscuous: bool,
    pub all_multicast: bool,
    pub tx_queue_len: u32,
    pub master: Option<u32>,
    pub parent_index: Option<u32>,
    pub alias: Option<String>,
    pub vlan_id: Option<u16>,
    pub macvlan_mode: Option<MacvlanMode>,
    pub ipvlan_mode: Option<IpvlanMode>,
    pub vrf_table: Option<u32>,
    pub vlan_filtering: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub tx_queue_len: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct TapOptions {
    pub multi_queue: bool,
    pub vnet_hdr: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum LinkKind {
    Bridge { vlan_filtering: bool },
    Macvlan { parent: String, mode: MacvlanMode, broadcast_queue_len: Option<u32> },
    Ipvlan { parent: String, mode: IpvlanMode },
    Vlan { parent: String, id: u16 },
    Dummy,
    Ifb,
    Vrf { table: u32 },
    Tap(TapOptions),
}

#[derive(Debug, Clone)]
pub enum Master {
    Attach(String),
    Detach,
}

/// A partial update; `None` fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub promiscuous: Option<bool>,
    pub all_multicast: Option<bool>,
    pub tx_queue_len: Option<u32>,
    pub master: Option<Master>,
    pub name: Option<String>,
    pub alias: Option<String>,
}

pub fn get(ns: &Netns, name: &str) -> Result<Option<Link>> {
    let mut request = LinkMessage::default();
    request.attributes.push(LinkAttribute::IfName(name.to_string()));
    lookup(ns, request, &format!("getting link {name:?} in {}", ns.label()))
}

pub fn get_by_index(ns: &Netns, index: u32) -> Result<Option<Link>> {
    let mut request = LinkMessage::default();
    request.header.index = index;
    lookup(ns, request, &format!("getting link #{index} in {}", ns.label()))
}

/// Like [`get`], but a missing link is an error naming it.
pub fn require(ns: &Netns, name: &str) -> Result<Link> {
    get(ns, name)?.ok_or_else(|| Error::not_found(format!("link {name:?} not found in {}", ns.label())))
}

fn lookup(ns: &Netns, request: LinkMessage, doing: &str) -> Result<Option<Link>> {
    match ns.route()?.get(RouteNetlinkMessage::GetLink(request), &doing) {
        Ok(RouteNetlinkMessage::NewLink(message)) => Ok(Some(parse(&message))),
        Ok(other) => Err(Error::new(ErrorKind::Io, format!("{doing}: unexpected reply {other:?}"))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn dump(ns: &Netns) -> Result<Vec<Link>> {
    let doing = format!("listing links in {}", ns.label());
    let replies = ns.route()?.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), &doing)?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => Some(parse(message)),
            _ => None,
        })
        .collect())
}

pub fn create(
    ns: &Netns,
    name: &str,
    kind: &LinkKind,
    options: &LinkOptions,
    parent_ns: Option<&Netns>,
) -> Result<Link> {
    validate_name(name)?;
    let doing = format!("creating {} link {name:?} in {}", kind_name(kind), ns.label());
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_string()));
    push_options(&mut message, options);
    let (info_kind, info_data, parent) = match kind {
        // Only ask for VLAN filtering when it is wanted: kernels built
        // without CONFIG_BRIDGE_VLAN_FILTERING refuse the attribute even
        // when it says "off".
        LinkKind::Bridge { vlan_filtering: false } => (InfoKind::Bridge, None, None),
        LinkKind::Bridge { vlan_filtering: true } => {
            (InfoKind::Bridge, Some(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])), None)
        }
        LinkKind::Macvlan { parent, mode, broadcast_queue_len } => {
            let mut data = vec![InfoMacVlan::Mode(match mode {
                MacvlanMode::Private => NlMacVlanMode::Private,
                MacvlanMode::Vepa => NlMacVlanMode::Vepa,
                MacvlanMode::Bridge => NlMacVlanMode::Bridge,
                MacvlanMode::Passthru => NlMacVlanMode::Passthrough,
                MacvlanMode::Source => NlMacVlanMode::Source,
            })];
            if let Some(len) = broadcast_queue_len {
                data.push(InfoMacVlan::BcQueueLen(*len));
            }
            (InfoKind::MacVlan, Some(InfoData::MacVlan(data)), Some(parent))
        }
        LinkKind::Ipvlan { parent, mode } => {
            let mode = match mode {
                IpvlanMode::L2 => NlIpVlanMode::L2,
                IpvlanMode::L3 => NlIpVlanMode::L3,
                IpvlanMode::L3s => NlIpVlanMode::L3S,
            };
            (InfoKind::IpVlan, Some(InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)])), Some(parent))
        }
        LinkKind::Vlan { parent, id } => (InfoKind::Vlan, Some(InfoData::Vlan(vec![InfoVlan::Id(*id)])), Some(parent)),
        LinkKind::Dummy => (InfoKind::Dummy, None, None),
        LinkKind::Ifb => (InfoKind::Ifb, None, None),
        LinkKind::Vrf { table } => (InfoKind::Vrf, Some(InfoData::Vrf(vec![InfoVrf::TableId(*table)])), None),
        // rtnetlink refuses tun/tap creation (EOPNOTSUPP): see tap.rs.
        LinkKind::Tap(tap) => return create_tap(ns, name, tap, options, &doing),
    };
    let mut info = vec![LinkInfo::Kind(info_kind)];
    info.extend(info_data.map(LinkInfo::Data));
    message.attributes.push(LinkAttribute::LinkInfo(info));

    // A link with a parent is created from the parent's namespace and placed
    // straight into `ns`.
    let sender = match parent {
        Some(parent) => {
            let parent_ns = parent_ns.unwrap_or(ns);
            let parent_link = require(parent_ns, parent).context(&doing)?;
            message.attributes.push(LinkAttribute::Link(parent_link.index));
            if !std::ptr::eq(parent_ns, ns) {
                message.attributes.push(LinkAttribute::NetNsFd(std::os::fd::AsRawFd::as_raw_fd(&ns.fd()?)));
            }
            parent_ns
        }
        None => ns,
    };
    sender.route()?.execute(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL, &doing)?;
    require(ns, name).context(&doing)
}

/// A tap, then its MTU, MAC and queue length (which TUNSETIFF cannot set);
/// removed again if those fail.
fn create_tap(ns: &Netns, name: &str, tap: &TapOptions, options: &LinkOptions, doing: &str) -> Result<Link> {
    crate::tap::create(ns, name, tap)?;
    let change = LinkChange {
        mtu: options.mtu,
        mac: options.mac.clone(),
        tx_queue_len: options.tx_queue_len,
        ..LinkChange::default()
    };
    let configured = match change.mtu.is_some() || change.mac.is_some() || change.tx_queue_len.is_some() {
        true => set(ns, name, &change),
        false => Ok(()),
    };
    if let Err(error) = configured.and_then(|()| require(ns, name)).map(drop) {
        let _ = delete(ns, name);
        return Err(error.context(doing));
    }
    require(ns, name).context(doing)
}

/// Creates a veth pair in one message, the peer already in `peer_ns`.
pub fn create_veth(
    ns: &Netns,
    name: &str,
    options: &LinkOptions,
    peer_ns: &Netns,
    peer_name: &str,
    peer_options: &LinkOptions,
) -> Result<(Link, Link)> {
    validate_name(name)?;
    validate_name(peer_name)?;
    let doing = format!("creating veth {name:?} in {} with peer {peer_name:?} in {}", ns.label(), peer_ns.label());
    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName(peer_name.to_string()));
    push_options(&mut peer, peer_options);
    peer.attributes.push(LinkAttribute::NetNsFd(std::os::fd::AsRawFd::as_raw_fd(&peer_ns.fd()?)));

    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_string()));
    push_options(&mut message, options);
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    ns.route()?.execute(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL, &doing)?;
    let link = require(ns, name).context(&doing)?;
    let peer = require(peer_ns, peer_name).context(&doing)?;
    Ok((link, peer))
}

/// Applies `change` in one RTM_NEWLINK, addressed by name (the kernel looks
/// the link up itself) unless it is a rename, which needs the index.
pub fn set(ns: &Netns, name: &str, change: &LinkChange) -> Result<()> {
    let doing = format!("changing link {name:?} ({}) in {}", describe_change(change), ns.label());
    let mut message = LinkMessage::default();
    if change.name.is_some() {
        message.header.index = require(ns, name).context(&doing)?.index;
    } else {
        message.attributes.push(LinkAttribute::IfName(name.to_string()));
    }
    let mut flag = |wanted: Option<bool>, bit: LinkFlags| {
        if let Some(on) = wanted {
            message.header.change_mask |= bit;
            if on {
                message.header.flags |= bit;
            }
        }
    };
    flag(change.up, LinkFlags::Up);
    flag(change.promiscuous, LinkFlags::Promisc);
    flag(change.all_multicast, LinkFlags::Allmulti);
    if let Some(new_name) = &change.name {
        validate_name(new_name)?;
        message.attributes.push(LinkAttribute::IfName(new_name.clone()));
    }
    if let Some(mtu) = change.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = &change.mac {
        message.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    if let Some(len) = change.tx_queue_len {
        message.attributes.push(LinkAttribute::TxQueueLen(len));
    }
    if let Some(alias) = &change.alias {
        message.attributes.push(LinkAttribute::IfAlias(alias.clone()));
    }
    match &change.master {
        Some(Master::Attach(master)) => {
            let master = require(ns, master).context(&doing)?;
            message.attributes.push(LinkAttribute::Controller(master.index));
        }
        Some(Master::Detach) => message.attributes.push(LinkAttribute::Controller(0)),
        None => {}
    }
    ns.route()?.execute(RouteNetlinkMessage::NewLink(message), 0, &doing)
}

pub fn delete(ns: &Netns, name: &str) -> Result<()> {
    let doing = format!("deleting link {name:?} in {}", ns.label());
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_string()));
    ns.route()?.execute(RouteNetlinkMessage::DelLink(message), 0, &doing)
}

/// Moves `name` from `ns` to `to`, renamed `new_name`, through a temporary
/// namespace so that neither the old nor the new name can clash half-way.
/// On failure the link is put back where it was, under its old name.
pub fn move_to(ns: &Netns, name: &str, to: &Netns, new_name: &str) -> Result<Link> {
    validate_name(new_name)?;
    let doing = format!("moving link {name:?} from {} to {} as {new_name:?}", ns.label(), to.label());
    let link = require(ns, name).context(&doing)?;
    let temporary = Netns::temporary().context(&doing)?;
    set_netns(ns, link.index, &temporary).context(&doing)?;
    let finish = || -> Result<Link> {
        if new_name != name {
            set(&temporary, name, &LinkChange { name: Some(new_name.to_string()), ..Default::default() })?;
        }
        let moved = require(&temporary, new_name)?;
        set_netns(&temporary, moved.index, to)?;
        require(to, new_name)
    };
    finish().map_err(|error| {
        // Put it back: rename if needed, then return it to `ns`.
        if let Ok(Some(current)) = get(&temporary, new_name) {
            let _ = set(&temporary, new_name, &LinkChange { name: Some(name.to_string()), ..Default::default() });
            let _ = set_netns(&temporary, current.index, ns);
        } else if let Ok(Some(current)) = get(&temporary, name) {
            let _ = set_netns(&temporary, current.index, ns);
        }
        error.context(&doing)
    })
}

fn set_netns(ns: &Netns, index: u32, to: &Netns) -> Result<()> {
    let doing = format!("moving link #{index} from {} to {}", ns.label(), to.label());
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes.push(LinkAttribute::NetNsFd(std::os::fd::AsRawFd::as_raw_fd(&to.fd()?)));
    ns.route()?.execute(RouteNetlinkMessage::NewLink(message), 0, &doing)
}

/// Bridge-port flags; `None` leaves a flag alone.
#[derive(Debug, Clone, Default)]
pub struct BridgePort {
    pub hairpin: Option<bool>,
    pub isolated: Option<bool>,
}

/// Sets the flags of a link enslaved to a bridge, as `ip link set NAME type
/// bridge_slave hairpin on isolated off` does (IFLA_INFO_SLAVE_DATA).
pub fn set_bridge_port(ns: &Netns, name: &str, port: &BridgePort) -> Result<()> {
    let doing = format!("setting bridge-port flags {port:?} of {name:?} in {}", ns.label());
    let mut flags = Vec::new();
    if let Some(on) = port.hairpin {
        flags.push(InfoBridgePort::HairpinMode(on));
    }
    if let Some(on) = port.isolated {
        flags.push(InfoBridgePort::Isolated(on));
    }
    if flags.is_empty() {
        return Ok(());
    }
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_string()));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(flags)),
    ]));
    ns.route()?.execute(RouteNetlinkMessage::NewLink(message), 0, &doing)
}

/// One VLAN of a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeVlan {
    pub id: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// The VLANs of a bridge port (`bridge vlan show dev NAME`).
pub fn bridge_vlans(ns: &Netns, name: &str) -> Result<Vec<BridgeVlan>> {
    let doing = format!("listing bridge VLANs of {name:?} in {}", ns.label());
    let index = require(ns, name).context(&doing)?.index;
    let mut request = LinkMessage::default();
    request.header.interface_family = AddressFamily::Bridge;
    request.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
    let replies = ns.route()?.dump(RouteNetlinkMessage::GetLink(request), &doing)?;
    let mut vlans = Vec::new();
    for reply in replies {
        let RouteNetlinkMessage::NewLink(message) = reply else { continue };
        if message.header.index != index {
            continue;
        }
        for attribute in &message.attributes {
            if let LinkAttribute::AfSpecBridge(entries) = attribute {
                for entry in entries {
                    if let AfSpecBridge::VlanInfo(info) = entry {
                        vlans.push(BridgeVlan {
                            id: info.vid,
                            pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                            untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                        });
                    }
                }
            }
        }
    }
    Ok(vlans)
}

/// `bridge vlan add dev NAME vid ID [pvid] [untagged]` (needs a kernel with
/// bridge VLAN filtering).
pub fn add_bridge_vlan(ns: &Netns, name: &str, vlan: BridgeVlan) -> Result<()> {
    let doing = format!("adding VLAN {} to bridge port {name:?} in {}", vlan.id, ns.label());
    let mut flags = BridgeVlanInfoFlags::empty();
    flags.set(BridgeVlanInfoFlags::Pvid, vlan.pvid);
    flags.set(BridgeVlanInfoFlags::Untagged, vlan.untagged);
    let message = vlan_message(ns, name, flags, vlan.id, &doing)?;
    ns.route()?.execute(RouteNetlinkMessage::SetLink(message), 0, &doing)
}

pub fn delete_bridge_vlan(ns: &Netns, name: &str, id: u16) -> Result<()> {
    let doing = format!("deleting VLAN {id} from bridge port {name:?} in {}", ns.label());
    let message = vlan_message(ns, name, BridgeVlanInfoFlags::empty(), id, &doing)?;
    ns.route()?.execute(RouteNetlinkMessage::DelLink(message), 0, &doing)
}

fn vlan_message(ns: &Netns, name: &str, flags: BridgeVlanInfoFlags, vid: u16, doing: &str) -> Result<LinkMessage> {
    let mut message = LinkMessage::default();
    message.header.interface_family = AddressFamily::Bridge;
    message.header.index = require(ns, name).context(doing)?.index;
    message.attributes.push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid })]));
    Ok(message)
}

/// IFNAMSIZ - 1 bytes, no '/', ':' or whitespace, not "." or "..".
pub fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if valid { Ok(()) } else { Err(Error::invalid(format!("{name:?} is not a valid interface name"))) }
}

fn push_options(message: &mut LinkMessage, options: &LinkOptions) {
    if let Some(mtu) = options.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = &options.mac {
        message.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    if let Some(len) = options.tx_queue_len {
        message.attributes.push(LinkAttribute::TxQueueLen(len));
    }
}

fn kind_name(kind: &LinkKind) -> &'static str {
    match kind {
        LinkKind::Bridge { .. } => "bridge",
        LinkKind::Macvlan { .. } => "macvlan",
        LinkKind::Ipvlan { .. } => "ipvlan",
        LinkKind::Vlan { .. } => "vlan",
        LinkKind::Dummy => "dummy",
        LinkKind::Ifb => "ifb",
        LinkKind::Vrf { .. } => "vrf",
        LinkKind::Tap(_) => "tap",
    }
}

fn describe_change(change: &LinkChange) -> String {
    let mut parts = Vec::new();
    if let Some(up) = change.up {
        parts.push(if up { "up".to_string() } else { "down".to_string() });
    }
    if let Some(mtu) = change.mtu {
        parts.push(format!("mtu {mtu}"));
    }
    if let Some(mac) = &change.mac {
        parts.push(format!("mac {}", format_mac(mac)));
    }
    if let Some(on) = change.promiscuous {
        parts.push(format!("promisc {}", if on { "on" } else { "off" }));
    }
    if let Some(on) = change.all_multicast {
        parts.push(format!("allmulticast {}", if on { "on" } else { "off" }));
    }
    if let Some(len) = change.tx_queue_len {
        parts.push(format!("txqueuelen {len}"));
    }
    match &change.master {
        Some(Master::Attach(master)) => parts.push(format!("master {master}")),
        Some(Master::Detach) => parts.push("nomaster".to_string()),
        None => {}
    }
    if let Some(name) = &change.name {
        parts.push(format!("name {name}"));
    }
    if let Some(alias) = &change.alias {
        parts.push(format!("alias {alias:?}"));
    }
    parts.join(", ")
}

/// "aa:bb:cc:dd:ee:ff", lower case, as the Go reference prints MACs.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn parse(message: &LinkMessage) -> Link {
    let flags = message.header.flags;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: flags.contains(LinkFlags::Up),
        oper_state: OperState::Unknown,
        promiscuous: flags.contains(LinkFlags::Promisc),
        all_multicast: flags.contains(LinkFlags::Allmulti),
        tx_queue_len: 0,
        master: None,
        parent_index: None,
        alias: None,
        vlan_id: None,
        macvlan_mode: None,
        ipvlan_mode: None,
        vrf_table: None,
        vlan_filtering: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(mac) => link.mac = Some(mac.clone()),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::TxQueueLen(len) => link.tx_queue_len = *len,
            LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
            LinkAttribute::Link(parent) if *parent != 0 => link.parent_index = Some(*parent),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::OperState(state) => {
                link.oper_state = match state {
                    State::NotPresent => OperState::NotPresent,
                    State::Down => OperState::Down,
                    State::LowerLayerDown => OperState::LowerLayerDown,
                    State::Testing => OperState::Testing,
                    State::Dormant => OperState::Dormant,
                    State::Up => OperState::Up,
                    _ => OperState::Unknown,
                }
            }
            LinkAttribute::LinkInfo(infos) => parse_info(infos, &mut link),
            _ => {}
        }
    }
    link
}

fn parse_info(infos: &[LinkInfo], link: &mut Link) {
    for info in infos {
        match info {
            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
            LinkInfo::Data(InfoData::Vlan(items)) => {
                for item in items {
                    if let InfoVlan::Id(id) = item {
                        link.vlan_id = Some(*id);
                    }
                }
            }
            LinkInfo::Data(InfoData::MacVlan(items)) => {
                for item in items {
                    if let InfoMacVlan::Mode(mode) = item {
                        link.macvlan_mode = match mode {
                            NlMacVlanMode::Private => Some(MacvlanMode::Private),
                            NlMacVlanMode::Vepa => Some(MacvlanMode::Vepa),
                            NlMacVlanMode::Bridge => Some(MacvlanMode::Bridge),
                            NlMacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
                            NlMacVlanMode::Source => Some(MacvlanMode::Source),
                            _ => None,
                        }
                    }
                }
            }
            LinkInfo::Data(InfoData::IpVlan(items)) => {
                for item in items {
                    if let InfoIpVlan::Mode(mode) = item {
                        link.ipvlan_mode = match mode {
                            NlIpVlanMode::L2 => Some(IpvlanMode::L2),
                            NlIpVlanMode::L3 => Some(IpvlanMode::L3),
                            NlIpVlanMode::L3S => Some(IpvlanMode::L3s),
                            _ => None,
                        }
                    }
                }
            }
            LinkInfo::Data(InfoData::Vrf(items)) => {
                for item in items {
                    if let InfoVrf::TableId(table) = item {
                        link.vrf_table = Some(*table);
                    }
                }
            }
            LinkInfo::Data(InfoData::Bridge(items)) => {
                for item in items {
                    if let InfoBridge::VlanFiltering(on) = item {
                        link.vlan_filtering = Some(*on);
                    }
                }
            }
            _ => {}
        }
    }
}
