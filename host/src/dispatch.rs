//! Running one plugin for one CNI verb: load, describe, check the version,
//! grant, call, and undo a failed ADD. Used for the plugin the runtime ran
//! and, recursively, for in-process delegates.

use std::mem::ManuallyDrop;
use std::rc::Rc;

use wasmtime::Store;

use crate::bindings::cni_wasm::plugin::cni;
use crate::context::{Call, HostState, Origin};
use crate::imports::convert::{result_from_wit, result_to_wit};
use crate::imports::namespaces::Which;
use crate::journal::Entry;
use crate::ledger::{self, Ledger};
use crate::log::log_at;
use crate::policy::Grants;
use crate::process::Process;
use crate::protocol::config::RequestConfig;
use crate::protocol::env::{Command, Environment};
use crate::protocol::error::{CniError, code};
use crate::protocol::result::CniResult;
use crate::protocol::version::{self, Version};

/// How deep delegation may nest (meta plugin → main plugin → IPAM → ...).
pub const MAX_DEPTH: usize = 4;

pub enum Response {
    /// VERSION: the config versions the plugin accepts.
    Versions(Vec<String>),
    /// ADD: the result, in CNI 1.1 shape.
    Added(CniResult),
    /// DEL, CHECK, STATUS, GC.
    Done,
}

