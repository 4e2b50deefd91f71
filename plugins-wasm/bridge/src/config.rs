//! The bridge plugin's config (the reference's NetConf), VLAN trunks and
//! the container MAC's precedence.

use cni_plugin_sdk::args::CniArgs;
use cni_plugin_sdk::config::{self, Dns, IpamConf};
use cni_plugin_sdk::error::{Result, internal};
use serde::Deserialize;

pub const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetConf {
    pub name: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub ip_masq_backend: Option<String>,
    pub mtu: u32,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    pub vlan: i64,
    pub vlan_trunk: Option<Vec<VlanTrunk>>,
    pub preserve_default_vlan: bool,
    #[serde(rename = "macspoofchk")]
    pub mac_spoof_check: bool,
    #[serde(rename = "enabledad")]
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    pub ipam: IpamConf,
    pub dns: Dns,
    pub args: Option<Args>,
    pub runtime_config: RuntimeConfig,
    #[serde(skip)]
    pub mac: Option<String>,
    #[serde(skip)]
    pub vlans: Vec<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VlanTrunk {
    #[serde(rename = "minID")]
    pub min_id: Option<i64>,
    #[serde(rename = "maxID")]
    pub max_id: Option<i64>,
    pub id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Args {
    pub cni: Option<MacArg>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MacArg {
    pub mac: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub mac: String,
}

impl NetConf {
    pub fn load(config: &str, cni_args: &str) -> Result<NetConf> {
        let mut conf: NetConf = config::parse(config)?;
        if conf.bridge.is_empty() {
            conf.bridge = DEFAULT_BRIDGE.into();
        }
        if !(0..=4094).contains(&conf.vlan) {
            return Err(internal(format!("invalid VLAN ID {} (must be between 0 and 4094)", conf.vlan)));
        }
        conf.vlans = collect_vlan_trunk(conf.vlan_trunk.as_deref())?;
        // MAC precedence: runtimeConfig, then args.cni, then CNI_ARGS.
        let args = CniArgs::parse(cni_args, &["MAC"])?;
        conf.mac = [
            Some(conf.runtime_config.mac.clone()),
            conf.args.as_ref().and_then(|a| a.cni.as_ref()).map(|c| c.mac.clone()),
            args.get("MAC").map(str::to_string),
        ]
        .into_iter()
        .flatten()
        .find(|m| !m.is_empty());
        if conf.is_default_gateway {
            conf.is_gateway = true;
        }
        Ok(conf)
    }

    pub fn is_layer3(&self) -> bool {
        !self.ipam.plugin_type.is_empty()
    }

    pub fn vlan_filtering(&self) -> bool {
        self.vlan != 0 || self.vlan_trunk.is_some()
    }
}

/// The trunk's VLAN ids, sorted and deduplicated (collectVlanTrunk).
fn collect_vlan_trunk(trunk: Option<&[VlanTrunk]>) -> Result<Vec<u16>> {
    let mut ids = std::collections::BTreeSet::new();
    let valid = |id: i64| (1..=4094).contains(&id);
    for item in trunk.unwrap_or_default() {
        match (item.min_id, item.max_id) {
            (Some(min), Some(max)) => {
                if !valid(min) {
                    return Err(internal("incorrect trunk minID parameter"));
                }
                if !valid(max) {
                    return Err(internal("incorrect trunk maxID parameter"));
                }
                if max < min {
                    return Err(internal("minID is greater than maxID in trunk parameter"));
                }
                ids.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(internal("minID and maxID should be configured simultaneously, minID is missing"));
            }
            (Some(_), None) => {
                return Err(internal("minID and maxID should be configured simultaneously, maxID is missing"));
            }
            (None, None) => {}
        }
        if let Some(id) = item.id {
            if !valid(id) {
                return Err(internal("incorrect trunk id parameter"));
            }
            ids.insert(id);
        }
    }
    Ok(ids.into_iter().map(|id| id as u16).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mac_precedence() {
        let conf = NetConf::load(
            r#"{"name":"n","runtimeConfig":{"mac":"aa:aa:aa:aa:aa:aa"},"args":{"cni":{"mac":"bb:bb:bb:bb:bb:bb"}}}"#,
            "MAC=cc:cc:cc:cc:cc:cc",
        )
        .unwrap();
        assert_eq!(conf.bridge, "cni0");
        assert_eq!(conf.mac.as_deref(), Some("aa:aa:aa:aa:aa:aa"));
        let conf = NetConf::load(r#"{"name":"n"}"#, "MAC=cc:cc:cc:cc:cc:cc").unwrap();
        assert_eq!(conf.mac.as_deref(), Some("cc:cc:cc:cc:cc:cc"));
    }

    #[test]
    fn trunks_are_sorted_deduplicated_and_checked() {
        let conf = NetConf::load(r#"{"name":"n","vlanTrunk":[{"id":5},{"minID":3,"maxID":6}]}"#, "").unwrap();
        assert_eq!(conf.vlans, [3, 4, 5, 6]);
        for bad in [r#"[{"minID":0,"maxID":3}]"#, r#"[{"minID":5,"maxID":3}]"#, r#"[{"maxID":3}]"#, r#"[{"id":4095}]"#]
        {
            let config = format!(r#"{{"name":"n","vlanTrunk":{bad}}}"#);
            assert!(NetConf::load(&config, "").is_err(), "{bad}");
        }
        assert!(NetConf::load(r#"{"name":"n","vlan":4095}"#, "").is_err());
    }
}
