//! CNI error objects: `{"code": N, "msg": "...", "details": "..."}` on
//! stdout, exit status 1.

use serde_json::{Map, Value};

/// The spec's error codes (0-99 are reserved for the spec); the complete
/// table, though the host itself does not raise every one.
#[allow(dead_code)]
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY: u32 = 51;
    /// What the Go skel reports for any untyped plugin error.
    pub const INTERNAL: u32 = 999;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, msg)
    }

    /// The JSON object, with `cniVersion` when known (Go omits it; runtimes
    /// accept both) and `details` only when non-empty, as Go does.
    pub fn to_json(&self, cni_version: Option<&str>) -> Value {
        let mut object = Map::new();
        if let Some(version) = cni_version {
            object.insert("cniVersion".into(), Value::String(version.into()));
        }
        object.insert("code".into(), Value::from(self.code));
        object.insert("msg".into(), Value::String(self.msg.clone()));
        if !self.details.is_empty() {
            object.insert("details".into(), Value::String(self.details.clone()));
        }
        Value::Object(object)
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}
