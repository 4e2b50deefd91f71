//! firewall: a chained plugin that lets the container's traffic through
//! the host's forward filter and, with `ingressPolicy`, keeps bridges
//! apart. Reads like the reference's cmdAdd / cmdDel / cmdCheck, with
//! three backends:
//!
//! - `iptables` (the default unless firewalld runs): the reference's
//!   chains, rules and comments exactly ([`iptables`]);
//! - `firewalld`: the addresses become sources of a zone ([`firewalld`]);
//! - `nftables`: not in the reference; a table of its own ([`nftables`]).
//!
//! Beyond the reference: the config is validated before anything changes
//! (the reference adds the rules, then rejects an unknown ingressPolicy
//! and leaves them); DEL without prevResult still removes what ADD set up;
//! CHECK also checks the isolation rules and creates nothing; STATUS says
//! whether the backend is usable; GC removes what attachments the runtime
//! no longer lists left behind ([`records`] for iptables and firewalld,
//! rule comments for nftables). An ADD or DEL never lists the chains that
//! hold every attachment's rules where the records let it avoid that.

mod config;
mod firewalld;
mod iptables;
mod nftables;
mod records;

use cni_plugin_sdk::error::{Result, code, error, internal};
use cni_plugin_sdk::namespaces::{self, Netns};
use cni_plugin_sdk::net::IpNet;
use cni_plugin_sdk::netfilter::NftHandles;
use cni_plugin_sdk::{Attachment, Capability, CniResult, Invocation, Manifest, ObjectRole, StateLocation, state};

use crate::config::{Backend, Conf, DEFAULT_ADMIN_CHAIN, container_ips, isolation_bridge};
use crate::iptables::Isolation;
use crate::records::Record;

/// Serializes this plugin's read-modify-writes of the shared chains (an
/// "insert unless present" must not race with another invocation's).
const LOCK: &str = "netfilter.lock";

struct Firewall;

