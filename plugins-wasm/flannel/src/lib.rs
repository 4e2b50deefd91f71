//! flannel (upstream flannel-io/cni-plugin): a meta plugin that renders the
//! delegate config from flanneld's subnet.env (bridge by default, with
//! host-local over this node's subnet and routes to the flannel networks),
//! keeps it in `dataDir` under the container id in upstream's format, and
//! runs the delegate; DEL replays the stored config, so it works after
//! flanneld is gone or subnet.env changed, and either implementation can
//! DEL what the other added.

use cni_plugin_sdk::delegation::{self, Command};
use cni_plugin_sdk::error::{Result, code, error, internal, invalid_config};
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::{
    Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectKey, ObjectRole, StateLocation,
};
use cni_plugin_sdk::{files, state};
use serde_json::{Map, Value, json};

const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";

/// What flanneld wrote for this node.
#[derive(Debug, Default, PartialEq)]
struct SubnetEnv {
    networks: Vec<IpNet>,
    subnet: Option<IpNet>,
    ip6_networks: Vec<IpNet>,
    ip6_subnet: Option<IpNet>,
    mtu: Option<u64>,
    ipmasq: Option<bool>,
}

fn cidr(key: &str, text: &str) -> Result<IpNet> {
    text.trim().parse::<IpNet>().map_err(|_| internal(format!("failed to parse {key}: invalid CIDR address: {text}")))
}

impl SubnetEnv {
    fn parse(path: &str, text: &str) -> Result<SubnetEnv> {
        let mut env = SubnetEnv::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            match key.trim() {
                "FLANNEL_NETWORK" => {
                    env.networks =
                        value.split(',').filter(|s| !s.is_empty()).map(|s| cidr(key, s)).collect::<Result<_>>()?
                }
                "FLANNEL_SUBNET" => env.subnet = Some(cidr(key, value)?.masked()),
                "FLANNEL_IPV6_NETWORK" => {
                    env.ip6_networks =
                        value.split(',').filter(|s| !s.is_empty()).map(|s| cidr(key, s)).collect::<Result<_>>()?
                }
                "FLANNEL_IPV6_SUBNET" => env.ip6_subnet = Some(cidr(key, value)?.masked()),
                "FLANNEL_MTU" => {
                    env.mtu = Some(
                        value.trim().parse().map_err(|_| internal(format!("failed to parse FLANNEL_MTU {value:?}")))?,
                    )
                }
                "FLANNEL_IPMASQ" => env.ipmasq = Some(value.trim() == "true"),
                _ => {}
            }
        }
        let missing = |what: &str| internal(format!("{path} is missing {what}"));
        if env.networks.is_empty() && env.ip6_networks.is_empty() {
            return Err(missing("FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK"));
        }
        if env.subnet.is_none() && env.ip6_subnet.is_none() {
            return Err(missing("FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET"));
        }
        env.mtu.ok_or_else(|| missing("FLANNEL_MTU"))?;
        env.ipmasq.ok_or_else(|| missing("FLANNEL_IPMASQ"))?;
        Ok(env)
    }

    /// Code 50 when the file is missing or unreadable, as STATUS reports it.
    fn load(path: &str) -> Result<SubnetEnv> {
        let bytes = files::read(path)
            .map_err(|e| error(code::PLUGIN_NOT_AVAILABLE, format!("failed to read {path}: {}", e.message)))?
            .ok_or_else(|| error(code::PLUGIN_NOT_AVAILABLE, format!("{path} does not exist: is flanneld running?")))?;
        SubnetEnv::parse(path, &String::from_utf8_lossy(&bytes))
    }
}

/// The input config: flannel's own keys and the delegate's.
struct NetConf {
    raw: Map<String, Value>,
}

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        let raw: Value = serde_json::from_str(config)
            .map_err(|e| error(code::DECODING_FAILURE, format!("failed to load netconf: {e}")))?;
        let Value::Object(raw) = raw else {
            return Err(error(code::DECODING_FAILURE, "failed to load netconf: not an object"));
        };
        Ok(NetConf { raw })
    }

    fn text(&self, key: &str, default: &str) -> String {
        self.raw.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(default).to_string()
    }

    fn subnet_file(&self) -> String {
        self.text("subnetFile", DEFAULT_SUBNET_FILE)
    }

    /// The delegate upstream renders (flannel_linux.go's doCmdAdd).
    fn delegate(&self, env: &SubnetEnv) -> Result<Map<String, Value>> {
        let mut delegate = match self.raw.get("delegate") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(d)) => {
                if d.get("type").is_some_and(|t| !t.is_string()) {
                    return Err(invalid_config("'delegate' dictionary, if present, must have (string) 'type' field"));
                }
                if d.contains_key("name") {
                    return Err(invalid_config(
                        "'delegate' dictionary must not have 'name' field, it'll be set by flannel",
                    ));
                }
                if d.contains_key("ipam") {
                    return Err(invalid_config(
                        "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel",
                    ));
                }
                d.clone()
            }
            Some(_) => return Err(invalid_config("'delegate' must be a dictionary")),
        };
        if let Some(runtime) = self.raw.get("runtimeConfig") {
            delegate.insert("runtimeConfig".into(), runtime.clone());
        }
        delegate.insert("name".into(), self.raw.get("name").cloned().unwrap_or(json!("")));
        delegate.entry("type").or_insert(json!("bridge"));
        delegate.entry("ipMasq").or_insert(json!(!env.ipmasq.unwrap_or_default()));
        delegate.entry("mtu").or_insert(json!(env.mtu.unwrap_or_default()));
        if delegate["type"] == "bridge" {
            delegate.entry("isGateway").or_insert(json!(true));
        }
        if let Some(version) = self.raw.get("cniVersion").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            delegate.insert("cniVersion".into(), version.clone());
        }
        delegate.insert("ipam".into(), Value::Object(self.ipam(env)?));
        Ok(delegate)
    }

    /// The input's `ipam` (host-local by default) with this node's subnets
    /// as ranges and routes to the flannel networks added.
    fn ipam(&self, env: &SubnetEnv) -> Result<Map<String, Value>> {
        let mut ipam = match self.raw.get("ipam") {
            Some(Value::Object(ipam)) => ipam.clone(),
            _ => Map::new(),
        };
        ipam.entry("type").or_insert(json!("host-local"));
        let ranges: Vec<Value> =
            [env.subnet, env.ip6_subnet].into_iter().flatten().map(|s| json!([{"subnet": s.to_string()}])).collect();
        ipam.insert("ranges".into(), json!(ranges));
        let mut routes = match ipam.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(routes)) => routes.clone(),
            Some(_) => return Err(internal("failed to read IPAM routes: routes must be a list")),
        };
        for network in env.networks.iter().chain(&env.ip6_networks) {
            routes.push(json!({"dst": network.to_string()}));
        }
        ipam.insert("routes".into(), json!(routes));
        Ok(ipam)
    }
}

