//! What an ADD set up with iptables or firewalld, per attachment, for DEL
//! without prevResult and for GC. The reference's iptables rules (and
//! firewalld sources) say nothing about whose they are, and cni-wasm writes
//! them identically so iptables-save stays the reference's; the identity
//! lives here instead: `attachments/<network>/<containerID>:<ifname>` in
//! the plugin's state directory under /run, which, like the rules, does not
//! survive a reboot. (':' appears in neither a container id nor a link
//! name, so the file name is unambiguous.) An nftables ADD's record holds
//! its rules' handles, a hint DEL checks against the kernel.

use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::NftHandles;
use cni_plugin_sdk::state;
use serde::{Deserialize, Serialize};

use crate::config::Backend;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub backend: String,
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub zone: Option<String>,
    /// The handles of the nftables rules an ADD added ([`NftHandles`]
    /// encoded), so DEL deletes them without listing the chain that holds
    /// every attachment's.
    #[serde(rename = "nftRules", skip_serializing_if = "Option::is_none", default)]
    pub nft_rules: Option<String>,
}

impl Record {
    pub fn new(container_id: &str, ifname: &str, backend: Backend, ips: &[IpNet], zone: &str) -> Record {
        Record {
            container_id: container_id.into(),
            ifname: ifname.into(),
            backend: backend.name().into(),
            ips: ips.iter().map(IpNet::to_string).collect(),
            zone: (backend == Backend::Firewalld).then(|| zone.to_string()),
            nft_rules: None,
        }
    }

    pub fn nft_handles(&self) -> Option<NftHandles> {
        NftHandles::decode(self.nft_rules.as_deref()?, "containers")
    }

    pub fn backend(&self) -> Option<Backend> {
        Backend::from_name(&self.backend)
    }

    /// The addresses; a damaged entry is skipped, not fatal.
    pub fn ips(&self) -> Vec<IpNet> {
        self.ips.iter().filter_map(|ip| ip.parse().ok()).collect()
    }
}

fn directory(network: &str) -> String {
    format!("attachments/{network}")
}

fn path(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{}/{container_id}:{ifname}", directory(network))
}

pub fn write(network: &str, record: &Record) -> Result<()> {
    let text = serde_json::to_vec(record).map_err(|e| internal(format!("encoding an attachment record: {e}")))?;
    state::replace(&path(network, &record.container_id, &record.ifname), &text)?;
    Ok(())
}

pub fn read(network: &str, container_id: &str, ifname: &str) -> Result<Option<Record>> {
    read_path(&path(network, container_id, ifname))
}

fn read_path(path: &str) -> Result<Option<Record>> {
    let Some(bytes) = state::read(path)? else { return Ok(None) };
    match serde_json::from_slice(&bytes) {
        Ok(record) => Ok(Some(record)),
        Err(e) => {
            cni_plugin_sdk::warn!("firewall: ignoring the unreadable attachment record {path}: {e}");
            Ok(None)
        }
    }
}

pub fn remove(network: &str, container_id: &str, ifname: &str) -> Result<()> {
    state::remove(&path(network, container_id, ifname))?;
    Ok(())
}

/// Every record of the network, with the file name it is stored under.
pub fn all(network: &str) -> Result<Vec<(String, Record)>> {
    let dir = directory(network);
    let mut out = Vec::new();
    for name in state::files(&dir)? {
        if let Some(record) = read_path(&format!("{dir}/{name}"))? {
            out.push((name, record));
        }
    }
    Ok(out)
}

pub fn remove_file(network: &str, name: &str) -> Result<()> {
    state::remove(&format!("{}/{name}", directory(network)))?;
    Ok(())
}