impl cni_plugin_sdk::Plugin for Firewall {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::Netfilter, Capability::State]);
        manifest.cni_versions = cni_plugin_sdk::versions_from("0.4.0");
        manifest.objects.push(cni_plugin_sdk::object("iptablesAdminChainName", ObjectRole::Chain));
        manifest.iptables_chains = [iptables::FORWARD_CHAIN, DEFAULT_ADMIN_CHAIN, iptables::STAGE_1, iptables::STAGE_2]
            .map(String::from)
            .to_vec();
        manifest.nft_tables = vec![format!("inet {}", nftables::TABLE)];
        manifest.state = Some(StateLocation { default_dir: "/run/cni-wasm/firewall".into(), config_key: None });
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = load(&call.config)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("missing prevResult from earlier plugin"))?;
        let ips = container_ips(previous);
        let isolation = isolation(&conf, previous)?;
        let backend = backend(&conf)?;
        // No addresses: nothing to let through, and the reference sets up
        // nothing either (not even the isolation rules).
        if ips.is_empty() {
            return Ok(previous.clone());
        }
        let host = namespaces::host();
        let _lock = state::lock(LOCK)?;
        let previous_record = records::read(&conf.name, &call.container_id, &call.ifname)?;
        let mut record = Record::new(&call.container_id, &call.ifname, backend, &ips, &conf.zone);
        // An earlier ADD's nftables rules stay findable until a DEL.
        record.nft_rules = previous_record.as_ref().and_then(|r| r.nft_rules.clone());
        // First, so a failure leaves no rules without a record; the host
        // removes the record if the ADD fails.
        records::write(&conf.name, &record)?;
        match backend {
            Backend::Iptables => iptables::add(&host, &conf.admin_chain, &ips, isolation.as_ref())?,
            Backend::Nftables => {
                let previous = previous_record.as_ref().and_then(Record::nft_handles);
                let nft =
                    nftables::Owner { network: &conf.name, ifname: &call.ifname, container_id: &call.container_id };
                let handles = nftables::add(&host, &nft, &ips, isolation.as_ref(), previous.as_ref())?;
                record.nft_rules = handles.as_ref().map(NftHandles::encode);
                records::write(&conf.name, &record)?;
            }
            Backend::Firewalld => {
                firewalld::add(&firewalld::SystemBus, &conf.zone, &ips)?;
                // The reference isolates bridges with iptables whatever the
                // backend.
                if let Some(isolation) = &isolation
                    && let Err(e) = iptables::isolate(&host, &ips, isolation)
                {
                    log_failures(firewalld::remove(&firewalld::SystemBus, &conf.zone, &ips));
                    return Err(e);
                }
            }
        }
        Ok(previous.clone())
    }

    fn del(call: &Invocation) -> Result<()> {
        let conf = Conf::load_for_del(&call.config)?;
        let host = namespaces::host();
        let _lock = state::lock(LOCK)?;
        let record = records::read(&conf.name, &call.container_id, &call.ifname)?;
        // prevResult's addresses, as the reference; without prevResult the
        // reference removes nothing, we remove what the ADD recorded.
        let ips = match (&call.prev_result, &record) {
            (Some(previous), _) => container_ips(previous),
            (None, Some(record)) => record.ips(),
            (None, None) => Vec::new(),
        };
        let backend = conf.backend.unwrap_or_else(default_backend);
        let mut errors = Vec::new();
        teardown(&host, backend, &conf.zone, &ips, &mut errors);
        // The config may name another backend than the one the ADD used.
        if let Some(record) = &record
            && let Some(recorded) = record.backend().filter(|b| *b != backend)
        {
            teardown(&host, recorded, record.zone.as_deref().unwrap_or(&conf.zone), &record.ips(), &mut errors);
        }
        // nftables rules are found by their handles, or by their comment
        // whatever the config says, unless the record says the ADD wrote
        // none; where nft is unusable and not asked for, there are none.
        let nft = nftables::Owner { network: &conf.name, ifname: &call.ifname, container_id: &call.container_id };
        let found = match &record {
            Some(record) => match record.nft_handles() {
                Some(handles) => nftables::Found::Handles(handles),
                None if record.backend() == Some(Backend::Nftables) => nftables::Found::List,
                None => nftables::Found::Nothing,
            },
            None => nftables::Found::List,
        };
        match nftables::remove(&host, &nft, found) {
            Ok(()) => {}
            Err(e) if backend == Backend::Nftables => errors.push(e.msg),
            Err(e) => cni_plugin_sdk::debug!("firewall: nftables cleanup skipped: {}", e.msg),
        }
        if !errors.is_empty() {
            return Err(internal(errors.join("; ")));
        }
        records::remove(&conf.name, &call.container_id, &call.ifname)
    }

    fn check(call: &Invocation) -> Result<()> {
        let conf = load(&call.config)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("missing prevResult from earlier plugin"))?;
        let ips = container_ips(previous);
        let isolation = isolation(&conf, previous)?;
        let backend = backend(&conf)?;
        let host = namespaces::host();
        if ips.is_empty() {
            return Ok(());
        }
        match backend {
            Backend::Iptables => iptables::check(&host, &conf.admin_chain, &ips, isolation.as_ref()),
            Backend::Nftables => {
                nftables::check(&host, &conf.name, &call.ifname, &call.container_id, &ips, isolation.as_ref())
            }
            Backend::Firewalld => {
                firewalld::check(&firewalld::SystemBus, &conf.zone, &ips)?;
                match &isolation {
                    Some(isolation) => iptables::check_isolation(&host, &ips, isolation),
                    None => Ok(()),
                }
            }
        }
    }

    /// Whether the backend the config selects can be used here (code 50
    /// when not). The reference has no STATUS.
    fn status(config: &str) -> Result<()> {
        let conf = load(config)?;
        let host = namespaces::host();
        let usable = match conf.backend {
            Some(Backend::Firewalld) if !firewalld::running() => Err(firewalld::not_running()),
            Some(Backend::Firewalld) => Ok(()),
            Some(Backend::Nftables) => nftables::usable(&host),
            Some(Backend::Iptables) => iptables::usable(&host),
            None if firewalld::running() => Ok(()),
            None => iptables::usable(&host),
        };
        usable.map_err(|e| error(code::PLUGIN_NOT_AVAILABLE, e.msg))
    }

    /// Removes the rules (and firewalld sources) of this network's
    /// attachments that are not in `valid`. The reference has no GC.
    fn gc(config: &str, valid: &[Attachment]) -> Result<()> {
        let conf = load(config)?;
        let host = namespaces::host();
        let _lock = state::lock(LOCK)?;
        let listed = |r: &Record| valid.iter().any(|a| a.container_id == r.container_id && a.ifname == r.ifname);
        let stored = records::all(&conf.name)?;
        // An address a listed attachment holds now keeps its rules, even
        // if a stale attachment held it before (iptables rules of equal
        // addresses are one and the same).
        let live: Vec<IpNet> = stored.iter().filter(|(_, r)| listed(r)).flat_map(|(_, r)| r.ips()).collect();
        let mut errors = Vec::new();
        for (name, record) in stored.iter().filter(|(_, r)| !listed(r)) {
            let stale: Vec<IpNet> = record.ips().into_iter().filter(|ip| !live.contains(ip)).collect();
            let mut failed = Vec::new();
            if let Some(backend) = record.backend() {
                teardown(&host, backend, record.zone.as_deref().unwrap_or(&conf.zone), &stale, &mut failed);
            }
            if failed.is_empty()
                && let Err(e) = records::remove_file(&conf.name, name)
            {
                errors.push(e.msg);
            }
            errors.extend(failed);
        }
        match nftables::gc(&host, &conf.name, valid) {
            Ok(()) => {}
            Err(e) if conf.backend == Some(Backend::Nftables) => errors.push(e.msg),
            Err(e) => cni_plugin_sdk::debug!("firewall: nftables GC skipped: {}", e.msg),
        }
        if errors.is_empty() { Ok(()) } else { Err(internal(errors.join("; "))) }
    }
}

