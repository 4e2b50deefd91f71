//! `links`: create, change and delete network interfaces.
//!
//! Policy: reads are free once `links` is granted. The container namespace
//! is the invocation's own. In the host namespace a plugin may create links
//! (the name must be free); it may change, enslave into, rename or delete
//! only links a `managed` config key names or this invocation created;
//! create children (macvlan, ipvlan, vlan) only on links a `parent` or
//! `managed` key names; and move a host link out only if a `movable` key
//! names it (see `object-role` in wit/cni.wit).

use cni_wasm_capabilities::links as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::{NetnsHandle, Which};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::links::{
    BridgePort, BridgeVlan, DeviceSelector, Host, HostDevice, IpvlanMode, Link, LinkChange, LinkKind, LinkOptions,
    MacvlanMode, Master, OperState,
};
use crate::context::HostState;
use crate::journal::Entry;

impl HostState {
    fn refuse_link(&self, doing: &str, name: &str, why: &str) -> super::CallError {
        Error::new(
            ErrorKind::Denied,
            format!("{}: {doing} refused: link {name:?} in the host netns {why}", self.grants.plugin),
        )
        .into()
    }

    /// Host-namespace links may only be changed when they are this
    /// invocation's to change (see the module docs).
    pub fn check_host_link(&self, which: Which, name: &str, doing: &str) -> CallResult<()> {
        if which == Which::Container || self.created_host_links.contains(name) || self.grants.manages_host_link(name) {
            return Ok(());
        }
        Err(self.refuse_link(
            doing,
            name,
            "is not one a config key names for the plugin to manage, and this invocation did not create it",
        ))
    }

    /// A new link's parent in the host namespace must be one the config
    /// names as a parent (or the default-route link, where the manifest
    /// says so and the config names none).
    fn check_host_parent(&self, name: &str, doing: &str) -> CallResult<()> {
        if self.created_host_links.contains(name) || self.grants.parents_host_link(name) {
            return Ok(());
        }
        if self.grants.default_route_parent() {
            let host = self.session.host_ns.clone();
            if cni_wasm_capabilities::routes::default_route_link(&host)?.as_deref() == Some(name) {
                return Ok(());
            }
        }
        Err(self.refuse_link(doing, name, "is not one a config key names as a parent"))
    }
}

fn options(options: LinkOptions) -> native::LinkOptions {
    native::LinkOptions { mtu: options.mtu, mac: options.mac, tx_queue_len: options.tx_queue_len }
}

fn macvlan_mode(mode: MacvlanMode) -> native::MacvlanMode {
    match mode {
        MacvlanMode::Private => native::MacvlanMode::Private,
        MacvlanMode::Vepa => native::MacvlanMode::Vepa,
        MacvlanMode::Bridge => native::MacvlanMode::Bridge,
        MacvlanMode::Passthru => native::MacvlanMode::Passthru,
        MacvlanMode::Source => native::MacvlanMode::Source,
    }
}

fn ipvlan_mode(mode: IpvlanMode) -> native::IpvlanMode {
    match mode {
        IpvlanMode::L2 => native::IpvlanMode::L2,
        IpvlanMode::L3 => native::IpvlanMode::L3,
        IpvlanMode::L3s => native::IpvlanMode::L3s,
    }
}

fn kind(kind: LinkKind) -> native::LinkKind {
    match kind {
        LinkKind::Bridge(o) => native::LinkKind::Bridge { vlan_filtering: o.vlan_filtering },
        LinkKind::Macvlan(o) => native::LinkKind::Macvlan {
            parent: o.parent,
            mode: macvlan_mode(o.mode),
            broadcast_queue_len: o.broadcast_queue_len,
        },
        LinkKind::Ipvlan(o) => native::LinkKind::Ipvlan { parent: o.parent, mode: ipvlan_mode(o.mode) },
        LinkKind::Vlan(o) => native::LinkKind::Vlan { parent: o.parent, id: o.id },
        LinkKind::Dummy => native::LinkKind::Dummy,
        LinkKind::Ifb => native::LinkKind::Ifb,
        LinkKind::Vrf(table) => native::LinkKind::Vrf { table },
        LinkKind::Tap(o) => native::LinkKind::Tap(native::TapOptions {
            multi_queue: o.multi_queue,
            vnet_hdr: o.vnet_hdr,
            owner: o.owner,
            group: o.group,
        }),
    }
}

