//! bandwidth: a chained plugin that shapes a veth-attached container's
//! traffic with token buckets on the host side, as Debian's reference does
//! (the TBF form; upstream has since moved to HTB with shaped/unshaped
//! subnets): traffic into the container by a TBF on the host veth, traffic
//! out of it by redirecting the host veth's ingress to an ifb device with a
//! TBF of its own. Rates are bits per second, bursts bits.

use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Errors, Result, internal};
use cni_plugin_sdk::links::{self, LinkKind, LinkOptions};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::netfilter::hash_with_prefix;
use cni_plugin_sdk::tc::{self, QdiscKind, TokenBucket};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, cni, ipam};
use serde::Deserialize;

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Limits {
    ingress_rate: u64,
    ingress_burst: u64,
    egress_rate: u64,
    egress_burst: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetConf {
    name: String,
    ingress_rate: Option<u64>,
    ingress_burst: Option<u64>,
    egress_rate: Option<u64>,
    egress_burst: Option<u64>,
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    bandwidth: Option<Limits>,
}

/// tc parents: the root qdisc, and the ingress qdisc.
const ROOT: u32 = 0xffff_ffff;
const INGRESS: u32 = 0xffff_fff1;

/// The reference's fixed queueing latency for the TBF limit.
const LATENCY_USEC: u64 = 25_000;

impl NetConf {
    fn parse(config: &str) -> Result<NetConf> {
        let conf: NetConf = config::parse(config)?;
        if let Some(limits) = conf.limits() {
            validate(limits.ingress_rate, limits.ingress_burst)?;
            validate(limits.egress_rate, limits.egress_burst)?;
        }
        Ok(conf)
    }

    /// The config's own limits if it sets any of the four keys (the
    /// admin's), else the runtime's `bandwidth` capability (the pod's).
    fn limits(&self) -> Option<Limits> {
        let own = [self.ingress_rate, self.ingress_burst, self.egress_rate, self.egress_burst];
        if own.iter().any(Option::is_some) {
            let [ingress_rate, ingress_burst, egress_rate, egress_burst] = own.map(Option::unwrap_or_default);
            return Some(Limits { ingress_rate, ingress_burst, egress_rate, egress_burst });
        }
        self.runtime_config.bandwidth
    }
}

fn validate(rate: u64, burst: u64) -> Result<()> {
    match (rate, burst) {
        (rate, 0) if rate != 0 => Err(internal("if rate is set, burst must also be set")),
        (0, burst) if burst != 0 => Err(internal("if burst is set, rate must also be set")),
        (_, burst) if burst / 8 >= u64::from(u32::MAX) => Err(internal("burst cannot be more than 4GB")),
        _ => Ok(()),
    }
}

/// The TBF the reference installs for `rate` bits/s and `burst` bits.
fn bucket(rate: u64, burst: u64) -> TokenBucket {
    let (rate, burst) = (rate / 8, (burst / 8) as u32);
    let limit = (rate * LATENCY_USEC / 1_000_000) as u32 + burst;
    TokenBucket { rate, burst, limit }
}

/// The reference's ifb name: "bwp" + sha512(network + container id), 15
/// characters, so either implementation finds the other's.
fn ifb_name(network: &str, container_id: &str) -> String {
    hash_with_prefix(15, "bwp", &format!("{network}{container_id}"))
}

struct Bandwidth;

impl cni_plugin_sdk::Plugin for Bandwidth {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::Links, Capability::Tc]);
        manifest.cni_versions = cni_plugin_sdk::versions_from("0.3.0");
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = NetConf::parse(&call.config)?;
        let limits = conf.limits().unwrap_or_default();
        if limits == Limits::default() {
            return call.prev_result.clone().ok_or_else(|| internal("must be called as chained plugin"));
        }
        let mut result = call.prev_result.clone().ok_or_else(|| internal("must be called as chained plugin"))?;
        let host = namespaces::host();
        let host_veth = host_interface(call, &result.interfaces)?;
        if limits.ingress_rate > 0 && limits.ingress_burst > 0 {
            tc::add_root_tbf(&host, &host_veth, bucket(limits.ingress_rate, limits.ingress_burst))
                .map_err(|e| internal(format!("create ingress qdisc: {}", e.message)))?;
        }
        if limits.egress_rate > 0 && limits.egress_burst > 0 {
            let mtu = links::get(&host, &host_veth)?.map(|l| l.mtu).unwrap_or_default();
            let ifb = ifb_name(&conf.name, &call.container_id);
            // The host deletes the ifb (and the veth's qdiscs go with the
            // veth) if anything below fails.
            let options = LinkOptions { mtu: Some(mtu).filter(|m| *m > 0), mac: None, tx_queue_len: None };
            links::create(&host, &ifb, &LinkKind::Ifb, &options, None)
                .map_err(|e| internal(format!("adding link: {}", e.message)))?;
            links::set(&host, &ifb, &ipam::set_up())
                .map_err(|e| internal(format!("setting {ifb} up: {}", e.message)))?;
            let created = links::get(&host, &ifb)?.ok_or_else(|| internal(format!("ifb {ifb} vanished")))?;
            result.interfaces.push(cni::NetworkInterface {
                name: ifb.clone(),
                mac: Some(cni_plugin_sdk::iface::mac_string(&created)),
                mtu: None,
                sandbox: None,
                socket_path: None,
                pci_id: None,
            });
            tc::add_ingress(&host, &host_veth).map_err(|e| internal(format!("create ingress qdisc: {}", e.message)))?;
            tc::add_ingress_redirect(&host, &host_veth, &ifb)
                .map_err(|e| internal(format!("add filter: {}", e.message)))?;
            tc::add_root_tbf(&host, &ifb, bucket(limits.egress_rate, limits.egress_burst))
                .map_err(|e| internal(format!("create egress qdisc: {}", e.message)))?;
        }
        Ok(result)
    }

    /// The ifb, if there is one, and (unlike the reference, which leaves
    /// them to go with the veth) the host veth's bucket and ingress qdisc,
    /// when the previous result and the netns still name the veth.
    fn del(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let host = namespaces::host();
        let mut errors = Errors::new();
        let ifb = ifb_name(&conf.name, &call.container_id);
        if let Err(e) = links::delete(&host, &ifb)
            && !e.is_not_found()
        {
            errors.keep(Err::<(), _>(internal(format!("failed to delete {ifb}: {}", e.message))));
        }
        let veth = call.prev_result.as_ref().and_then(|result| host_interface(call, &result.interfaces).ok());
        if let Some(veth) = veth {
            for qdisc in tc::list_qdiscs(&host, &veth).unwrap_or_default() {
                let ours = match qdisc.kind {
                    QdiscKind::Tbf(_) => qdisc.parent == ROOT,
                    QdiscKind::Ingress => true,
                    QdiscKind::Other(_) => false,
                };
                if ours {
                    let parent = if qdisc.parent == ROOT { ROOT } else { INGRESS };
                    if let Err(e) = tc::delete_qdisc(&host, &veth, parent)
                        && !e.is_not_found()
                    {
                        let failed = internal(format!("failed to delete the qdisc of {veth}: {}", e.message));
                        errors.keep(Err::<(), _>(failed));
                    }
                }
            }
        }
        errors.finish()
    }

    /// The reference's: every TBF on the host veth (and on the ifb)
    /// matches the configured rate, burst and limit. Without limits there
    /// is nothing to check (the reference dereferences nil there).
    fn check(call: &Invocation) -> Result<()> {
        let conf = NetConf::parse(&call.config)?;
        let result = call.prev_result.as_ref().ok_or_else(|| internal("must be called as a chained plugin"))?;
        let host = namespaces::host();
        let host_veth = host_interface(call, &result.interfaces)?;
        let limits = conf.limits().unwrap_or_default();
        if limits.ingress_rate > 0 && limits.ingress_burst > 0 {
            check_tbf(&host, &host_veth, bucket(limits.ingress_rate, limits.ingress_burst))?;
        }
        if limits.egress_rate > 0 && limits.egress_burst > 0 {
            check_tbf(
                &host,
                &ifb_name(&conf.name, &call.container_id),
                bucket(limits.egress_rate, limits.egress_burst),
            )?;
        }
        Ok(())
    }
}

