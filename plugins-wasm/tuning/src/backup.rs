//! The original settings of a tuned interface, saved on ADD and put back on
//! DEL: `<dataDir>/<containerID>_<ifname>.json` in the reference's format
//! (its keys, Go's MarshalIndent layout), so either implementation restores
//! what the other saved. cni-wasm adds keys the reference ignores: the
//! original sysctl values (the reference never restores sysctls) and whose
//! attachment the file is, for GC.

use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::ipam::no_change;
use cni_plugin_sdk::links::{self, Link, LinkChange};
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::net::{format_mac, parse_mac};
use cni_plugin_sdk::sysctl;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::TuningConf;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backup {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub tx_q_len: Option<u32>,
    /// Original sysctl values by /proc/sys path, in the order applied.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub sysctl: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(rename = "containerID", skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ifname: String,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The backup's file name in the state directory.
pub fn file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}_{ifname}.json")
}

impl Backup {
    /// The current values of what `conf` is about to change: the link's
    /// settings it names (`link` must then be given) and every sysctl
    /// (by its resolved path, in `paths`).
    pub fn capture(ns: &Netns, link: Option<&Link>, conf: &TuningConf, paths: &[(String, String)]) -> Result<Backup> {
        let mut backup = Backup::default();
        if let Some(link) = link {
            if conf.mac.is_some() {
                backup.mac = link.mac.as_deref().map(format_mac).unwrap_or_default();
            }
            if conf.promisc {
                backup.promisc = Some(link.promiscuous);
            }
            if conf.mtu.is_some() {
                backup.mtu = link.mtu;
            }
            if conf.allmulti.is_some() {
                backup.allmulti = Some(link.all_multicast);
            }
            if conf.tx_queue_len.is_some() {
                backup.tx_q_len = Some(link.tx_queue_len);
            }
        }
        for (path, _) in paths {
            let value = sysctl::get(ns, path).context(format!("reading /proc/sys/{path}"))?;
            backup.sysctl.insert(path.clone(), Value::String(value));
        }
        Ok(backup)
    }

    /// Fills in what `newer` has and this backup lacks: the first ADD's
    /// originals win over values a repeated ADD found already changed.
    pub fn merge_missing(&mut self, newer: &Backup) {
        if self.mac.is_empty() {
            self.mac = newer.mac.clone();
        }
        self.promisc = self.promisc.or(newer.promisc);
        if self.mtu == 0 {
            self.mtu = newer.mtu;
        }
        self.allmulti = self.allmulti.or(newer.allmulti);
        self.tx_q_len = self.tx_q_len.or(newer.tx_q_len);
        for (path, value) in &newer.sysctl {
            if !self.sysctl.contains_key(path) {
                self.sysctl.insert(path.clone(), value.clone());
            }
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Backup> {
        let text = std::str::from_utf8(bytes).map_err(|e| internal(format!("backup is not UTF-8: {e}")))?;
        config::parse(text)
    }

    /// Go's json.MarshalIndent(v, "", " ") layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        // A struct of strings, numbers and maps of strings always serializes.
        let _ = self.serialize(&mut serializer);
        out
    }

    /// Puts every saved value back, link settings in the reference's order
    /// (MTU, MAC, promisc, allmulti, txqlen), then the sysctls, newest
    /// first. Keeps going after a failure; returns what failed. Without the
    /// link only the sysctls that do not name it can be restored.
    pub fn restore(&self, ns: &Netns, ifname: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let link_present = matches!(links::get(ns, ifname), Ok(Some(_)));
        if link_present {
            let mut changes: Vec<(&str, LinkChange)> = Vec::new();
            if self.mtu != 0 {
                changes.push(("MTU", LinkChange { mtu: Some(self.mtu), ..no_change() }));
            }
            if !self.mac.is_empty() {
                match parse_mac(&self.mac) {
                    Some(mac) => changes.push(("MAC address", LinkChange { mac: Some(mac), ..no_change() })),
                    None => {
                        errors.push(format!("failed to restore MAC address: invalid MAC {:?} in the backup", self.mac))
                    }
                }
            }
            if let Some(on) = self.promisc {
                changes.push(("promiscuous mode", LinkChange { promiscuous: Some(on), ..no_change() }));
            }
            if let Some(on) = self.allmulti {
                changes.push(("all-multicast mode", LinkChange { all_multicast: Some(on), ..no_change() }));
            }
            if let Some(len) = self.tx_q_len {
                changes.push(("transmit queue length", LinkChange { tx_queue_len: Some(len), ..no_change() }));
            }
            for (what, change) in changes {
                if let Err(e) = links::set(ns, ifname, &change) {
                    errors.push(format!("failed to restore {what}: {}", e.message));
                }
            }
        }
        for (path, value) in self.sysctl.iter().rev() {
            let Some(value) = value.as_str() else { continue };
            if !link_present && path.split('/').any(|part| part == ifname) {
                continue;
            }
            if let Err(e) = sysctl::set(ns, path, value) {
                errors.push(format!("failed to restore /proc/sys/{path}: {}", e.message));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_reference_layout_and_reads_its_files() {
        let backup = Backup { mac: "c2:11:22:33:44:55".into(), mtu: 1500, promisc: Some(false), ..Backup::default() };
        assert_eq!(
            String::from_utf8(backup.to_bytes()).unwrap(),
            "{\n \"mac\": \"c2:11:22:33:44:55\",\n \"promisc\": false,\n \"mtu\": 1500\n}"
        );
        // What the Go reference writes, txQLen and allmulti included.
        let theirs = Backup::parse(b"{\n \"mtu\": 9000,\n \"allmulti\": true,\n \"txQLen\": 0\n}").unwrap();
        assert_eq!((theirs.mtu, theirs.allmulti, theirs.tx_q_len), (9000, Some(true), Some(0)));
        assert!(theirs.network.is_empty(), "a reference backup names no network");
    }

    #[test]
    fn a_repeated_add_keeps_the_first_originals() {
        let mut first = Backup { mtu: 1500, ..Backup::default() };
        first.sysctl.insert("net/core/somaxconn".into(), "4096".into());
        let mut second = Backup { mtu: 1400, allmulti: Some(false), ..Backup::default() };
        second.sysctl.insert("net/core/somaxconn".into(), "100".into());
        second.sysctl.insert("net/ipv4/ip_forward".into(), "0".into());
        first.merge_missing(&second);
        assert_eq!((first.mtu, first.allmulti), (1500, Some(false)));
        assert_eq!(first.sysctl["net/core/somaxconn"], "4096");
        assert_eq!(first.sysctl["net/ipv4/ip_forward"], "0");
    }
}
