//! The kit for third-party plugins: `cni-wasm new` writes a plugin crate
//! that builds outside this repository, and `cni-wasm inspect` shows what
//! a built component imports, declares, and would be granted here.
//!
//! `new` vendors the guest SDK and the WIT contract this binary was built
//! with (embedded below), so a new plugin builds on a machine with no git
//! server and no published crate; `--sdk PATH` uses an SDK checkout
//! instead. Inspect asks the component for its manifest as a plugin run
//! does (dispatch.rs), and the grant comes from the same `Grants::new`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bindings::cni_wasm::plugin::cni::{Manifest, ObjectDefault, ObjectRole};
use crate::dispatch;
use crate::imports::capability_name;
use crate::policy::{DEFAULT_POLICY_PATH, Grants, PolicyFile};
use crate::process::Process;
use crate::protocol::config::RequestConfig;
use crate::registry::{self, Registry};
use crate::runtime::Runtime;

/// Files embedded from the source tree, as (name, contents).
macro_rules! embedded {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../", $dir, "/", $name)))),*]
    };
}

/// The SDK's sources (a unit test checks that none is missing).
const SDK_SOURCES: &[(&str, &str)] = embedded!("plugins-wasm/sdk/src":
    "args.rs", "config.rs", "error.rs", "iface.rs", "ipam.rs", "lib.rs", "log.rs", "masquerade.rs", "net.rs",
    "netfilter.rs");
/// The contract the SDK generates its bindings from.
const WIT_FILES: &[(&str, &str)] = embedded!("wit":
    "README.md", "addresses.wit", "clock.wit", "cni.wit", "conntrack.wit", "delegation.wit", "dhcp.wit",
    "files.wit", "links.wit", "logging.wit", "namespaces.wit", "neighbours.wit", "netfilter.wit", "plugin.wit",
    "routes.wit", "rules.wit", "state.wit", "sysctl.wit", "tc.wit", "types.wit");
const SDK_MANIFEST: &str = include_str!("../../plugins-wasm/sdk/Cargo.toml");
/// Where the SDK inherits its version and dependencies from.
const GUEST_WORKSPACE: &str = include_str!("../../plugins-wasm/Cargo.toml");
/// The built-in plugins' lockfile: a new plugin starts from the versions
/// they were built and tested with (and that an offline build has cached);
/// cargo drops the entries the new crate does not use.
const GUEST_LOCKFILE: &str = include_str!("../../plugins-wasm/Cargo.lock");
const TEMPLATE_MANIFEST: &str = include_str!("../../plugins-wasm/kit/template/Cargo.toml.in");
const TEMPLATE_LIB: &str = include_str!("../../plugins-wasm/kit/template/src/lib.rs");
const TEMPLATE_README: &str = include_str!("../../plugins-wasm/kit/template/README.md.in");

/// Where `new` puts the vendored SDK; its bindings read `../../wit`, so the
/// contract lands in the crate's own `wit/`, next to the plugin's code. The
/// version is in the name because cargo tells path dependencies apart by
/// their path within the workspace: plugins vendoring different SDKs could
/// otherwise share one build of it in a shared CARGO_TARGET_DIR.
fn vendored_sdk() -> String {
    let version = inherited("[workspace.package]", "version").unwrap_or_default();
    format!("vendor/cni-plugin-sdk-{}", version.trim_matches('"'))
}