/// The host end of the container's CNI_IFNAME veth, which must be one of
/// the host interfaces of the previous result.
fn host_interface(call: &Invocation, interfaces: &[cni::NetworkInterface]) -> Result<String> {
    if interfaces.is_empty() {
        return Err(internal("no interfaces provided"));
    }
    let container = namespaces::container()?;
    let inner = links::get(&container, &call.ifname)?;
    let peer = inner.filter(|l| l.kind.as_deref() == Some("veth")).and_then(|l| l.parent_index);
    let Some(peer) = peer else {
        return Err(internal(format!("container interface {} has no veth peer", call.ifname)));
    };
    let link = links::get_by_index(&namespaces::host(), peer)?
        .ok_or_else(|| internal(format!("veth peer with index {peer} is not in host ns")))?;
    interfaces
        .iter()
        .find(|i| i.sandbox.as_deref().unwrap_or_default().is_empty() && i.name == link.name)
        .map(|i| i.name.clone())
        .ok_or_else(|| internal("no veth peer of container interface found in host ns"))
}

fn check_tbf(ns: &Netns, link: &str, wanted: TokenBucket) -> Result<()> {
    let qdiscs = tc::list_qdiscs(ns, link)?;
    let qdiscs: Vec<_> = qdiscs.iter().filter(|q| !matches!(&q.kind, QdiscKind::Other(k) if k == "noqueue")).collect();
    if qdiscs.is_empty() {
        return Err(internal("Failed to find qdisc"));
    }
    for qdisc in qdiscs {
        let QdiscKind::Tbf(tbf) = &qdisc.kind else { break };
        if tbf.rate != wanted.rate {
            return Err(internal("Rate doesn't match"));
        }
        if tbf.limit != wanted.limit {
            return Err(internal("Limit doesn't match"));
        }
        if tbf.burst != wanted.burst {
            return Err(internal("Buffer doesn't match"));
        }
    }
    Ok(())
}

