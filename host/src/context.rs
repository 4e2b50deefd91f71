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
use crate::policy::{Grants, PolicyFile};
use crate::protocol::config::RequestConfig;
use crate::protocol::env::Environment;
use crate::registry::Registry;
use crate::runtime::Runtime;

/// One process: shared by the top-level plugin and every in-process delegate.
pub struct Process {
    pub runtime: Runtime,
    pub registry: Registry,
    pub policy: PolicyFile,
    /// The audit log, when one is asked for.
    pub audit: Option<crate::audit::Audit>,
    pub host_ns: Rc<Netns>,
    /// The container namespace, opened on first use, shared with delegates.
    container_ns: RefCell<Option<(String, Rc<Netns>)>>,
    deadline: Cell<Instant>,
}

impl Process {
    pub fn new(runtime: Runtime, registry: Registry, policy: PolicyFile) -> Self {
        Process {
            runtime,
            registry,
            audit: crate::audit::Audit::open(policy.audit.as_deref()).unwrap_or_else(|e| {
                crate::log::log(crate::log::Level::Error, "cni-wasm", format_args!("{e}"));
                None
            }),
            policy,
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

    /// Sets the invocation's deadline and starts the watchdog for it. The
    /// plugin is stopped a tenth of the time (at most 2 s) before the
    /// deadline, so that undoing a failed ADD, delegates included, has that
    /// long within it.
    pub fn set_deadline(&self, timeout: Duration) {
        let now = Instant::now();
        let deadline = now + timeout;
        let reserve = (timeout / 10).min(Duration::from_secs(2));
        self.deadline.set(deadline);
        self.runtime.start_watchdog(deadline - reserve, deadline);
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
    pub process: Rc<Process>,
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
    pub fn new(process: Rc<Process>, call: Rc<Call>, grants: Grants) -> Self {
        let limits = Self::limits_for(&grants);
        let journal = if call.env.command == crate::protocol::env::Command::Add {
            Journal::recording()
        } else {
            Journal::default()
        };
        HostState {
            process,
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
        if let (Some(audit), Some(entry)) = (&self.process.audit, self.audit_pending.borrow_mut().take()) {
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
