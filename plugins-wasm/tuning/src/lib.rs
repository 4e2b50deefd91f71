//! tuning: a chained plugin that sets sysctls of the container namespace
//! and the MAC, MTU, promiscuous and all-multicast modes and transmit queue
//! length of the container interface, and passes the previous result on
//! (with the new MAC). Unlike the reference, DEL also puts the sysctls back,
//! and a failed ADD undoes what it had changed.

mod backup;
mod config;

use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::ipam::no_change;
use cni_plugin_sdk::links::{self, Link, LinkChange};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::format_mac;
use cni_plugin_sdk::netfilter::go_quote;
use cni_plugin_sdk::{Attachment, Capability, CniResult, Invocation, Manifest, StateLocation, state, sysctl};

use crate::backup::{Backup, file_name};
use crate::config::{TuningConf, check_allowlist, read_allowlist, sysctl_path};

struct Tuning;

impl cni_plugin_sdk::Plugin for Tuning {
    fn manifest() -> Manifest {
        let mut manifest =
            cni_plugin_sdk::manifest(&[Capability::Links, Capability::Sysctl, Capability::State, Capability::Files]);
        manifest.state =
            Some(StateLocation { default_dir: config::DEFAULT_DATA_DIR.into(), config_key: Some("dataDir".into()) });
        manifest.readable_files = vec![config::ALLOWLIST.into()];
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = TuningConf::load(&call.config, &call.args)?;
        check_allowlist(&conf.sysctl, read_allowlist()?.as_deref())?;
        if call.ifname.contains('/') {
            return Err(internal(format!("Interface name ({}) contains an invalid character /", call.ifname)));
        }
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        // Every key is checked before anything changes (the reference
        // writes the keys before a bad one).
        let paths: Vec<(String, String)> = conf
            .sysctl
            .0
            .iter()
            .map(|(key, value)| Ok((sysctl_path(key, &call.ifname)?, value.clone())))
            .collect::<Result<_>>()?;
        let container = open_container(call)?;

        if conf.changes_link() || !paths.is_empty() {
            let link = if conf.changes_link() { Some(require_link(&container, &call.ifname)?) } else { None };
            let before = Backup::capture(&container, link.as_ref(), &conf, &paths)?;
            let saved = save_backup(call, &conf, &before)?;
            if let Err(error) = apply(&container, &call.ifname, &conf, &paths) {
                // Put back what this ADD changed, and the backup as it was
                // (the host also removes a backup file this ADD created).
                for problem in before.restore(&container, &call.ifname) {
                    cni_plugin_sdk::warn!("undoing a failed ADD: {problem}");
                }
                let name = file_name(&call.container_id, &call.ifname);
                let _ = match saved {
                    Some(old) => state::replace(&name, &old),
                    None => state::remove(&name).map(drop),
                };
                return Err(error);
            }
        }

        let mut result = previous.clone();
        if let Some(mac) = conf.mac_text() {
            for interface in result.interfaces.iter_mut().filter(|i| i.name == call.ifname) {
                interface.mac = Some(mac.clone());
            }
        }
        Ok(result)
    }

