//! The tuning config (the reference's TuningConf): fields, their overrides
//! from `args.cni`, `runtimeConfig` and CNI_ARGS, the duplicate-key check,
//! sysctl keys turned into /proc/sys paths, and the admin's allowlist.

use std::fmt;

use cni_plugin_sdk::args::CniArgs;
use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::net::{format_mac, parse_mac};
use cni_plugin_sdk::netfilter::go_quote;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Where the admin lists the sysctls tuning may set (one regular
/// expression a line); without the file, any net.* key is allowed.
pub const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// The reference's default `dataDir` for the backups of link settings.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// `sysctl` entries in the order the config gives them (Go iterates its
/// map in random order; applying and restoring in a fixed order is
/// reproducible).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sysctls(pub Vec<(String, String)>);

impl Sysctls {
    /// Sets `key`, replacing an earlier value in place.
    fn set(&mut self, key: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl<'de> Deserialize<'de> for Sysctls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Sysctls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of sysctl keys and string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Sysctls, A::Error> {
                let mut out = Sysctls::default();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    out.set(key, value);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawConf {
    name: String,
    sysctl: Option<Sysctls>,
    mac: String,
    promisc: bool,
    mtu: i64,
    tx_q_len: Option<i64>,
    allmulti: Option<bool>,
    runtime_config: RuntimeConfig,
    args: Option<Args>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    mac: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    cni: Option<ArgsCni>,
}

/// `args.cni`: each field present overrides the config's.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ArgsCni {
    sysctl: Option<Sysctls>,
    mac: Option<String>,
    promisc: Option<bool>,
    mtu: Option<i64>,
    allmulti: Option<bool>,
    tx_q_len: Option<i64>,
}

/// What to do, after every override.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TuningConf {
    pub name: String,
    pub sysctl: Sysctls,
    /// The MAC as given (for messages) and parsed.
    pub mac: Option<(String, Vec<u8>)>,
    /// Only "turn on": false leaves promiscuous mode as it is.
    pub promisc: bool,
    pub mtu: Option<u32>,
    pub tx_queue_len: Option<u32>,
    pub allmulti: Option<bool>,
}

impl TuningConf {
    /// Parses the config with CNI_ARGS. MAC precedence, as in the
    /// reference: args.cni.mac, then runtimeConfig.mac, then CNI_ARGS MAC,
    /// then `mac`.
    pub fn load(config_text: &str, cni_args: &str) -> Result<TuningConf> {
        check_duplicate_sysctls(config_text)?;
        let raw: RawConf = config::parse(config_text)?;
        let mut mac = raw.mac;
        let args = CniArgs::parse(cni_args, &["MAC"])?;
        if let Some(from_args) = args.get("MAC").filter(|m| !m.is_empty()) {
            mac = from_args.to_string();
        }
        if !raw.runtime_config.mac.is_empty() {
            mac = raw.runtime_config.mac;
        }
        let mut sysctl = raw.sysctl.unwrap_or_default();
        let (mut promisc, mut mtu, mut allmulti, mut tx_q_len) = (raw.promisc, raw.mtu, raw.allmulti, raw.tx_q_len);
        // The reference writes args.cni.sysctl into a nil map (a panic)
        // when the config has no `sysctl`; here the entries just merge.
        if let Some(cni) = raw.args.and_then(|a| a.cni) {
            for (key, value) in cni.sysctl.map(|s| s.0).unwrap_or_default() {
                sysctl.set(key, value);
            }
            mac = cni.mac.unwrap_or(mac);
            promisc = cni.promisc.unwrap_or(promisc);
            mtu = cni.mtu.unwrap_or(mtu);
            allmulti = cni.allmulti.or(allmulti);
            tx_q_len = cni.tx_q_len.or(tx_q_len);
        }
        let mac = match mac.as_str() {
            "" => None,
            text => {
                let parsed = parse_mac(text).ok_or_else(|| {
                    internal(format!("invalid args {text} for MAC addr: address {text}: invalid MAC address"))
                })?;
                Some((text.to_string(), parsed))
            }
        };
        let mtu = match mtu {
            0 => None,
            m => Some(u32::try_from(m).map_err(|_| internal(format!("invalid MTU {m}")))?),
        };
        let tx_queue_len = match tx_q_len {
            None => None,
            Some(q) => Some(u32::try_from(q).map_err(|_| internal(format!("invalid txQLen {q}")))?),
        };
        Ok(TuningConf { name: raw.name, sysctl, mac, promisc, mtu, tx_queue_len, allmulti })
    }

    /// Whether any link setting is asked for (then its original value is
    /// saved for DEL).
    pub fn changes_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.tx_queue_len.is_some()
    }

    /// The MAC as the kernel reports it (lower-case).
    pub fn mac_text(&self) -> Option<String> {
        self.mac.as_ref().map(|(_, bytes)| format_mac(bytes))
    }
}

/// The reference refuses a `sysctl` object naming a key twice, which a
/// JSON object (and so the parsed config) would silently collapse: read
/// the raw text.
fn check_duplicate_sysctls(config_text: &str) -> Result<()> {
    struct TopLevel;
    impl<'de> Visitor<'de> for TopLevel {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            // Go matches the key case-insensitively; all matching keys fill
            // the one map, so a key repeated across them counts too.
            let mut seen = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key.eq_ignore_ascii_case("sysctl") {
                    for name in map.next_value::<Keys>()?.0 {
                        if seen.contains(&name) {
                            return Err(de::Error::custom("duplicated sysctl keys are not allowed"));
                        }
                        seen.push(name);
                    }
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    /// The keys of an object, repeats kept; anything but an object has
    /// none (its type error is the config parser's to report).
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Keys, D::Error> {
            deserializer.deserialize_any(KeysVisitor)
        }
    }
    struct KeysVisitor;
    impl<'de> Visitor<'de> for KeysVisitor {
        type Value = Keys;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Keys, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(Keys(keys))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Keys, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Keys(Vec::new()))
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
        fn visit_unit<E>(self) -> std::result::Result<Keys, E> {
            Ok(Keys(Vec::new()))
        }
    }

    let mut deserializer = serde_json::Deserializer::from_str(config_text);
    match deserializer.deserialize_map(TopLevel) {
        Ok(()) => Ok(()),
        Err(e) if e.is_data() && e.to_string().starts_with("duplicated sysctl keys") => {
            Err(internal("duplicated sysctl keys are not allowed"))
        }
        // Not an object, or not JSON: the config parser says why.
        Err(_) => Ok(()),
    }
}

/// A sysctl key as the reference reads it: dots become slashes, then the
/// first `IFNAME` becomes the interface name (so names with dots work),
/// the path is cleaned like Go's filepath.Join, and it must stay under
/// /proc/sys/net/. Returns the path below /proc/sys ("net/core/somaxconn").
pub fn sysctl_path(key: &str, ifname: &str) -> Result<String> {
    let key = key.replace('.', "/").replacen("IFNAME", ifname, 1);
    let full = format!("/proc/sys/{key}");
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    match parts.as_slice() {
        ["proc", "sys", "net", _, ..] => Ok(parts[2..].join("/")),
        _ => Err(internal(format!("invalid net sysctl key: {}", go_quote(&key)))),
    }
}

/// The admin's allowlist: regular expressions (matched anywhere in the
/// key, as Go's regexp.MatchString does), or None without the file.
pub fn read_allowlist() -> Result<Option<Vec<String>>> {
    let read =
        cni_plugin_sdk::files::read(ALLOWLIST).map_err(|e| internal(format!("reading {ALLOWLIST}: {}", e.message)))?;
    let Some(bytes) = read else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()))
}