pub fn invoke(
    process: &Rc<Process>,
    plugin: &str,
    env: Environment,
    config: RequestConfig,
    origin: Origin,
) -> Result<Response, CniError> {
    let depth = origin.depth();
    if depth > MAX_DEPTH {
        let chain = origin.callers.join(" -> ");
        return Err(CniError::internal(format!(
            "{plugin}: delegation nested deeper than {MAX_DEPTH} levels ({chain} -> {plugin})"
        )));
    }
    let loaded = process.registry.load(&process.runtime, plugin, process.deadline())?;
    crate::timing::mark("load component");
    let command = env.command;
    let call = Rc::new(Call { plugin: plugin.to_string(), env, config, origin });
    let state = HostState::new(process.session.clone(), process.clone(), call.clone(), Grants::none(plugin));
    let imports = process.runtime.contract_imports(&loaded.component);
    check_contract(plugin, &imports)?;
    let (store, bindings) = process
        .runtime
        .instantiate(&loaded.component, state)
        .map_err(|e| CniError::internal(format!("{plugin}: instantiating the plugin: {e:#}")))?;
    // A plugin process exits right after this call: tearing the store and
    // component down (unmapping, re-protecting, freeing) would only delay
    // the answer, so they are never dropped.
    let mut store = ManuallyDrop::new(store);
    let _component = ManuallyDrop::new(loaded.component);
    crate::timing::mark("instantiate");
    let guest = bindings.cni_wasm_plugin_plugin();
    let manifest = guest.call_describe(&mut *store).map_err(|trap| trapped(plugin, "describe", &trap, &store))?;
    crate::timing::mark("describe");

    check_imports_declared(plugin, &imports, &manifest)?;
    if command == Command::Version {
        return Ok(Response::Versions(manifest.cni_versions));
    }
    let config = &call.config;
    version::check_supported(&config.cni_version, &manifest.cni_versions)?;
    let config_version = Version::parse(&config.cni_version)?;
    let minimum = match command {
        Command::Check => Some(version::V0_4_0),
        Command::Status | Command::Gc => Some(version::V1_1_0),
        _ => None,
    };
    if let Some(minimum) = minimum
        && !config_version.at_least(minimum)
    {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {}", command.as_str()),
        ));
    }

    let grants = match &call.origin.limit {
        None => Grants::new(plugin, loaded.third_party, &manifest, &process.policy, config),
        Some(limit) => {
            let mut grants = Grants::new(plugin, loaded.third_party, &manifest, &process.policy, &limit.admin_config);
            grants.narrow_to(&limit.grants);
            grants
        }
    };
    if depth == 0 {
        process.set_deadline(grants.timeout);
    }
    store.data_mut().limits = HostState::limits_for(&grants);
    store.data_mut().grants = grants;
    // Keyed by the cookie, which no later namespace reuses (an inode is).
    let ledger = process.session.host_ns.cookie().ok().and_then(|ns| Ledger::open(ns, &config.name, plugin));
    let attachment = ledger::Attachment { container_id: &call.env.container_id, ifname: &call.env.ifname };
    if let (Some(ledger), Command::Del | Command::Check) = (&ledger, command) {
        // What this attachment's ADD created is its DEL's to remove.
        store.data_mut().created_host_links.extend(ledger.read(&attachment).links);
    }

    match command {
        Command::Add | Command::Del | Command::Check => {
            let invocation = cni::Invocation {
                container_id: call.env.container_id.clone(),
                ifname: call.env.ifname.clone(),
                netns: call.env.netns.clone(),
                args: call.env.args.clone(),
                config: String::from_utf8_lossy(&config.raw).into_owned(),
                cni_version: config.cni_version.clone(),
                prev_result: prev_result(config)?.as_ref().map(result_to_wit),
            };
            match command {
                Command::Add => {
                    let outcome = guest.call_add(&mut *store, &invocation);
                    crate::timing::mark("plugin ADD");
                    // The last call, if it did not fail, succeeded.
                    store.data().audit_verdict("ok");
                    let failure = match outcome {
                        Ok(Ok(result)) => match result_from_wit(result) {
                            Ok(result)
                                if result.to_json(version::CURRENT).map(|j| j.to_string().len()).unwrap_or(0)
                                    > MAX_RESULT =>
                            {
                                CniError::internal(format!(
                                    "{plugin}: the plugin returned a result larger than {MAX_RESULT} bytes"
                                ))
                            }
                            Ok(result) => {
                                record(ledger.as_ref(), &attachment, store.data());
                                return Ok(Response::Added(result));
                            }
                            Err(e) => {
                                CniError::internal(format!("{plugin}: the plugin returned an invalid result: {e}"))
                            }
                        },
                        Ok(Err(error)) => cni_error(error),
                        Err(trap) => trapped(plugin, "ADD", &trap, &store),
                    };
                    rollback(process, &mut store);
                    Err(failure)
                }
                Command::Del => {
                    let outcome = guest.call_del(&mut *store, &invocation);
                    crate::timing::mark("plugin DEL");
                    // The last call, if it did not fail, succeeded.
                    store.data().audit_verdict("ok");
                    let response = finish(plugin, "DEL", outcome, &store)?;
                    if let Some(Err(e)) = ledger.as_ref().map(|l| l.remove(&attachment)) {
                        log_at!(Warn, plugin, "DEL done, but its ledger entry stays: {e}");
                    }
                    Ok(response)
                }
                _ => {
                    let outcome = guest.call_check(&mut *store, &invocation);
                    crate::timing::mark("plugin CHECK");
                    // The last call, if it did not fail, succeeded.
                    store.data().audit_verdict("ok");
                    finish(plugin, "CHECK", outcome, &store)
                }
            }
        }
        Command::Status => {
            let config_text = String::from_utf8_lossy(&config.raw).into_owned();
            let outcome = guest.call_status(&mut *store, &config_text);
            store.data().audit_verdict("ok");
            finish(plugin, "STATUS", outcome, &store)
        }
        Command::Gc => {
            let config_text = String::from_utf8_lossy(&config.raw).into_owned();
            let valid: Vec<cni::Attachment> = config
                .valid_attachments()?
                .into_iter()
                .map(|a| cni::Attachment { container_id: a.container_id, ifname: a.ifname })
                .collect();
            // What attachments no longer listed created is GC's to remove.
            let stale: Vec<(String, String, ledger::Entry)> = ledger
                .as_ref()
                .map(|l| l.all())
                .unwrap_or_default()
                .into_iter()
                .filter(|(id, ifname, _)| !valid.iter().any(|v| v.container_id == *id && v.ifname == *ifname))
                .collect();
            for (_, _, entry) in &stale {
                store.data_mut().created_host_links.extend(entry.links.iter().cloned());
            }
            let outcome = guest.call_gc(&mut *store, &config_text, &valid);
            store.data().audit_verdict("ok");
            let response = finish(plugin, "GC", outcome, &store)?;
            for (container_id, ifname, _) in &stale {
                let attachment = ledger::Attachment { container_id, ifname };
                if let Some(Err(e)) = ledger.as_ref().map(|l| l.remove(&attachment)) {
                    log_at!(Warn, plugin, "GC done, but a ledger entry stays: {e}");
                }
            }
            Ok(response)
        }
        Command::Version => unreachable!("answered above"),
    }
}