/// `cni-wasm new PLUGIN [DIR] [--sdk PATH]`.
pub fn new_plugin(args: &[&str]) -> Result<(), String> {
    let mut positional = Vec::new();
    let mut sdk = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--sdk" => sdk = Some(PathBuf::from(rest.next().ok_or("--sdk needs a path (an SDK crate directory)")?)),
            flag if flag.starts_with('-') => return Err(format!("new: unknown flag {flag}")),
            value => positional.push(value),
        }
    }
    let (name, dir) = match positional.as_slice() {
        [name] => (*name, PathBuf::from(name)),
        [name, dir] => (*name, PathBuf::from(dir)),
        _ => return Err("usage: cni-wasm new PLUGIN [DIR] [--sdk PATH]".into()),
    };
    check_plugin_name(name)?;
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!("{} exists and is not empty; choose another DIR", dir.display()));
    }
    let write = |path: &str, contents: &str| -> Result<(), String> {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
    };

    let sdk_dependency = match &sdk {
        Some(path) => {
            let path = std::fs::canonicalize(path).map_err(|e| format!("--sdk {}: {e}", path.display()))?;
            let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap_or_default();
            if !manifest.contains("name = \"cni-plugin-sdk\"") {
                return Err(format!("--sdk {}: no cni-plugin-sdk crate there (its Cargo.toml)", path.display()));
            }
            path.display().to_string()
        }
        None => {
            write(&format!("{}/Cargo.toml", vendored_sdk()), &standalone_sdk_manifest()?)?;
            for (file, contents) in SDK_SOURCES {
                write(&format!("{}/src/{file}", vendored_sdk()), contents)?;
            }
            for (file, contents) in WIT_FILES {
                write(&format!("wit/{file}"), contents)?;
            }
            vendored_sdk()
        }
    };
    let crate_name = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk_dependency)
            .replace("{{contract}}", dispatch::CONTRACT)
    };
    write("Cargo.toml", &fill(TEMPLATE_MANIFEST))?;
    write("Cargo.lock", GUEST_LOCKFILE)?;
    write("src/lib.rs", TEMPLATE_LIB)?;
    write("README.md", &fill(TEMPLATE_README))?;
    write(".gitignore", "/target\n")?;

    let where_sdk = match sdk {
        Some(_) => format!("the SDK at {sdk_dependency}"),
        None => format!("the SDK vendored in {}, the contract in wit/", vendored_sdk()),
    };
    println!("created plugin {name} in {} ({where_sdk})", dir.display());
    println!("build:    cd {} && cargo build --release --target wasm32-wasip2", dir.display());
    println!("install:  cp target/wasm32-wasip2/release/{crate_name}.wasm /opt/cni/bin/{name}.wasm");
    println!(
        "policy:   in {DEFAULT_POLICY_PATH}, \"plugins\": {{\"{name}\": {{\"capabilities\": [\"links\"]}}}} (what src/lib.rs's manifest declares)"
    );
    println!("check:    cni-wasm inspect /opt/cni/bin/{name}.wasm");
    Ok(())
}

/// A CNI type is a file name in CNI_PATH; a crate name too, here.
fn check_plugin_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!(
            "{name:?} is not a usable plugin type: use lowercase letters, digits, '-' and '_', starting with a letter (at most 64)"
        ));
    }
    if registry::builtin(name).is_some() {
        return Err(format!(
            "{name} is a built-in plugin, which would always run instead of {name}.wasm; choose another name"
        ));
    }
    if name.starts_with("cni-wasm") {
        return Err(format!("{name}: names starting with cni-wasm are the host's own"));
    }
    Ok(())
}

/// A `key = value` of the guest workspace's `section`, as written.
fn inherited(section: &str, key: &str) -> Option<String> {
    let mut current = "";
    for line in GUEST_WORKSPACE.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line;
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// The SDK's Cargo.toml with what it inherits from the guest workspace
/// written out, so the vendored copy builds on its own.
fn standalone_sdk_manifest() -> Result<String, String> {
    let mut out = format!(
        "# Vendored by `cni-wasm new` from cni-wasm {} (contract cni-wasm:plugin@{}).\n",
        env!("CARGO_PKG_VERSION"),
        dispatch::CONTRACT
    );
    let mut section = String::new();
    for line in SDK_MANIFEST.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
        }
        // The workspace's lints are its own business, not a plugin's.
        if section == "[lints]" {
            continue;
        }
        match trimmed.strip_suffix(".workspace = true") {
            Some(key) => {
                let from = if section == "[package]" { "[workspace.package]" } else { "[workspace.dependencies]" };
                let value = inherited(from, key)
                    .ok_or_else(|| format!("the embedded SDK manifest inherits {key}, which {from} does not have"))?;
                out.push_str(&format!("{key} = {value}\n"));
            }
            None if trimmed.contains("workspace") && !trimmed.starts_with('#') => {
                return Err(format!("the embedded SDK manifest has a line cni-wasm new cannot write out: {line}"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

const INSPECT_USAGE: &str = "usage: cni-wasm inspect X.wasm [--json] [--config FILE] [--type TYPE]";

/// `cni-wasm inspect X.wasm [--json] [--config FILE] [--type TYPE]`.
pub fn inspect(args: &[&str]) -> Result<bool, String> {
    let mut wasm = None;
    let mut as_json = false;
    let mut config_path = None;
    let mut plugin_type = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--json" => as_json = true,
            "--config" => config_path = Some(*rest.next().ok_or("--config needs a file (a plugin's network config)")?),
            "--type" => plugin_type = Some(*rest.next().ok_or("--type needs the plugin type (its policy entry)")?),
            flag if flag.starts_with('-') => return Err(format!("inspect: unknown flag {flag}")),
            path if wasm.is_none() => wasm = Some(PathBuf::from(path)),
            _ => return Err(INSPECT_USAGE.into()),
        }
    }
    let wasm = wasm.ok_or(INSPECT_USAGE)?;
    let report = Report::build(&wasm, plugin_type, config_path.map(Path::new))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report.json).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.human());
    }
    Ok(report.accepted)
}

