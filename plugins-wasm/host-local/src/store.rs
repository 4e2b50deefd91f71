//! The reference's on-disk store, on the plugin's state directory:
//! `<network>/<ip>` holds "<containerID>\r\n<ifname>" (older stores: just
//! the container id), `<network>/last_reserved_ip.<rangeSetIndex>` the last
//! address handed out, and `<network>/lock` is flock()ed around every
//! change. A store can be shared with the Go plugin during an upgrade.
//!
//! Finding an attachment's addresses in that format means reading every
//! reservation. So that ADD, CHECK and DEL cost the same at a thousand
//! attachments as at one, cni-wasm adds a side index,
//! `<network>/cni-wasm-attachments/<hash of id and ifname>`, listing the
//! addresses an attachment got. It is only a hint: each address in it is
//! checked against its reservation file, and an attachment without a valid
//! entry (one the reference added, or whose ADD stopped before indexing it)
//! is found by the reference's full scan. The reference never mistakes an
//! entry for a reservation: its walk reads the files, but their contents
//! never equal an attachment key.

use std::net::IpAddr;

use cni_plugin_sdk::error::Result;
use cni_plugin_sdk::net::parse_ip;
use cni_plugin_sdk::state;
use sha2::{Digest, Sha256};

const LINE_BREAK: &str = "\r\n";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const INDEX_DIR: &str = "cni-wasm-attachments";
/// The first line of an index entry (and what makes it no attachment key).
const INDEX_HEADER: &str = "cni-wasm attachment index 1";

pub struct Store {
    network: String,
    _lock: state::FileLock,
}

/// Who holds an address, as written in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub container_id: String,
    /// None for legacy files that name only the container.
    pub ifname: Option<String>,
}

impl Store {
    /// Opens the network's store and takes its lock until dropped.
    pub fn lock(network: &str) -> Result<Store> {
        let lock = state::lock(&format!("{network}/lock"))?;
        Ok(Store { network: network.to_string(), _lock: lock })
    }

    fn path(&self, file: &str) -> String {
        format!("{}/{file}", self.network)
    }

    /// Creates the address's file; false if someone holds it already.
    pub fn reserve(&self, container_id: &str, ifname: &str, ip: IpAddr, range_set: usize) -> Result<bool> {
        let contents = format!("{}{LINE_BREAK}{ifname}", container_id.trim());
        match state::create(&self.path(&ip.to_string()), contents.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        state::replace(&self.path(&format!("{LAST_RESERVED_PREFIX}{range_set}")), ip.to_string().as_bytes())?;
        Ok(true)
    }

    pub fn last_reserved(&self, range_set: usize) -> Result<Option<IpAddr>> {
        let contents = state::read(&self.path(&format!("{LAST_RESERVED_PREFIX}{range_set}")))?;
        Ok(contents.and_then(|bytes| parse_ip(String::from_utf8_lossy(&bytes).trim())))
    }

    /// Every reserved address and who holds it: the full scan.
    pub fn reservations(&self) -> Result<Vec<(IpAddr, Holder)>> {
        let mut out = Vec::new();
        for name in state::files(&self.network)? {
            let Some(ip) = parse_ip(&name) else { continue };
            if let Some(holder) = self.holder(ip)? {
                out.push((ip, holder));
            }
        }
        Ok(out)
    }

    fn holder(&self, ip: IpAddr) -> Result<Option<Holder>> {
        let Some(contents) = state::read(&self.path(&ip.to_string()))? else { return Ok(None) };
        let text = String::from_utf8_lossy(&contents);
        Ok(Some(match text.trim().split_once(LINE_BREAK) {
            Some((id, ifname)) => Holder { container_id: id.to_string(), ifname: Some(ifname.to_string()) },
            None => Holder { container_id: text.trim().to_string(), ifname: None },
        }))
    }

    /// The addresses held by this attachment (or by a legacy file naming
    /// only its container): from the index when it has a valid entry, else
    /// by scanning.
    pub fn find(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        if let Some(ips) = self.indexed(container_id, ifname)? {
            return Ok(ips);
        }
        Ok(self
            .reservations()?
            .into_iter()
            .filter(|(_, holder)| holder.is(container_id, ifname) || holder.is_legacy(container_id))
            .map(|(ip, _)| ip)
            .collect())
    }

    /// Releases the attachment's addresses and its index entry; without a
    /// valid entry, by scanning, where legacy files are matched only when
    /// no current one is, as in the reference.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<()> {
        let mine = match self.indexed(container_id, ifname)? {
            Some(ips) => ips,
            None => {
                let reservations = self.reservations()?;
                let mut mine: Vec<IpAddr> =
                    reservations.iter().filter(|(_, h)| h.is(container_id, ifname)).map(|(ip, _)| *ip).collect();
                if mine.is_empty() {
                    mine = reservations.iter().filter(|(_, h)| h.is_legacy(container_id)).map(|(ip, _)| *ip).collect();
                }
                mine
            }
        };
        for ip in mine {
            self.remove(ip)?;
        }
        state::remove(&self.index_path(container_id, ifname))?;
        Ok(())
    }

