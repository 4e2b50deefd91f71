//! Host devices found through sysfs, the way host-device selects them: by
//! name, MAC, sysfs device path, PCI address or auxiliary device.
//!
//! sysfs shows the network interfaces of the namespace it was mounted in
//! (`ip netns exec` mounts a fresh one for its namespace), which is the
//! namespace this process runs in: the host's. Inputs are checked before
//! any path is built from them, so no selector reaches outside its sysfs
//! directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::links::{self, Link};
use crate::netns::Netns;

#[derive(Debug, Clone)]
pub enum Selector {
    Name(String),
    Mac(String),
    KernelPath(String),
    PciAddress(String),
    AuxiliaryDevice(String),
}

#[derive(Debug, Clone)]
pub struct Device {
    pub link: Option<Link>,
    pub pci_address: Option<String>,
    pub driver: Option<String>,
}

/// Finds the device `selector` names in `host` (the process's own
/// namespace); None when there is none.
pub fn find(host: &Netns, selector: &Selector) -> Result<Option<Device>> {
    let plain = |link: Option<Link>| Ok(link.map(|link| Device { link: Some(link), pci_address: None, driver: None }));
    match selector {
        Selector::Name(name) => plain(links::get(host, name)?),
        Selector::Mac(text) => {
            let mac = parse_mac(text)?;
            plain(links::dump(host)?.into_iter().find(|l| l.mac.as_deref() == Some(&mac[..])))
        }
        Selector::KernelPath(path) => {
            let path = checked_kernel_path(path)?;
            if !path.is_dir() {
                return Ok(None);
            }
            plain(interface_in(host, &path.join("net"))?)
        }
        Selector::PciAddress(address) => {
            check_pci_address(address)?;
            let device = Path::new("/sys/bus/pci/devices").join(address);
            if !device.exists() {
                return Ok(None);
            }
            let mut link = interface_in(host, &device.join("net"))?;
            if link.is_none() {
                // virtio: the interface hangs off the virtio device below.
                for entry in read_dir_sorted(&device)? {
                    if entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with("virtio")) {
                        link = interface_in(host, &entry.join("net"))?;
                        if link.is_some() {
                            break;
                        }
                    }
                }
            }
            let driver = std::fs::read_link(device.join("driver"))
                .ok()
                .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()));
            Ok(Some(Device { link, pci_address: Some(address.clone()), driver }))
        }
        Selector::AuxiliaryDevice(id) => {
            if id.is_empty() || id.contains('/') || id.starts_with('.') {
                return Err(Error::invalid(format!("{id:?} is not an auxiliary device name")));
            }
            let device = Path::new("/sys/bus/auxiliary/devices").join(id);
            if !device.exists() {
                return Ok(None);
            }
            plain(interface_in(host, &device.join("net"))?)
        }
    }
}

/// The first interface listed in a sysfs `net/` directory that exists in
/// `host`, if any.
fn interface_in(host: &Netns, net_dir: &Path) -> Result<Option<Link>> {
    if !net_dir.is_dir() {
        return Ok(None);
    }
    for entry in read_dir_sorted(net_dir)? {
        let Some(name) = entry.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
        if let Some(link) = links::get(host, &name)? {
            return Ok(Some(link));
        }
    }
    Ok(None)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::from_io(&e, format!("listing {}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

/// `/sys/devices/...`, absolute, without `.` or `..` components.
fn checked_kernel_path(path: &str) -> Result<PathBuf> {
    let candidate = Path::new(path);
    let clean =
        candidate.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
    if !path.starts_with("/sys/devices/") || !clean {
        return Err(Error::invalid(format!("kernel path {path:?} must be an absolute path below /sys/devices/")));
    }
    Ok(candidate.to_path_buf())
}

/// `DDDD:BB:DD.F`, hex (a PCI domain, bus, device and function).
fn check_pci_address(address: &str) -> Result<()> {
    let bytes = address.as_bytes();
    let hex = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|b| b.iter().all(u8::is_ascii_hexdigit));
    let valid = bytes.len() == 12
        && hex(0..4)
        && bytes[4] == b':'
        && hex(5..7)
        && bytes[7] == b':'
        && hex(8..10)
        && bytes[10] == b'.'
        && (b'0'..=b'7').contains(&bytes[11]);
    if valid { Ok(()) } else { Err(Error::invalid(format!("{address:?} is not a PCI address (DDDD:BB:DD.F)"))) }
}

/// "aa:bb:cc:dd:ee:ff" in any case, or with dashes, as Go's net.ParseMAC
/// takes a 6-byte address.
pub fn parse_mac(text: &str) -> Result<Vec<u8>> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let bytes: Option<Vec<u8>> =
        parts.iter().map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None }).collect();
    match bytes {
        Some(bytes) if bytes.len() == 6 => Ok(bytes),
        _ => Err(Error::invalid(format!("{text:?} is not a MAC address"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cannot_leave_their_sysfs_directory() {
        assert!(checked_kernel_path("/sys/devices/pci0000:00/0000:00:03.0").is_ok());
        for bad in ["/sys/devices/../../etc", "/etc/passwd", "sys/devices/x", "/sys/devices/x/../../../etc"] {
            assert!(checked_kernel_path(bad).is_err(), "{bad}");
        }
        assert!(check_pci_address("0000:00:03.0").is_ok());
        for bad in ["0000:00:03.8", "../../../etc", "0000:00:03", "000g:00:03.0", "0000:00:03.0/x"] {
            assert!(check_pci_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_parse_like_go() {
        assert_eq!(parse_mac("0A:58:0a:f4:01:02").unwrap(), [0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]);
        assert_eq!(parse_mac("0a-58-0a-f4-01-02").unwrap(), [0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]);
        assert!(parse_mac("0a:58:0a:f4:01").is_err() && parse_mac("zz:58:0a:f4:01:02").is_err());
    }
}