/// Every configured key must match a line of the allowlist, if there is one.
pub fn check_allowlist(sysctl: &Sysctls, allowlist: Option<&[String]>) -> Result<()> {
    let Some(allowlist) = allowlist else { return Ok(()) };
    let mut patterns = Vec::new();
    for line in allowlist {
        patterns.push(regex_lite::Regex::new(line).map_err(|e| internal(format!("error parsing regexp: {e}")))?);
    }
    for (key, _) in &sysctl.0 {
        if !patterns.iter().any(|p| p.is_match(key)) {
            return Err(internal(format!(
                "Sysctl {key} is not allowed. Only the following sysctls are allowed: [{}]",
                allowlist.join(" ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(config: &str) -> TuningConf {
        TuningConf::load(config, "").unwrap()
    }

    #[test]
    fn every_field_and_its_defaults() {
        let conf = load(
            r#"{"name":"n","sysctl":{"net.core.somaxconn":"500"},"mac":"c2:11:22:33:44:55","promisc":true,"mtu":1400,"txQLen":20,"allmulti":false}"#,
        );
        assert_eq!(conf.sysctl.0, [("net.core.somaxconn".to_string(), "500".to_string())]);
        assert_eq!(conf.mac_text().as_deref(), Some("c2:11:22:33:44:55"));
        assert!(conf.promisc);
        assert_eq!((conf.mtu, conf.tx_queue_len, conf.allmulti), (Some(1400), Some(20), Some(false)));
        let empty = load(r#"{"name":"n"}"#);
        assert!(!empty.changes_link() && empty.sysctl.0.is_empty());
        // Go's keys are case-insensitive.
        assert_eq!(load(r#"{"name":"n","TXQLEN":0}"#).tx_queue_len, Some(0));
    }

    #[test]
    fn mac_precedence_is_args_then_runtime_config_then_cni_args_then_config() {
        let all = r#"{"name":"n","mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:03"},"args":{"cni":{"mac":"02:00:00:00:00:04"}}}"#;
        let env = "IgnoreUnknown=1;MAC=02:00:00:00:00:02";
        assert_eq!(TuningConf::load(all, env).unwrap().mac_text().as_deref(), Some("02:00:00:00:00:04"));
        let no_args = r#"{"name":"n","mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#;
        assert_eq!(TuningConf::load(no_args, env).unwrap().mac_text().as_deref(), Some("02:00:00:00:00:03"));
        let config_only = r#"{"name":"n","mac":"02:00:00:00:00:01"}"#;
        assert_eq!(TuningConf::load(config_only, env).unwrap().mac_text().as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(TuningConf::load(config_only, "").unwrap().mac_text().as_deref(), Some("02:00:00:00:00:01"));
        assert!(TuningConf::load(config_only, "K8S_POD_NAME=x").is_err(), "unknown CNI_ARGS need IgnoreUnknown");
    }

    #[test]
    fn args_cni_override_every_field_and_merge_sysctls() {
        let conf = load(
            r#"{"name":"n","sysctl":{"net.a":"1","net.b":"2"},"promisc":true,"mtu":1400,
                "args":{"cni":{"sysctl":{"net.b":"3","net.c":"4"},"promisc":false,"mtu":1300,"allmulti":true,"txQLen":5}}}"#,
        );
        let keys: Vec<(&str, &str)> = conf.sysctl.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(keys, [("net.a", "1"), ("net.b", "3"), ("net.c", "4")]);
        assert!(!conf.promisc);
        assert_eq!((conf.mtu, conf.allmulti, conf.tx_queue_len), (Some(1300), Some(true), Some(5)));
        // Without a top-level sysctl map (the reference panics here).
        assert_eq!(load(r#"{"name":"n","args":{"cni":{"sysctl":{"net.x":"1"}}}}"#).sysctl.0.len(), 1);
    }

    #[test]
    fn duplicate_sysctl_keys_are_refused() {
        let err = TuningConf::load(r#"{"name":"n","sysctl":{"net.a":"1","net.a":"2"}}"#, "").unwrap_err();
        assert_eq!(err.msg, "duplicated sysctl keys are not allowed");
        assert!(TuningConf::load(r#"{"name":"n","sysctl":{"net.a":"1"},"SYSCTL":{"net.a":"1"}}"#, "").is_err());
        assert!(
            TuningConf::load(r#"{"name":"n","sysctl":{"net.a":"1"},"other":{"net.a":"1","net.a":"1"}}"#, "").is_ok()
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for bad in [
            r#"{"sysctl":{"net.a":1}}"#,
            r#"{"mac":"zz"}"#,
            r#"{"mtu":-1}"#,
            r#"{"txQLen":-5}"#,
            r#"{"sysctl":[]}"#,
            "[1]",
        ] {
            assert!(TuningConf::load(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn sysctl_keys_become_paths_under_net_only() {
        assert_eq!(sysctl_path("net.core.somaxconn", "eth0").unwrap(), "net/core/somaxconn");
        assert_eq!(
            sysctl_path("net.ipv4.conf.IFNAME.arp_filter", "eth0.100").unwrap(),
            "net/ipv4/conf/eth0.100/arp_filter"
        );
        assert_eq!(sysctl_path("net/ipv4/ip_forward", "eth0").unwrap(), "net/ipv4/ip_forward");
        // Dots become slashes first, so a key cannot spell "..": its dots
        // only make empty path parts, which are cleaned away.
        assert_eq!(sysctl_path("net.ipv4..ip_forward", "eth0").unwrap(), "net/ipv4/ip_forward");
        assert_eq!(sysctl_path("net/../kernel/hostname", "eth0").unwrap(), "net/kernel/hostname");
        for bad in ["kernel.hostname", "net", "netx.y", "", "/net"] {
            let err = sysctl_path(bad, "eth0").unwrap_err();
            assert!(err.msg.starts_with("invalid net sysctl key"), "{bad}: {}", err.msg);
        }
        // Only an interface name could bring ".." in (the host refuses such
        // names); the path is resolved before the check.
        assert!(sysctl_path("net/IFNAME/kernel/hostname", "..").is_err());
        assert_eq!(
            sysctl_path("kernel.hostname", "eth0").unwrap_err().msg,
            r#"invalid net sysctl key: "kernel/hostname""#
        );
    }

    #[test]
    fn the_allowlist_matches_anywhere_in_the_key_like_go() {
        let sysctl = |k: &str| Sysctls(vec![(k.to_string(), "1".to_string())]);
        let list = vec![r"^net\.core\.somaxconn$".to_string(), r"conf\.IFNAME\.".to_string()];
        assert!(check_allowlist(&sysctl("net.core.somaxconn"), Some(&list)).is_ok());
        assert!(check_allowlist(&sysctl("net.ipv4.conf.IFNAME.arp_filter"), Some(&list)).is_ok());
        let err = check_allowlist(&sysctl("net.ipv4.ip_forward"), Some(&list)).unwrap_err();
        assert_eq!(
            err.msg,
            r"Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: [^net\.core\.somaxconn$ conf\.IFNAME\.]"
        );
        assert!(check_allowlist(&sysctl("net.anything"), None).is_ok());
        assert!(check_allowlist(&sysctl("net.a"), Some(&["(".to_string()])).is_err());
    }
}
