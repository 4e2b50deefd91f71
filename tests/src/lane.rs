//! The full-kernel lane: tests that need a kernel feature this machine's
//! kernel lacks (dummy, vlan, ipvlan, vrf, macvlan links, bridge VLAN
//! filtering) run in a VM booting Debian's own kernel, started by
//! `tests/kernel-vm.sh`.
//!
//! The convention: such a test is marked
//!
//! ```text
//! #[test]
//! #[ignore = "needs a full kernel (vlan): tests/kernel-vm.sh runs it"]
//! fn a_vlan_link_...() {
//!     lane::require_kernel_feature("vlan");
//!     ...
//! }
//! ```
//!
//! so that the normal lane (`cargo test`, tests/run.sh) lists it as ignored
//! with that reason, and never passes it silently; tests/kernel-vm.sh runs
//! every test binary that has ignored tests with `--ignored`. `#[ignore]` in
//! tests/ means this and nothing else.
//!
//! The test calls [`require_kernel_feature`] first, which creates the
//! feature's link type in a scratch namespace and panics if the kernel
//! refuses, so the test cannot pass vacuously on a kernel without the feature
//! (run with `--ignored` by hand here, say, or in a VM whose module failed to
//! load). The probe uses `ip` (iproute2), not the capabilities crate, so a bug
//! in the code under test is not mistaken for a missing kernel feature.

use std::process::Command;

use crate::netns::Netns;

/// The features [`require_kernel_feature`] knows, with the `ip link add`
/// arguments that probe each (after `ip -n <scratch> link add <name>`).
/// vlan, ipvlan and macvlan get a veth as parent (`probe0`, below), which
/// every kernel the tests run on has.
const FEATURES: &[(&str, &[&str])] = &[
    ("dummy", &["type", "dummy"]),
    ("vlan", &["link", "probe0", "type", "vlan", "id", "42"]),
    ("ipvlan", &["link", "probe0", "type", "ipvlan", "mode", "l2"]),
    ("macvlan", &["link", "probe0", "type", "macvlan", "mode", "bridge"]),
    ("vrf", &["type", "vrf", "table", "42"]),
    ("bridge vlan_filtering", &["type", "bridge", "vlan_filtering", "1"]),
    // Not a link type: a PCI network device in the root namespace (the
    // VM's virtio-net NIC), for host-device's sysfs selectors.
    ("pci network device", &[]),
];

/// Whether the kernel has `feature` (one of `dummy`, `vlan`, `ipvlan`,
/// `macvlan`, `vrf`, `bridge vlan_filtering`): Err says why not, with the
/// kernel's own words. Panics on a feature it does not know.
pub fn kernel_feature(feature: &str) -> Result<(), String> {
    let Some((_, args)) = FEATURES.iter().find(|(name, _)| *name == feature) else {
        let known: Vec<&str> = FEATURES.iter().map(|(name, _)| *name).collect();
        panic!("lane::kernel_feature: unknown feature {feature:?} (known: {known:?})");
    };
    crate::require_root();
    if feature == "pci network device" {
        return pci_network_device()
            .map(drop)
            .ok_or_else(|| "no PCI device with a network interface in /sys/bus/pci/devices".into());
    }
    let ns = Netns::new("probe");
    let ip = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("ip")
            .args(["-n", &ns.name, "link", "add"])
            .args(args)
            .output()
            .map_err(|e| format!("running ip: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("`ip link add {}`: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
        }
    };
    if args.contains(&"probe0") {
        ip(&["probe0", "type", "veth", "peer", "name", "probe1"])?;
    }
    let check = ip(&[&["probe"][..], args].concat());
    // Also check the kernel kept the setting (a kernel without
    // CONFIG_BRIDGE_VLAN_FILTERING may refuse it, but never store it).
    if check.is_ok() && feature == "bridge vlan_filtering" {
        let shown = ns.ip_json(&["-d", "link", "show", "probe"]);
        let filtering = &shown[0]["linkinfo"]["info_data"]["vlan_filtering"];
        if *filtering != 1 {
            return Err(format!("the bridge's vlan_filtering reads {filtering}"));
        }
    }
    check
}

/// A PCI network device of this namespace: its address ("0000:00:03.0")
/// and interface name, the interface either directly under the device or
/// under its virtio device (as host-device looks).
pub fn pci_network_device() -> Option<(String, String)> {
    let mut devices: Vec<_> = std::fs::read_dir("/sys/bus/pci/devices").ok()?.filter_map(Result::ok).collect();
    devices.sort_by_key(|d| d.file_name());
    for device in devices {
        let mut dirs = vec![device.path().join("net")];
        for entry in std::fs::read_dir(device.path()).into_iter().flatten().filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with("virtio") {
                dirs.push(entry.path().join("net"));
            }
        }
        for dir in dirs {
            if let Some(name) = std::fs::read_dir(dir).ok().and_then(|mut d| d.next()).and_then(Result::ok) {
                return Some((
                    device.file_name().to_string_lossy().into_owned(),
                    name.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
    }
    None
}

/// Panics unless the kernel has `feature` (see [`kernel_feature`]): the
/// first call of every test marked `#[ignore = "needs a full kernel ..."]`.
#[track_caller]
pub fn require_kernel_feature(feature: &str) {
    if let Err(why) = kernel_feature(feature) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        panic!(
            "this kernel ({}) lacks {feature}: {why}\n\
             This test is for the full-kernel lane: run it with tests/kernel-vm.sh, which boots a Debian kernel that has it.",
            release.trim()
        );
    }
}

#[cfg(test)]
mod tests {
    /// The lane's own check: the VM's kernel has every feature the probes
    /// know, and each probe succeeds there (so a probe that is wrong, rather
    /// than a kernel that lacks the feature, shows up here first).
    #[test]
    #[ignore = "needs a full kernel (all of lane::FEATURES): tests/kernel-vm.sh runs it"]
    fn every_feature_the_lane_probes_is_there_on_a_full_kernel() {
        let missing: Vec<String> = super::FEATURES
            .iter()
            .filter_map(|(feature, _)| super::kernel_feature(feature).err().map(|why| format!("{feature}: {why}")))
            .collect();
        assert!(missing.is_empty(), "missing: {missing:#?}");
    }
}
