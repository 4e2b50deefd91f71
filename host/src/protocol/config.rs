//! The request config on stdin: the fields the protocol edge itself needs.
//! Plugins get the raw bytes and parse their own fields.

use serde_json::{Map, Value};

use super::error::{CniError, code};
use super::version;

/// Looks a key up the way Go's encoding/json fills a struct field: every
/// key that matches case-insensitively assigns the field in turn, so the
/// last one wins (`"name"` then `"Name"` is the second). The SDK's config
/// parser does the same, so the host validates what the plugin reads.
pub fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Looks up a dotted path ("ipam.dataDir", "prevResult.interfaces.0.name")
/// case-insensitively; a number indexes an array.
pub fn get_path<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = get_ci(object, parts.next()?)?;
    for part in parts {
        value = match value {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            Value::Object(map) => get_ci(map, part)?,
            _ => return None,
        };
    }
    Some(value)
}

/// `^[A-Za-z0-9][A-Za-z0-9_.\-]*$`: container ids and network names.
pub fn is_valid_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Clone)]
pub struct RequestConfig {
    /// Exactly what was read from stdin (delegates get these bytes).
    pub raw: Vec<u8>,
    pub object: Map<String, Value>,
    /// As written; "0.1.0" when absent.
    pub cni_version: String,
    /// The network name (validated here; plugins read it themselves).
    pub name: String,
}

impl RequestConfig {
    /// No config (VERSION reads no stdin).
    pub fn empty() -> RequestConfig {
        RequestConfig {
            raw: b"{}".to_vec(),
            object: Map::new(),
            cni_version: version::CURRENT.to_string(),
            name: String::new(),
        }
    }