/// What inspect found, as JSON (`--json` prints it; the text is made from it).
struct Report {
    json: Value,
    accepted: bool,
}

impl Report {
    fn build(wasm: &Path, plugin_type: Option<&str>, config_path: Option<&Path>) -> Result<Report, String> {
        let bytes = std::fs::read(wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
        let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        // The policy entry a plugin gets is the one of the type it is run as,
        // and installed, that is its file name.
        let plugin = match plugin_type {
            Some(name) => name.to_string(),
            None => wasm
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.strip_suffix(".wasm").unwrap_or(n).to_string())
                .ok_or_else(|| format!("{}: not a file name", wasm.display()))?,
        };
        let config = match config_path {
            Some(path) => {
                let raw = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                RequestConfig::parse(raw).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => RequestConfig::empty(),
        };
        let runtime = Runtime::new().map_err(|e| format!("starting wasmtime: {e:#}"))?;
        let policy = PolicyFile::load()?;
        let search = wasm.parent().map(Path::to_path_buf).into_iter().collect();
        let process = Rc::new(Process::new(runtime, Registry::new(search), policy));
        let deadline = Instant::now() + Duration::from_secs(120);
        let component = process.registry.load_file(&process.runtime, wasm, deadline).map_err(|e| {
            // SAFETY: geteuid has no preconditions.
            match unsafe { libc::geteuid() } {
                0 => e.msg,
                _ => format!("{}\n(not root: set CNI_WASM_CACHE_DIR to a directory of your own)", e.msg),
            }
        })?;

        let mut problems: Vec<String> = Vec::new();
        let mut imports = Vec::new();
        for (name, _) in component.component_type().imports(process.runtime.engine()) {
            let (what, known) = match name.strip_prefix("cni-wasm:plugin/") {
                Some(rest) => {
                    let interface = rest.split('@').next().unwrap_or(rest);
                    match crate::imports::interface(interface) {
                        Some(i) => (i.capability.map(capability_name).unwrap_or("always granted").to_string(), true),
                        None => ("not in this host's contract".to_string(), false),
                    }
                }
                None if name.starts_with("wasi:random/insecure-seed@") => ("WASI: served (hash-map keys)".into(), true),
                None if name.starts_with("wasi:") => ("WASI: a stub that traps if called".into(), true),
                None => ("unknown: instantiation fails".into(), false),
            };
            if !known {
                problems.push(format!("imports {name}, which this host does not provide"));
            }
            imports.push(json!({"name": name, "grantedBy": what}));
        }
        let contract_imports = process.runtime.contract_imports(&component);
        let mut built_against: Vec<&str> = contract_imports.iter().map(|(_, v)| v.as_str()).collect();
        built_against.sort();
        built_against.dedup();
        if let Err(e) = dispatch::check_contract(&plugin, &contract_imports) {
            problems.push(e.msg);
        }

        let manifest = if problems.is_empty() {
            match dispatch::describe_component(&process, &plugin, &component) {
                Ok(manifest) => Some(manifest),
                Err(e) => {
                    problems.push(format!("describe failed: {}", e.msg));
                    None
                }
            }
        } else {
            None
        };
        if let Some(manifest) = &manifest {
            if let Err(e) = dispatch::check_imports_declared(&plugin, &contract_imports, manifest) {
                problems.push(e.msg);
            }
            if manifest.cni_versions.is_empty() {
                problems.push("its manifest lists no cniVersions, so it accepts no config".into());
            }
        }
        let mut notes = Vec::new();
        if registry::builtin(&plugin).is_some() {
            notes.push(format!(
                "{plugin} is a built-in plugin: the runtime running type {plugin} gets the built-in, never this file"
            ));
        }
        let accepted = problems.is_empty();
        let policy_path = std::env::var("CNI_WASM_POLICY").unwrap_or_else(|_| DEFAULT_POLICY_PATH.to_string());
        let grant =
            manifest.as_ref().map(|m| grant_json(&plugin, m, &process.policy, &config, &policy_path, config_path));
        let json = json!({
            "component": wasm.display().to_string(),
            "sha256": sha256,
            "type": plugin,
            "contract": {"builtAgainst": built_against, "host": dispatch::CONTRACT},
            "imports": imports,
            "manifest": manifest.as_ref().map(manifest_json),
            "accepted": accepted,
            "problems": problems,
            "notes": notes,
            "grant": grant,
        });
        Ok(Report { json, accepted })
    }

    fn human(&self) -> String {
        let j = &self.json;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let list = |v: &Value| -> String {
            let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
            if items.is_empty() { "(none)".into() } else { items.join(", ") }
        };
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!("component  {} (sha256 {})", s(&j["component"]), s(&j["sha256"])));
        line(format!("type       {} (its policy entry is plugins.\"{}\")", s(&j["type"]), s(&j["type"])));
        line(format!(
            "contract   built against cni-wasm:plugin@{}; this host implements {}",
            list(&j["contract"]["builtAgainst"]),
            s(&j["contract"]["host"])
        ));
        line(String::new());
        line("imports".into());
        for import in j["imports"].as_array().into_iter().flatten() {
            line(format!("  {:<44} {}", s(&import["name"]), s(&import["grantedBy"])));
        }
        line(String::new());
        match &j["manifest"] {
            Value::Null => line("manifest   not read (see the problems below)".into()),
            m => {
                line("manifest".into());
                line(format!("  cniVersions      {}", list(&m["cniVersions"])));
                line(format!("  capabilities     {}", list(&m["capabilities"])));
                let objects = m["objects"].as_array().cloned().unwrap_or_default();
                if objects.is_empty() {
                    line("  objects          (none)".into());
                }
                for o in &objects {
                    let sub = if o["subInterfaces"].as_bool() == Some(true) { ", with sub-interfaces" } else { "" };
                    line(format!(
                        "  object           key {} role {} default {}{sub}",
                        s(&o["key"]),
                        s(&o["role"]),
                        s(&o["default"])
                    ));
                }
                line(format!("  host sysctls     {}", list(&m["hostSysctls"])));
                line(format!("  readable files   {}", list(&m["readableFiles"])));
                line(format!("  nft tables       {}", list(&m["nftTables"])));
                line(format!("  iptables chains  {}", list(&m["iptablesChains"])));
                let state = match &m["state"] {
                    Value::Null => "(none)".to_string(),
                    st => match st["configKey"].as_str() {
                        Some(key) => format!("default {} (config key {key})", s(&st["defaultDir"])),
                        None => format!("default {}", s(&st["defaultDir"])),
                    },
                };
                line(format!("  state            {state}"));
            }
        }
        line(String::new());
        let verdict =
            if self.accepted { "ACCEPTED: this host would run it" } else { "REFUSED: this host would not run it" };
        line(format!("host check {verdict}"));
        for problem in j["problems"].as_array().into_iter().flatten() {
            line(format!("  problem: {}", s(problem)));
        }
        for note in j["notes"].as_array().into_iter().flatten() {
            line(format!("  note: {}", s(note)));
        }
        if let Some(g) = j["grant"].as_object() {
            line(String::new());
            let entry = match (g["policyExists"].as_bool(), g["entry"].as_bool()) {
                (Some(false), _) => "no such file: an empty policy, NO entry for it",
                (_, Some(true)) => "its entry",
                _ => "NO entry for it",
            };
            line(format!("grant as a third party under {} ({entry})", s(&g["policy"])));
            if let Some(config) = g["config"].as_str() {
                line(format!("  for the config   {config}"));
            }
            line(format!("  always           {}", list(&g["always"])));
            line(format!("  families         {}", list(&g["families"])));
            line(format!("  refused families {}", list(&g["refusedFamilies"])));
            if g["objects"].as_array().is_none_or(Vec::is_empty) {
                line("  objects          (none)".into());
            }
            for o in g["objects"].as_array().into_iter().flatten() {
                line(format!("  object           {}", s(&o["summary"])));
            }
            line(format!("  host sysctls     {}", list(&g["hostSysctls"])));
            line(format!("  readable files   {}", list(&g["readableFiles"])));
            line(format!("  nft tables       {}", list(&g["nftTables"])));
            line(format!("  iptables chains  {}", list(&g["iptablesChains"])));
            line(format!("  state dir        {}", g["stateDir"].as_str().unwrap_or("(none)")));
            let limits = &g["limits"];
            line(format!(
                "  limits           timeout {} ms, memory {} MiB, at most {} capability calls",
                limits["timeoutMs"], limits["memoryMiB"], limits["maxCalls"]
            ));
        }
        out
    }
}