    /// The attachment's addresses as its index entry lists them, each still
    /// reserved to it; None when there is no entry or any address in it is
    /// no longer the attachment's (the entry is stale: scan instead).
    pub fn indexed(&self, container_id: &str, ifname: &str) -> Result<Option<Vec<IpAddr>>> {
        let Some(bytes) = state::read(&self.index_path(container_id, ifname))? else { return Ok(None) };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let names_it = lines.next() == Some(INDEX_HEADER)
            && lines.next() == Some(container_id.trim())
            && lines.next() == Some(ifname);
        if !names_it {
            return Ok(None);
        }
        let mut ips = Vec::new();
        for line in lines {
            let Some(ip) = parse_ip(line) else { return Ok(None) };
            match self.holder(ip)? {
                Some(holder) if holder.is(container_id, ifname) => ips.push(ip),
                _ => return Ok(None),
            }
        }
        Ok(Some(ips))
    }

    /// Records the addresses an ADD reserved for the attachment.
    pub fn index(&self, container_id: &str, ifname: &str, ips: &[IpAddr]) -> Result<()> {
        let mut text = format!("{INDEX_HEADER}\n{}\n{ifname}\n", container_id.trim());
        for ip in ips {
            text.push_str(&format!("{ip}\n"));
        }
        state::replace(&self.index_path(container_id, ifname), text.as_bytes())?;
        Ok(())
    }

    /// Drops the index entries of attachments `keep` rejects (GC).
    pub fn prune_index(&self, keep: impl Fn(&str, &str) -> bool) -> Result<()> {
        let dir = self.path(INDEX_DIR);
        for name in state::files(&dir)? {
            let path = format!("{dir}/{name}");
            let Some(bytes) = state::read(&path)? else { continue };
            let text = String::from_utf8_lossy(&bytes);
            let mut lines = text.lines().skip(1);
            if let (Some(id), Some(ifname)) = (lines.next(), lines.next())
                && keep(id, ifname)
            {
                continue;
            }
            state::remove(&path)?;
        }
        Ok(())
    }

    fn index_path(&self, container_id: &str, ifname: &str) -> String {
        let digest = Sha256::digest(format!("{}{LINE_BREAK}{ifname}", container_id.trim()));
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.path(&format!("{INDEX_DIR}/{name}"))
    }

    pub fn remove(&self, ip: IpAddr) -> Result<()> {
        state::remove(&self.path(&ip.to_string()))?;
        Ok(())
    }
}

impl Holder {
    fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id.trim() && self.ifname.as_deref() == Some(ifname)
    }

    fn is_legacy(&self, container_id: &str) -> bool {
        self.ifname.is_none() && self.container_id == container_id.trim()
    }
}
