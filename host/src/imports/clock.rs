//! `clock`: a monotonic clock and a sleep bounded by the deadline.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cni_wasm_capabilities::{Error, ErrorKind};

use super::CallResult;
use crate::bindings::cni_wasm::plugin::clock::Host;
use crate::context::HostState;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(origin().elapsed().as_nanos() as u64)
    }

    fn sleep(&mut self, milliseconds: u32) -> CallResult<()> {
        let wake = Instant::now() + Duration::from_millis(milliseconds.into());
        let deadline = self.session.deadline();
        if wake > deadline {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("{}: sleeping {milliseconds} ms would pass the deadline", self.grants.plugin),
            )
            .into());
        }
        std::thread::sleep(wake - Instant::now());
        Ok(())
    }
}
