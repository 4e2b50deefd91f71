//! One error type for every capability: what kind of failure, the errno if a
//! system call failed, and a message that says what was being done.

use std::fmt;
use std::io;

/// Mirrors `types.error-kind` in the WIT contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Busy,
    InvalidArgument,
    Denied,
    Unsupported,
    NotImplemented,
    Timeout,
    Io,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub errno: Option<i32>,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, errno: None, message: message.into() }
    }

    /// An error from a failed system call, classified by errno.
    pub fn from_errno(errno: i32, doing: impl fmt::Display) -> Self {
        let description = io::Error::from_raw_os_error(errno);
        // io::Error's Display ends in "(os error N)", which is the errno.
        Error { kind: kind_of_errno(errno), errno: Some(errno), message: format!("{doing}: {description}") }
    }

    pub fn from_io(err: &io::Error, doing: impl fmt::Display) -> Self {
        match err.raw_os_error() {
            Some(errno) => Self::from_errno(errno, doing),
            None => Error {
                kind: match err.kind() {
                    io::ErrorKind::NotFound => ErrorKind::NotFound,
                    io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                    io::ErrorKind::TimedOut => ErrorKind::Timeout,
                    io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
                    _ => ErrorKind::Io,
                },
                errno: None,
                message: format!("{doing}: {err}"),
            },
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn is_already_exists(&self) -> bool {
        self.kind == ErrorKind::AlreadyExists
    }

    /// Prefixes the message with what the caller was doing.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

fn kind_of_errno(errno: i32) -> ErrorKind {
    match errno {
        libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::ENXIO | libc::EADDRNOTAVAIL => ErrorKind::NotFound,
        libc::EEXIST => ErrorKind::AlreadyExists,
        libc::EBUSY | libc::EAGAIN => ErrorKind::Busy,
        libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT => ErrorKind::Unsupported,
        libc::EINVAL | libc::ERANGE => ErrorKind::InvalidArgument,
        libc::EPERM | libc::EACCES => ErrorKind::Denied,
        libc::ETIMEDOUT => ErrorKind::Timeout,
        _ => ErrorKind::Io,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds context to any `Result<_, Error>`.
pub trait Context<T> {
    fn context(self, doing: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, doing: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(doing))
    }
    fn with_context<D: fmt::Display>(self, doing: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.context(doing()))
    }
}
