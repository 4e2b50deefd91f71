//! One plugin process: the runtime and the registry that load and run
//! plugins, the admin's policy, and the [`Session`] every store shares.
//! Stores reach it only as a [`Delegator`].

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::context::{Call, Delegator, Session};
use crate::policy::{Grants, PolicyFile};
use crate::protocol::env::Command;
use crate::protocol::error::CniError;
use crate::protocol::result::CniResult;
use crate::registry::Registry;
use crate::runtime::Runtime;

pub struct Process {
    pub runtime: Runtime,
    pub registry: Registry,
    pub policy: PolicyFile,
    pub session: Rc<Session>,
}

impl Process {
    pub fn new(runtime: Runtime, registry: Registry, policy: PolicyFile) -> Self {
        let audit = crate::audit::Audit::open(policy.audit.as_deref()).unwrap_or_else(|e| {
            crate::log::log(crate::log::Level::Error, "cni-wasm", format_args!("{e}"));
            None
        });
        Process { runtime, registry, policy, session: Rc::new(Session::new(audit)) }
    }

    /// When the whole invocation (delegates included) must be done.
    pub fn deadline(&self) -> Instant {
        self.session.deadline()
    }

    /// Sets the invocation's deadline and starts the watchdog for it. The
    /// plugin is stopped a tenth of the time (at most 2 s) before the
    /// deadline, so that undoing a failed ADD, delegates included, has that
    /// long within it.
    pub fn set_deadline(&self, timeout: Duration) {
        let now = Instant::now();
        let deadline = now + timeout;
        let reserve = (timeout / 10).min(Duration::from_secs(2));
        self.session.set_deadline(deadline);
        self.runtime.start_watchdog(deadline - reserve, deadline);
    }
}

impl Delegator for Process {
    fn delegate(
        self: Rc<Self>,
        parent: &Call,
        parent_grants: &Grants,
        plugin_type: &str,
        command: Command,
        stdin: Vec<u8>,
    ) -> Result<Option<CniResult>, CniError> {
        crate::delegate::run(&self, parent, parent_grants, plugin_type, command, stdin)
    }
}
