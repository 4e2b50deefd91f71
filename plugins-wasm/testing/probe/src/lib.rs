//! probe: a plugin for the host's own tests. Its config's `probe.steps` say
//! what to do on ADD, in order; the tests check what the host allowed,
//! refused, stopped or rolled back. It declares links, addresses, routes,
//! sysctl, state and delegation; the policy decides what it gets.

use cni_plugin_sdk::config::{self, no_dns};
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::ipam::{self, no_change};
use cni_plugin_sdk::links::{self, LinkKind, LinkOptions};
use cni_plugin_sdk::net::ip_to_wit;
use cni_plugin_sdk::routes::{self, AddMode, RouteSpec};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, addresses, namespaces, sysctl, types};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Conf {
    probe: Probe,
    ipam: Option<cni_plugin_sdk::config::IpamConf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Probe {
    steps: Vec<String>,
    /// A host link to try to change (`change-host-link`).
    host_link: String,
    /// A sysctl key to write in the container (`write-container-sysctl`).
    sysctl_key: String,
    /// What to do on DEL: `delete-host-link` deletes `hostLink`.
    del_steps: Vec<String>,
    /// A host link declared as a parent (`probe.master`).
    master: String,
    /// A host link no key declares (`probe.parent`).
    parent: String,
    /// A config the plugin "writes" for a delegate (`delegate-crafted`),
    /// run as the plugin type it names.
    crafted: Option<serde_json::Value>,
}

struct ProbePlugin;

impl cni_plugin_sdk::Plugin for ProbePlugin {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Sysctl,
            Capability::State,
            Capability::Delegation,
        ]);
        manifest.objects.push(cni_plugin_sdk::object("probe.hostLink", cni_plugin_sdk::ObjectRole::Managed));
        manifest.objects.push(cni_plugin_sdk::object("probe.master", cni_plugin_sdk::ObjectRole::Parent));
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf: Conf = config::parse(&call.config)?;
        let mut result = CniResult { interfaces: Vec::new(), ips: Vec::new(), routes: Vec::new(), dns: no_dns() };
        for step in &conf.probe.steps {
            match step.as_str() {
                // Delegates to ipam.type and returns its result.
                "delegate" => {
                    let ipam_type = conf.ipam.as_ref().map(|i| i.plugin_type.clone()).unwrap_or_default();
                    result = ipam::exec_add(&ipam_type)?;
                }
                // A macvlan in the container on `probe.master` (a parent), or
                // on `probe.parent` when that is set (named by no key).
                "create-macvlan" => {
                    let parent = if conf.probe.parent.is_empty() { &conf.probe.master } else { &conf.probe.parent };
                    let kind = LinkKind::Macvlan(links::MacvlanOptions {
                        parent: parent.clone(),
                        mode: links::MacvlanMode::Passthru,
                        broadcast_queue_len: None,
                    });
                    links::create(&namespaces::container()?, "probe0", &kind, &options(), Some(&namespaces::host()))?;
                }
                // Changes the parent itself: never allowed.
                "down-master" => {
                    let change = links::LinkChange { up: Some(false), ..no_change() };
                    links::set(&namespaces::host(), &conf.probe.master, &change)?;
                }
                "delete-master" => links::delete(&namespaces::host(), &conf.probe.master)?,
                "move-master" => {
                    links::move_to(&namespaces::host(), &conf.probe.master, &namespaces::container()?, "stolen0")?;
                }
                // Delegates with a config of the plugin's own making.
                "delegate-crafted" => {
                    let crafted = conf.probe.crafted.clone().ok_or_else(|| internal("probe: no probe.crafted"))?;
                    let plugin_type = crafted["type"].as_str().unwrap_or_default().to_string();
                    let crafted = serde_json::to_string(&crafted).map_err(|e| internal(e.to_string()))?;
                    let delegated = cni_plugin_sdk::delegation::invoke(
                        &plugin_type,
                        cni_plugin_sdk::delegation::Command::Add,
                        Some(&crafted),
                    )?;
                    if let Some(delegated) = delegated {
                        result = delegated;
                    }
                }
                // Delegates to itself: the host must stop the loop.
                "delegate-self" => {
                    cni_plugin_sdk::delegation::invoke("probe", cni_plugin_sdk::delegation::Command::Add, None)?;
                }
                // A dummy-free way to create something: a veth pair inside
                // the container namespace.
                "create-container-veth" => {
                    let ns = namespaces::container()?;
                    links::create_veth(&ns, "probe0", &options(), &ns, "probe1", &options())?;
                }
                // A veth from the container into the host namespace.
                "create-host-veth" => {
                    let ns = namespaces::container()?;
                    let host = namespaces::host();
                    links::create_veth(
                        &ns,
                        "probe0",
                        &options(),
                        &host,
                        &format!("pr{}", &call.container_id),
                        &options(),
                    )?;
                }
                "add-container-address" => {
                    let ns = namespaces::container()?;
                    let address =
                        types::IpNetwork { address: ip_to_wit("10.123.0.1".parse().unwrap()), prefix_len: 24 };
                    addresses::add(&ns, "probe0", address)?;
                }
                // A route in the container (refused unless the policy grants routes).
                "add-route" => {
                    let ns = namespaces::container()?;
                    let spec = RouteSpec {
                        destination: types::IpNetwork {
                            address: ip_to_wit("10.124.0.0".parse().unwrap()),
                            prefix_len: 16,
                        },
                        gateway: None,
                        link: Some("probe0".into()),
                        source: None,
                        table: None,
                        scope: None,
                        priority: None,
                        mtu: None,
                        advmss: None,
                        protocol: None,
                    };
                    routes::add(&ns, &spec, AddMode::Exclusive)?;
                }
                // The host link `probe.hostLink` names: changed only where
                // the policy admits its name.
                "change-host-link" => {
                    let host = namespaces::host();
                    let change = links::LinkChange { mtu: Some(1280), ..no_change() };
                    links::set(&host, &conf.probe.host_link, &change)?;
                }
                // Any host link the config does not name: refused.
                "change-unnamed-host-link" => {
                    let host = namespaces::host();
                    let unnamed = links::dump(&host)?
                        .into_iter()
                        .find(|l| l.name != "lo" && !call.config.contains(&l.name))
                        .ok_or_else(|| internal("probe: no unnamed host link to try"))?;
                    let change = links::LinkChange { mtu: Some(1280), ..no_change() };
                    links::set(&host, &unnamed.name, &change)?;
                }
                // Any key, as given: the host must keep it under net/.
                "write-container-sysctl" => {
                    sysctl::set(&namespaces::container()?, &conf.probe.sysctl_key, "1")?;
                }
                "write-host-sysctl" => {
                    sysctl::set(&namespaces::host(), "net/ipv4/ip_forward", "1")?;
                }
                "create-host-bridge" => {
                    let host = namespaces::host();
                    links::create(
                        &host,
                        &format!("pb{}", &call.container_id),
                        &LinkKind::Bridge(links::BridgeOptions { vlan_filtering: false }),
                        &options(),
                        None,
                    )?;
                }
                "fail" => return Err(internal("probe: failing as asked")),
                "spin" => {
                    let mut n: u64 = 0;
                    loop {
                        n = n.wrapping_add(1);
                        std::hint::black_box(n);
                    }
                }
                "allocate" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "panic" => panic!("probe: panicking as asked"),
                // Capability calls without end, each quick.
                "many-calls" => loop {
                    links::get(&namespaces::host(), "lo")?;
                },
                // 4 MiB of logs.
                "flood-logs" => {
                    let line = "x".repeat(4000);
                    for _ in 0..1000 {
                        cni_plugin_sdk::logging::log(cni_plugin_sdk::logging::Level::Error, &line);
                    }
                }
                // A result of about 2 MiB.
                "big-result" => result.dns.search = vec!["y".repeat(1000); 2000],
                other => return Err(internal(format!("probe: unknown step {other:?}"))),
            }
        }
        Ok(result)
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf: Conf = config::parse(&call.config)?;
        for step in &conf.probe.del_steps {
            match step.as_str() {
                // Allowed only where this attachment's ADD created the link.
                "delete-host-link" => links::delete(&namespaces::host(), &conf.probe.host_link)?,
                "spin" => loop {
                    std::hint::black_box(0u64);
                },
                other => return Err(internal(format!("probe: unknown DEL step {other:?}"))),
            }
        }
        if let Some(ipam) = conf.ipam.filter(|i| !i.plugin_type.is_empty()) {
            ipam::exec_del(&ipam.plugin_type)?;
        }
        Ok(())
    }

    fn check(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    /// GC runs the DEL steps too.
    fn gc(config: &str, _valid: &[cni_plugin_sdk::Attachment]) -> Result<()> {
        let conf: Conf = config::parse(config)?;
        for step in &conf.probe.del_steps {
            match step.as_str() {
                "delete-host-link" => links::delete(&namespaces::host(), &conf.probe.host_link)?,
                other => return Err(internal(format!("probe: unknown GC step {other:?}"))),
            }
        }
        Ok(())
    }
}

fn options() -> LinkOptions {
    LinkOptions { mtu: None, mac: None, tx_queue_len: None }
}

cni_plugin_sdk::plugin!(ProbePlugin);
