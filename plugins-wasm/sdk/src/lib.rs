//! cni-plugin-sdk: what a cni-wasm plugin is written with. The WIT
//! bindings of the contract, CNI error and result helpers, Go-compatible
//! config parsing, CNI_ARGS, IP arithmetic, and the IPAM helpers the Go
//! reference keeps in `pkg/ipam` and `pkg/ip`. The built-in plugins use it,
//! and so can a third party's.
//!
//! # Version
//!
//! This is version 0.1.0 of the SDK, and it follows the WIT package
//! `cni-wasm:plugin@0.1.x` (`wit/`, read by [`bindings`]): a plugin built
//! with it runs on every host that implements a 0.1.x contract, and a host
//! refuses it, before it runs, if that is not so (wit/README.md,
//! "Versioning").
//!
//! # Writing a plugin
//!
//! `cni-wasm new my-plugin` writes a crate to start from: this SDK and the
//! contract vendored in it, a chained plugin in `src/lib.rs`, and a
//! `Cargo.toml` with its own `[workspace]`, `crate-type = ["cdylib"]` and a
//! release profile for small components. A plugin is a type that implements
//! [`Plugin`], exported with [`plugin!`]:
//!
//! ```ignore
//! use cni_plugin_sdk::error::{Result, invalid_config};
//! use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, config};
//!
//! #[derive(Default, serde::Deserialize)]
//! #[serde(default)]
//! struct Conf { flushgateway: bool }
//!
//! struct MyPlugin;
//!
//! impl cni_plugin_sdk::Plugin for MyPlugin {
//!     fn manifest() -> Manifest {
//!         cni_plugin_sdk::manifest(&[Capability::Routes])
//!     }
//!     fn add(call: &Invocation) -> Result<CniResult> {
//!         let conf: Conf = config::parse(&call.config)?;
//!         let previous = call.prev_result.clone().ok_or_else(|| invalid_config("no prevResult"))?;
//!         Ok(previous)
//!     }
//!     fn del(_call: &Invocation) -> Result<()> { Ok(()) }
//!     fn check(_call: &Invocation) -> Result<()> { Ok(()) }
//! }
//!
//! cni_plugin_sdk::plugin!(MyPlugin);
//! ```
//!
//! - **The manifest** ([`Plugin::manifest`], started with [`manifest`]) is
//!   what the plugin needs: capability families ([`Capability`]), config
//!   keys naming host objects with their role ([`object`], [`ObjectRole`]),
//!   host sysctls, its state location, readable files, nftables tables and
//!   iptables chains, and the CNI versions it accepts. The host answers
//!   VERSION from it, and grants no more than it; a component that imports
//!   the interface of a family its manifest does not declare is refused.
//! - **The verbs** get an [`Invocation`]: the config exactly as read from
//!   stdin, `prevResult` already converted to a CNI 1.1 result, and the
//!   `CNI_*` values. ADD returns a CNI 1.1 [`CniResult`]; the host converts
//!   it to the version the runtime asked for. STATUS and GC succeed unless
//!   overridden. Errors are [`Error`]s with the spec's [`error::code`]s; a
//!   capability error converts with `?` (code 999, the reference's untyped
//!   errors), [`Context`] prefixes what the plugin was doing.
//! - **Config parsing** ([`config::parse`]) matches keys as Go's
//!   encoding/json does (case-insensitively, unknown keys ignored, `null`
//!   as the default), so a config written for a Go plugin parses the same:
//!   derive `serde::Deserialize` with `#[serde(default)]`.
//! - **Capabilities** are the modules re-exported here ([`links`],
//!   [`addresses`], [`routes`], [`state`], ...): the container namespace
//!   is [`namespaces::container`], the host's [`namespaces::host`]. There is
//!   no WASI: no files, sockets, environment or stdout; log with [`info!`]
//!   and the other [`log`] macros.
//!
//! # Building and installing
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2        # add --offline once cargo's cache has the dependencies
//! cp target/wasm32-wasip2/release/my_plugin.wasm /opt/cni/bin/my-plugin.wasm
//! ln -s cni-wasm /opt/cni/bin/my-plugin               # for runtimes that run the type directly
//! ```
//!
//! The host finds `<type>.wasm` next to the cni-wasm link it was run as or
//! in `CNI_PATH`, compiles it once with `cni-wasm-compile`, and runs it as a
//! third party: it gets only what both its manifest and its entry in the
//! admin's policy (`/etc/cni-wasm/policy.json`, or `CNI_WASM_POLICY`) allow,
//! so the plugin above needs
//!
//! ```text
//! { "plugins": { "my-plugin": { "capabilities": ["routes"] } } }
//! ```
//!
//! (host objects, state directories, sysctls, tables and chains need their
//! own lists; see wit/README.md). `cni-wasm inspect my-plugin.wasm` shows
//! what the component imports and declares, whether the host would run it,
//! and what the policy grants it.

