//! `logging`: plugin messages go to the host's log, tagged with the plugin.

use crate::bindings::cni_wasm::plugin::logging::{Host, Level};
use crate::context::HostState;
use crate::log;

/// Longer messages are cut, so a plugin cannot flood the runtime's logs.
const MAX_MESSAGE: usize = 4096;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
        };
        let mut message = message;
        // The SDK's panic hook says why the guest is about to trap.
        if level == log::Level::Error && message.starts_with("plugin panicked: ") && self.panic_message.is_none() {
            let mut why = message["plugin panicked: ".len()..].to_string();
            why.truncate(why.floor_char_boundary(MAX_MESSAGE));
            self.panic_message = Some(why);
        }
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        if self.logged_bytes > crate::context::MAX_LOG_BYTES {
            return Ok(());
        }
        self.logged_bytes += message.len();
        if self.logged_bytes > crate::context::MAX_LOG_BYTES {
            let limit = crate::context::MAX_LOG_BYTES;
            // At the level of the first message dropped, to show where it would have.
            log::log(
                level,
                &self.grants.plugin,
                format_args!("wrote more than {limit} bytes of logs; the rest is dropped"),
            );
            return Ok(());
        }
        log::log(level, &self.grants.plugin, format_args!("{message}"));
        Ok(())
    }
}
