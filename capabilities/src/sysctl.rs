//! /proc/sys/net of a namespace. The file is opened on a thread inside the
//! namespace (procfs resolves sysctls by the opener's namespace) and then
//! read or written from here.

use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Checks a '/'-separated key below /proc/sys: it must stay under `net/`.
pub fn validate_key(key: &str) -> Result<()> {
    let valid = key.starts_with("net/")
        && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && !key.contains('\0');
    if valid { Ok(()) } else { Err(Error::invalid(format!("sysctl key {key:?} is not a path below /proc/sys/net"))) }
}

pub fn get(ns: &Netns, key: &str) -> Result<String> {
    validate_key(key)?;
    let mut file = ns.open_proc_sys(key, false)?;
    let mut value = String::new();
    file.read_to_string(&mut value)
        .map_err(|e| Error::from_io(&e, format!("reading /proc/sys/{key} in {}", ns.label())))?;
    Ok(value.trim_end_matches('\n').to_string())
}

pub fn set(ns: &Netns, key: &str, value: &str) -> Result<()> {
    validate_key(key)?;
    let mut file = ns.open_proc_sys(key, true)?;
    file.write_all(value.as_bytes())
        .map_err(|e| Error::from_io(&e, format!("writing {value:?} to /proc/sys/{key} in {}", ns.label())))
}