fn load(config: &str) -> Result<Conf> {
    let conf = Conf::load(config)?;
    if let Some(name) = &conf.unknown_backend {
        cni_plugin_sdk::warn!(
            "firewall: unknown backend {name:?}, using the default (firewalld if running, else iptables)"
        );
    }
    Ok(conf)
}

/// The configured backend; unset, firewalld when it runs, else iptables
/// (getBackend). An explicit firewalld that is not running is an error.
fn backend(conf: &Conf) -> Result<Backend> {
    match conf.backend {
        Some(Backend::Firewalld) if !firewalld::running() => Err(firewalld::not_running()),
        Some(backend) => Ok(backend),
        None => Ok(default_backend()),
    }
}

fn default_backend() -> Backend {
    if firewalld::running() { Backend::Firewalld } else { Backend::Iptables }
}

fn isolation(conf: &Conf, previous: &CniResult) -> Result<Option<Isolation>> {
    Ok(isolation_bridge(conf, previous)?.map(|bridge| Isolation { bridge, policy: conf.ingress_policy }))
}

/// Removes the addresses' rules from one backend, collecting failures.
/// firewalld that is not running holds no sources (they are runtime-only).
fn teardown(host: &Netns, backend: Backend, zone: &str, ips: &[IpNet], errors: &mut Vec<String>) {
    match backend {
        Backend::Iptables => {
            if let Err(e) = iptables::remove_all(host, ips) {
                errors.push(e.msg);
            }
        }
        Backend::Firewalld if firewalld::running() => log_failures(firewalld::remove(&firewalld::SystemBus, zone, ips)),
        Backend::Firewalld => cni_plugin_sdk::info!("firewall: firewalld is not running; no zone sources to remove"),
        // By comment, not by address: see nftables::remove.
        Backend::Nftables => {}
    }
}

/// Failures the reference ignores, for the debug log.
fn log_failures(failures: Vec<String>) {
    for failure in failures {
        cni_plugin_sdk::debug!("firewall: {failure}");
    }
}

cni_plugin_sdk::plugin!(Firewall);