pub mod bindings {
    wit_bindgen::generate!({
        world: "cni-plugin",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "cni_plugin_sdk::bindings",
        additional_derives: [PartialEq, Clone],
    });
}

pub mod args;
pub mod config;
pub mod error;
pub mod iface;
pub mod ipam;
pub mod log;
pub mod masquerade;
pub mod net;
pub mod netfilter;

/// The raw `netfilter` interface (the [`netfilter`] module wraps it).
pub use bindings::cni_wasm::plugin::netfilter as netfilter_capability;
pub use bindings::cni_wasm::plugin::{
    addresses, clock, cni, conntrack, delegation, dhcp, files, links, logging, namespaces, neighbours, routes, rules,
    state, sysctl, tc, types,
};
pub use cni::{
    Attachment, Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectKey, ObjectRole, StateLocation,
};
pub use error::{Context, Error, Result};

/// Every CNI version this SDK's plugins accept.
pub const ALL_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Versions from `first` on.
pub fn versions_from(first: &str) -> Vec<String> {
    let start = ALL_VERSIONS.iter().position(|v| *v == first).unwrap_or(0);
    ALL_VERSIONS[start..].iter().map(|v| v.to_string()).collect()
}

/// A manifest with nothing granted; plugins fill in what they need.
pub fn manifest(capabilities: &[Capability]) -> Manifest {
    Manifest {
        cni_versions: versions_from("0.1.0"),
        capabilities: capabilities.to_vec(),
        objects: Vec::new(),
        host_sysctls: Vec::new(),
        state: None,
        readable_files: Vec::new(),
        nft_tables: Vec::new(),
        iptables_chains: Vec::new(),
    }
}

/// A config key naming a host object the plugin uses in `role`, with no
/// default (see `object-key` in wit/cni.wit).
pub fn object(key: &str, role: ObjectRole) -> ObjectKey {
    ObjectKey { key: key.to_string(), role, default: ObjectDefault::None, sub_interfaces: false }
}

/// A CNI plugin: the reference's cmdAdd / cmdDel / cmdCheck, plus STATUS
/// and GC (which do nothing unless a plugin says otherwise).
pub trait Plugin {
    fn manifest() -> Manifest;
    fn add(call: &Invocation) -> Result<CniResult>;
    fn del(call: &Invocation) -> Result<()>;
    fn check(call: &Invocation) -> Result<()>;
    fn status(_config: &str) -> Result<()> {
        Ok(())
    }
    fn gc(_config: &str, _valid: &[Attachment]) -> Result<()> {
        Ok(())
    }
}

/// Sends panic messages to the host's log before the guest traps.
#[doc(hidden)]
pub fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            logging::log(logging::Level::Error, &format!("plugin panicked: {message}{location}"));
        }));
    });
}

/// Exports a [`Plugin`] implementation as the component's `plugin` interface.
#[macro_export]
macro_rules! plugin {
    ($plugin:ident) => {
        // Only the wasm build exports anything; a native build (for unit
        // tests) has no component to export from.
        #[cfg(target_arch = "wasm32")]
        mod __cni_plugin_export {
            struct Export;

            impl $crate::bindings::exports::cni_wasm::plugin::plugin::Guest for Export {
                fn describe() -> $crate::Manifest {
                    $crate::install_panic_hook();
                    <super::$plugin as $crate::Plugin>::manifest()
                }
                fn add(call: $crate::Invocation) -> ::core::result::Result<$crate::CniResult, $crate::Error> {
                    <super::$plugin as $crate::Plugin>::add(&call)
                }
                fn del(call: $crate::Invocation) -> ::core::result::Result<(), $crate::Error> {
                    <super::$plugin as $crate::Plugin>::del(&call)
                }
                fn check(call: $crate::Invocation) -> ::core::result::Result<(), $crate::Error> {
                    <super::$plugin as $crate::Plugin>::check(&call)
                }
                fn status(config: ::std::string::String) -> ::core::result::Result<(), $crate::Error> {
                    <super::$plugin as $crate::Plugin>::status(&config)
                }
                fn gc(
                    config: ::std::string::String,
                    valid: ::std::vec::Vec<$crate::Attachment>,
                ) -> ::core::result::Result<(), $crate::Error> {
                    <super::$plugin as $crate::Plugin>::gc(&config, &valid)
                }
            }

            $crate::bindings::export!(Export);
        }

        // In a native build the plugin's code is still "used" (by its tests).
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$plugin as $crate::Plugin>::manifest;
            let _ = <$plugin as $crate::Plugin>::add;
            let _ = <$plugin as $crate::Plugin>::del;
            let _ = <$plugin as $crate::Plugin>::check;
            let _ = <$plugin as $crate::Plugin>::status;
            let _ = <$plugin as $crate::Plugin>::gc;
        };
    };
}
