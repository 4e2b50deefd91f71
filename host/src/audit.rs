//! The audit log: with CNI_WASM_AUDIT=FILE (or the policy's `audit`), every
//! capability call a plugin makes, one JSON line each: when, which plugin
//! for which container and verb, the call, the object it named, and the
//! verdict (`ok`, `denied`, the error kind, or `trap`).
//!
//! A call's verdict is known when it ends: an error passes through
//! `types::convert-error`, which writes the line; a call that succeeded
//! leaves its line pending until the plugin's next call or the end of the
//! invocation, so success costs nothing extra on the call path.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub struct Audit {
    file: RefCell<File>,
}

impl Audit {
    /// The audit log CNI_WASM_AUDIT or the policy names, if any; a log that
    /// cannot be opened is an error (an admin asked for it).
    pub fn open(policy_path: Option<&str>) -> Result<Option<Audit>, String> {
        let path = std::env::var("CNI_WASM_AUDIT").ok().filter(|p| !p.is_empty()).or(policy_path.map(str::to_string));
        let Some(path) = path else { return Ok(None) };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("opening the audit log {path}: {e}"))?;
        Ok(Some(Audit { file: RefCell::new(file) }))
    }

    /// One line; O_APPEND and one write keep concurrent plugins' lines whole.
    pub fn write(&self, entry: &Entry, verdict: &str) {
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let line = serde_json::json!({
            "time": format!("{}.{:06}", time.as_secs(), time.subsec_micros()),
            "plugin": entry.plugin,
            "command": entry.command,
            "network": entry.network,
            "containerID": entry.container_id,
            "ifname": entry.ifname,
            "call": entry.call,
            "object": entry.object,
            "verdict": verdict,
        });
        let _ = self.file.borrow_mut().write_all(format!("{line}\n").as_bytes());
    }
}

/// A call whose verdict is not known yet.
pub struct Entry {
    pub plugin: String,
    pub command: &'static str,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub call: String,
    pub object: String,
}
