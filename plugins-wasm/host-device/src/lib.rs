//! host-device: moves an existing host device (named by name, MAC, sysfs
//! path, PCI address or the runtime's deviceID) into the container as
//! CNI_IFNAME, addressed by IPAM, and gives it back on DEL under its host
//! name (kept in its IFLA_IFALIAS, as the reference does, so either
//! implementation can DEL what the other added). A PCI function bound to a
//! userspace (DPDK) driver has no interface to move and is only reported.
//! The one plugin whose manifest declares host links `movable`.

use cni_plugin_sdk::config::{self, Dns, IpamConf, no_dns};
use cni_plugin_sdk::error::{Errors, Result, internal};
use cni_plugin_sdk::iface::{self, container_interface};
use cni_plugin_sdk::links::{self, DeviceSelector, HostDevice, LinkChange};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ObjectRole, StateLocation, cni, ipam, state};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetConf {
    device: String,
    #[serde(rename = "hwaddr")]
    hw_addr: String,
    #[serde(rename = "kernelpath")]
    kernel_path: String,
    #[serde(rename = "pciBusID")]
    pci_bus_id: String,
    ipam: IpamConf,
    dns: Dns,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    #[serde(rename = "deviceID")]
    device_id: String,
}

/// Drivers that hand a PCI function to userspace: such a device has no
/// kernel interface, and the runtime passes the device itself to the pod.
const DPDK_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// The host settings a DEL puts back, saved by ADD (the alias carries only
/// the name; a device added by the reference gets its name back only).
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    name: String,
    mac: String,
    mtu: u32,
    up: bool,
}

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        let conf: NetConf = config::parse(config)?;
        if [&conf.device, &conf.hw_addr, &conf.kernel_path, &conf.pci_bus_id, &conf.runtime_config.device_id]
            .iter()
            .all(|s| s.is_empty())
        {
            return Err(internal(r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#));
        }
        if !conf.kernel_path.is_empty() && !conf.kernel_path.starts_with("/sys/devices/") {
            return Err(internal(format!(
                "failed to find host device: kernel device path {:?} must be absolute and begin with /sys/devices/",
                conf.kernel_path
            )));
        }
        Ok(conf)
    }

    /// The device, by the first selector given: device, hwaddr,
    /// kernelpath, pciBusID, then deviceID (a PCI address if sysfs has one
    /// of that name, else an auxiliary device).
    fn find(&self) -> Result<HostDevice> {
        let missing = |what: String| internal(format!("failed to find host device: {what}"));
        let found = if !self.device.is_empty() {
            links::find_host_device(&DeviceSelector::Name(self.device.clone()))?
                .ok_or_else(|| missing("Link not found".into()))?
        } else if !self.hw_addr.is_empty() {
            links::find_host_device(&DeviceSelector::Mac(self.hw_addr.clone()))?
                .ok_or_else(|| missing("failed to find physical interface".into()))?
        } else if !self.kernel_path.is_empty() {
            links::find_host_device(&DeviceSelector::KernelPath(self.kernel_path.clone()))?
                .ok_or_else(|| missing(format!("failed to find network devices at \"{}/net\"", self.kernel_path)))?
        } else if !self.pci_bus_id.is_empty() {
            links::find_host_device(&DeviceSelector::PciAddress(self.pci_bus_id.clone()))?.ok_or_else(|| {
                internal(format!(
                    "error with host device: lstat /sys/bus/pci/devices/{}: no such file or directory",
                    self.pci_bus_id
                ))
            })?
        } else {
            let id = &self.runtime_config.device_id;
            match links::find_host_device(&DeviceSelector::PciAddress(id.clone())) {
                Ok(Some(device)) => device,
                _ => links::find_host_device(&DeviceSelector::AuxiliaryDevice(id.clone()))?.ok_or_else(|| {
                    internal(format!(
                        "error with host device: deviceID {id:?} is neither a PCI nor an auxiliary device"
                    ))
                })?,
            }
        };
        Ok(found)
    }
}

impl NetConf {
    /// Whether the selector that counts is a PCI address.
    fn names_pci_device(&self) -> bool {
        let earlier = [&self.device, &self.hw_addr, &self.kernel_path];
        earlier.iter().all(|s| s.is_empty())
            && !(self.pci_bus_id.is_empty() && self.runtime_config.device_id.is_empty())
    }
}

fn is_dpdk(device: &HostDevice) -> bool {
    device.pci_address.is_some() && device.driver.as_deref().is_some_and(|d| DPDK_DRIVERS.contains(&d))
}

fn saved_path(call: &Invocation) -> String {
    format!("{}-{}.json", call.container_id, call.ifname)
}

struct HostDevicePlugin;