fn link(link: native::Link) -> Link {
    Link {
        index: link.index,
        name: link.name,
        kind: link.kind,
        mac: link.mac,
        mtu: link.mtu,
        up: link.up,
        oper_state: match link.oper_state {
            native::OperState::Unknown => OperState::Unknown,
            native::OperState::NotPresent => OperState::NotPresent,
            native::OperState::Down => OperState::Down,
            native::OperState::LowerLayerDown => OperState::LowerLayerDown,
            native::OperState::Testing => OperState::Testing,
            native::OperState::Dormant => OperState::Dormant,
            native::OperState::Up => OperState::Up,
        },
        promiscuous: link.promiscuous,
        all_multicast: link.all_multicast,
        tx_queue_len: link.tx_queue_len,
        master: link.master,
        parent_index: link.parent_index,
        alias: link.alias,
        vlan_id: link.vlan_id,
        macvlan_mode: link.macvlan_mode.map(|m| match m {
            native::MacvlanMode::Private => MacvlanMode::Private,
            native::MacvlanMode::Vepa => MacvlanMode::Vepa,
            native::MacvlanMode::Bridge => MacvlanMode::Bridge,
            native::MacvlanMode::Passthru => MacvlanMode::Passthru,
            native::MacvlanMode::Source => MacvlanMode::Source,
        }),
        ipvlan_mode: link.ipvlan_mode.map(|m| match m {
            native::IpvlanMode::L2 => IpvlanMode::L2,
            native::IpvlanMode::L3 => IpvlanMode::L3,
            native::IpvlanMode::L3s => IpvlanMode::L3s,
        }),
        vrf_table: link.vrf_table,
        vlan_filtering: link.vlan_filtering,
    }
}

impl Host for HostState {
    fn get(&mut self, ns: Resource<NetnsHandle>, name: String) -> CallResult<Option<Link>> {
        self.require_on(Capability::Links, "links.get", &name)?;
        let (_, ns) = self.netns(&ns)?;
        Ok(native::get(&ns, &name)?.map(link))
    }

    fn get_by_index(&mut self, ns: Resource<NetnsHandle>, index: u32) -> CallResult<Option<Link>> {
        self.require_on(Capability::Links, "links.get-by-index", &index)?;
        let (_, ns) = self.netns(&ns)?;
        Ok(native::get_by_index(&ns, index)?.map(link))
    }

    fn dump(&mut self, ns: Resource<NetnsHandle>) -> CallResult<Vec<Link>> {
        self.require_on(Capability::Links, "links.dump", &"")?;
        let (_, ns) = self.netns(&ns)?;
        Ok(native::dump(&ns)?.into_iter().map(link).collect())
    }

    fn create(
        &mut self,
        ns: Resource<NetnsHandle>,
        name: String,
        link_kind: LinkKind,
        link_options: LinkOptions,
        parent_ns: Option<Resource<NetnsHandle>>,
    ) -> CallResult<Link> {
        self.require_on(Capability::Links, "links.create", &name)?;
        let (which, target) = self.netns(&ns)?;
        let (parent_which, parent) = match &parent_ns {
            Some(handle) => {
                let (which, ns) = self.netns(handle)?;
                (which, Some(ns))
            }
            None => (which, None),
        };
        let parent_name = match &link_kind {
            LinkKind::Macvlan(o) => Some(&o.parent),
            LinkKind::Ipvlan(o) => Some(&o.parent),
            LinkKind::Vlan(o) => Some(&o.parent),
            _ => None,
        };
        if let Some(parent_name) = parent_name
            && parent_which == Which::Host
        {
            self.check_host_parent(parent_name, &format!("creating {name:?} on parent {parent_name:?}"))?;
        }
        let created = native::create(&target, &name, &kind(link_kind), &options(link_options), parent.as_deref())?;
        self.note_created(which, &name);
        Ok(link(created))
    }

