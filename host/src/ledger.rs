//! The ownership ledger: which host-namespace links an attachment's ADD
//! created, so that a later DEL, CHECK or GC of the same attachment (the
//! same plugin, network, container id and ifname), in a fresh process, may
//! change or remove them, and no other plugin or attachment may.
//!
//! The host writes it, never the plugin: one small JSON file per
//! attachment under `/run/cni-wasm/ledger` (CNI_WASM_LEDGER_DIR), written
//! atomically. /run because links do not outlive a reboot either; a crash
//! of a plugin process between ADD and DEL loses nothing. Entries are keyed
//! by the host namespace's cookie too (never reused, unlike its inode), so
//! scratch "hosts" (the tests') and later namespaces never share
//! them. Links the config names as managed (a bridge) are shared by the
//! network's attachments and never recorded.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::config::is_valid_identifier;

pub const DEFAULT_DIR: &str = "/run/cni-wasm/ledger";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Host links the ADD created.
    pub links: Vec<String>,
}

/// One plugin's entries for one network in one host namespace.
pub struct Ledger {
    dir: PathBuf,
}

/// The attachment an entry is for.
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub ifname: &'a str,
}

impl Ledger {
    /// The ledger of `plugin` on `network` in the host namespace identified
    /// by `host_ns` (its netns cookie); None when a name could not be part of
    /// a path (the protocol edge validated them already).
    pub fn open(host_ns: u64, network: &str, plugin: &str) -> Option<Ledger> {
        let plain = |s: &str| !s.is_empty() && !s.contains('/') && !s.starts_with('.');
        if !is_valid_identifier(network) || !plain(plugin) {
            return None;
        }
        let root = std::env::var_os("CNI_WASM_LEDGER_DIR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_DIR.into());
        Some(Ledger { dir: root.join(host_ns.to_string()).join(network).join(plugin) })
    }

    fn path(&self, attachment: &Attachment) -> Option<PathBuf> {
        let ifname = attachment.ifname;
        let ifname_ok = !ifname.is_empty() && !ifname.contains(['/', ':']) && !ifname.starts_with('.');
        (is_valid_identifier(attachment.container_id) && ifname_ok)
            // A container id has no ':', an interface name neither.
            .then(|| self.dir.join(format!("{}:{}.json", attachment.container_id, attachment.ifname)))
    }

    pub fn read(&self, attachment: &Attachment) -> Entry {
        self.path(attachment).and_then(|path| read_entry(&path)).unwrap_or_default()
    }

    /// Records `entry` for the attachment (replacing what was there), or
    /// removes the record when the entry is empty.
    pub fn write(&self, attachment: &Attachment, entry: &Entry) -> Result<(), String> {
        let Some(path) = self.path(attachment) else { return Ok(()) };
        if entry.links.is_empty() {
            return self.remove(attachment);
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let text = serde_json::to_vec(entry).expect("an entry serializes");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::rename(&temporary, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("recording {}: {e}", path.display())
        })
    }

    pub fn remove(&self, attachment: &Attachment) -> Result<(), String> {
        let Some(path) = self.path(attachment) else { return Ok(()) };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("removing {}: {e}", path.display())),
            _ => Ok(()),
        }
    }

    /// Every recorded attachment: (container id, ifname, entry).
    pub fn all(&self) -> Vec<(String, String, Entry)> {
        let Ok(files) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        files
            .filter_map(Result::ok)
            .filter_map(|file| {
                let name = file.file_name().into_string().ok()?;
                let (container_id, ifname) = name.strip_suffix(".json")?.split_once(':')?;
                Some((container_id.to_string(), ifname.to_string(), read_entry(&file.path())?))
            })
            .collect()
    }
}

fn read_entry(path: &Path) -> Option<Entry> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