impl cni_plugin_sdk::Plugin for HostDevicePlugin {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::State,
            Capability::Delegation,
        ]);
        // Every selector's value names the device this plugin moves.
        for key in ["device", "hwaddr", "kernelpath", "pciBusID", "runtimeConfig.deviceID"] {
            manifest.objects.push(cni_plugin_sdk::object(key, ObjectRole::Movable));
        }
        // `dataDir` is cni-wasm's (the reference keeps no state and ignores it).
        manifest.state =
            Some(StateLocation { default_dir: "/var/lib/cni/host-device".into(), config_key: Some("dataDir".into()) });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container =
            namespaces::container().map_err(|e| internal(format!("failed to open netns {netns:?}: {}", e.message)))?;
        let device = conf.find()?;
        if is_dpdk(&device) {
            return dpdk_result(call, &conf);
        }
        let Some(host_link) = device.link else {
            return Err(internal("failed to find host device: the device has no network interface"));
        };
        let host = namespaces::host();
        // The host undoes this (moves the device back) if anything after fails.
        links::move_to(&host, &host_link.name, &container, &call.ifname)
            .map_err(|e| internal(format!("failed to move link {}", e.message)))?;
        let saved = Saved {
            name: host_link.name.clone(),
            mac: iface::mac_string(&host_link),
            mtu: host_link.mtu,
            up: host_link.up,
        };
        save(call, &saved)?;
        let named = LinkChange { alias: Some(host_link.name.clone()), ..ipam::no_change() };
        links::set(&container, &call.ifname, &named)
            .map_err(|e| internal(format!("failed to set alias to {:?}: {}", host_link.name, e.message)))?;
        let link = links::get(&container, &call.ifname)?
            .ok_or_else(|| internal(format!("failed to find {:?} after moving it", call.ifname)))?;
        let interface = container_interface(&link, call.netns.clone());
        if conf.ipam.plugin_type.is_empty() {
            links::set(&container, &call.ifname, &ipam::set_up())
                .map_err(|e| internal(format!("failed to set {:?} up: {}", call.ifname, e.message)))?;
            return Ok(CniResult { interfaces: vec![interface], ips: Vec::new(), routes: Vec::new(), dns: no_dns() });
        }
        let mut result = ipam::add_to_interface(&conf.ipam.plugin_type, &container, interface, || {})?;
        result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
        Ok(result)
    }

    /// Idempotent, unlike Debian's reference (whose second DEL fails with
    /// `failed to find "eth0": Link not found`): no netns, a gone netns or
    /// a device already given back are success. IPAM DEL runs in every case.
    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let mut errors = Errors::new();
        if !conf.ipam.plugin_type.is_empty() {
            errors.keep(ipam::exec_del(&conf.ipam.plugin_type));
        }
        errors.keep(give_back(call));
        errors.finish()
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let netns = call.netns.clone().unwrap_or_default();
        let container =
            namespaces::container().map_err(|e| internal(format!("failed to open netns {netns:?}: {}", e.message)))?;
        if !conf.ipam.plugin_type.is_empty() {
            ipam::exec_check(&conf.ipam.plugin_type)?;
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        let entry = iface::prev_interface(call, previous)?;
        // Only a PCI device can be in DPDK mode; its sysfs entry stays in
        // the host while its interface (if any) is in the container.
        if conf.names_pci_device() && conf.find().is_ok_and(|d| is_dpdk(&d)) {
            return Ok(());
        }
        check_link(&container, entry)?;
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

/// DPDK: nothing to move; the result names CNI_IFNAME in the sandbox, and
/// IPAM's addresses are reported for the pod to apply itself.
fn dpdk_result(call: &Invocation, conf: &NetConf) -> Result<CniResult> {
    let interface = cni::NetworkInterface {
        name: call.ifname.clone(),
        mac: None,
        mtu: None,
        sandbox: call.netns.clone(),
        socket_path: None,
        pci_id: None,
    };
    let mut result = if conf.ipam.plugin_type.is_empty() {
        CniResult { interfaces: Vec::new(), ips: Vec::new(), routes: Vec::new(), dns: no_dns() }
    } else {
        let mut result = ipam::exec_add(&conf.ipam.plugin_type)?;
        for ip in &mut result.ips {
            ip.interface_index = Some(0);
        }
        result
    };
    result.interfaces = vec![interface];
    result.dns = if conf.dns.is_set() { conf.dns.to_result() } else { no_dns() };
    Ok(result)
}

/// Moves CNI_IFNAME out of the container under the name its alias keeps,
/// with the MAC, MTU and up state ADD saved, if it saved them.
fn give_back(call: &Invocation) -> Result<()> {
    let saved: Option<Saved> = state::read(&saved_path(call))?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if call.netns.is_none() {
        return Ok(());
    }
    let container = match namespaces::container() {
        Ok(container) => container,
        // The kernel gave a physical device back when the netns went.
        Err(e) if e.is_not_found() => return forget(call),
        Err(e) => return Err(e.into()),
    };
    let Some(link) = links::get(&container, &call.ifname)? else { return forget(call) };
    let name = match link.alias.as_deref().filter(|a| !a.is_empty()) {
        Some(alias) => alias.to_string(),
        None => {
            return Err(internal(format!(
                "failed to find the host name of {:?}: its alias is not set (not moved in by host-device?)",
                call.ifname
            )));
        }
    };
    let host = namespaces::host();
    let down = LinkChange { up: Some(false), ..ipam::no_change() };
    links::set(&container, &call.ifname, &down)
        .map_err(|e| internal(format!("failed to set {:?} down: {}", call.ifname, e.message)))?;
    if let Err(e) = links::move_to(&container, &call.ifname, &host, &name) {
        let _ = links::set(&container, &call.ifname, &ipam::set_up());
        let hint = if e.is_already_exists() { ": a host link already has that name; rename it and retry" } else { "" };
        return Err(internal(format!(
            "failed to move {:?} back to the host as {name:?}: {}{hint}",
            call.ifname, e.message
        )));
    }
    restore(&host, &name, saved.as_ref().filter(|s| s.name == name))?;
    forget(call)
}

/// Clears the alias and puts the saved MAC, MTU and up state back.
fn restore(host: &Netns, name: &str, saved: Option<&Saved>) -> Result<()> {
    let current = links::get(host, name)?.ok_or_else(|| internal(format!("{name:?} vanished on its way back")))?;
    let mut change = LinkChange { alias: Some(String::new()), ..ipam::no_change() };
    if let Some(saved) = saved {
        if !saved.mac.is_empty() && !saved.mac.eq_ignore_ascii_case(&iface::mac_string(&current)) {
            change.mac = cni_plugin_sdk::net::parse_mac(&saved.mac);
        }
        if saved.mtu != current.mtu {
            change.mtu = Some(saved.mtu);
        }
        change.up = saved.up.then_some(true);
    }
    links::set(host, name, &change).map_err(|e| internal(format!("failed to restore {name:?}: {}", e.message)))
}

/// A file a rollback removes again; one left by an ADD whose DEL never
/// came is overwritten.
fn save(call: &Invocation, saved: &Saved) -> Result<()> {
    let bytes = serde_json::to_vec(saved).map_err(|e| internal(format!("encoding {saved:?}: {e}")))?;
    match state::create(&saved_path(call), &bytes) {
        Err(e) if e.is_already_exists() => state::replace(&saved_path(call), &bytes)?,
        other => other?,
    }
    Ok(())
}

fn forget(call: &Invocation) -> Result<()> {
    state::remove(&saved_path(call))?;
    Ok(())
}

/// The reference's validateCniContainerInterface: present, and with the
/// result's MAC.
fn check_link(container: &Netns, entry: &cni::NetworkInterface) -> Result<()> {
    let link = links::get(container, &entry.name)?
        .ok_or_else(|| internal(format!("Container Interface name in prevResult: {} not found", entry.name)))?;
    if let Some(mac) = entry.mac.as_deref().filter(|m| !m.is_empty())
        && !mac.eq_ignore_ascii_case(&iface::mac_string(&link))
    {
        return Err(internal(format!(
            "Interface {} Mac {mac} doesn't match container Mac: {}",
            entry.name,
            iface::mac_string(&link)
        )));
    }
    Ok(())
}

cni_plugin_sdk::plugin!(HostDevicePlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_is_required_and_kernel_paths_stay_in_sys_devices() {
        let error = NetConf::parse(r#"{"name":"n"}"#).unwrap_err();
        assert_eq!(error.msg, r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#);
        let error = NetConf::parse(r#"{"name":"n","kernelpath":"/tmp/x"}"#).unwrap_err();
        assert!(error.msg.contains("must be absolute and begin with /sys/devices/"), "{}", error.msg);
        assert!(NetConf::parse(r#"{"name":"n","runtimeConfig":{"deviceID":"0000:00:03.0"}}"#).is_ok());
    }

    #[test]
    fn only_a_pci_function_on_a_userspace_driver_is_dpdk() {
        let device = |pci: Option<&str>, driver: Option<&str>| HostDevice {
            link: None,
            pci_address: pci.map(String::from),
            driver: driver.map(String::from),
        };
        assert!(is_dpdk(&device(Some("0000:00:03.0"), Some("vfio-pci"))));
        assert!(is_dpdk(&device(Some("0000:00:03.0"), Some("uio_pci_generic"))));
        assert!(!is_dpdk(&device(Some("0000:00:03.0"), Some("virtio-pci"))));
        assert!(!is_dpdk(&device(None, Some("vfio-pci"))));
    }
}