    fn create_veth(
        &mut self,
        ns: Resource<NetnsHandle>,
        name: String,
        link_options: LinkOptions,
        peer_ns: Resource<NetnsHandle>,
        peer_name: String,
        peer_options: LinkOptions,
    ) -> CallResult<(Link, Link)> {
        self.require_on(Capability::Links, "links.create-veth", &name)?;
        let (which, ns) = self.netns(&ns)?;
        let (peer_which, peer_ns) = self.netns(&peer_ns)?;
        let (created, peer) =
            native::create_veth(&ns, &name, &options(link_options), &peer_ns, &peer_name, &options(peer_options))?;
        // Deleting either end deletes both; the journal needs just one.
        self.note_created(which, &name);
        if peer_which == Which::Host {
            self.created_host_links.insert(peer_name);
        }
        Ok((link(created), link(peer)))
    }

    fn set(&mut self, ns: Resource<NetnsHandle>, name: String, change: LinkChange) -> CallResult<()> {
        self.require_on(Capability::Links, "links.set", &name)?;
        let (which, ns) = self.netns(&ns)?;
        self.check_host_link(which, &name, "changing a link")?;
        let master = match change.master {
            Some(Master::Attach(master)) => {
                self.check_host_link(which, &master, "enslaving a link")?;
                Some(native::Master::Attach(master))
            }
            Some(Master::Detach) => Some(native::Master::Detach),
            None => None,
        };
        let native_change = native::LinkChange {
            up: change.up,
            mtu: change.mtu,
            mac: change.mac,
            promiscuous: change.promiscuous,
            all_multicast: change.all_multicast,
            tx_queue_len: change.tx_queue_len,
            master,
            name: change.name.clone(),
            alias: change.alias,
        };
        native::set(&ns, &name, &native_change)?;
        if let Some(new_name) = change.name.filter(|n| *n != name) {
            self.journal.rename_link(which, &name, &new_name);
            if which == Which::Host && self.created_host_links.remove(&name) {
                self.created_host_links.insert(new_name);
            }
        }
        Ok(())
    }

    fn delete(&mut self, ns: Resource<NetnsHandle>, name: String) -> CallResult<()> {
        self.require_on(Capability::Links, "links.delete", &name)?;
        let (which, ns) = self.netns(&ns)?;
        // Gone is gone, whoever may delete it: a DEL that finds nothing to
        // delete succeeds (links.get shows host links to anyone anyway).
        if which == Which::Host && native::get(&ns, &name)?.is_none() {
            return Err(Error::new(ErrorKind::NotFound, format!("deleting link {name:?}: Link not found")).into());
        }
        self.check_host_link(which, &name, "deleting a link")?;
        native::delete(&ns, &name)?;
        self.journal.forget_link(which, &name);
        if which == Which::Host {
            self.created_host_links.remove(&name);
        }
        Ok(())
    }

    fn move_to(
        &mut self,
        ns: Resource<NetnsHandle>,
        name: String,
        to: Resource<NetnsHandle>,
        new_name: String,
    ) -> CallResult<Link> {
        self.require_on(Capability::Links, "links.move-to", &name)?;
        let (which, from) = self.netns(&ns)?;
        let (to_which, to) = self.netns(&to)?;
        let movable = self.created_host_links.contains(&name)
            || self.grants.moves_host_link(&name)
            || self.found_host_devices.contains(&name);
        if which == Which::Host && !movable {
            return Err(self.refuse_link("moving a link", &name, "is not one a config key names as movable"));
        }
        let before = native::get(&from, &name)?;
        let was_up = before.as_ref().is_some_and(|l| l.up);
        let alias = before.and_then(|l| l.alias).unwrap_or_default();
        let moved = native::move_to(&from, &name, &to, &new_name)?;
        self.journal.record(Entry::LinkMoved {
            from: which,
            name: name.clone(),
            was_up,
            alias,
            to: to_which,
            moved_name: new_name.clone(),
        });
        if to_which == Which::Host {
            self.created_host_links.insert(new_name);
        }
        Ok(link(moved))
    }

