//! The data behind every wasmtime Store: which invocation this is, what it
//! was granted, and the namespaces, resources and journal it is using.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cni_wasm_capabilities::netns::Netns;
use cni_wasm_capabilities::state::StateDir;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;

use crate::journal::Journal;
use crate::policy::Grants;
use crate::protocol::config::RequestConfig;
use crate::protocol::env::Environment;

/// What every store of one process shares (the plugin the runtime ran and
/// each in-process delegate): the namespaces, the deadline, the audit log.
/// No engine, linker or registry: the store's data reaches other plugins
/// only through the [`Delegator`] it is given.
pub struct Session {
    /// The audit log, when one is asked for.
    pub audit: Option<crate::audit::Audit>,
    pub host_ns: Rc<Netns>,
    /// The container namespace, opened on first use, shared with delegates.
    container_ns: RefCell<Option<(String, Rc<Netns>)>>,
    deadline: Cell<Instant>,
}

impl Session {
    pub fn new(audit: Option<crate::audit::Audit>) -> Self {
        Session {
            audit,
            host_ns: Rc::new(Netns::host()),
            container_ns: RefCell::new(None),
            // Until the plugin the runtime ran is granted its own timeout.
            deadline: Cell::new(Instant::now() + Duration::from_secs(30)),
        }
    }

    /// When the whole invocation (delegates included) must be done.
    pub fn deadline(&self) -> Instant {
        self.deadline.get()
    }

    pub fn set_deadline(&self, deadline: Instant) {
        self.deadline.set(deadline);
    }

    /// The container namespace at `path` if it is already open.
    pub fn open_container_ns(&self, path: &str) -> Option<Rc<Netns>> {
        match &*self.container_ns.borrow() {
            Some((open_path, ns)) if open_path == path => Some(ns.clone()),
            _ => None,
        }
    }

    pub fn container_ns(&self, path: &str) -> cni_wasm_capabilities::Result<Rc<Netns>> {
        if let Some(ns) = self.open_container_ns(path) {
            return Ok(ns);
        }
        let ns = Rc::new(Netns::open(path)?);
        *self.container_ns.borrow_mut() = Some((path.to_string(), ns.clone()));
        Ok(ns)
    }
}

/// How a running plugin reaches another (`delegation.invoke`): injected
/// into each store, so that the store's data does not own the runtime that
/// runs it (see delegate.rs for what a delegation may do).
pub trait Delegator {
    fn delegate(
        self: Rc<Self>,
        parent: &Call,
        parent_grants: &Grants,
        plugin_type: &str,
        command: crate::protocol::env::Command,
        stdin: Vec<u8>,
    ) -> Result<Option<crate::protocol::result::CniResult>, crate::protocol::error::CniError>;
}

/// One plugin invocation (ADD, DEL, CHECK, STATUS, GC, or describe).
pub struct Call {
    pub plugin: String,
    pub env: Environment,
    pub config: RequestConfig,
    pub origin: Origin,
}

/// How a call came about: from the runtime, or delegated.
#[derive(Clone, Default)]
pub struct Origin {
    /// The plugins it was delegated through, the runtime's first; empty for
    /// the plugin the runtime ran.
    pub callers: Vec<String>,
    /// Set once a third-party plugin is among the callers.
    pub limit: Option<Rc<Limit>>,
}

impl Origin {
    /// Nesting level: 0 for the plugin the runtime ran, 1 for its delegate...
    pub fn depth(&self) -> usize {
        self.callers.len()
    }
}

/// What a call delegated by (or through) a third-party plugin may do: no
/// more than that plugin may, and host objects and state only as the
/// admin's config (the invocation's own stdin) names them, never as the
/// config the third party wrote for the delegate does.
pub struct Limit {
    pub grants: Grants,
    pub admin_config: RequestConfig,
}

/// The most log bytes one invocation may write; what comes after is dropped
/// (with one line saying so).
pub const MAX_LOG_BYTES: usize = 1 << 20;

pub struct HostState {
    pub session: Rc<Session>,
    pub delegator: Rc<dyn Delegator>,
    pub call: Rc<Call>,
    pub grants: Grants,
    pub table: ResourceTable,
    /// Host-namespace links this invocation created (and so may change).
    pub created_host_links: HashSet<String>,
    /// Host links `links.find-host-device` found through a movable key's
    /// selector (and so may move).
    pub found_host_devices: HashSet<String>,
    pub journal: Journal,
    pub state_dir: Option<StateDir>,
    pub limits: StoreLimits,
    /// Capability calls so far (see [`MAX_CALLS`]).
    pub calls: Cell<u64>,
    /// Log bytes written so far (see [`MAX_LOG_BYTES`]).
    pub logged_bytes: usize,
    /// What the SDK's panic hook logged, for the error a trap becomes.
    pub panic_message: Option<String>,
    /// The audit line of the call in progress (see audit.rs).
    pub audit_pending: RefCell<Option<crate::audit::Entry>>,
}

impl HostState {
    pub fn new(session: Rc<Session>, delegator: Rc<dyn Delegator>, call: Rc<Call>, grants: Grants) -> Self {
        let limits = Self::limits_for(&grants);
        let journal = if call.env.command == crate::protocol::env::Command::Add {
            Journal::recording()
        } else {
            Journal::default()
        };
        HostState {
            session,
            delegator,
            call,
            grants,
            table: ResourceTable::new(),
            created_host_links: HashSet::new(),
            found_host_devices: HashSet::new(),
            journal,
            state_dir: None,
            limits,
            calls: Cell::new(0),
            logged_bytes: 0,
            panic_message: None,
            audit_pending: RefCell::new(None),
        }
    }

    /// Writes the audit line of the call in progress, if one is pending.
    pub fn audit_verdict(&self, verdict: &str) {
        if let (Some(audit), Some(entry)) = (&self.session.audit, self.audit_pending.borrow_mut().take()) {
            audit.write(&entry, verdict);
        }
    }

    /// The memory cap (and generous structural limits) for a store.
    pub fn limits_for(grants: &Grants) -> StoreLimits {
        wasmtime::StoreLimitsBuilder::new()
            .memory_size(grants.memory_bytes)
            .instances(16)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build()
    }
}
