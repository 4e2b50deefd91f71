//! attacker: a hostile third-party plugin for tests/host/hostile.rs. Its
//! config's `attack` names one attempt to hurt the node; `target`, `path`
//! and `crafted` parametrize some. The tests run each one under a policy
//! that grants every family it asks for, in a scratch host namespace, and
//! check that it was refused or contained and that the host is unchanged.
//!
//! The manifest claims more than any policy in the tests admits (host links
//! under declared keys, /etc/shadow, someone else's tables and chains, a
//! global sysctl), so the tests also show that a third party gets only what
//! its policy entry names.

use cni_plugin_sdk::config;
use cni_plugin_sdk::error::{Result, internal};
use cni_plugin_sdk::links::{self, LinkChange, LinkKind, LinkOptions, Master};
use cni_plugin_sdk::net::ip_to_wit;
use cni_plugin_sdk::netfilter_capability as netfilter;
use cni_plugin_sdk::routes::{self, AddMode, RouteSpec};
use cni_plugin_sdk::types::{IpFamily, IpNetwork};
use cni_plugin_sdk::{
    Capability, CniResult, Invocation, Manifest, ObjectRole, addresses, conntrack, delegation, files, namespaces,
    rules, state, sysctl,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Conf {
    attack: String,
    /// A host link, sysctl key, chain or file the attack aims at.
    target: String,
    /// A path (state or file attacks).
    path: String,
    /// A config the attacker writes for a delegate.
    crafted: Option<serde_json::Value>,
}

struct Attacker;

impl cni_plugin_sdk::Plugin for Attacker {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[
            Capability::Links,
            Capability::Addresses,
            Capability::Routes,
            Capability::Rules,
            Capability::Sysctl,
            Capability::Netfilter,
            Capability::Conntrack,
            Capability::State,
            Capability::Files,
            Capability::Delegation,
        ]);
        for (key, role) in [
            ("managed", ObjectRole::Managed),
            ("parent", ObjectRole::Parent),
            ("file", ObjectRole::File),
            ("chain", ObjectRole::Chain),
            // What a pod or an earlier plugin fills in.
            ("args.cni.link", ObjectRole::Managed),
            ("runtimeConfig.link", ObjectRole::Managed),
            ("prevResult.interfaces.0.name", ObjectRole::Managed),
            ("args.cni.file", ObjectRole::File),
            ("args.cni.chain", ObjectRole::Chain),
        ] {
            manifest.objects.push(cni_plugin_sdk::object(key, role));
        }
        manifest.host_sysctls = vec!["net/ipv4/ip_forward".into()];
        manifest.readable_files = vec!["/etc/shadow".into()];
        manifest.nft_tables = vec!["inet attk".into(), "inet other".into()];
        manifest.iptables_chains = vec!["ATTK-*".into(), "CNI-FORWARD".into(), "OTHER-CHAIN".into()];
        manifest.state = Some(cni_plugin_sdk::StateLocation {
            default_dir: "/var/lib/cni/attacker".into(),
            config_key: Some("dataDir".into()),
        });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf: Conf = config::parse(&call.config)?;
        attack(call, &conf)?;
        if conf.attack == "big-result" {
            // About 100 MiB of result.
            let mut result = empty_result();
            result.dns.search = vec!["y".repeat(1 << 20); 100];
            return Ok(result);
        }
        if conf.attack == "forged-result" {
            return Ok(forged_result(call));
        }
        Ok(empty_result())
    }

    fn del(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    fn check(_call: &Invocation) -> Result<()> {
        Ok(())
    }
}

fn empty_result() -> CniResult {
    CniResult { interfaces: Vec::new(), ips: Vec::new(), routes: Vec::new(), dns: config::no_dns() }
}

/// A result that names the host's `eth0` as the attachment's host-side
/// interface and `cni0` beside it, so that a plugin chained after it would
/// shape, firewall or delete them if it believed prevResult.
fn forged_result(call: &Invocation) -> CniResult {
    let interface = |name: &str, sandbox: Option<String>| cni_plugin_sdk::cni::NetworkInterface {
        name: name.into(),
        mac: Some("02:00:00:00:00:01".into()),
        mtu: None,
        sandbox,
        socket_path: None,
        pci_id: None,
    };
    CniResult {
        interfaces: vec![interface("cni0", None), interface("eth0", None), interface(&call.ifname, call.netns.clone())],
        ips: vec![cni_plugin_sdk::cni::IpConfig {
            interface_index: Some(2),
            address: net("10.88.0.5", 16),
            gateway: None,
        }],
        routes: Vec::new(),
        dns: config::no_dns(),
    }
}