    fn find_host_device(&mut self, selector: DeviceSelector) -> CallResult<Option<HostDevice>> {
        self.require_on(Capability::Links, "links.find-host-device", &selector)?;
        let (value, native_selector) = match selector {
            DeviceSelector::Name(v) => (v.clone(), cni_wasm_capabilities::devices::Selector::Name(v)),
            DeviceSelector::Mac(v) => (v.clone(), cni_wasm_capabilities::devices::Selector::Mac(v)),
            DeviceSelector::KernelPath(v) => (v.clone(), cni_wasm_capabilities::devices::Selector::KernelPath(v)),
            DeviceSelector::PciAddress(v) => (v.clone(), cni_wasm_capabilities::devices::Selector::PciAddress(v)),
            DeviceSelector::AuxiliaryDevice(v) => {
                (v.clone(), cni_wasm_capabilities::devices::Selector::AuxiliaryDevice(v))
            }
        };
        // Only what a movable key names may be looked for: the lookup is
        // what makes the link found movable.
        if !self.grants.moves_host_link(&value) {
            return Err(Error::new(
                ErrorKind::Denied,
                format!(
                    "{}: links.find-host-device refused: {value:?} is not a device a movable config key names",
                    self.grants.plugin
                ),
            )
            .into());
        }
        let host = self.session.host_ns.clone();
        let Some(device) = cni_wasm_capabilities::devices::find(&host, &native_selector)? else { return Ok(None) };
        if let Some(found) = &device.link {
            self.found_host_devices.insert(found.name.clone());
        }
        Ok(Some(HostDevice { link: device.link.map(link), pci_address: device.pci_address, driver: device.driver }))
    }

    fn set_bridge_port(&mut self, ns: Resource<NetnsHandle>, name: String, port: BridgePort) -> CallResult<()> {
        self.require_on(Capability::Links, "links.set-bridge-port", &name)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &name, "setting bridge-port flags")?;
        let port = native::BridgePort { hairpin: port.hairpin, isolated: port.isolated };
        Ok(native::set_bridge_port(&netns, &name, &port)?)
    }

    fn bridge_vlans(&mut self, ns: Resource<NetnsHandle>, name: String) -> CallResult<Vec<BridgeVlan>> {
        self.require_on(Capability::Links, "links.bridge-vlans", &name)?;
        let (_, netns) = self.netns(&ns)?;
        let vlans = native::bridge_vlans(&netns, &name)?;
        Ok(vlans.into_iter().map(|v| BridgeVlan { id: v.id, pvid: v.pvid, untagged: v.untagged }).collect())
    }

    fn add_bridge_vlan(&mut self, ns: Resource<NetnsHandle>, name: String, vlan: BridgeVlan) -> CallResult<()> {
        self.require_on(Capability::Links, "links.add-bridge-vlan", &name)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &name, "adding a bridge vlan")?;
        let vlan = native::BridgeVlan { id: vlan.id, pvid: vlan.pvid, untagged: vlan.untagged };
        Ok(native::add_bridge_vlan(&netns, &name, vlan)?)
    }

    fn delete_bridge_vlan(&mut self, ns: Resource<NetnsHandle>, name: String, id: u16) -> CallResult<()> {
        self.require_on(Capability::Links, "links.delete-bridge-vlan", &name)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_host_link(which, &name, "deleting a bridge vlan")?;
        Ok(native::delete_bridge_vlan(&netns, &name, id)?)
    }
}

impl HostState {
    fn note_created(&mut self, which: Which, name: &str) {
        self.journal.record(Entry::LinkCreated { ns: which, name: name.to_string() });
        if which == Which::Host {
            self.created_host_links.insert(name.to_string());
        }
    }
}
