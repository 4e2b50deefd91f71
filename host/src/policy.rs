//! What an invocation may do: the plugin's manifest, narrowed by the admin's
//! policy file, applied to this request.
//!
//! - A built-in plugin gets what its manifest declares (we vetted it), unless
//!   the policy file narrows it.
//! - A third-party plugin gets what its manifest declares *and* the policy
//!   file grants; with no policy entry it gets only logging.
//! - Host objects are reached only through the config keys the manifest
//!   declares, each with a role (see `object-role` in wit/cni.wit): a key's
//!   value (or its declared default) is the object, and the role says what
//!   the plugin may do to it. Nothing is inferred from other strings. For a
//!   third-party plugin a value counts only if the policy's patterns for its
//!   kind admit it, and keys a pod or an earlier plugin fills in (`args`,
//!   `runtimeConfig`, `prevResult`) only if the policy lists them.
//! - Links this invocation created are its own to change (the caller adds
//!   those).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bindings::cni_wasm::plugin::cni::{Capability, Manifest, ObjectDefault, ObjectRole};
use crate::imports::capability_name;
use crate::protocol::config::RequestConfig;

/// Where the admin's policy lives; CNI_WASM_POLICY overrides it.
pub const DEFAULT_POLICY_PATH: &str = "/etc/cni-wasm/policy.json";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MEMORY_MIB: u64 = 64;
/// A host-local ADD on a full /16 makes about 70 000 state calls.
const DEFAULT_MAX_CALLS: u64 = 1 << 20;
/// The longest iptables chain name (XT_EXTENSION_MAXNAMELEN - 1).
const MAX_CHAIN_NAME: usize = 28;

/// The admin's policy file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyFile {
    pub defaults: Limits,
    /// Where to write the audit log (CNI_WASM_AUDIT overrides it).
    pub audit: Option<String>,
    pub plugins: std::collections::BTreeMap<String, PluginPolicy>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    pub timeout_ms: Option<u64>,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// The most capability calls one invocation may make.
    pub max_calls: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginPolicy {
    /// Capability family names ("links", "state", ...).
    pub capabilities: Option<Vec<String>>,
    /// Globs the names of role-keyed host links must match ("cni*", "eth0").
    pub host_links: Option<Vec<String>>,
    /// Globs of host sysctl keys the manifest may declare.
    pub host_sysctls: Option<Vec<String>>,
    /// Globs of host files (fixed or role-keyed) the plugin may read.
    pub readable_files: Option<Vec<String>>,
    /// Globs of nftables tables ("ip cni_*") and iptables chains.
    pub nft_tables: Option<Vec<String>>,
    pub iptables_chains: Option<Vec<String>>,
    /// Globs of daemon sockets (socket-role keys) the plugin may ask.
    pub daemon_sockets: Option<Vec<String>>,
    /// Declared object keys under `args`, `runtimeConfig` or `prevResult`
    /// that count for this plugin (a third party's count only if listed).
    pub runtime_keys: Option<Vec<String>>,
    /// A third-party plugin's state directory (its manifest cannot choose).
    pub state_dir: Option<PathBuf>,
    #[serde(flatten)]
    pub limits: Limits,
}

impl PluginPolicy {
    /// The patterns a role-keyed object's value must match, if listed.
    pub fn patterns_for(&self, role: ObjectRole) -> Option<&Vec<String>> {
        match role {
            ObjectRole::Parent | ObjectRole::Managed | ObjectRole::Movable => self.host_links.as_ref(),
            ObjectRole::File => self.readable_files.as_ref(),
            ObjectRole::Chain => self.iptables_chains.as_ref(),
            ObjectRole::Socket => self.daemon_sockets.as_ref(),
        }
    }
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

/// A host object a role-keyed config key named, resolved for this request.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantedObject {
    pub role: ObjectRole,
    pub name: String,
    /// For managed links: "<name>.<n>" goes with it.
    pub sub_interfaces: bool,
}

/// What one invocation of one plugin may do.
#[derive(Debug, Clone)]
pub struct Grants {
    pub plugin: String,
    pub third_party: bool,
    capabilities: Vec<Capability>,
    /// Host objects named by the manifest's object keys.
    objects: Vec<GrantedObject>,
    /// A parent key was absent and defaults to the default-route link.
    default_route_parent: bool,
    host_sysctls: Vec<String>,
    /// Fixed readable host files (the manifest's, as the policy admits).
    readable_files: Vec<String>,
    pub nft_tables: Vec<String>,
    pub iptables_chains: Vec<String>,
    pub state_root: Option<PathBuf>,
    /// Conntrack entries may be deleted only by a filter naming one of these
    /// host ports (the request's portMappings) or addresses (prevResult's).
    pub conntrack_ports: Vec<u16>,
    pub conntrack_addresses: Vec<std::net::IpAddr>,
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub max_calls: u64,
}

