//! CNI errors: `{code, msg, details}`. Capability errors become code 999
//! (what the Go skel reports for untyped errors) with their message, which
//! the host has already filled with context.

use std::fmt;

use crate::{cni, types};

pub type Error = cni::Error;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The spec's error codes.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const INTERNAL: u32 = 999;
}

/// An error with a code and message.
pub fn error(code: u32, msg: impl Into<String>) -> Error {
    Error { code, msg: msg.into(), details: String::new() }
}

/// An internal (code 999) error, the Go reference's untyped `fmt.Errorf`.
pub fn internal(msg: impl Into<String>) -> Error {
    error(code::INTERNAL, msg)
}

/// An invalid-config (code 7) error.
pub fn invalid_config(msg: impl Into<String>) -> Error {
    error(code::INVALID_NETWORK_CONFIG, msg)
}

impl From<types::Error> for Error {
    fn from(error: types::Error) -> Self {
        let code = match error.kind {
            types::ErrorKind::Timeout | types::ErrorKind::Busy => code::TRY_AGAIN_LATER,
            _ => code::INTERNAL,
        };
        self::error(code, error.message)
    }
}

impl types::Error {
    pub fn is_not_found(&self) -> bool {
        self.kind == types::ErrorKind::NotFound
    }

    pub fn is_already_exists(&self) -> bool {
        self.kind == types::ErrorKind::AlreadyExists
    }
}

/// Teardown that keeps going (DEL, GC): every step runs, each failure is
/// kept, and all of them are reported together at the end, so one failure
/// never leaks what the later steps would have removed.
#[derive(Debug, Default)]
pub struct Errors(Vec<String>);

impl Errors {
    pub fn new() -> Self {
        Errors(Vec::new())
    }

    /// Keeps `outcome`'s error, if any; returns its value otherwise.
    pub fn keep<T, E: Into<Error>>(&mut self, outcome: std::result::Result<T, E>) -> Option<T> {
        match outcome {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error.into().msg);
                None
            }
        }
    }

    /// Ok when nothing failed; else one internal error listing every failure.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(internal(self.0.join("; "))) }
    }
}

/// Prefixes an error message with what the plugin was doing.
pub trait Context<T> {
    fn context(self, doing: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, types::Error> {
    fn context(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|e| {
            let mut error = Error::from(e);
            error.msg = format!("{doing}: {}", error.msg);
            error
        })
    }
}

impl<T> Context<T> for std::result::Result<T, Error> {
    fn context(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|mut e| {
            e.msg = format!("{doing}: {}", e.msg);
            e
        })
    }
}