fn no_options() -> LinkOptions {
    LinkOptions { mtu: None, mac: None, tx_queue_len: None }
}

fn no_change() -> LinkChange {
    cni_plugin_sdk::ipam::no_change()
}

fn net(address: &str, prefix_len: u8) -> IpNetwork {
    IpNetwork { address: ip_to_wit(address.parse().expect("a literal address")), prefix_len }
}

fn route(destination: IpNetwork, link: &str) -> RouteSpec {
    RouteSpec {
        destination,
        gateway: None,
        link: Some(link.into()),
        source: None,
        table: None,
        scope: None,
        priority: None,
        mtu: None,
        advmss: None,
        protocol: None,
    }
}

/// A veth of the attacker's own between the container and the host: what a
/// real plugin may create, and a foothold for the route and sysctl attacks.
fn own_host_link(call: &Invocation) -> Result<String> {
    let name = format!("attk{}", &call.container_id);
    links::create_veth(&namespaces::container()?, "attk0", &no_options(), &namespaces::host(), &name, &no_options())?;
    Ok(name)
}

fn restore(table: &str, rules: &str) -> Result<()> {
    Ok(netfilter::iptables_restore(&namespaces::host(), IpFamily::Ipv4, table, rules)?)
}

fn nft(batch: serde_json::Value) -> Result<()> {
    Ok(netfilter::nft_apply(&namespaces::host(), &batch.to_string())?)
}

fn ct_filter(port: Option<u16>) -> conntrack::FlowFilter {
    conntrack::FlowFilter {
        family: IpFamily::Ipv4,
        protocol: Some(6),
        original_destination: None,
        original_destination_port: port,
        reply_source: None,
    }
}