/// The contract this host implements (wit/types.wit's package version).
pub const CONTRACT: &str = "0.1.0";

/// A component built against another contract is refused, naming both.
/// Compatible means the same major version and, while that is 0, the same
/// minor: a patch release only documents or adds nothing a plugin could
/// import without a minor release (see wit/README.md).
pub fn check_contract(plugin: &str, imports: &[(String, String)]) -> Result<(), CniError> {
    let series = |v: &str| -> String {
        let parts: Vec<&str> = v.split('.').collect();
        match parts.as_slice() {
            ["0", minor, ..] => format!("0.{minor}"),
            [major, ..] => major.to_string(),
            [] => String::new(),
        }
    };
    if let Some((interface, version)) = imports.iter().find(|(_, version)| series(version) != series(CONTRACT)) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{plugin}: built against the cni-wasm contract {version} (cni-wasm:plugin/{interface}@{version}); this host implements {CONTRACT} and runs components built against {}.x",
                series(CONTRACT)
            ),
        ));
    }
    Ok(())
}

/// A component may import only the families its manifest declares: what
/// it can call is what it says it needs.
pub fn check_imports_declared(
    plugin: &str,
    imports: &[(String, String)],
    manifest: &cni::Manifest,
) -> Result<(), CniError> {
    for (interface, _) in imports {
        let Some(family) = crate::imports::interface(interface).and_then(|i| i.capability) else { continue };
        if !manifest.capabilities.contains(&family) {
            return Err(CniError::internal(format!(
                "{plugin}: the component imports cni-wasm:plugin/{interface}, but its manifest does not declare the {interface:?} capability"
            )));
        }
    }
    Ok(())
}

/// Records the host links a successful ADD created (the ones the config
/// names as managed are the network's, not the attachment's).
fn record(ledger: Option<&Ledger>, attachment: &ledger::Attachment, state: &HostState) {
    let Some(ledger) = ledger else { return };
    let mut links: Vec<String> =
        state.created_host_links.iter().filter(|l| !state.grants.manages_host_link(l)).cloned().collect();
    links.sort();
    if links.is_empty() {
        return;
    }
    if let Err(e) = ledger.write(attachment, &ledger::Entry { links }) {
        log_at!(Warn, &state.grants.plugin, "ADD done, but not recorded for DEL: {e}");
    }
}

/// prevResult, parsed in the config's version and normalized to 1.1.
fn prev_result(config: &RequestConfig) -> Result<Option<CniResult>, CniError> {
    config
        .prev_result()
        .map(|value| {
            CniResult::parse(value, &config.cni_version)
                .map_err(|e| CniError::new(code::DECODING_FAILURE, format!("could not parse prevResult: {}", e.msg)))
        })
        .transpose()
}

fn finish(
    plugin: &str,
    verb: &str,
    outcome: wasmtime::Result<Result<(), cni::Error>>,
    store: &Store<HostState>,
) -> Result<Response, CniError> {
    match outcome {
        Ok(Ok(())) => Ok(Response::Done),
        Ok(Err(error)) => Err(cni_error(error)),
        Err(trap) => Err(trapped(plugin, verb, &trap, store)),
    }
}

