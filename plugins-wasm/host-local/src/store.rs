//! The reference's on-disk store, on the plugin's state directory:
//! `<network>/<ip>` holds "<containerID>\r\n<ifname>" (older stores: just
//! the container id), `<network>/last_reserved_ip.<rangeSetIndex>` the last
//! address handed out, and `<network>/lock` is flock()ed around every
//! change. A store can be shared with the Go plugin during an upgrade.

use std::net::IpAddr;

use cni_plugin_sdk::error::Result;
use cni_plugin_sdk::net::parse_ip;
use cni_plugin_sdk::state;

const LINE_BREAK: &str = "\r\n";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";

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

    /// Every reserved address and who holds it.
    pub fn reservations(&self) -> Result<Vec<(IpAddr, Holder)>> {
        let mut out = Vec::new();
        for name in state::files(&self.network)? {
            let Some(ip) = parse_ip(&name) else { continue };
            let Some(contents) = state::read(&self.path(&name))? else { continue };
            let text = String::from_utf8_lossy(&contents);
            let holder = match text.trim().split_once(LINE_BREAK) {
                Some((id, ifname)) => Holder { container_id: id.to_string(), ifname: Some(ifname.to_string()) },
                None => Holder { container_id: text.trim().to_string(), ifname: None },
            };
            out.push((ip, holder));
        }
        Ok(out)
    }

    /// The addresses held by this attachment (or by a legacy file naming
    /// only its container).
    pub fn find(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        Ok(self
            .reservations()?
            .into_iter()
            .filter(|(_, holder)| holder.is(container_id, ifname) || holder.is_legacy(container_id))
            .map(|(ip, _)| ip)
            .collect())
    }

    /// Releases the attachment's addresses; legacy files are matched only
    /// when no current one is, as in the reference.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<()> {
        let reservations = self.reservations()?;
        let mut mine: Vec<IpAddr> =
            reservations.iter().filter(|(_, h)| h.is(container_id, ifname)).map(|(ip, _)| *ip).collect();
        if mine.is_empty() {
            mine = reservations.iter().filter(|(_, h)| h.is_legacy(container_id)).map(|(ip, _)| *ip).collect();
        }
        for ip in mine {
            self.remove(ip)?;
        }
        Ok(())
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
