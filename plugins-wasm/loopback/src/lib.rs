//! loopback: sets `lo` up in the container (and down on DEL). CNI_IFNAME is
//! ignored: this plugin only ever works on `lo`.

use cni_plugin_sdk::config::{self, NetConf};
use cni_plugin_sdk::error::internal;
use cni_plugin_sdk::ipam::no_change;
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::{Capability, CniResult, Context, Invocation, Manifest, Result, addresses, cni, links, namespaces};

const LO: &str = "lo";

struct Loopback;

impl cni_plugin_sdk::Plugin for Loopback {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[Capability::Links, Capability::Addresses])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let _conf: NetConf = config::parse(&call.config)?;
        let ns = namespaces::container()?;
        links::set(&ns, LO, &up(true)).context("setting lo up")?;

        let mut first_v4 = None;
        let mut first_v6 = None;
        for address in addresses::dump(&ns, Some(LO), None)? {
            let network = IpNet::from_wit(&address.address);
            if !network.addr.is_loopback() {
                return Err(internal(format!(
                    "loopback interface found with non-loopback address {:?}",
                    network.addr.to_string()
                )));
            }
            let slot = if network.is_ipv4() { &mut first_v4 } else { &mut first_v6 };
            slot.get_or_insert(address.address);
        }

        // Chained after another plugin, loopback passes its result through.
        if let Some(previous) = &call.prev_result {
            return Ok(previous.clone());
        }
        let ips = [first_v4, first_v6]
            .into_iter()
            .flatten()
            .map(|address| cni::IpConfig { interface_index: Some(0), address, gateway: None })
            .collect();
        Ok(CniResult {
            interfaces: vec![cni::NetworkInterface {
                name: LO.into(),
                mac: Some("00:00:00:00:00:00".into()),
                mtu: None,
                sandbox: call.netns.clone(),
                socket_path: None,
                pci_id: None,
            }],
            ips,
            routes: Vec::new(),
            dns: cni::Dns { nameservers: Vec::new(), domain: None, search: Vec::new(), options: Vec::new() },
        })
    }

    fn del(call: &Invocation) -> Result<()> {
        if call.netns.is_none() {
            return Ok(());
        }
        // The namespace may already be gone (the runtime deleted it): done.
        let ns = match namespaces::container() {
            Ok(ns) => ns,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        links::set(&ns, LO, &up(false)).context("setting lo down")?;
        Ok(())
    }

    fn check(_call: &Invocation) -> Result<()> {
        let ns = namespaces::container()?;
        let lo = links::get(&ns, LO)?.ok_or_else(|| internal("loopback interface not found"))?;
        if !lo.up {
            return Err(internal("loopback interface is down"));
        }
        Ok(())
    }
}

fn up(on: bool) -> links::LinkChange {
    links::LinkChange { up: Some(on), ..no_change() }
}

cni_plugin_sdk::plugin!(Loopback);
