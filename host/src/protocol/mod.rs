//! The CNI protocol edge, done once for every plugin: environment, stdin,
//! version negotiation, result conversion, error output (SPEC.md 1.1 and the
//! behaviour of the Go `skel` package that runtimes are used to).

pub mod config;
pub mod env;
pub mod error;
pub mod json;
pub mod result;
pub mod version;

pub use error::CniError;