/// Go's json.Marshal of a map: keys sorted at every level, compact.
fn go_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn delegate_type(config: &Value) -> Result<String> {
    config
        .get("type")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| internal("the stored delegate config has no type"))
}

struct Flannel;

impl cni_plugin_sdk::Plugin for Flannel {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::Files, Capability::State, Capability::Delegation]);
        manifest.objects.push(ObjectKey {
            key: "subnetFile".into(),
            role: ObjectRole::File,
            default: ObjectDefault::Name(DEFAULT_SUBNET_FILE.into()),
            sub_interfaces: false,
        });
        manifest.state =
            Some(StateLocation { default_dir: DEFAULT_DATA_DIR.into(), config_key: Some("dataDir".into()) });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse(&call.config)?;
        let env = SubnetEnv::load(&conf.subnet_file())?;
        let delegate = Value::Object(conf.delegate(&env)?);
        let rendered = go_json(&delegate);
        // Saved first, so a DEL finds it whatever happens next; the host
        // removes it again if the ADD fails.
        state::create(&call.container_id, rendered.as_bytes()).or_else(|e| {
            if e.is_already_exists() { state::replace(&call.container_id, rendered.as_bytes()) } else { Err(e) }
        })?;
        delegation::invoke(&delegate_type(&delegate)?, Command::Add, Some(&rendered))
            .map_err(|e| internal(format!("failed to delegate add: {}", e.msg)))?
            .ok_or_else(|| internal("failed to delegate add: the delegate returned no result"))
    }

    /// Replays the stored config; nothing stored means already cleaned up.
    fn del(call: &Invocation) -> Result<()> {
        NetConf::parse(&call.config)?;
        let Some(stored) = state::read(&call.container_id)? else { return Ok(()) };
        let config: Value =
            serde_json::from_slice(&stored).map_err(|e| internal(format!("failed to parse netconf: {e}")))?;
        delegation::invoke(&delegate_type(&config)?, Command::Del, Some(&String::from_utf8_lossy(&stored)))?;
        state::remove(&call.container_id)?;
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let stored = state::read(&call.container_id)?
            .ok_or_else(|| internal(format!("no stored delegate config for container {}", call.container_id)))?;
        let mut config: Value =
            serde_json::from_slice(&stored).map_err(|e| internal(format!("failed to parse netconf: {e}")))?;
        if let Some(previous) = conf.raw.get("prevResult") {
            config["prevResult"] = previous.clone();
        }
        delegation::invoke(&delegate_type(&config)?, Command::Check, Some(&config.to_string()))?;
        Ok(())
    }

    /// subnet.env must be there and readable (code 50 with its path).
    fn status(config: &str) -> Result<()> {
        let conf = NetConf::parse(config)?;
        SubnetEnv::load(&conf.subnet_file()).map(drop)
    }
}

cni_plugin_sdk::plugin!(Flannel);

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str =
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";

    #[test]
    fn the_delegate_is_upstreams() {
        let env = SubnetEnv::parse("subnet.env", ENV).unwrap();
        let conf =
            NetConf::parse(r#"{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{"hairpinMode":true}}"#)
                .unwrap();
        let delegate = Value::Object(conf.delegate(&env).unwrap());
        assert_eq!(
            go_json(&delegate),
            r#"{"cniVersion":"1.0.0","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}"#
        );
    }

    #[test]
    fn the_delegate_may_not_set_name_or_ipam_and_the_env_must_be_whole() {
        let env = SubnetEnv::parse("subnet.env", ENV).unwrap();
        let conf = NetConf::parse(r#"{"name":"n","delegate":{"name":"x"}}"#).unwrap();
        assert!(conf.delegate(&env).unwrap_err().msg.contains("must not have 'name'"));
        let error = SubnetEnv::parse("/run/flannel/subnet.env", "FLANNEL_NETWORK=10.244.0.0/16\n").unwrap_err();
        assert!(error.msg.contains("/run/flannel/subnet.env is missing FLANNEL_SUBNET"), "{}", error.msg);
    }
}