    /// Puts back what ADD saved. Like the reference it always succeeds once
    /// the config parses: a failed restore is logged. The backup is removed
    /// even when the namespace or link is gone (the reference keeps it).
    fn del(call: &Invocation) -> Result<()> {
        TuningConf::load(&call.config, &call.args)?;
        let name = file_name(&call.container_id, &call.ifname);
        let bytes = match state::read(&name) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(e) => {
                cni_plugin_sdk::warn!("reading the backup {name}: {}", e.message);
                return Ok(());
            }
        };
        match (Backup::parse(&bytes), namespaces::container()) {
            (Ok(backup), Ok(container)) => {
                for problem in backup.restore(&container, &call.ifname) {
                    cni_plugin_sdk::warn!("restoring {}: {problem}", call.ifname);
                }
            }
            (Err(e), _) => cni_plugin_sdk::warn!("the backup {name} is unreadable, nothing restored: {}", e.msg),
            (_, Err(_)) => {}
        }
        if let Err(e) = state::remove(&name) {
            cni_plugin_sdk::warn!("removing the backup {name}: {}", e.message);
        }
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = TuningConf::load(&call.config, &call.args)?;
        call.prev_result.as_ref().ok_or_else(|| internal("Required prevResult missing"))?;
        let container = open_container(call)?;
        for (key, wanted) in &conf.sysctl.0 {
            let path = sysctl_path(key, &call.ifname)?;
            let current = sysctl::get(&container, &path).context(format!("reading /proc/sys/{path}"))?;
            if *wanted != current {
                return Err(internal(format!(
                    "Error: Tuning configured value of /proc/sys/{path} is {wanted}, current value is {current}"
                )));
            }
        }
        let link = links::get(&container, &call.ifname)?
            .ok_or_else(|| internal(format!("Cannot find container link {}", call.ifname)))?;
        let ifname = &call.ifname;
        if let Some((text, mac)) = &conf.mac {
            // Compared as addresses: the reference compares text, so an
            // upper-case MAC in the config never passes its CHECK.
            if link.mac.as_ref() != Some(mac) {
                let current = link.mac.as_deref().map(format_mac).unwrap_or_default();
                return Err(internal(format!(
                    "Error: Tuning configured Ethernet of {ifname} is {text}, current value is {current}"
                )));
            }
        }
        // As the reference: promiscuous mode must be off unless configured.
        if link.promiscuous != conf.promisc {
            return Err(internal(format!(
                "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
                conf.promisc,
                u8::from(link.promiscuous)
            )));
        }
        if let Some(mtu) = conf.mtu
            && mtu != link.mtu
        {
            return Err(internal(format!(
                "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
                link.mtu
            )));
        }
        if let Some(on) = conf.allmulti
            && on != link.all_multicast
        {
            return Err(internal(format!(
                "Error: Tuning configured all-multicast mode of {ifname} is {on}, current value is {}",
                link.all_multicast
            )));
        }
        if let Some(len) = conf.tx_queue_len
            && len != link.tx_queue_len
        {
            return Err(internal(format!(
                "Error: Tuning configured Transmit Queue Length of {ifname} is {len}, current value is {}",
                link.tx_queue_len
            )));
        }
        Ok(())
    }

    /// Removes the backups of this network's attachments the runtime no
    /// longer lists. Backups written by the reference name no network, so
    /// they are left alone: the directory may be shared by networks.
    fn gc(config_text: &str, valid: &[Attachment]) -> Result<()> {
        let conf = TuningConf::load(config_text, "")?;
        let mut errors = Vec::new();
        for name in state::files("")?.into_iter().filter(|n| n.ends_with(".json")) {
            let Ok(Some(bytes)) = state::read(&name) else { continue };
            let Ok(backup) = Backup::parse(&bytes) else { continue };
            let stale = !backup.network.is_empty()
                && backup.network == conf.name
                && !valid.iter().any(|a| a.container_id == backup.container_id && a.ifname == backup.ifname);
            if stale && let Err(e) = state::remove(&name) {
                errors.push(format!("removing {name}: {}", e.message));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
    }
}

fn open_container(call: &Invocation) -> Result<Netns> {
    let netns = call.netns.clone().unwrap_or_default();
    namespaces::container().context(format!("failed to open netns {}", go_quote(&netns)))
}

fn require_link(ns: &Netns, ifname: &str) -> Result<Link> {
    links::get(ns, ifname)?.ok_or_else(|| internal(format!("failed to get {}: Link not found", go_quote(ifname))))
}

/// Writes the backup before anything changes. An earlier ADD's backup for
/// the same attachment keeps its originals. Returns that earlier file, so
/// a failed ADD can put it back.
fn save_backup(call: &Invocation, conf: &TuningConf, before: &Backup) -> Result<Option<Vec<u8>>> {
    let name = file_name(&call.container_id, &call.ifname);
    let existing = state::read(&name).context("failed to read the backup")?;
    let mut backup = existing.as_deref().and_then(|b| Backup::parse(b).ok()).unwrap_or_default();
    backup.merge_missing(before);
    backup.network = conf.name.clone();
    backup.container_id = call.container_id.clone();
    backup.ifname = call.ifname.clone();
    let written = match existing {
        Some(_) => state::replace(&name, &backup.to_bytes()),
        None => state::create(&name, &backup.to_bytes()),
    };
    written.context(format!("failed to save file {}.json", call.ifname))?;
    Ok(existing)
}

/// The changes, in the reference's order: sysctls, MAC, promisc, MTU,
/// allmulti, txqlen.
fn apply(ns: &Netns, ifname: &str, conf: &TuningConf, paths: &[(String, String)]) -> Result<()> {
    for (path, value) in paths {
        sysctl::set(ns, path, value).context(format!("writing {value:?} to /proc/sys/{path}"))?;
    }
    let set = |change: LinkChange| links::set(ns, ifname, &change);
    if let Some((text, mac)) = &conf.mac {
        set(LinkChange { mac: Some(mac.clone()), ..no_change() })
            .context(format!("failed to set MAC {text} on {ifname:?}"))?;
    }
    if conf.promisc {
        set(LinkChange { promiscuous: Some(true), ..no_change() })
            .context(format!("failed to set promiscuous mode on {ifname:?}"))?;
    }
    if let Some(mtu) = conf.mtu {
        set(LinkChange { mtu: Some(mtu), ..no_change() }).context(format!("failed to set MTU {mtu} on {ifname:?}"))?;
    }
    if let Some(on) = conf.allmulti {
        set(LinkChange { all_multicast: Some(on), ..no_change() })
            .context(format!("failed to set all-multicast mode on {ifname:?}"))?;
    }
    if let Some(len) = conf.tx_queue_len {
        set(LinkChange { tx_queue_len: Some(len), ..no_change() })
            .context(format!("failed to set transmit queue length {len} on {ifname:?}"))?;
    }
    Ok(())
}

cni_plugin_sdk::plugin!(Tuning);
