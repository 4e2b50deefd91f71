//! wasmtime: one engine and linker per process, one store per plugin call.
//!
//! No compiler runs here: components arrive precompiled (see registry.rs).
//! Every store gets the invocation's memory cap, and one watchdog thread
//! bumps the engine's epoch at the deadline, which traps whatever guest code
//! is running (stores are created with an epoch deadline of one tick).

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Instant;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};
use wasmtime::{Engine, Store};

use crate::bindings::CniPlugin;
use crate::context::HostState;

pub struct Runtime {
    engine: Engine,
    linker: RefCell<Linker<HostState>>,
    /// The interfaces already in the linker: each is added the first time
    /// a component imports it, so a process pays only for what it uses.
    linked: RefCell<HashSet<String>>,
}

impl Runtime {
    pub fn new() -> wasmtime::Result<Runtime> {
        let engine = cni_wasm_engine::runtime_engine()?;
        let mut linker = Linker::new(&engine);
        // Each component's WASI stubs are (re)defined when it is loaded.
        linker.allow_shadowing(true);
        Ok(Runtime { engine, linker: RefCell::new(linker), linked: RefCell::new(HashSet::new()) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the deadline watchdog. At `stop` it interrupts the guest code
    /// running then (the plugin past its time); at `deadline`, a little
    /// later, it interrupts whatever runs by then (a rollback's delegates,
    /// which get the time in between), and it goes on ticking, because a
    /// store made later still expects the epoch to move once more: no guest
    /// code runs past the deadline. It is never joined (the process ends).
    pub fn start_watchdog(&self, stop: Instant, deadline: Instant) {
        let engine = self.engine.clone();
        let _ = std::thread::Builder::new().name("deadline".into()).stack_size(64 * 1024).spawn(move || {
            std::thread::sleep(stop.saturating_duration_since(Instant::now()));
            engine.increment_epoch();
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            loop {
                engine.increment_epoch();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
    }

    pub fn instantiate(
        &self,
        component: &Component,
        state: HostState,
    ) -> wasmtime::Result<(Store<HostState>, CniPlugin)> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
        let mut linker = self.linker.borrow_mut();
        self.link(&mut linker, component)?;
        let plugin = CniPlugin::instantiate(&mut store, component, &linker)?;
        Ok((store, plugin))
    }

    /// The contract interfaces `component` imports, with the version of the
    /// contract it was built against: ("links", "0.1.0").
    pub fn contract_imports(&self, component: &Component) -> Vec<(String, String)> {
        component
            .component_type()
            .imports(&self.engine)
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix("cni-wasm:plugin/")?;
                let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
                Some((interface.to_string(), version.to_string()))
            })
            .collect()
    }

    /// Defines what `component` imports: our interfaces, and trapping stubs
    /// for `wasi:*` (see [`stub_wasi`]). Anything else stays undefined, so
    /// instantiation fails and names it.
    fn link(&self, linker: &mut Linker<HostState>, component: &Component) -> wasmtime::Result<()> {
        for (name, import) in component.component_type().imports(&self.engine) {
            if let Some(interface) = name.strip_prefix("cni-wasm:plugin/") {
                let interface = interface.split('@').next().unwrap_or(interface);
                // Not ours (a newer contract?): left undefined, instantiation says so.
                if let Some(ours) = crate::imports::interface(interface)
                    && self.linked.borrow_mut().insert(interface.to_string())
                {
                    (ours.add_to_linker)(linker)?;
                }
            } else if let ComponentItem::ComponentInstance(instance) = import.ty
                && name.starts_with("wasi:")
            {
                let mut stubs = linker.instance(name)?;
                for (export, item) in instance.exports(&self.engine) {
                    stub(&mut stubs, name, export, &item.ty)?;
                }
            }
        }
        Ok(())
    }
}

/// A Rust std guest imports wasi:cli stdio (through its libc) even if it
/// never prints. Plugins get no WASI: every `wasi:*` import is a function
/// that traps, except `wasi:random/insecure-seed`, which std's HashMap needs
/// for its hash keys.
fn stub(
    instance: &mut LinkerInstance<'_, HostState>,
    parent: &str,
    name: &str,
    item: &ComponentItem,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_)
            if parent.starts_with("wasi:random/insecure-seed@") && name == "insecure-seed" =>
        {
            instance.func_wrap("insecure-seed", |_, (): ()| Ok((insecure_seed(),)))?;
        }
        ComponentItem::ComponentFunc(_) => {
            let what = format!("{parent}#{name}");
            instance.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("the plugin called {what}, but plugins get no WASI imports")
            })?;
        }
        // One type for every stubbed resource keeps aliases between WASI
        // interfaces (an output-stream used by wasi:cli/stdout) consistent.
        ComponentItem::Resource(_) => instance.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?,
        _ => {}
    }
    Ok(())
}

/// 128 bits for hash-map keys: std's RandomState is already seeded from the
/// OS, so hashing with two of them gives fresh values without a syscall here.
fn insecure_seed() -> (u64, u64) {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    (state.hash_one(1u8), state.hash_one(2u8))
}
