//! A plugin's state directory, confined with cap-std: every path is resolved
//! beneath the directory's handle, so `..`, absolute paths and symlinks
//! cannot reach anything outside it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, OpenOptions, OpenOptionsExt};

use crate::error::{Error, ErrorKind, Result};

/// Files hold reservations naming containers: readable by root only.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o755;
/// The Go reference (go-filemutex) creates its lock files 0750; matching it
/// The most the host reads of one state file for a plugin.
pub const MAX_FILE: u64 = 1 << 20;

/// keeps a store shared with the reference plugins looking the same.
const LOCK_MODE: u32 = 0o750;

pub struct StateDir {
    dir: Dir,
    root: PathBuf,
}

/// An exclusive flock, released when dropped (closing the file drops it).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl StateDir {
    /// Opens (creating if needed) the directory `root`.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_absolute() {
            return Err(Error::invalid(format!("state directory {} is not an absolute path", root.display())));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(root)
            .map_err(|e| Error::from_io(&e, format!("creating state directory {}", root.display())))?;
        let dir = Dir::open_ambient_dir(root, ambient_authority())
            .map_err(|e| Error::from_io(&e, format!("opening state directory {}", root.display())))?;
        Ok(StateDir { dir, root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads a file of at most [`MAX_FILE`] bytes.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let relative = relative(path)?;
        match self.dir.open(relative) {
            Ok(file) => {
                let mut contents = Vec::new();
                file.take(MAX_FILE + 1).read_to_end(&mut contents).map_err(|e| self.error(&e, "reading", path))?;
                if contents.len() as u64 > MAX_FILE {
                    return Err(Error::invalid(format!("state file {path} is larger than {MAX_FILE} bytes")));
                }
                Ok(Some(contents))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(&e, "reading", path)),
        }
    }

    /// O_CREAT|O_EXCL: `already-exists` when the file is there.
    pub fn create(&self, path: &str, contents: &[u8]) -> Result<()> {
        let relative = relative(path)?;
        self.create_parent(relative)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(FILE_MODE);
        let mut file = self.dir.open_with(relative, &options).map_err(|e| self.error(&e, "creating", path))?;
        if let Err(e) = file.write_all(contents) {
            let _ = self.dir.remove_file(relative);
            return Err(self.error(&e, "writing", path));
        }
        Ok(())
    }

    /// Writes a temporary file and renames it over `path`.
    pub fn replace(&self, path: &str, contents: &[u8]) -> Result<()> {
        let relative = relative(path)?;
        self.create_parent(relative)?;
        let file_name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("state");
        let temporary = relative.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(FILE_MODE);
        let written = self
            .dir
            .open_with(&temporary, &options)
            .and_then(|mut file| file.write_all(contents))
            .and_then(|()| self.dir.rename(&temporary, &self.dir, relative));
        written.map_err(|e| {
            let _ = self.dir.remove_file(&temporary);
            self.error(&e, "replacing", path)
        })
    }

    pub fn remove(&self, path: &str) -> Result<bool> {
        match self.dir.remove_file(relative(path)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(&e, "removing", path)),
        }
    }

    /// File names in `dir` ("" = the state directory), sorted; empty when the
    /// directory does not exist.
    pub fn files(&self, dir: &str) -> Result<Vec<String>> {
        let entries = if dir.is_empty() { self.dir.entries() } else { self.dir.read_dir(relative(dir)?) };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(&e, "listing", dir)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.error(&e, "listing", dir))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes an exclusive flock on `path`, polling until `deadline`.
    pub fn lock(&self, path: &str, deadline: Instant) -> Result<FileLock> {
        let relative = relative(path)?;
        self.create_parent(relative)?;
        let mut options = OpenOptions::new();
        options.read(true).create(true).write(true).mode(LOCK_MODE);
        let file = self.dir.open_with(relative, &options).map_err(|e| self.error(&e, "opening lock", path))?;
        let file = file.into_std();
        let mut wait = Duration::from_micros(200);
        loop {
            // SAFETY: flock on an fd we own; no memory is involved.
            let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(self.error(&err, "locking", path));
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "locking {}: still held by another process at the deadline",
                        self.root.join(path).display()
                    ),
                ));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }

    fn create_parent(&self, relative: &Path) -> Result<()> {
        if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mut builder = DirBuilder::new();
            builder.recursive(true).mode(DIR_MODE);
            self.dir
                .create_dir_with(parent, &builder)
                .map_err(|e| self.error(&e, "creating directory", &parent.to_string_lossy()))?;
        }
        Ok(())
    }

    fn error(&self, err: &std::io::Error, doing: &str, path: &str) -> Error {
        // A planted symlink is the likely cause; say so rather than
        // "File exists" or cap-std's "a path led outside of the filesystem".
        let mut prefix = PathBuf::new();
        for part in Path::new(path).components() {
            prefix.push(part);
            if self.dir.symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
                return Error::new(
                    ErrorKind::Denied,
                    format!(
                        "{doing} {}: {} is a symlink, and the state store follows none (refused)",
                        self.root.join(path).display(),
                        prefix.display()
                    ),
                );
            }
        }
        Error::from_io(err, format!("{doing} {}", self.root.join(path).display()))
    }
}

/// Only plain relative paths: no root, no `..`, no `.`, no empty parts.
fn relative(path: &str) -> Result<&Path> {
    let candidate = Path::new(path);
    let plain =
        !path.is_empty() && !path.contains('\0') && candidate.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(candidate)
    } else {
        Err(Error::invalid(format!("state path {path:?} must be relative, without '..'")))
    }
}