/// The most of a plugin's error message or details the host passes on.
const MAX_ERROR_TEXT: usize = 64 << 10;
/// The largest result (as CNI 1.1 JSON) the host passes on.
const MAX_RESULT: usize = 1 << 20;

fn cni_error(error: cni::Error) -> CniError {
    let cut = |mut text: String| {
        if text.len() > MAX_ERROR_TEXT {
            let mut end = MAX_ERROR_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        text
    };
    CniError { code: error.code, msg: cut(error.msg), details: cut(error.details) }
}

/// A guest trap: a deadline, the memory cap, or a plugin bug (panic).
fn trapped(plugin: &str, verb: &str, trap: &wasmtime::Error, store: &Store<HostState>) -> CniError {
    let grants = &store.data().grants;
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "{plugin}: {verb} did not finish within its deadline of {} ms and was stopped",
                grants.timeout.as_millis()
            ),
        ),
        _ if format!("{trap:#}").contains("memory") => CniError::internal(format!(
            "{plugin}: {verb} was stopped: it exceeded its memory cap of {} MiB ({trap:#})",
            grants.memory_bytes >> 20
        )),
        // The backtrace is for the plugin's author: details, not msg.
        _ => match &store.data().panic_message {
            Some(why) => CniError::internal(format!("{plugin}: {verb} crashed: the plugin panicked: {why}")),
            None => CniError::internal(format!("{plugin}: {verb} crashed: {}", trap.root_cause())),
        }
        .with_details(format!("{trap:#}")),
    }
}

/// Undoes what a failed ADD created, newest first; keeps going past errors
/// and logs each one. Host links the request config names (a bridge) and
/// their addresses (its gateway) are shared by the network's attachments,
/// so they stay even if this ADD created them: a concurrent ADD may already
/// use them.
fn rollback(process: &Rc<Process>, store: &mut Store<HostState>) {
    let state = store.data_mut();
    let plugin = state.grants.plugin.clone();
    for entry in state.journal.take_for_rollback() {
        let shared_link = match &entry {
            Entry::LinkCreated { ns: Which::Host, name } => Some(name.as_str()),
            Entry::AddressAdded { ns: Which::Host, link, .. } => Some(link.as_str()),
            Entry::RouteAdded { ns: Which::Host, route } => route.link.as_deref(),
            _ => None,
        };
        if shared_link.is_some_and(|link| state.grants.manages_host_link(link)) {
            log_at!(Debug, &plugin, "rollback keeps shared {entry:?}");
            continue;
        }
        let outcome = match &entry {
            Entry::LinkCreated { ns, name } => {
                state.namespace(*ns).ok().map(|ns| cni_wasm_capabilities::links::delete(&ns, name))
            }
            Entry::LinkMoved { from, name, was_up, alias, to, moved_name } => {
                match (state.namespace(*from), state.namespace(*to)) {
                    (Ok(from), Ok(to)) => Some(move_back(&to, moved_name, &from, name, *was_up, alias)),
                    _ => None,
                }
            }
            Entry::AddressAdded { ns, link, address } => {
                state.namespace(*ns).ok().map(|ns| cni_wasm_capabilities::addresses::delete(&ns, link, *address))
            }
            Entry::RouteAdded { ns, route } => {
                state.namespace(*ns).ok().map(|ns| cni_wasm_capabilities::routes::delete(&ns, route))
            }
            Entry::IptablesApplied { ns, family, table, undo } => state.namespace(*ns).ok().map(|ns| {
                // One line at a time: a rule or chain already gone (or a
                // chain others still use) must not keep the rest in place.
                for line in undo {
                    let outcome = cni_wasm_capabilities::netfilter::iptables_restore(
                        &ns,
                        *family,
                        table,
                        line,
                        process.deadline(),
                    );
                    if let Err(error) = outcome {
                        log_at!(Debug, &plugin, "rollback: {table} {line:?} not undone: {error}");
                    }
                }
                Ok(())
            }),
            Entry::NftApplied { ns, undo } => state.namespace(*ns).ok().map(|ns| {
                let deadline = process.deadline();
                let batch = |commands: &[serde_json::Value]| serde_json::json!({ "nftables": commands }).to_string();
                // All at once, or, if something was already gone, each on
                // its own.
                if cni_wasm_capabilities::netfilter::nft_apply(&ns, &batch(undo), deadline).is_err() {
                    for command in undo {
                        if let Err(error) = cni_wasm_capabilities::netfilter::nft_apply(
                            &ns,
                            &batch(std::slice::from_ref(command)),
                            deadline,
                        ) {
                            log_at!(Debug, &plugin, "rollback: {command} not undone: {error}");
                        }
                    }
                }
                Ok(())
            }),
            Entry::StateFileCreated { path } => state.state_dir.as_ref().map(|dir| dir.remove(path).map(drop)),
            Entry::DelegateAdded { plugin_type, stdin } => {
                let outcome =
                    crate::delegate::run(process, &state.call, &state.grants, plugin_type, Command::Del, stdin.clone());
                if let Err(error) = outcome {
                    log_at!(Warn, &plugin, "rolling back: DEL of delegate {plugin_type} failed: {error}");
                }
                None
            }
        };
        match outcome {
            Some(Err(error)) if !error.is_not_found() => {
                log_at!(Warn, &plugin, "rolling back a failed ADD: {entry:?}: {error}");
            }
            _ => log_at!(Debug, &plugin, "rolled back {entry:?}"),
        }
    }
}