cni_plugin_sdk::plugin!(Bandwidth);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_own_limits_win_over_the_runtimes() {
        let conf = NetConf::parse(
            r#"{"name":"n","ingressRate":8000,"ingressBurst":800,"runtimeConfig":{"bandwidth":{"egressRate":1,"egressBurst":1}}}"#,
        )
        .unwrap();
        assert_eq!(conf.limits().unwrap(), Limits { ingress_rate: 8000, ingress_burst: 800, ..Limits::default() });
        let conf =
            NetConf::parse(r#"{"name":"n","runtimeConfig":{"bandwidth":{"egressRate":16,"egressBurst":8}}}"#).unwrap();
        assert_eq!(conf.limits().unwrap().egress_rate, 16);
    }

    #[test]
    fn rates_and_bursts_come_in_pairs() {
        let error = |json: &str| NetConf::parse(json).unwrap_err().msg;
        assert_eq!(error(r#"{"name":"n","ingressRate":8}"#), "if rate is set, burst must also be set");
        assert_eq!(error(r#"{"name":"n","egressBurst":8}"#), "if burst is set, rate must also be set");
        assert_eq!(error(r#"{"name":"n","egressRate":8,"egressBurst":34359738368}"#), "burst cannot be more than 4GB");
    }

    #[test]
    fn buckets_and_names_are_the_references() {
        // 1 Mbit/s with a 32 kbit burst: 125000 B/s, 4000 B, limit 3125 + 4000.
        assert_eq!(bucket(1_000_000, 32_000), TokenBucket { rate: 125_000, burst: 4000, limit: 7125 });
        assert_eq!(ifb_name("net", "id").len(), 15);
        assert!(ifb_name("net", "id").starts_with("bwp"));
    }
}