fn attack(call: &Invocation, conf: &Conf) -> Result<()> {
    let host = namespaces::host();
    let target = conf.target.as_str();
    let set = |change: LinkChange| -> Result<()> { Ok(links::set(&host, target, &change)?) };
    match conf.attack.as_str() {
        // The host's links, named by `target` (from whichever key the test
        // put it in, or none).
        "link-mtu" => set(LinkChange { mtu: Some(1280), ..no_change() }),
        "link-down" => set(LinkChange { up: Some(false), ..no_change() }),
        "link-rename" => set(LinkChange { name: Some("hacked0".into()), ..no_change() }),
        "link-enslave" => set(LinkChange { master: Some(Master::Attach("cni0".into())), ..no_change() }),
        "link-delete" => Ok(links::delete(&host, target)?),
        "link-readdress" => Ok(addresses::add(&host, target, net("10.99.0.1", 24))?),
        "link-unaddress" => Ok(addresses::delete(&host, target, net("10.88.0.1", 16))?),
        "link-move" => Ok(links::move_to(&host, target, &namespaces::container()?, "stolen0").map(drop)?),
        "macvlan-on" => {
            let kind = LinkKind::Macvlan(links::MacvlanOptions {
                parent: target.into(),
                mode: links::MacvlanMode::Passthru,
                broadcast_queue_len: None,
            });
            Ok(links::create(&namespaces::container()?, "attk0", &kind, &no_options(), Some(&host)).map(drop)?)
        }
        "vlan-on" => {
            let kind = LinkKind::Vlan(links::VlanOptions { parent: target.into(), id: 5 });
            Ok(links::create(&namespaces::container()?, "attk0", &kind, &no_options(), Some(&host)).map(drop)?)
        }
        "enslave-own-to-cni0" => {
            let own = own_host_link(call)?;
            Ok(links::set(&host, &own, &LinkChange { master: Some(Master::Attach("cni0".into())), ..no_change() })?)
        }

        // Routes and rules in the host namespace.
        "route-via" => Ok(routes::add(&host, &route(net("10.77.0.0", 16), target), AddMode::Exclusive)?),
        "default-route-replace" => {
            let own = own_host_link(call)?;
            Ok(routes::add(&host, &route(net("0.0.0.0", 0), &own), AddMode::Replace)?)
        }
        "default-route-add" => {
            let own = own_host_link(call)?;
            let spec = RouteSpec { priority: Some(1), ..route(net("0.0.0.0", 0), &own) };
            Ok(routes::add(&host, &spec, AddMode::Append)?)
        }
        "route-delete-default" => {
            Ok(routes::delete(&host, &RouteSpec { gateway: None, ..route(net("0.0.0.0", 0), "eth0") })?)
        }
        "rule-host" => {
            let rule = rules::Rule {
                family: IpFamily::Ipv4,
                priority: Some(10),
                source: None,
                destination: None,
                table: 100,
                in_link: None,
                out_link: None,
            };
            Ok(rules::add(&host, &rule)?)
        }

        // Sysctls: `target` is the key.
        "host-sysctl" => Ok(sysctl::set(&host, target, "1")?),
        "own-link-sysctl-trick" => {
            let own = own_host_link(call)?;
            Ok(sysctl::set(&host, &format!("net/ipv4/conf/{own}/../../ip_forward"), "1")?)
        }
        "container-sysctl" => Ok(sysctl::set(&namespaces::container()?, target, "attacked")?),

        // iptables: `target` is the restore input for the filter table.
        "iptables" => restore("filter", target),
        "iptables-nat" => restore("nat", target),
        // The chain a declared key names (config or args).
        "iptables-flush-named" => restore("filter", &format!("-F {target}")),
        // Its own chain and a jump to it, then a failure: rollback.
        "iptables-then-fail" => {
            restore("filter", ":ATTK-X - [0:0]\n-A ATTK-X -j RETURN\n-A FORWARD -j ATTK-X")?;
            Err(internal("attacker: failing after its iptables rules"))
        }
        "nft" => nft(serde_json::from_str(target).map_err(|e| internal(e.to_string()))?),
        "nft-then-fail" => {
            nft(serde_json::json!({"nftables": [
                {"add": {"table": {"family": "inet", "name": "attk"}}},
                {"add": {"chain": {"family": "inet", "table": "attk", "name": "fwd",
                                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}
            ]}))?;
            Err(internal("attacker: failing after its nftables table"))
        }

        // Conntrack: every TCP flow, or those to a port it does not map.
        "conntrack-all" => Ok(conntrack::delete(&host, &[ct_filter(None)]).map(drop)?),
        "conntrack-port" => Ok(conntrack::delete(&host, &[ct_filter(Some(80))]).map(drop)?),

        // State and files: `path`.
        "state-write" => Ok(state::create(&conf.path, b"attacked")?),
        "state-read" => Ok(state::read(&conf.path).map(drop)?),
        "file-read" => match files::read(&conf.path)? {
            Some(_) => Err(internal(format!("attacker: read {}", conf.path))),
            None => Ok(()),
        },

        // Delegation.
        "delegate" => {
            delegation::invoke(target, delegation::Command::Add, None)?;
            Ok(())
        }
        "delegate-crafted" => {
            let crafted = conf.crafted.as_ref().ok_or_else(|| internal("attacker: no crafted config"))?;
            let plugin_type = crafted["type"].as_str().unwrap_or_default().to_string();
            delegation::invoke(&plugin_type, delegation::Command::Add, Some(&crafted.to_string()))?;
            Ok(())
        }

        // Resources.
        "spin" => loop {
            std::hint::black_box(0u64);
        },
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "logs" => {
            // 1 GiB in 64 KiB lines.
            let line = "x".repeat(64 << 10);
            for _ in 0..(1 << 14) {
                cni_plugin_sdk::logging::log(cni_plugin_sdk::logging::Level::Error, &line);
            }
            Ok(())
        }
        "panic-after-links" => {
            own_host_link(call)?;
            links::create_veth(
                &namespaces::container()?,
                "attk1",
                &no_options(),
                &namespaces::container()?,
                "attk2",
                &no_options(),
            )?;
            panic!("attacker: panicking after creating links")
        }
        "none" | "big-result" | "forged-result" => Ok(()),
        other => Err(internal(format!("attacker: unknown attack {other:?}"))),
    }
}

cni_plugin_sdk::plugin!(Attacker);
