//! What an invocation may do: the plugin's manifest, narrowed by the admin's
//! policy file, applied to this request.
//!
//! - A built-in plugin gets what its manifest declares (we vetted it), unless
//!   the policy file narrows it.
//! - A third-party plugin gets what its manifest declares *and* the policy
//!   file grants; with no policy entry it gets only logging.
//! - In the host namespace, links (and their addresses, routes and conf/
//!   sysctls) may be changed only if the request config names them, the
//!   manifest lists them (bridge: "cni0"), or this invocation created them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bindings::cni_wasm::plugin::cni::{Capability, Manifest};
use crate::protocol::config::RequestConfig;

/// Where the admin's policy lives; CNI_WASM_POLICY overrides it.
pub const DEFAULT_POLICY_PATH: &str = "/etc/cni-wasm/policy.json";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MEMORY_MIB: u64 = 64;
/// The longest iptables chain name (XT_EXTENSION_MAXNAMELEN - 1).
const MAX_CHAIN_NAME: usize = 28;

/// The admin's policy file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyFile {
    pub defaults: Limits,
    pub plugins: std::collections::BTreeMap<String, PluginPolicy>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    pub timeout_ms: Option<u64>,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginPolicy {
    /// Capability family names ("links", "state", ...).
    pub capabilities: Option<Vec<String>>,
    pub host_links: Option<Vec<String>>,
    pub host_sysctls: Option<Vec<String>>,
    pub readable_files: Option<Vec<String>>,
    pub nft_tables: Option<Vec<String>>,
    pub iptables_chains: Option<Vec<String>>,
    /// A third-party plugin's state directory (its manifest cannot choose).
    pub state_dir: Option<PathBuf>,
    #[serde(flatten)]
    pub limits: Limits,
}

impl PolicyFile {
    /// Reads the policy; a missing file is an empty policy.
    pub fn load() -> Result<PolicyFile, String> {
        let path = std::env::var_os("CNI_WASM_POLICY").map(PathBuf::from).unwrap_or_else(|| DEFAULT_POLICY_PATH.into());
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("invalid policy file {}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PolicyFile::default()),
            Err(e) => Err(format!("reading policy file {}: {e}", path.display())),
        }
    }
}

fn sysctl_pattern_matches(pattern: &str, key: &str) -> bool {
    let (mut pattern, mut key) = (pattern.split('/'), key.split('/'));
    loop {
        match (pattern.next(), key.next()) {
            (None, None) => return true,
            (Some("*"), Some(segment)) if !segment.is_empty() && segment != "." && segment != ".." => {}
            (Some(p), Some(k)) if p == k => {}
            _ => return false,
        }
    }
}

pub fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::Links => "links",
        Capability::Addresses => "addresses",
        Capability::Routes => "routes",
        Capability::Rules => "rules",
        Capability::Neighbours => "neighbours",
        Capability::Sysctl => "sysctl",
        Capability::Tc => "tc",
        Capability::Netfilter => "netfilter",
        Capability::Conntrack => "conntrack",
        Capability::State => "state",
        Capability::Files => "files",
        Capability::Delegation => "delegation",
    }
}