    pub fn parse(raw: Vec<u8>) -> Result<RequestConfig, CniError> {
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| CniError::new(code::DECODING_FAILURE, format!("error unmarshall network config: {e}")))?;
        let Value::Object(object) = value else {
            return Err(CniError::new(code::DECODING_FAILURE, "error unmarshall network config: not a JSON object"));
        };
        let cni_version = match get_ci(&object, "cniVersion") {
            None | Some(Value::Null) => "0.1.0".to_string(),
            Some(Value::String(v)) if v.is_empty() => "0.1.0".to_string(),
            Some(Value::String(v)) => v.clone(),
            Some(other) => {
                return Err(CniError::new(code::DECODING_FAILURE, format!("cniVersion must be a string, not {other}")));
            }
        };
        let name = match get_ci(&object, "name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "missing network name"));
            }
            Some(other) => {
                return Err(CniError::new(
                    code::DECODING_FAILURE,
                    format!("network name must be a string, not {other}"),
                ));
            }
        };
        if !is_valid_identifier(&name) {
            return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "invalid characters found in network name")
                .with_details(format!("network name {name:?}: must match ^[A-Za-z0-9][A-Za-z0-9_.\\-]*$")));
        }
        Ok(RequestConfig { raw, object, cni_version, name })
    }

    pub fn prev_result(&self) -> Option<&Value> {
        get_ci(&self.object, "prevResult").filter(|v| !v.is_null())
    }

    pub fn string(&self, path: &str) -> Option<&str> {
        get_path(&self.object, path).and_then(Value::as_str)
    }

    /// GC's list of attachments that are still valid; the legacy key
    /// `cni.dev/attachments` is accepted too (libcni sends both).
    pub fn valid_attachments(&self) -> Result<Vec<Attachment>, CniError> {
        let list = get_ci(&self.object, "cni.dev/valid-attachments")
            .or_else(|| get_ci(&self.object, "cni.dev/attachments"))
            .filter(|v| !v.is_null());
        let Some(list) = list else { return Ok(Vec::new()) };
        let bad = || {
            CniError::new(code::DECODING_FAILURE, "cni.dev/valid-attachments must be a list of {containerID, ifname}")
        };
        list.as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|entry| {
                let entry = entry.as_object().ok_or_else(bad)?;
                let field = |key| get_ci(entry, key).and_then(Value::as_str).unwrap_or_default().to_string();
                Ok(Attachment { container_id: field("containerID"), ifname: field("ifname") })
            })
            .collect()
    }

    /// The host ports of `runtimeConfig.portMappings` (the `portMappings`
    /// capability argument): the only ports whose conntrack entries the
    /// invocation may delete.
    pub fn mapped_host_ports(&self) -> Vec<u16> {
        let Some(Value::Object(runtime)) = get_ci(&self.object, "runtimeConfig") else { return Vec::new() };
        let Some(Value::Array(mappings)) = get_ci(runtime, "portMappings") else { return Vec::new() };
        mappings
            .iter()
            .filter_map(|m| m.as_object().and_then(|m| get_ci(m, "hostPort")).and_then(Value::as_u64))
            .filter_map(|port| u16::try_from(port).ok())
            .collect()
    }

    /// The addresses of prevResult's `ips`: the container's own addresses.
    pub fn result_addresses(&self) -> Vec<std::net::IpAddr> {
        let Some(Value::Object(result)) = self.prev_result() else { return Vec::new() };
        let Some(Value::Array(ips)) = get_ci(result, "ips") else { return Vec::new() };
        ips.iter()
            .filter_map(|ip| ip.as_object().and_then(|ip| get_ci(ip, "address")).and_then(Value::as_str))
            .filter_map(|cidr| cidr.split('/').next()?.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RequestConfig, CniError> {
        RequestConfig::parse(text.as_bytes().to_vec())
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let config = parse(r#"{"CNIVersion": "1.0.0", "Name": "net", "IPAM": {"DataDir": "/x"}}"#).unwrap();
        assert_eq!(config.cni_version, "1.0.0");
        assert_eq!(config.name, "net");
        assert_eq!(config.string("ipam.dataDir"), Some("/x"));
    }

    #[test]
    fn a_later_case_variant_key_wins_as_in_go() {
        // Go's decoder assigns the field for every matching key, in order:
        // the host must validate what the plugin's SDK will read.
        assert_eq!(parse(r#"{"name": "n", "Name": "../x"}"#).unwrap_err().code, code::INVALID_NETWORK_CONFIG);
        assert_eq!(
            parse(r#"{"cniVersion": "1.0.0", "CNIVersion": "9.9.9", "name": "n"}"#).unwrap().cni_version,
            "9.9.9"
        );
        assert_eq!(parse(r#"{"Name": "x", "name": "n"}"#).unwrap().name, "n");
    }

    #[test]
    fn paths_index_arrays() {
        let config =
            parse(r#"{"name": "n", "prevResult": {"interfaces": [{"name": "cni0"}, {"Name": "veth1"}]}}"#).unwrap();
        assert_eq!(config.string("prevResult.interfaces.0.name"), Some("cni0"));
        assert_eq!(config.string("prevResult.interfaces.1.name"), Some("veth1"));
        assert_eq!(config.string("prevResult.interfaces.2.name"), None);
        assert_eq!(config.string("prevResult.interfaces.x.name"), None);
    }

    #[test]
    fn missing_version_means_0_1_0() {
        assert_eq!(parse(r#"{"name": "n"}"#).unwrap().cni_version, "0.1.0");
    }

    #[test]
    fn bad_input_gets_the_spec_codes() {
        assert_eq!(parse("xx").unwrap_err().code, code::DECODING_FAILURE);
        assert_eq!(parse(r#"{"cniVersion": "1.0.0"}"#).unwrap_err().code, code::INVALID_NETWORK_CONFIG);
        assert_eq!(parse(r#"{"name": "bad/name"}"#).unwrap_err().code, code::INVALID_NETWORK_CONFIG);
    }

    #[test]
    fn conntrack_scope_comes_from_port_mappings_and_prev_result() {
        let config = parse(
            r#"{"name": "n", "runtimeConfig": {"portMappings": [{"hostPort": 8080}, {"HostPort": 53}, {"hostPort": 70000}]},
                "prevResult": {"ips": [{"address": "10.0.0.2/24"}, {"address": "fd00::2/64"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.mapped_host_ports(), [8080, 53]);
        assert_eq!(
            config.result_addresses(),
            ["10.0.0.2".parse::<std::net::IpAddr>().unwrap(), "fd00::2".parse().unwrap()]
        );
        assert!(parse(r#"{"name": "n"}"#).unwrap().mapped_host_ports().is_empty());
    }

    #[test]
    fn identifiers_follow_the_spec_regex() {
        assert!(is_valid_identifier("a_b.c-1"));
        for bad in ["", "-abc", "a/b", "a b", "_a"] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
    }
}
