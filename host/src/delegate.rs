//! Running a delegate (an IPAM plugin, or the plugin behind a meta plugin)
//! as the CNI spec describes: the same environment with CNI_COMMAND
//! replaced, and the given stdin.
//!
//! A built-in plugin or a `<type>.wasm` runs in-process, under its own
//! grants; anything else is executed from CNI_PATH like any CNI plugin.
//! Either way the result crosses a version boundary exactly as it would
//! between two processes.

use std::rc::Rc;

use crate::context::{Call, Limit, Origin};
use crate::dispatch::{self, Response};
use crate::policy::Grants;
use crate::process::Process;
use crate::protocol::config::RequestConfig;
use crate::protocol::env::Command;
use crate::protocol::error::{CniError, code};
use crate::protocol::result::CniResult;

pub fn run(
    process: &Rc<Process>,
    parent: &Call,
    parent_grants: &Grants,
    plugin_type: &str,
    command: Command,
    stdin: Vec<u8>,
) -> Result<Option<CniResult>, CniError> {
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type.contains('\\') || plugin_type.starts_with('.')
    {
        return Err(CniError::internal(format!("{}: invalid delegate plugin type {plugin_type:?}", parent.plugin)));
    }
    let mut callers = parent.origin.callers.clone();
    callers.push(parent.plugin.clone());
    if callers.iter().any(|c| c == plugin_type) {
        return Err(CniError::internal(format!(
            "{}: delegation loop: {} -> {plugin_type}",
            parent.plugin,
            callers.join(" -> ")
        )));
    }
    // Once a third party is among the callers, every delegate below it is
    // held to what that third party may do, and to the admin's config.
    let limit = match (&parent.origin.limit, parent_grants.third_party) {
        (Some(limit), _) => {
            Some(Rc::new(Limit { grants: parent_grants.clone(), admin_config: limit.admin_config.clone() }))
        }
        (None, true) => Some(Rc::new(Limit { grants: parent_grants.clone(), admin_config: parent.config.clone() })),
        (None, false) => None,
    };
    let mut env = parent.env.clone();
    env.command = command;
    if process.registry.find(plugin_type).is_some() {
        let config = RequestConfig::parse(stdin)?;
        let version = config.cni_version.clone();
        return match dispatch::invoke(process, plugin_type, env, config, Origin { callers, limit })? {
            Response::Added(result) => Ok(Some(result.through_version(&version)?)),
            _ => Ok(None),
        };
    }
    if limit.is_some() {
        // An executable runs with every privilege: a third party must not
        // hand one a config of its own making.
        return Err(CniError::internal(format!(
            "{}: delegating to {plugin_type:?} refused: only built-in and .wasm plugins run on behalf of a third-party plugin, and no {plugin_type}.wasm was found",
            parent.plugin
        )));
    }
    exec(process, parent, plugin_type, command, &stdin)
}

/// Executes `<dir>/<type>` from CNI_PATH (first match wins).
fn exec(
    process: &Rc<Process>,
    parent: &Call,
    plugin_type: &str,
    command: Command,
    stdin: &[u8],
) -> Result<Option<CniResult>, CniError> {
    let program =
        parent.env.path.iter().map(|dir| dir.join(plugin_type)).find(|path| path.is_file()).ok_or_else(|| {
            let path = parent.env.path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
            CniError::internal(format!("failed to find plugin {plugin_type:?} in path [{path}]"))
        })?;
    let output = cni_wasm_capabilities::process::run(
        &program,
        &[],
        &[("CNI_COMMAND", command.as_str())],
        stdin,
        process.deadline(),
    )
    .map_err(|e| CniError::internal(format!("{}: delegate {plugin_type}: {}", parent.plugin, e.message)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(parse_error(&stdout).unwrap_or_else(|| {
            CniError::internal(format!(
                "delegate {plugin_type} failed ({}) with no error message on stdout",
                output.status
            ))
        }));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let request_version = RequestConfig::parse(stdin.to_vec()).map(|c| c.cni_version).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        CniError::new(code::DECODING_FAILURE, format!("delegate {plugin_type} printed a result that is not JSON: {e}"))
    })?;
    Ok(Some(CniResult::parse(&value, &request_version)?))
}

/// A CNI error object printed by a failed plugin.
fn parse_error(stdout: &str) -> Option<CniError> {
    let value: serde_json::Value = serde_json::from_str(stdout).ok()?;
    let object = value.as_object()?;
    Some(CniError {
        code: object.get("code")?.as_u64()? as u32,
        msg: object.get("msg").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        details: object.get("details").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
    })
}