/// What one invocation of one plugin may do.
#[derive(Debug, Clone)]
pub struct Grants {
    pub plugin: String,
    pub third_party: bool,
    capabilities: Vec<Capability>,
    host_links: HashSet<String>,
    host_sysctls: Vec<String>,
    /// Host files readable through `files`: the manifest's, and any absolute
    /// path the request config mentions.
    readable_files: HashSet<String>,
    /// Consulted by the netfilter interface (its host side is not built yet).
    #[allow(dead_code)]
    pub nft_tables: Vec<String>,
    #[allow(dead_code)]
    pub iptables_chains: Vec<String>,
    /// iptables chain names the request config mentions (firewall's
    /// `iptablesAdminChainName`, portmap's `externalSetMarkChain`): up to
    /// 28 characters, iptables' limit, so longer than a link name may be.
    config_chains: HashSet<String>,
    pub state_root: Option<PathBuf>,
    /// Conntrack entries may be deleted only by a filter naming one of these
    /// host ports (the request's portMappings) or addresses (prevResult's).
    pub conntrack_ports: Vec<u16>,
    pub conntrack_addresses: Vec<std::net::IpAddr>,
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl Grants {
    /// Before the manifest is known: nothing but logging.
    pub fn none(plugin: &str) -> Self {
        Grants {
            plugin: plugin.to_string(),
            third_party: false,
            capabilities: Vec::new(),
            host_links: HashSet::new(),
            host_sysctls: Vec::new(),
            readable_files: HashSet::new(),
            nft_tables: Vec::new(),
            iptables_chains: Vec::new(),
            config_chains: HashSet::new(),
            state_root: None,
            conntrack_ports: Vec::new(),
            conntrack_addresses: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: (DEFAULT_MEMORY_MIB << 20) as usize,
        }
    }

    pub fn new(
        plugin: &str,
        third_party: bool,
        manifest: &Manifest,
        policy: &PolicyFile,
        config: &RequestConfig,
    ) -> Self {
        let entry = policy.plugins.get(plugin);
        // Third-party plugins without an entry get an empty one: no grants.
        let empty = PluginPolicy { capabilities: Some(Vec::new()), ..PluginPolicy::default() };
        let entry = match (entry, third_party) {
            (Some(entry), _) => Some(entry),
            (None, true) => Some(&empty),
            (None, false) => None,
        };
        let allowed = |declared: &[String], granted: Option<&Vec<String>>| -> Vec<String> {
            match granted {
                Some(granted) => declared.iter().filter(|d| granted.contains(d)).cloned().collect(),
                None => declared.to_vec(),
            }
        };
        let capabilities = manifest
            .capabilities
            .iter()
            .copied()
            .filter(|c| match entry.and_then(|e| e.capabilities.as_ref()) {
                Some(granted) => granted.iter().any(|g| g == capability_name(*c)),
                None => true,
            })
            .collect();
        let mentioned = config.mentioned_strings();
        let mut host_links: HashSet<String> =
            allowed(&manifest.host_links, entry.and_then(|e| e.host_links.as_ref())).into_iter().collect();
        // Names the request config mentions (e.g. "bridge": "br0", or a host
        // veth in prevResult) are the runtime's and admin's choice.
        host_links.extend(mentioned.iter().filter(|s| !s.is_empty() && s.len() <= 15).map(|s| s.to_string()));
        let mut readable_files: HashSet<String> =
            allowed(&manifest.readable_files, entry.and_then(|e| e.readable_files.as_ref())).into_iter().collect();
        readable_files.extend(mentioned.iter().filter(|s| s.starts_with('/')).map(|s| s.to_string()));
        let state_root = match (&manifest.state, third_party) {
            (None, _) => None,
            (Some(_), true) => entry.and_then(|e| e.state_dir.clone()),
            (Some(location), false) => {
                let configured =
                    location.config_key.as_deref().and_then(|key| config.string(key)).filter(|s| !s.is_empty());
                Some(PathBuf::from(configured.unwrap_or(&location.default_dir)))
            }
        };
        let limits = entry.map(|e| e.limits.clone()).unwrap_or_default();
        let timeout_ms = limits.timeout_ms.or(policy.defaults.timeout_ms);
        let memory_mib = limits.memory_mib.or(policy.defaults.memory_mib).unwrap_or(DEFAULT_MEMORY_MIB);
        Grants {
            plugin: plugin.to_string(),
            third_party,
            capabilities,
            host_links,
            host_sysctls: allowed(&manifest.host_sysctls, entry.and_then(|e| e.host_sysctls.as_ref())),
            readable_files,
            nft_tables: allowed(&manifest.nft_tables, entry.and_then(|e| e.nft_tables.as_ref())),
            iptables_chains: allowed(&manifest.iptables_chains, entry.and_then(|e| e.iptables_chains.as_ref())),
            config_chains: mentioned
                .iter()
                .filter(|s| !s.is_empty() && s.len() <= MAX_CHAIN_NAME)
                .map(|s| s.to_string())
                .collect(),
            state_root,
            conntrack_ports: config.mapped_host_ports(),
            conntrack_addresses: config.result_addresses(),
            timeout: timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_TIMEOUT),
            memory_bytes: (memory_mib << 20) as usize,
        }
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Whether a host-namespace link named `name` was granted by name (the
    /// caller adds the links the invocation itself created).
    pub fn names_host_link(&self, name: &str) -> bool {
        self.host_links.contains(name)
    }

    /// A listed key matches exactly, or segment by segment where the list
    /// says `*` ("net/ipv4/conf/*/route_localnet": that setting of any link).
    /// Whether the request config names an iptables chain `name`.
    pub fn names_chain(&self, name: &str) -> bool {
        self.config_chains.contains(name)
    }

    pub fn allows_host_sysctl(&self, key: &str) -> bool {
        self.host_sysctls.iter().any(|pattern| sysctl_pattern_matches(pattern, key))
    }

    pub fn allows_file(&self, path: &str) -> bool {
        self.readable_files.contains(path)
    }

    pub fn state_root(&self) -> Option<&Path> {
        self.state_root.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_the_config_names_are_owned_up_to_iptables_length() {
        let manifest = Manifest {
            cni_versions: vec![],
            capabilities: vec![Capability::Netfilter],
            host_links: vec![],
            host_sysctls: vec![],
            state: None,
            readable_files: vec![],
            nft_tables: vec![],
            iptables_chains: vec![],
        };
        let config = RequestConfig::parse(
            br#"{"name": "n", "iptablesAdminChainName": "CNI-ADMIN-OVERRIDES-OF-PODS", "other": "A-NAME-LONGER-THAN-28-CHARACTERS"}"#.to_vec(),
        )
        .unwrap();
        let grants = Grants::new("firewall", false, &manifest, &PolicyFile::default(), &config);
        assert!(grants.names_chain("CNI-ADMIN-OVERRIDES-OF-PODS"));
        assert!(!grants.names_host_link("CNI-ADMIN-OVERRIDES-OF-PODS"), "too long for a link");
        assert!(!grants.names_chain("A-NAME-LONGER-THAN-28-CHARACTERS"));
        assert!(!grants.names_chain("CNI-FORWARD"));
    }

    #[test]
    fn a_star_stands_for_one_link_name() {
        assert!(sysctl_pattern_matches("net/ipv4/ip_forward", "net/ipv4/ip_forward"));
        assert!(sysctl_pattern_matches("net/ipv4/conf/*/route_localnet", "net/ipv4/conf/cni0/route_localnet"));
        assert!(!sysctl_pattern_matches("net/ipv4/conf/*/route_localnet", "net/ipv4/conf/cni0/forwarding"));
        assert!(!sysctl_pattern_matches("net/ipv4/conf/*/route_localnet", "net/ipv4/conf/a/b/route_localnet"));
        assert!(!sysctl_pattern_matches("net/ipv4/conf/*/route_localnet", "net/ipv4/conf/../route_localnet"));
    }
}
