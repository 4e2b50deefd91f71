//! Network namespaces, and the one safe way to act inside one.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. We never
//! call it on a thread that outlives the call: [`Netns::run`] spawns a
//! short-lived thread, enters the namespace, opens what it was asked to (a
//! netlink socket, a /proc/sys file, a tap fd) and exits. Sockets and files
//! stay bound to the namespace they were opened in, so the rest of the
//! program uses them from any thread. This avoids the Go bug class where a
//! switched thread is reused for unrelated work.

use std::cell::{OnceCell, RefCell, RefMut};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{PROC_SUPER_MAGIC, statfs};

use crate::error::{Error, Result};
use crate::netlink::RouteSocket;

/// NSFS_MAGIC from linux/magic.h (not exported by nix).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A namespace thread only calls setns and opens a socket or file; a small
/// stack keeps its creation cheap (the default is 2 MiB).
const THREAD_STACK: usize = 64 * 1024;

/// A network namespace the host may act in.
pub struct Netns {
    /// None for the host namespace: the process's own, which no thread of
    /// ours ever leaves.
    file: Option<File>,
    /// The host namespace's file, opened only when something needs its fd
    /// (e.g. to create a veth peer there from another namespace).
    host_file: OnceCell<File>,
    label: String,
    route: OnceCell<RefCell<RouteSocket>>,
}

impl Netns {
    /// The namespace this process runs in.
    pub fn host() -> Self {
        Netns { file: None, host_file: OnceCell::new(), label: "host netns".into(), route: OnceCell::new() }
    }

    /// Opens the namespace at `path` (e.g. CNI_NETNS), checking, as the Go
    /// reference does, that it is a namespace file and not some other file.
    pub fn open(path: &str) -> Result<Self> {
        let label = format!("container netns {path}");
        let fs =
            statfs(Path::new(path)).map_err(|e| Error::from_errno(e as i32, format!("opening {label} (statfs)")))?;
        let magic = fs.filesystem_type().0 as i64;
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC.0 {
            return Err(Error::invalid(format!("{path} is not a network namespace (filesystem magic {magic:#x})")));
        }
        let file = File::open(path).map_err(|e| Error::from_io(&e, format!("opening {label}")))?;
        Ok(Netns { file: Some(file), host_file: OnceCell::new(), label, route: OnceCell::new() })
    }

    /// A fresh, empty namespace that disappears when the handle is dropped
    /// (used to move links between namespaces without name clashes).
    pub fn temporary() -> Result<Self> {
        let file = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("netns".into())
                .stack_size(THREAD_STACK)
                .spawn_scoped(s, || -> io::Result<File> {
                    unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    File::open("/proc/thread-self/ns/net")
                })
                .and_then(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked"))))
        })
        .map_err(|e| Error::from_io(&e, "creating a temporary netns (unshare)"))?;
        Ok(Netns {
            file: Some(file),
            host_file: OnceCell::new(),
            label: "temporary netns".into(),
            route: OnceCell::new(),
        })
    }

    pub fn is_host(&self) -> bool {
        self.file.is_none()
    }

    /// "host netns" or "container netns /var/run/netns/x", for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The namespace file, e.g. for IFLA_NET_NS_FD.
    pub fn fd(&self) -> Result<BorrowedFd<'_>> {
        match &self.file {
            Some(file) => Ok(file.as_fd()),
            None => {
                if self.host_file.get().is_none() {
                    let file =
                        File::open("/proc/self/ns/net").map_err(|e| Error::from_io(&e, "opening the host netns"))?;
                    let _ = self.host_file.set(file);
                }
                Ok(self.host_file.get().expect("just set").as_fd())
            }
        }
    }

    /// The namespace's nsfs inode number, which identifies it while it
    /// lives.
    pub fn inode(&self) -> Result<u64> {
        let fd = self.fd()?.try_clone_to_owned().map_err(|e| Error::from_io(&e, "dup"))?;
        let meta = File::from(fd).metadata().map_err(|e| Error::from_io(&e, "fstat netns"))?;
        Ok(meta.ino())
    }

    /// The namespace's cookie (SO_NETNS_COOKIE): unlike its inode, never
    /// reused for another namespace while the machine is up, so it can key
    /// records that outlive the namespace.
    pub fn cookie(&self) -> Result<u64> {
        self.run("reading the netns cookie", || {
            use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
            // A socket belongs to the namespace its creator is in.
            let socket = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
            let mut cookie: u64 = 0;
            let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
            // SAFETY: the buffer is a u64 and `len` says so; the fd is open.
            let rc = unsafe {
                libc::getsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    libc::SOL_SOCKET,
                    libc::SO_NETNS_COOKIE,
                    (&mut cookie as *mut u64).cast(),
                    &mut len,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(cookie)
        })
    }

    /// Whether this is the same namespace as `other` (same nsfs inode).
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        let id = |ns: &Netns| -> Result<(u64, u64)> {
            let fd = ns.fd()?.try_clone_to_owned().map_err(|e| Error::from_io(&e, "dup"))?;
            let meta = File::from(fd).metadata().map_err(|e| Error::from_io(&e, "fstat netns"))?;
            Ok((meta.dev(), meta.ino()))
        };
        Ok(id(self)? == id(other)?)
    }

    /// Runs `f` inside this namespace on a thread that exits afterwards, and
    /// returns what it opened. For the host namespace `f` runs right here.
    pub fn run<T: Send>(&self, what: &str, f: impl FnOnce() -> io::Result<T> + Send) -> Result<T> {
        let Some(file) = &self.file else {
            return f().map_err(|e| Error::from_io(&e, format!("{what} in {}", self.label)));
        };
        let fd = file.as_fd();
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("netns".into())
                .stack_size(THREAD_STACK)
                .spawn_scoped(s, move || -> io::Result<T> {
                    setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    f()
                })
                .and_then(|handle| handle.join().unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked"))))
        })
        .map_err(|e| Error::from_io(&e, format!("{what} in {}", self.label)))
    }

    /// The namespace's rtnetlink socket, opened on first use.
    pub fn route(&self) -> Result<RefMut<'_, RouteSocket>> {
        if self.route.get().is_none() {
            let socket = self.run("opening an rtnetlink socket", RouteSocket::open)?;
            let _ = self.route.set(RefCell::new(socket));
        }
        Ok(self.route.get().expect("just set").borrow_mut())
    }

    /// Opens a file under /proc/sys as seen from this namespace.
    pub fn open_proc_sys(&self, relative: &str, write: bool) -> Result<File> {
        let path = format!("/proc/sys/{relative}");
        self.run(&format!("opening {path}"), move || std::fs::OpenOptions::new().read(!write).write(write).open(&path))
    }

    /// Duplicates an fd for handing to another owner (e.g. a child process).
    pub fn dup_fd(&self) -> Result<OwnedFd> {
        self.fd()?.try_clone_to_owned().map_err(|e| Error::from_io(&e, "dup netns fd"))
    }
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// Whether a path names an existing namespace file; false when it is gone.
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