fn role_name(role: ObjectRole) -> &'static str {
    match role {
        ObjectRole::Parent => "parent",
        ObjectRole::Managed => "managed",
        ObjectRole::Movable => "movable",
        ObjectRole::File => "file",
        ObjectRole::Chain => "chain",
        ObjectRole::Socket => "socket",
    }
}

fn default_text(default: &ObjectDefault) -> String {
    match default {
        ObjectDefault::None => "none".into(),
        ObjectDefault::Name(name) => format!("{name:?}"),
        ObjectDefault::DefaultRouteLink => "the default-route link".into(),
    }
}

fn manifest_json(m: &Manifest) -> Value {
    json!({
        "cniVersions": m.cni_versions,
        "capabilities": m.capabilities.iter().map(|c| capability_name(*c)).collect::<Vec<_>>(),
        "objects": m.objects.iter().map(|o| json!({
            "key": o.key, "role": role_name(o.role), "default": default_text(&o.default),
            "subInterfaces": o.sub_interfaces,
        })).collect::<Vec<_>>(),
        "hostSysctls": m.host_sysctls,
        "readableFiles": m.readable_files,
        "nftTables": m.nft_tables,
        "iptablesChains": m.iptables_chains,
        "state": m.state.as_ref().map(|s| json!({"defaultDir": s.default_dir, "configKey": s.config_key})),
    })
}

