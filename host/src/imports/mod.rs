//! The host side of each WIT interface, one module per interface. Each
//! function checks the grant and the policy first, then calls into
//! `cni_wasm_capabilities`, then converts the result; no system call is made
//! before the checks pass.
//!
//! [`INTERFACES`] is the one list of them: what the linker adds, which
//! capability family grants each, and the family names the policy file and
//! `cni-wasm list` use all come from it.

pub mod addresses;
pub mod clock;
pub mod conntrack;
pub mod convert;
pub mod delegation;
pub mod dhcp;
pub mod files;
pub mod links;
pub mod logging;
pub mod namespaces;
pub mod neighbours;
pub mod netfilter;
pub mod routes;
pub mod rules;
pub mod state;
pub mod sysctl;
pub mod tc;

use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::ResourceTableError;

use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::types;
use crate::context::HostState;
use wasmtime::component::{HasSelf, Linker};

/// One interface of the contract (wit/*.wit).
pub struct Interface {
    /// Its WIT name ("links"), also the capability family's name.
    pub name: &'static str,
    /// The family that grants it; None: every plugin may import it.
    pub capability: Option<Capability>,
    pub add_to_linker: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
}

macro_rules! interface {
    ($name:literal, $module:ident, $capability:expr) => {
        Interface {
            name: $name,
            capability: $capability,
            add_to_linker: |linker| {
                crate::bindings::cni_wasm::plugin::$module::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
            },
        }
    };
}

/// Every interface, and the family that grants it.
pub const INTERFACES: &[Interface] = &[
    interface!("types", types, None),
    interface!("cni", cni, None),
    interface!("logging", logging, None),
    interface!("clock", clock, None),
    interface!("namespaces", namespaces, None),
    interface!("links", links, Some(Capability::Links)),
    interface!("addresses", addresses, Some(Capability::Addresses)),
    interface!("routes", routes, Some(Capability::Routes)),
    interface!("rules", rules, Some(Capability::Rules)),
    interface!("neighbours", neighbours, Some(Capability::Neighbours)),
    interface!("sysctl", sysctl, Some(Capability::Sysctl)),
    interface!("tc", tc, Some(Capability::Tc)),
    interface!("netfilter", netfilter, Some(Capability::Netfilter)),
    interface!("conntrack", conntrack, Some(Capability::Conntrack)),
    interface!("state", state, Some(Capability::State)),
    interface!("files", files, Some(Capability::Files)),
    interface!("delegation", delegation, Some(Capability::Delegation)),
    interface!("dhcp", dhcp, Some(Capability::Dhcp)),
];

pub fn interface(name: &str) -> Option<&'static Interface> {
    INTERFACES.iter().find(|i| i.name == name)
}

/// A capability family's name ("links"), as the policy file spells it.
pub fn capability_name(capability: Capability) -> &'static str {
    INTERFACES.iter().find(|i| i.capability == Some(capability)).map(|i| i.name).expect("every family has an interface")
}

/// The error of a capability call: either a capability error the guest sees
/// as `types.error`, or a host fault that traps the guest.
pub enum CallError {
    Capability(Error),
    Trap(wasmtime::Error),
}

pub type CallResult<T> = Result<T, CallError>;

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        CallError::Capability(error)
    }
}

impl From<ResourceTableError> for CallError {
    fn from(error: ResourceTableError) -> Self {
        CallError::Trap(wasmtime::Error::from(error))
    }
}

/// The `cni` interface only defines types.
impl crate::bindings::cni_wasm::plugin::cni::Host for HostState {}

impl types::Host for HostState {
    fn convert_error(&mut self, error: CallError) -> wasmtime::Result<types::Error> {
        match &error {
            CallError::Trap(_) => self.audit_verdict("trap"),
            CallError::Capability(e) if e.kind == ErrorKind::Denied => self.audit_verdict("denied"),
            CallError::Capability(e) => self.audit_verdict(&format!("error: {:?}", e.kind)),
        }
        match error {
            CallError::Trap(trap) => Err(trap),
            CallError::Capability(error) => Ok(types::Error {
                kind: match error.kind {
                    ErrorKind::NotFound => types::ErrorKind::NotFound,
                    ErrorKind::AlreadyExists => types::ErrorKind::AlreadyExists,
                    ErrorKind::Busy => types::ErrorKind::Busy,
                    ErrorKind::InvalidArgument => types::ErrorKind::InvalidArgument,
                    ErrorKind::Denied => types::ErrorKind::Denied,
                    ErrorKind::Unsupported => types::ErrorKind::Unsupported,
                    ErrorKind::NotImplemented => types::ErrorKind::NotImplemented,
                    ErrorKind::Timeout => types::ErrorKind::Timeout,
                    ErrorKind::Io => types::ErrorKind::Io,
                },
                errno: error.errno,
                message: error.message,
            }),
        }
    }
}

impl HostState {
    /// Refuses a call from a capability family the plugin was not granted.
    pub fn require(&self, capability: Capability, call: &str) -> CallResult<()> {
        self.require_on(capability, call, &"")
    }

    /// [`require`](Self::require), naming the object of the call for the
    /// audit log.
    pub fn require_on(&self, capability: Capability, call: &str, object: &dyn std::fmt::Debug) -> CallResult<()> {
        crate::timing::mark(call);
        if self.session.audit.is_some() {
            // The previous call got this far without an error: it succeeded.
            self.audit_verdict("ok");
            *self.audit_pending.borrow_mut() = Some(crate::audit::Entry {
                plugin: self.grants.plugin.clone(),
                command: self.call.env.command.as_str(),
                network: self.call.config.name.clone(),
                container_id: self.call.env.container_id.clone(),
                ifname: self.call.env.ifname.clone(),
                call: call.to_string(),
                object: format!("{object:?}"),
            });
        }
        // A bound on capability calls, so a plugin cannot keep the host busy
        // with calls that each stay within the deadline.
        let calls = self.calls.get() + 1;
        self.calls.set(calls);
        if calls > self.grants.max_calls {
            return Err(CallError::Trap(wasmtime::format_err!(
                "{}: stopped after {} capability calls, the most one invocation may make",
                self.grants.plugin,
                self.grants.max_calls
            )));
        }
        if self.grants.has(capability) {
            return Ok(());
        }
        let name = capability_name(capability);
        let hint = if self.grants.third_party {
            format!("; an admin can grant it in {}", crate::policy::DEFAULT_POLICY_PATH)
        } else {
            String::new()
        };
        Err(Error::new(
            ErrorKind::Denied,
            format!("{}: {call} refused: the plugin was not granted the {name:?} capability{hint}", self.grants.plugin),
        )
        .into())
    }

    /// The answer of an interface whose host side is not built yet.
    pub fn not_implemented(&self, call: &str) -> CallError {
        Error::new(
            ErrorKind::NotImplemented,
            format!("{}: {call} is not implemented by this host yet", self.grants.plugin),
        )
        .into()
    }
}
