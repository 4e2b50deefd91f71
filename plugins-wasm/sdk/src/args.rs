//! CNI_ARGS ("K1=V1;K2=V2"), parsed as the Go reference's `types.LoadArgs`:
//! every pair needs exactly one '='; keys are case-sensitive; a key the
//! plugin does not know is an error unless `IgnoreUnknown` is 1 or true.

use crate::error::{Error, internal};

#[derive(Debug, Default, Clone)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// `known` lists the keys the plugin understands (IgnoreUnknown is
    /// always known).
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs, Error> {
        let mut args = CniArgs::default();
        if raw.is_empty() {
            return Ok(args);
        }
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in raw.split(';') {
            let parts: Vec<&str> = pair.split('=').collect();
            let [key, value] = parts.as_slice() else {
                return Err(internal(format!("ARGS: invalid pair {pair:?}")));
            };
            if *key == "IgnoreUnknown" {
                ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(internal(format!(
                            "ARGS: error parsing value of pair {pair:?}: boolean unmarshal error: invalid input {value}"
                        )));
                    }
                };
            } else if known.contains(key) {
                args.pairs.push((key.to_string(), value.to_string()));
            } else {
                unknown.push(pair.to_string());
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            let list = unknown.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(" ");
            return Err(internal(format!("ARGS: unknown args [{list}]")));
        }
        Ok(args)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The MAC a container interface gets, as macvlan and tap choose it:
/// `runtimeConfig.mac`, then CNI_ARGS `MAC`, then the config's `mac`; none
/// when all are empty. An unparsable choice is an error naming it.
pub fn chosen_mac(runtime_mac: &str, cni_args: &str, config_mac: &str) -> Result<Option<Vec<u8>>, Error> {
    let args = CniArgs::parse(cni_args, &["MAC"])?;
    let chosen = [Some(runtime_mac), args.get("MAC"), Some(config_mac)].into_iter().flatten().find(|m| !m.is_empty());
    chosen
        .map(|text| {
            crate::net::parse_mac(text).ok_or_else(|| {
                internal(format!("invalid args {text} for MAC addr: address {text}: invalid MAC address"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_read() {
        let args = CniArgs::parse("IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff", &["IP", "MAC"]).unwrap();
        assert_eq!(args.get("IP"), Some("10.0.0.5"));
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        assert!(CniArgs::parse("K8S_POD_NAME=x", &["IP"]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x", &["IP"]).is_ok());
        assert!(CniArgs::parse("K8S_POD_NAME=x;IgnoreUnknown=TRUE", &["IP"]).is_ok());
    }

    #[test]
    fn pairs_need_exactly_one_equals_sign() {
        assert!(CniArgs::parse("FOO", &["FOO"]).is_err());
        assert!(CniArgs::parse("A=b=c", &["A"]).is_err());
    }

    #[test]
    fn the_mac_comes_from_runtime_config_then_cni_args_then_the_config() {
        let mac = |runtime, args, config| chosen_mac(runtime, args, config).unwrap();
        assert_eq!(
            mac("02:00:00:00:00:03", "MAC=02:00:00:00:00:02", "02:00:00:00:00:01"),
            Some(vec![2, 0, 0, 0, 0, 3])
        );
        assert_eq!(mac("", "MAC=02:00:00:00:00:02", "02:00:00:00:00:01"), Some(vec![2, 0, 0, 0, 0, 2]));
        assert_eq!(mac("", "", "02:00:00:00:00:01"), Some(vec![2, 0, 0, 0, 0, 1]));
        assert_eq!(mac("", "", ""), None);
        assert!(chosen_mac("", "", "xx").is_err());
    }
}
