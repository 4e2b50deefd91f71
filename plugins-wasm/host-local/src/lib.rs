//! host-local: allocates addresses from configured ranges and records them
//! on disk exactly as the reference plugin does (so either can take over
//! from the other). Adds what the reference lacks: GC of reservations that
//! belong to no valid attachment, and STATUS that reports an exhausted pool.

mod allocator;
mod config;
mod dns;
mod store;

use std::net::IpAddr;

use cni_plugin_sdk::config::no_dns;
use cni_plugin_sdk::error::{Context, Result, code, error, internal};
use cni_plugin_sdk::net::ip_to_wit;
use cni_plugin_sdk::{Attachment, Capability, CniResult, Invocation, Manifest, ObjectRole, StateLocation, cni};

use crate::config::IpamConfig;
use crate::store::Store;

struct HostLocal;

impl cni_plugin_sdk::Plugin for HostLocal {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::State, Capability::Files]);
        manifest.state = Some(StateLocation {
            default_dir: "/var/lib/cni/networks".into(),
            config_key: Some("ipam.dataDir".into()),
        });
        manifest.objects.push(cni_plugin_sdk::object("ipam.resolvConf", ObjectRole::File));
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = config::load(&call.config, &call.args)?;
        let dns = match conf.resolv_conf.as_str() {
            "" => no_dns(),
            path => dns::parse_resolv_conf(path)?,
        };
        let store = Store::lock(&conf.name)?;
        let mut requested = conf.requested.clone();
        let mut ips = Vec::new();
        // Addresses this call reserved, given back if a later step fails
        // (and only those: an earlier ADD's reservations stay).
        let mut taken = Vec::new();
        let give_back = |taken: &[IpAddr]| {
            for ip in taken {
                let _ = store.remove(*ip);
            }
        };
        // What the attachment already holds, for the duplicate check: its
        // index entry only. An attachment without one (the reference added
        // it) is not scanned for: a second ADD of the same attachment breaks
        // the spec, and scanning would make every ADD read the whole store.
        let held = store.indexed(&call.container_id, &call.ifname)?.unwrap_or_default();
        for (index, set) in conf.ranges.iter().enumerate() {
            let wanted = requested.iter().position(|ip| config::set_contains(set, *ip)).map(|i| requested.remove(i));
            match allocator::allocate(&store, set, index, &call.container_id, &call.ifname, wanted, &held) {
                Ok(allocation) => {
                    taken.push(allocation.address.addr);
                    ips.push(cni::IpConfig {
                        interface_index: None,
                        address: allocation.address.to_wit(),
                        gateway: Some(ip_to_wit(allocation.gateway)),
                    });
                }
                Err(e) => {
                    give_back(&taken);
                    return Err(internal(format!("failed to allocate for range {index}: {}", e.msg)));
                }
            }
        }
        if !requested.is_empty() {
            give_back(&taken);
            let list: Vec<String> = requested.iter().map(IpAddr::to_string).collect();
            return Err(internal(format!("failed to allocate all requested IPs: {}", list.join(" "))));
        }
        if let Err(e) = store.index(&call.container_id, &call.ifname, &taken) {
            give_back(&taken);
            return Err(e);
        }
        Ok(CniResult { interfaces: Vec::new(), ips, routes: routes(&conf)?, dns })
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf = config::load(&call.config, &call.args)?;
        Store::lock(&conf.name)?.release(&call.container_id, &call.ifname)
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = config::load(&call.config, &call.args)?;
        let found = Store::lock(&conf.name)?.find(&call.container_id, &call.ifname)?;
        if found.is_empty() {
            return Err(internal(format!(
                "host-local: Failed to find address added by container {}",
                call.container_id
            )));
        }
        Ok(())
    }

    /// Not available when some range set has no free address: ADD needs one
    /// from every set.
    fn status(config: &str) -> Result<()> {
        let conf = config::load(config, "")?;
        let store = Store::lock(&conf.name)?;
        let reserved: Vec<IpAddr> = store.reservations()?.into_iter().map(|(ip, _)| ip).collect();
        for set in &conf.ranges {
            if allocator::free_addresses(set, &reserved) == 0 {
                return Err(error(
                    code::PLUGIN_NOT_AVAILABLE,
                    format!("no IP addresses available in range set: {}", config::set_to_string(set)),
                ));
            }
        }
        Ok(())
    }

    /// Releases every reservation of this network held by an attachment the
    /// runtime no longer lists.
    fn gc(config: &str, valid: &[Attachment]) -> Result<()> {
        let conf = config::load(config, "")?;
        let store = Store::lock(&conf.name)?;
        let mut failures = Vec::new();
        for (ip, holder) in store.reservations()? {
            let still_valid = valid.iter().any(|a| {
                a.container_id == holder.container_id && holder.ifname.as_deref().is_none_or(|i| i == a.ifname)
            });
            if !still_valid {
                cni_plugin_sdk::info!(
                    "gc: releasing {ip}, held by {}/{}",
                    holder.container_id,
                    holder.ifname.as_deref().unwrap_or("-")
                );
                if let Err(e) = store.remove(ip) {
                    failures.push(format!("{ip}: {}", e.msg));
                }
            }
        }
        let kept = |id: &str, ifname: &str| valid.iter().any(|a| a.container_id == id && a.ifname == ifname);
        if let Err(e) = store.prune_index(kept) {
            failures.push(format!("pruning the attachment index: {}", e.msg));
        }
        if failures.is_empty() { Ok(()) } else { Err(internal(format!("gc: {}", failures.join("; ")))) }
    }
}

fn routes(conf: &IpamConfig) -> Result<Vec<cni::Route>> {
    conf.routes.iter().map(|r| r.to_result()).collect::<Result<_>>().context("invalid route")
}

cni_plugin_sdk::plugin!(HostLocal);
