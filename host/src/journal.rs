//! What an ADD has created, so that a failed ADD can be undone.
//!
//! The host records every object an invocation creates through a capability
//! call. If the plugin's ADD returns an error or traps (deadline, memory
//! cap, panic), the host removes them in reverse order and runs DEL on every
//! delegate whose ADD succeeded. Plugins may clean up themselves as well;
//! whatever they already removed is simply not found again.

use cni_wasm_capabilities::addresses::Family;
use cni_wasm_capabilities::net::IpNetwork;
use cni_wasm_capabilities::routes::RouteSpec;

use crate::imports::namespaces::Which;

#[derive(Debug, Clone)]
pub enum Entry {
    LinkCreated {
        ns: Which,
        name: String,
    },
    /// A link moved from `from` (as `name`, with its up state and alias
    /// then) to `to` (as `moved_name`): rollback moves it back as it was.
    LinkMoved {
        from: Which,
        name: String,
        was_up: bool,
        alias: String,
        to: Which,
        moved_name: String,
    },
    AddressAdded {
        ns: Which,
        link: String,
        address: IpNetwork,
    },
    RouteAdded {
        ns: Which,
        route: RouteSpec,
    },
    /// iptables-restore lines that undo what an applied input added: a
    /// `-D` for each rule it appended or inserted, then a `-X` for each chain
    /// it declared (refused by the kernel while others' rules or jumps
    /// still use the chain, so a shared chain stays).
    IptablesApplied {
        ns: Which,
        family: Family,
        table: String,
        undo: Vec<String>,
    },
    /// nftables commands that undo an applied batch: its new rules by
    /// handle, its new elements, and the tables, chains and sets that did
    /// not exist before it.
    NftApplied {
        ns: Which,
        undo: Vec<serde_json::Value>,
    },
    StateFileCreated {
        path: String,
    },
    DelegateAdded {
        plugin_type: String,
        stdin: Vec<u8>,
    },
}

#[derive(Debug, Default)]
pub struct Journal {
    entries: Vec<Entry>,
    /// Only ADD is undone; DEL/CHECK/STATUS/GC record nothing.
    recording: bool,
}

impl Journal {
    pub fn recording() -> Self {
        Journal { entries: Vec::new(), recording: true }
    }

    /// Whether entries are kept (an ADD): undo information that costs
    /// something to gather is gathered only then.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    pub fn record(&mut self, entry: Entry) {
        if self.recording {
            self.entries.push(entry);
        }
    }

    /// The entries, newest first, emptying the journal.
    pub fn take_for_rollback(&mut self) -> Vec<Entry> {
        let mut entries = std::mem::take(&mut self.entries);
        entries.reverse();
        entries
    }

    /// A link was renamed or deleted by the plugin itself.
    pub fn forget_link(&mut self, ns: Which, name: &str) {
        self.entries.retain(|e| match e {
            Entry::LinkCreated { ns: n, name: l } => !(*n == ns && l == name),
            Entry::LinkMoved { to, moved_name, .. } => !(*to == ns && moved_name == name),
            _ => true,
        });
    }

    pub fn rename_link(&mut self, ns: Which, from: &str, to: &str) {
        for entry in &mut self.entries {
            let (n, name) = match entry {
                Entry::LinkCreated { ns, name } => (*ns, name),
                Entry::LinkMoved { to, moved_name, .. } => (*to, moved_name),
                _ => continue,
            };
            if n == ns && name == from {
                *name = to.to_string();
            }
        }
    }
}
