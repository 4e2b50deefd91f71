//! Logging to stderr (never stdout, which belongs to the CNI result) and,
//! when CNI_WASM_LOG_FILE names one, to a file. CNI_WASM_LOG sets the level:
//! error, warn (default), info or debug.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

struct Logger {
    level: Level,
    file: Option<std::sync::Mutex<std::fs::File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| {
        let level = match std::env::var("CNI_WASM_LOG").as_deref() {
            Ok("error") => Level::Error,
            Ok("info") => Level::Info,
            Ok("debug") => Level::Debug,
            _ => Level::Warn,
        };
        let file = std::env::var_os("CNI_WASM_LOG_FILE").and_then(|path| {
            std::fs::OpenOptions::new().create(true).append(true).open(path).ok().map(std::sync::Mutex::new)
        });
        Logger { level, file }
    })
}

pub fn log(level: Level, source: &str, message: fmt::Arguments<'_>) {
    let logger = logger();
    if level > logger.level {
        return;
    }
    let line = format!("cni-wasm[{source}] {}: {message}\n", level.name());
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(file) = &logger.file
        && let Ok(mut file) = file.lock()
    {
        let _ = file.write_all(line.as_bytes());
    }
}

macro_rules! log_at {
    ($level:ident, $source:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::Level::$level, $source, format_args!($($arg)*))
    };
}
pub(crate) use log_at;
