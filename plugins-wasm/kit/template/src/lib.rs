//! A chained CNI plugin for cni-wasm: it runs after an interface plugin
//! (bridge, ptp, macvlan, ...), checks that the interface that plugin made
//! is in the container, and passes the previous result on unchanged.
//!
//! Build it with `cargo build --release --target wasm32-wasip2`, install
//! `target/wasm32-wasip2/release/<crate>.wasm` as `<type>.wasm` next to
//! the cni-wasm links, and give it a policy entry (see README.md).

use cni_plugin_sdk::error::{Result, code, error, invalid_config};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, config, info, links, namespaces};
use serde::Deserialize;

/// This plugin's type: the name it is installed under (`<type>.wasm`).
const TYPE: &str = env!("CARGO_PKG_NAME");

/// The plugin's own config keys. The SDK's parser matches keys as Go's
/// encoding/json does (case-insensitively, unknown keys ignored), so
/// configs written for a Go plugin parse the same here.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Conf {
    /// Logged on ADD: an example of a key of the plugin's own.
    message: Option<String>,
}

struct Chained;

impl cni_plugin_sdk::Plugin for Chained {
    /// What the plugin needs: the host grants no more than this, and for a
    /// third-party plugin no more than the admin's policy entry lists.
    /// `links` lets it look at the container's interfaces; logging, the
    /// clock and the namespace handles come with every plugin.
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[Capability::Links])
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf: Conf = config::parse(&call.config)?;
        let previous = previous_result(call)?;
        require_interface(call)?;
        if let Some(message) = &conf.message {
            info!("{TYPE}: {message}");
        }
        Ok(previous)
    }

    /// DEL must succeed whatever is left: the container may be gone.
    fn del(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    fn check(call: &Invocation) -> Result<()> {
        config::parse::<Conf>(&call.config)?;
        previous_result(call)?;
        require_interface(call)
    }
}

/// A chained plugin works on what the plugin before it returned.
fn previous_result(call: &Invocation) -> Result<CniResult> {
    call.prev_result
        .clone()
        .ok_or_else(|| invalid_config(format!("{TYPE} must be chained after an interface plugin: no prevResult")))
}

/// CNI_IFNAME must exist in the container namespace.
fn require_interface(call: &Invocation) -> Result<()> {
    let container = namespaces::container()?;
    match links::get(&container, &call.ifname)? {
        Some(_) => Ok(()),
        None => Err(error(code::INVALID_ENVIRONMENT, format!("{TYPE}: no interface {} in the container", call.ifname))),
    }
}

cni_plugin_sdk::plugin!(Chained);
