//! What every cni-wasm plugin shares: the WIT bindings, CNI error and result
//! helpers, Go-compatible config parsing, CNI_ARGS, IP arithmetic, and the
//! IPAM helpers the Go reference keeps in `pkg/ipam` and `pkg/ip`.
//!
//! A plugin implements [`Plugin`] and calls [`plugin!`]:
//!
//! ```ignore
//! struct Loopback;
//! impl cni_plugin_sdk::Plugin for Loopback { ... }
//! cni_plugin_sdk::plugin!(Loopback);
//! ```

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