/// Keys whose values a pod or an earlier plugin chose, not the admin.
pub fn is_runtime_key(key: &str) -> bool {
    let first = key.split('.').next().unwrap_or_default();
    ["args", "runtimeConfig", "prevResult"].iter().any(|k| k.eq_ignore_ascii_case(first))
}

impl Grants {
    /// Before the manifest is known: nothing but logging.
    pub fn none(plugin: &str) -> Self {
        Grants {
            plugin: plugin.to_string(),
            third_party: false,
            capabilities: Vec::new(),
            objects: Vec::new(),
            default_route_parent: false,
            host_sysctls: Vec::new(),
            readable_files: Vec::new(),
            nft_tables: Vec::new(),
            iptables_chains: Vec::new(),
            state_root: None,
            conntrack_ports: Vec::new(),
            conntrack_addresses: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: (DEFAULT_MEMORY_MIB << 20) as usize,
            max_calls: DEFAULT_MAX_CALLS,
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
        // What the policy lists narrows a built-in; a third party gets only
        // what its entry lists (no entry, or no list: nothing).
        let admits = |value: &str, listed: Option<&Vec<String>>| -> bool {
            match listed {
                Some(patterns) => patterns.iter().any(|p| glob(p, value)),
                None => !third_party,
            }
        };
        let narrow = |declared: &[String], listed: Option<&Vec<String>>| -> Vec<String> {
            declared.iter().filter(|d| admits(d, listed)).cloned().collect()
        };
        let listed = |field: fn(&PluginPolicy) -> &Option<Vec<String>>| entry.and_then(|e| field(e).as_ref());
        let capabilities = manifest
            .capabilities
            .iter()
            .copied()
            .filter(|c| match listed(|e| &e.capabilities) {
                Some(granted) => granted.iter().any(|g| g == capability_name(*c)),
                None => !third_party,
            })
            .collect();

        let mut objects = Vec::new();
        let mut default_route_parent = false;
        for object in &manifest.objects {
            if is_runtime_key(&object.key)
                && third_party
                && !listed(|e| &e.runtime_keys)
                    .is_some_and(|keys| keys.iter().any(|k| k.eq_ignore_ascii_case(&object.key)))
            {
                continue;
            }
            let patterns = entry.and_then(|e| e.patterns_for(object.role));
            let name = match (config.string(&object.key).filter(|v| !v.is_empty()), &object.default) {
                (Some(value), _) => value.to_string(),
                (None, ObjectDefault::Name(name)) => name.clone(),
                (None, ObjectDefault::DefaultRouteLink) => {
                    // Resolved when used; a third party needs the policy
                    // to admit any link name for it.
                    default_route_parent |= object.role == ObjectRole::Parent && admits("*", patterns);
                    continue;
                }
                (None, ObjectDefault::None) => continue,
            };
            // A chain name iptables would refuse (or read as more than one
            // token) names no chain.
            let valid = object.role != ObjectRole::Chain
                || (name.len() <= MAX_CHAIN_NAME
                    && name.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\''));
            if valid && admits(&name, patterns) {
                objects.push(GrantedObject { role: object.role, name, sub_interfaces: object.sub_interfaces });
            }
        }

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
            objects,
            default_route_parent,
            host_sysctls: narrow(&manifest.host_sysctls, listed(|e| &e.host_sysctls)),
            readable_files: narrow(&manifest.readable_files, listed(|e| &e.readable_files)),
            nft_tables: narrow(&manifest.nft_tables, listed(|e| &e.nft_tables)),
            iptables_chains: narrow(&manifest.iptables_chains, listed(|e| &e.iptables_chains)),
            state_root,
            conntrack_ports: config.mapped_host_ports(),
            conntrack_addresses: config.result_addresses(),
            timeout: timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_TIMEOUT),
            memory_bytes: (memory_mib << 20) as usize,
            max_calls: limits.max_calls.or(policy.defaults.max_calls).unwrap_or(DEFAULT_MAX_CALLS),
        }
    }

    /// Narrows these grants to no more than `limit` (a third-party
    /// caller's): families, objects, sysctls, files, tables and chains
    /// both have, and the shorter timeout and smaller memory.
    pub fn narrow_to(&mut self, limit: &Grants) {
        self.capabilities.retain(|c| limit.has(*c));
        self.objects.retain(|o| limit.objects.contains(o));
        self.default_route_parent &= limit.default_route_parent;
        self.host_sysctls.retain(|key| limit.host_sysctls.contains(key) || limit.allows_host_sysctl(key));
        self.readable_files.retain(|path| limit.allows_file(path));
        self.nft_tables.retain(|table| limit.nft_tables.contains(table));
        self.iptables_chains.retain(|chain| limit.iptables_chains.iter().any(|p| glob(p, chain)));
        self.conntrack_ports.retain(|port| limit.conntrack_ports.contains(port));
        self.conntrack_addresses.retain(|address| limit.conntrack_addresses.contains(address));
        self.timeout = self.timeout.min(limit.timeout);
        self.memory_bytes = self.memory_bytes.min(limit.memory_bytes);
        self.max_calls = self.max_calls.min(limit.max_calls);
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    fn object(&self, role: ObjectRole, name: &str) -> bool {
        self.objects.iter().any(|o| o.role == role && o.name == name)
    }

    /// Whether the config names `name` as a host link the plugin manages
    /// (or as a sub-interface of one, where declared).
    pub fn manages_host_link(&self, name: &str) -> bool {
        self.objects.iter().any(|o| {
            o.role == ObjectRole::Managed
                && (o.name == name
                    || (o.sub_interfaces
                        && name
                            .strip_prefix(o.name.as_str())
                            .and_then(|rest| rest.strip_prefix('.'))
                            .is_some_and(|vlan| !vlan.is_empty() && vlan.bytes().all(|b| b.is_ascii_digit()))))
        })
    }

    /// Whether the config names `name` as a parent (a managed link may
    /// have children too).
    pub fn parents_host_link(&self, name: &str) -> bool {
        self.object(ObjectRole::Parent, name) || self.manages_host_link(name)
    }

    /// Whether an absent parent key lets the default-route link be one.
    pub fn default_route_parent(&self) -> bool {
        self.default_route_parent
    }

    /// Whether the config names `name` as a host link to move.
    pub fn moves_host_link(&self, name: &str) -> bool {
        self.object(ObjectRole::Movable, name)
    }

    /// Whether the config names the iptables chain `name` as the plugin's.
    pub fn names_chain(&self, name: &str) -> bool {
        self.object(ObjectRole::Chain, name)
    }

    /// A listed key matches exactly, or segment by segment where the list
    /// says `*` ("net/ipv4/conf/*/route_localnet": that setting of any link).
    pub fn allows_host_sysctl(&self, key: &str) -> bool {
        self.host_sysctls.iter().any(|pattern| sysctl_pattern_matches(pattern, key))
    }

    /// A fixed file of the manifest, or one a file-role key names.
    pub fn allows_file(&self, path: &str) -> bool {
        self.readable_files.iter().any(|f| f == path) || self.object(ObjectRole::File, path)
    }

    /// A daemon socket a socket-role key names.
    pub fn allows_socket(&self, path: &str) -> bool {
        self.object(ObjectRole::Socket, path)
    }

    pub fn state_root(&self) -> Option<&Path> {
        self.state_root.as_deref()
    }
}