/// Gives a moved link back under its old name and alias, up again if it was.
fn move_back(
    now_in: &cni_wasm_capabilities::netns::Netns,
    moved_name: &str,
    home: &cni_wasm_capabilities::netns::Netns,
    name: &str,
    was_up: bool,
    alias: &str,
) -> cni_wasm_capabilities::error::Result<()> {
    use cni_wasm_capabilities::links;
    links::set(now_in, moved_name, &links::LinkChange { up: Some(false), ..Default::default() })?;
    links::move_to(now_in, moved_name, home, name)?;
    let restore =
        links::LinkChange { up: was_up.then_some(true), alias: Some(alias.to_string()), ..Default::default() };
    links::set(home, name, &restore)
}

/// A plugin's manifest (for `cni-wasm list`).
pub fn describe(process: &Rc<Process>, plugin: &str) -> Result<cni::Manifest, CniError> {
    let loaded = process.registry.load(&process.runtime, plugin, process.deadline())?;
    describe_component(process, plugin, &loaded.component)
}

/// The manifest of a component already loaded (for `cni-wasm inspect`),
/// asked as [`invoke`] asks it: instantiated with nothing granted.
pub fn describe_component(
    process: &Rc<Process>,
    plugin: &str,
    component: &wasmtime::component::Component,
) -> Result<cni::Manifest, CniError> {
    let env = Environment::read(|key| (key == "CNI_COMMAND").then(|| "VERSION".to_string()))?;
    let call =
        Rc::new(Call { plugin: plugin.to_string(), env, config: RequestConfig::empty(), origin: Origin::default() });
    let state = HostState::new(process.session.clone(), process.clone(), call, Grants::none(plugin));
    let (mut store, bindings) = process
        .runtime
        .instantiate(component, state)
        .map_err(|e| CniError::internal(format!("{plugin}: instantiating the plugin: {e:#}")))?;
    bindings
        .cni_wasm_plugin_plugin()
        .call_describe(&mut store)
        .map_err(|trap| trapped(plugin, "describe", &trap, &store))
}