/// What `Grants::new` gives this manifest as a third party, and the policy
/// patterns behind each object key (their names come from a config).
fn grant_json(
    plugin: &str,
    manifest: &Manifest,
    policy: &PolicyFile,
    config: &RequestConfig,
    policy_path: &str,
    config_path: Option<&Path>,
) -> Value {
    let grants = Grants::new(plugin, true, manifest, policy, config);
    let entry = policy.plugins.get(plugin);
    let (families, refused): (Vec<_>, Vec<_>) = manifest.capabilities.iter().partition(|c| grants.has(**c));
    let names = |c: Vec<&crate::bindings::cni_wasm::plugin::cni::Capability>| -> Vec<&str> {
        c.into_iter().map(|c| capability_name(*c)).collect()
    };
    let objects: Vec<Value> = manifest
        .objects
        .iter()
        .map(|o| {
            let patterns = entry.and_then(|e| e.patterns_for(o.role));
            let runtime_key = crate::policy::is_runtime_key(&o.key);
            let listed = entry
                .and_then(|e| e.runtime_keys.as_ref())
                .is_some_and(|keys| keys.iter().any(|k| k.eq_ignore_ascii_case(&o.key)));
            let value = config.string(&o.key).filter(|v| !v.is_empty()).map(str::to_string).or(match &o.default {
                ObjectDefault::Name(name) => Some(name.clone()),
                _ => None,
            });
            let granted = value.as_deref().map(|name| match o.role {
                ObjectRole::Parent => grants.parents_host_link(name),
                ObjectRole::Managed => grants.manages_host_link(name),
                ObjectRole::Movable => grants.moves_host_link(name),
                ObjectRole::File => grants.allows_file(name),
                ObjectRole::Chain => grants.names_chain(name),
                ObjectRole::Socket => grants.allows_socket(name),
            });
            let kind = match o.role {
                ObjectRole::Parent | ObjectRole::Managed | ObjectRole::Movable => "hostLinks",
                ObjectRole::File => "readableFiles",
                ObjectRole::Chain => "iptablesChains",
                ObjectRole::Socket => "daemonSockets",
            };
            let mut summary = format!(
                "{} ({}): {kind} {}",
                o.key,
                role_name(o.role),
                patterns.map(|p| format!("{p:?}")).unwrap_or_else(|| "not listed: no object of this key".into())
            );
            if runtime_key && !listed {
                summary.push_str("; a runtime key the entry's runtimeKeys does not list: never counts");
            }
            match (&value, granted) {
                (Some(name), Some(true)) => summary.push_str(&format!("; {name:?} is granted")),
                (Some(name), _) => summary.push_str(&format!("; {name:?} is not")),
                (None, _) if matches!(o.default, ObjectDefault::DefaultRouteLink) => summary.push_str(&format!(
                    "; when absent, the default-route link: {}",
                    if grants.default_route_parent() { "granted" } else { "not granted" }
                )),
                (None, _) => {}
            }
            json!({"key": o.key, "role": role_name(o.role), "patterns": patterns, "value": value,
                   "granted": granted, "summary": summary})
        })
        .collect();
    json!({
        "policy": policy_path,
        "policyExists": Path::new(policy_path).exists(),
        "entry": entry.is_some(),
        "config": config_path.map(|p| p.display().to_string()),
        "always": ["logging", "clock", "namespaces"],
        "families": names(families),
        "refusedFamilies": names(refused),
        "objects": objects,
        "hostSysctls": manifest.host_sysctls.iter().filter(|k| grants.allows_host_sysctl(k)).collect::<Vec<_>>(),
        "readableFiles": manifest.readable_files.iter().filter(|f| grants.allows_file(f)).collect::<Vec<_>>(),
        "nftTables": grants.nft_tables,
        "iptablesChains": grants.iptables_chains,
        "stateDir": grants.state_root().map(|p| p.display().to_string()),
        "limits": {"timeoutMs": grants.timeout.as_millis() as u64, "memoryMiB": grants.memory_bytes >> 20,
                   "maxCalls": grants.max_calls},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to the SDK or the contract must be embedded too, or a
    /// new plugin's vendored SDK would not build.
    #[test]
    fn every_sdk_and_wit_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, embedded) in [("plugins-wasm/sdk/src", SDK_SOURCES), ("wit", WIT_FILES)] {
            let mut on_disk: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut names: Vec<String> = embedded.iter().map(|(n, _)| n.to_string()).collect();
            names.sort();
            assert_eq!(names, on_disk, "kit.rs embeds every file of {dir}");
        }
    }

    #[test]
    fn the_vendored_sdk_manifest_inherits_nothing() {
        let manifest = standalone_sdk_manifest().unwrap();
        assert!(!manifest.contains("workspace"), "{manifest}");
        assert!(manifest.contains("name = \"cni-plugin-sdk\"") && manifest.contains("wit-bindgen = "), "{manifest}");
        assert_eq!(vendored_sdk(), format!("vendor/cni-plugin-sdk-{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn plugin_names_are_cni_types_and_crate_names() {
        assert!(check_plugin_name("route-override").is_ok());
        for bad in ["", "Route", "1x", "a/b", "a.b", "bridge", "cni-wasm-x"] {
            assert!(check_plugin_name(bad).is_err(), "{bad}");
        }
    }
}