/// Shell-style globs: `*` any run, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn matches(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], t) || (!t.is_empty() && matches(p, &t[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::cni_wasm::plugin::cni::ObjectKey;

    fn key(key: &str, role: ObjectRole, default: ObjectDefault) -> ObjectKey {
        ObjectKey { key: key.into(), role, default, sub_interfaces: false }
    }

    fn manifest(objects: Vec<ObjectKey>) -> Manifest {
        Manifest {
            cni_versions: vec![],
            capabilities: vec![Capability::Links, Capability::Netfilter],
            objects,
            host_sysctls: vec![],
            state: None,
            readable_files: vec![],
            nft_tables: vec![],
            iptables_chains: vec!["CNI-DN-*".into()],
        }
    }

    fn config(json: &str) -> RequestConfig {
        RequestConfig::parse(json.as_bytes().to_vec()).unwrap()
    }

    fn policy(json: &str) -> PolicyFile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_declared_keys_name_host_objects() {
        let manifest = manifest(vec![
            key("bridge", ObjectRole::Managed, ObjectDefault::Name("cni0".into())),
            key("master", ObjectRole::Parent, ObjectDefault::None),
            key("iptablesAdminChainName", ObjectRole::Chain, ObjectDefault::None),
        ]);
        let request = config(
            r#"{"name": "n", "master": "eth0", "iptablesAdminChainName": "CNI-ADMIN-OVERRIDES-OF-PODS",
                "other": "eth1", "args": {"x": "eth2"}, "prevResult": {"interfaces": [{"name": "eth3"}]}}"#,
        );
        let grants = Grants::new("p", false, &manifest, &PolicyFile::default(), &request);
        assert!(grants.manages_host_link("cni0"), "the declared default");
        assert!(grants.parents_host_link("eth0") && !grants.manages_host_link("eth0"), "a parent is not managed");
        assert!(grants.names_chain("CNI-ADMIN-OVERRIDES-OF-PODS"));
        let long = config(r#"{"name": "n", "iptablesAdminChainName": "A-NAME-LONGER-THAN-28-CHARACTERS"}"#);
        let grants_long = Grants::new("p", false, &manifest, &PolicyFile::default(), &long);
        assert!(!grants_long.names_chain("A-NAME-LONGER-THAN-28-CHARACTERS"), "longer than iptables allows");
        for unnamed in ["eth1", "eth2", "eth3", "n"] {
            assert!(!grants.manages_host_link(unnamed) && !grants.parents_host_link(unnamed), "{unnamed}");
        }
    }

    #[test]
    fn sub_interfaces_go_with_a_managed_link_only_where_declared() {
        let mut bridge = key("bridge", ObjectRole::Managed, ObjectDefault::Name("cni0".into()));
        let request = config(r#"{"name": "n"}"#);
        let plain = Grants::new("p", false, &manifest(vec![bridge.clone()]), &PolicyFile::default(), &request);
        assert!(!plain.manages_host_link("cni0.100"));
        bridge.sub_interfaces = true;
        let grants = Grants::new("p", false, &manifest(vec![bridge]), &PolicyFile::default(), &request);
        assert!(grants.manages_host_link("cni0.100"));
        assert!(
            !grants.manages_host_link("cni0.")
                && !grants.manages_host_link("cni0.x")
                && !grants.manages_host_link("cni00")
        );
    }

    #[test]
    fn a_third_party_gets_only_what_its_policy_admits() {
        let manifest = manifest(vec![
            key("master", ObjectRole::Parent, ObjectDefault::None),
            key("prevResult.interfaces.0.name", ObjectRole::Managed, ObjectDefault::None),
        ]);
        let request = config(r#"{"name": "n", "master": "eth0", "prevResult": {"interfaces": [{"name": "cni0"}]}}"#);
        let families_only = policy(r#"{"plugins": {"p": {"capabilities": ["links", "netfilter"]}}}"#);
        let grants = Grants::new("p", true, &manifest, &families_only, &request);
        assert!(grants.has(Capability::Links));
        assert!(!grants.parents_host_link("eth0"), "no link patterns: no links");
        assert!(grants.iptables_chains.is_empty(), "no chain patterns: not the manifest's chains either");

        let patterns = policy(r#"{"plugins": {"p": {"hostLinks": ["eth*", "cni*"], "iptablesChains": ["CNI-DN-*"]}}}"#);
        let grants = Grants::new("p", true, &manifest, &patterns, &request);
        assert!(grants.parents_host_link("eth0"));
        assert!(!grants.manages_host_link("cni0"), "prevResult counts only where the policy lists the key");
        assert_eq!(grants.iptables_chains, ["CNI-DN-*"]);

        let runtime =
            policy(r#"{"plugins": {"p": {"hostLinks": ["cni*"], "runtimeKeys": ["prevResult.interfaces.0.name"]}}}"#);
        let grants = Grants::new("p", true, &manifest, &runtime, &request);
        assert!(grants.manages_host_link("cni0") && !grants.parents_host_link("eth0"));
    }

    #[test]
    fn a_default_route_parent_is_granted_only_for_an_absent_key() {
        let manifest = manifest(vec![key("master", ObjectRole::Parent, ObjectDefault::DefaultRouteLink)]);
        let absent = Grants::new("p", false, &manifest, &PolicyFile::default(), &config(r#"{"name": "n"}"#));
        assert!(absent.default_route_parent());
        let named =
            Grants::new("p", false, &manifest, &PolicyFile::default(), &config(r#"{"name": "n", "master": "eth1"}"#));
        assert!(!named.default_route_parent() && named.parents_host_link("eth1"));
    }

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob("CNI-DN-*", "CNI-DN-748d4dd0c88c50c10332c"));
        assert!(glob("CNI-????", "CNI-abcd") && !glob("CNI-????", "CNI-abc"));
        assert!(!glob("CNI-DN-*", "KUBE-MARK-MASQ"));
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
