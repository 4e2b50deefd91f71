//! Reading a host file on a plugin's behalf (the policy check is the host's).

use std::io::Read;
use std::path::{Component, Path};

use crate::error::{Error, Result};

/// Plugins read small config files; anything larger is refused.
pub const MAX_SIZE: u64 = 1 << 20;

/// Absolute and without `.` or `..` components.
pub fn validate_path(path: &str) -> Result<()> {
    let candidate = Path::new(path);
    let plain = candidate.is_absolute()
        && !path.contains('\0')
        && candidate.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain { Ok(()) } else { Err(Error::invalid(format!("{path:?} is not an absolute path without '..'"))) }
}

/// The file's contents, or None if it does not exist.
pub fn read(path: &str) -> Result<Option<Vec<u8>>> {
    validate_path(path)?;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from_io(&e, format!("opening {path}"))),
    };
    let mut contents = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut contents).map_err(|e| Error::from_io(&e, format!("reading {path}")))?;
    if contents.len() as u64 > MAX_SIZE {
        return Err(Error::invalid(format!("{path} is larger than {MAX_SIZE} bytes")));
    }
    Ok(Some(contents))
}
