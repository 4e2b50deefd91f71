//! CNI_WASM_TIMING=1 prints how long each phase of an invocation took, to
//! stderr, for benchmarking the host itself.

use std::cell::RefCell;
use std::time::Instant;

thread_local! {
    static MARKS: RefCell<Option<(Instant, Instant)>> = const { RefCell::new(None) };
}

pub fn start() {
    if std::env::var_os("CNI_WASM_TIMING").is_some() {
        let now = Instant::now();
        MARKS.with(|m| *m.borrow_mut() = Some((now, now)));
    }
}

pub fn mark(phase: &str) {
    MARKS.with(|m| {
        if let Some((start, last)) = m.borrow_mut().as_mut() {
            let now = Instant::now();
            eprintln!(
                "cni-wasm timing: {phase:<24} {:>8.3} ms (total {:>8.3} ms)",
                (now - *last).as_secs_f64() * 1e3,
                (now - *start).as_secs_f64() * 1e3
            );
            *last = now;
        }
    });
}
