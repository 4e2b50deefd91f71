//! The lease daemon: `dhcp daemon [flags]`, started as the reference's is.
//!
//! It holds one lease per `<container id>/<network>/<ifname>`, acquired
//! when a plugin's ADD asks for it and renewed at T1 (rebinding after T2)
//! by a thread per lease that sleeps in between. Each exchange opens its
//! namespace afresh from the container's netns path, so the daemon never
//! keeps a namespace alive; a namespace or interface that is gone ends the
//! lease. Leases are written to a directory next to the socket, so a
//! restarted daemon picks up renewing where the last one stopped.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::client::{self, Granted, Identity, Interface, Renewal, Settings};
use super::wire::{self, LeaseKey, Request, Response};
use crate::error::{Error, Result};
use crate::links::{self, LinkChange};
use crate::netns::Netns;

pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";
/// A renewal that failed is retried after half the time left (RFC 2131
/// §4.4.5), but not sooner than this.
const MIN_RETRY: Duration = Duration::from_secs(10);
/// How long a connection may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// DHCP option 61.
const CLIENT_ID_OPTION: u8 = 61;

/// The daemon's flags, spelled as the reference's (Go `flag` syntax:
/// `-name value` or `-name=value`, one or two dashes).
#[derive(Debug, Clone)]
pub struct Flags {
    pub socket_path: PathBuf,
    pub pidfile: Option<PathBuf>,
    /// Prefix of the socket path and of every netns path, for a daemon
    /// that runs in a container with the host's filesystem mounted there.
    pub host_prefix: String,
    pub settings: Settings,
    /// Accepted for compatibility: renewal retries are bounded by the
    /// lease's own T2 and expiry instead.
    pub resend_timeout: Duration,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            socket_path: PathBuf::from(DEFAULT_SOCKET),
            pidfile: None,
            host_prefix: String::new(),
            settings: Settings {
                broadcast: false,
                timeout: Duration::from_secs(10),
                resend_max: Duration::from_secs(62),
            },
            resend_timeout: Duration::from_secs(208),
        }
    }
}

impl Flags {
    pub fn parse(args: &[&str]) -> std::result::Result<Flags, String> {
        let mut flags = Flags::default();
        let mut socket_path = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            if name == "broadcast" {
                flags.settings.broadcast = match inline {
                    None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                    Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                    Some(other) => return Err(format!("invalid boolean value {other:?} for -broadcast")),
                };
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or_else(|| format!("flag needs an argument: -{name}"))?,
            };
            match name {
                "socketpath" => socket_path = Some(PathBuf::from(value)),
                "pidfile" => flags.pidfile = Some(PathBuf::from(value)),
                "hostprefix" => flags.host_prefix = value.to_string(),
                "timeout" => flags.settings.timeout = go_duration(value)?,
                "resendmax" => flags.settings.resend_max = go_duration(value)?,
                "resendtimeout" => flags.resend_timeout = go_duration(value)?,
                _ => return Err(format!("flag provided but not defined: -{name}")),
            }
        }
        // As the reference: the default socket lives under the prefix; a
        // given -socketpath is taken as it is.
        flags.socket_path =
            socket_path.unwrap_or_else(|| PathBuf::from(format!("{}{DEFAULT_SOCKET}", flags.host_prefix)));
        Ok(flags)
    }
}

/// A Go duration: "10s", "1m30s", "500ms", "2h".
pub fn go_duration(text: &str) -> std::result::Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (write it as Go does: 10s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid()),
        };
        total += Duration::from_secs_f64(number * seconds);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A held lease, as kept in memory and on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    key: LeaseKey,
    /// CNI_NETNS as the host saw it (without the prefix).
    netns: String,
    client_id: Vec<u8>,
    provide: Vec<wire::DhcpOption>,
    request: Vec<u8>,
    granted: Granted,
    /// When the server granted (or last renewed) it, in seconds since the
    /// epoch: wall-clock time, so it means the same after a restart.
    granted_at: u64,
    /// When to try the next renewal; none: at T1.
    #[serde(default)]
    retry_at: Option<u64>,
}

impl Held {
    fn identity(&self) -> Identity {
        Identity { client_id: self.client_id.clone(), provide: self.provide.clone(), request: self.request.clone() }
    }

    fn t1(&self) -> u64 {
        self.granted_at + u64::from(self.granted.t1_secs)
    }

    fn t2(&self) -> u64 {
        self.granted_at + u64::from(self.granted.t2_secs)
    }

    fn expiry(&self) -> u64 {
        self.granted_at + u64::from(self.granted.lease_secs)
    }

    fn next_action(&self) -> u64 {
        self.retry_at.unwrap_or_else(|| self.t1())
    }
}

/// One key's lease. Its lock is held while it is acquired or released, so
/// requests for the same attachment take turns; `generation` tells a
/// maintenance thread whether the lease it was started for still exists.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    wake: Condvar,
}

#[derive(Default)]
struct SlotState {
    held: Option<Held>,
    generation: u64,
}

struct Daemon {
    flags: Flags,
    store: PathBuf,
    slots: Mutex<HashMap<LeaseKey, Arc<Slot>>>,
}

/// Runs the daemon until it is killed.
pub fn run(flags: Flags) -> std::result::Result<(), String> {
    let listener = listen(&flags.socket_path)?;
    if let Some(pidfile) = &flags.pidfile {
        fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("writing the pidfile {}: {e}", pidfile.display()))?;
    }
    let store = flags.socket_path.with_file_name("dhcp-leases");
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(&store)
        .map_err(|e| format!("creating {}: {e}", store.display()))?;
    let daemon = Arc::new(Daemon { flags, store, slots: Mutex::new(HashMap::new()) });
    daemon.resume();
    log(format_args!("listening on {}", daemon.flags.socket_path.display()));
    for connection in listener.incoming() {
        match connection {
            Ok(stream) => {
                let daemon = daemon.clone();
                let spawned =
                    std::thread::Builder::new().name("dhcp-request".into()).spawn(move || daemon.serve(stream));
                if let Err(e) = spawned {
                    log(format_args!("cannot start a thread for a request: {e}"));
                }
            }
            Err(e) => log(format_args!("accepting a connection: {e}")),
        }
    }
    Ok(())
}

/// systemd's socket (one LISTEN_FD) if we were activated, else our own:
/// a stale socket file is replaced, a live daemon is not.
fn listen(path: &Path) -> std::result::Result<UnixListener, String> {
    let activated = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    if activated {
        match std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()) {
            // SAFETY: systemd passes the listening socket as fd 3 and we
            // take ownership of it once.
            Some(1) => return Ok(unsafe { UnixListener::from_raw_fd(3) }),
            other => {
                return Err(format!("socket activation passed {other:?} sockets; cni-dhcp.socket has exactly one"));
            }
        }
    }
    if let Some(dir) = path.parent() {
        // Like the reference: a directory we create is root's alone.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if UnixStream::connect(path).is_ok() {
        return Err(format!("another dhcp daemon is already listening on {}", path.display()));
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing the stale socket {}: {e}", path.display())),
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("listening on {}: {e}", path.display()))?;
    // Only root may ask for leases in other namespaces.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("restricting {}: {e}", path.display()))?;
    Ok(listener)
}

impl Daemon {
    fn serve(self: Arc<Self>, stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
        let response = match wire::read_line(&stream) {
            Err(e) => Response::failed(&Error::from_io(&e, "reading a request")),
            Ok(line) => match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response::failed(&Error::invalid(format!("not a request: {e}"))),
                Ok(request) => match self.handle(request) {
                    Ok(lease) => Response { lease, error: None },
                    Err(e) => Response::failed(&e),
                },
            },
        };
        let mut line = serde_json::to_vec(&response).unwrap_or_default();
        line.push(b'\n');
        let _ = (&stream).write_all(&line);
    }

    fn handle(self: &Arc<Self>, request: Request) -> Result<Option<wire::Lease>> {
        match request {
            Request::Acquire { key, netns, provide, request, timeout_ms } => {
                self.acquire(key, netns, provide, request, timeout_ms).map(Some)
            }
            Request::Release { key } => self.release(&key).map(|()| None),
            Request::Held { key } => {
                let slot = lock(&self.slots).get(&key).cloned();
                Ok(slot.and_then(|slot| lock(&slot.state).held.as_ref().map(|h| h.granted.lease.clone())))
            }
            Request::Status => Ok(None),
            Request::Gc { network, valid } => {
                let stale: Vec<LeaseKey> = lock(&self.slots)
                    .keys()
                    .filter(|k| k.network == network)
                    .filter(|k| !valid.iter().any(|(id, ifname)| *id == k.container_id && *ifname == k.ifname))
                    .cloned()
                    .collect();
                for key in stale {
                    self.release(&key)?;
                }
                Ok(None)
            }
        }
    }

    fn slot(&self, key: &LeaseKey) -> Arc<Slot> {
        lock(&self.slots).entry(key.clone()).or_default().clone()
    }

    fn acquire(
        self: &Arc<Self>,
        key: LeaseKey,
        netns: String,
        mut provide: Vec<wire::DhcpOption>,
        request: Vec<u8>,
        timeout_ms: Option<u64>,
    ) -> Result<wire::Lease> {
        if !netns.starts_with('/') || netns.split('/').any(|part| part == "..") {
            return Err(Error::invalid(format!("netns {netns:?} is not an absolute path")));
        }
        let slot = self.slot(&key);
        let mut state = lock(&slot.state);
        if let Some(held) = &state.held
            && held.netns == netns
        {
            return Ok(held.granted.lease.clone());
        }
        let client_id = match provide.iter().position(|o| o.code == CLIENT_ID_OPTION) {
            Some(index) => provide.remove(index).value,
            None => client::default_client_id(&key.client_id()),
        };
        let identity = Identity { client_id, provide, request };
        let interface = self.open(&netns, &key.ifname)?;
        let granted = interface
            .acquire(&identity, &within(&self.flags.settings, timeout_ms))
            .map_err(|e| e.context(lease_label(&key)))?;
        drop(interface);
        log(format_args!(
            "{}: leased {}/{} from {} for {}s",
            lease_label(&key),
            granted.lease.address,
            granted.lease.prefix_len,
            granted.server_id,
            granted.lease_secs
        ));
        let held = Held {
            key,
            netns,
            client_id: identity.client_id,
            provide: identity.provide,
            request: identity.request,
            granted,
            granted_at: now(),
            retry_at: None,
        };
        let lease = held.granted.lease.clone();
        self.save(&held);
        state.held = Some(held);
        state.generation += 1;
        let generation = state.generation;
        drop(state);
        self.maintain(slot, generation);
        Ok(lease)
    }

    /// Stops renewing, forgets the lease and tells the server; when the
    /// interface is already gone there is no one to tell, and that is fine.
    fn release(&self, key: &LeaseKey) -> Result<()> {
        let slot = self.slot(key);
        let mut state = lock(&slot.state);
        let Some(held) = state.held.take() else {
            lock(&self.slots).remove(key);
            return Ok(());
        };
        state.generation += 1;
        slot.wake.notify_all();
        self.forget(key);
        drop(state);
        match self.open(&held.netns, &key.ifname) {
            Ok(interface) => match interface.release(&held.granted, &held.identity(), &self.flags.settings) {
                Ok(()) => log(format_args!("{}: released {}", lease_label(key), held.granted.lease.address)),
                Err(e) => log(format_args!("{}: sending DHCPRELEASE: {e}", lease_label(key))),
            },
            Err(e) => log(format_args!(
                "{}: not releasing {} ({e}); the server keeps it until it expires",
                lease_label(key),
                held.granted.lease.address
            )),
        }
        Ok(())
    }

    fn open(&self, netns: &str, ifname: &str) -> Result<Interface> {
        let ns = Netns::open(&format!("{}{netns}", self.flags.host_prefix))?;
        Interface::open(&ns, ifname)
    }

    /// Starts the thread that renews the lease of `generation`.
    fn maintain(self: &Arc<Self>, slot: Arc<Slot>, generation: u64) {
        let daemon = self.clone();
        let spawned =
            std::thread::Builder::new().name("dhcp-renew".into()).spawn(move || daemon.renew_loop(&slot, generation));
        if let Err(e) = spawned {
            log(format_args!("cannot start a renewal thread: {e}"));
        }
    }

    fn renew_loop(&self, slot: &Slot, generation: u64) {
        loop {
            let mut state = lock(&slot.state);
            let held = loop {
                let Some(held) = state.held.as_ref().filter(|_| state.generation == generation) else { return };
                let now = now();
                if now >= held.next_action() {
                    break held.clone();
                }
                let wait = Duration::from_secs(held.next_action() - now);
                state = slot.wake.wait_timeout(state, wait).map(|(s, _)| s).unwrap_or_else(|e| e.into_inner().0);
            };
            drop(state);
            let outcome = self.renew_once(&held);
            let mut state = lock(&slot.state);
            if state.generation != generation || state.held.is_none() {
                return;
            }
            match outcome {
                Outcome::Renewed(updated) | Outcome::Retry(updated) => {
                    self.save(&updated);
                    state.held = Some(updated);
                }
                Outcome::Ended => {
                    state.held = None;
                    state.generation += 1;
                    self.forget(&held.key);
                    return;
                }
            }
        }
    }

    fn renew_once(&self, held: &Held) -> Outcome {
        let label = lease_label(&held.key);
        let now = now();
        let ns = match Netns::open(&format!("{}{}", self.flags.host_prefix, held.netns)) {
            Ok(ns) => ns,
            Err(e) => {
                log(format_args!("{label}: the container is gone ({e}); forgetting {}", held.granted.lease.address));
                return Outcome::Ended;
            }
        };
        if now >= held.expiry() {
            // As the reference: an address the server no longer grants must
            // not stay in use.
            log(format_args!("{label}: lease of {} expired; setting the link down", held.granted.lease.address));
            let down = LinkChange { up: Some(false), ..Default::default() };
            if let Err(e) = links::set(&ns, &held.key.ifname, &down) {
                log(format_args!("{label}: {e}"));
            }
            return Outcome::Ended;
        }
        let interface = match Interface::open(&ns, &held.key.ifname) {
            Ok(interface) => interface,
            Err(e) if e.is_not_found() => {
                log(format_args!("{label}: the interface is gone; forgetting {}", held.granted.lease.address));
                return Outcome::Ended;
            }
            Err(e) => return Outcome::Retry(self.later(held, now, &e)),
        };
        let rebind = now >= held.t2();
        match interface.renew(&held.granted, &held.identity(), &self.flags.settings, rebind) {
            Ok(Renewal::Granted(granted)) => {
                log(format_args!(
                    "{label}: {} {} for {}s",
                    if rebind { "rebound" } else { "renewed" },
                    granted.lease.address,
                    granted.lease_secs
                ));
                Outcome::Renewed(Held { granted, granted_at: now, retry_at: None, ..held.clone() })
            }
            Ok(Renewal::Refused) => {
                log(format_args!(
                    "{label}: the server refused to renew {}; setting the link down",
                    held.granted.lease.address
                ));
                let down = LinkChange { up: Some(false), ..Default::default() };
                if let Err(e) = links::set(&ns, &held.key.ifname, &down) {
                    log(format_args!("{label}: {e}"));
                }
                Outcome::Ended
            }
            Err(e) => Outcome::Retry(self.later(held, now, &e)),
        }
    }

    /// RFC 2131 §4.4.5: after a failed renewal, wait half the time left
    /// until T2 (or, when rebinding, until expiry).
    fn later(&self, held: &Held, now: u64, error: &Error) -> Held {
        let until = if now < held.t2() { held.t2() } else { held.expiry() };
        let wait = ((until.saturating_sub(now)) / 2).max(MIN_RETRY.as_secs());
        log(format_args!("{}: renewal failed ({error}); trying again in {wait}s", lease_label(&held.key)));
        Held { retry_at: Some((now + wait).min(held.expiry())), ..held.clone() }
    }

    /// Picks up the leases a previous daemon held.
    fn resume(self: &Arc<Self>) {
        let Ok(entries) = fs::read_dir(&self.store) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let held = fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Held>(&bytes).ok());
            let Some(held) = held.filter(|h| self.store_path(&h.key) == path) else {
                log(format_args!("ignoring {}: not a lease this daemon wrote", path.display()));
                continue;
            };
            log(format_args!("{}: resuming {}", lease_label(&held.key), held.granted.lease.address));
            let slot = self.slot(&held.key);
            let mut state = lock(&slot.state);
            state.held = Some(held);
            state.generation += 1;
            let generation = state.generation;
            drop(state);
            self.maintain(slot, generation);
        }
    }

    fn store_path(&self, key: &LeaseKey) -> PathBuf {
        // FNV-1a: a stable, short file name for any key.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.client_id().bytes().chain([0]).chain(key.ifname.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.store.join(format!("{hash:016x}.json"))
    }

    fn save(&self, held: &Held) {
        let path = self.store_path(&held.key);
        let temporary = path.with_extension("tmp");
        let written = serde_json::to_vec(held)
            .map_err(std::io::Error::other)
            .and_then(|bytes| fs::write(&temporary, bytes))
            .and_then(|()| fs::rename(&temporary, &path));
        if let Err(e) = written {
            log(format_args!("{}: saving the lease to {}: {e}", lease_label(&held.key), path.display()));
        }
    }

    fn forget(&self, key: &LeaseKey) {
        let _ = fs::remove_file(self.store_path(key));
    }
}

enum Outcome {
    Renewed(Held),
    Retry(Held),
    Ended,
}

fn lease_label(key: &LeaseKey) -> String {
    format!("lease {}/{}/{}", key.container_id, key.network, key.ifname)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn log(message: std::fmt::Arguments) {
    eprintln!("dhcp: {message}");
}

/// The caller gives up at its deadline; an acquisition that would go on
/// past it ends a little before, so the caller still hears why.
fn within(settings: &Settings, caller_ms: Option<u64>) -> Settings {
    let mut settings = settings.clone();
    if let Some(ms) = caller_ms {
        let margin = (ms / 10).min(1000);
        settings.timeout = settings.timeout.min(Duration::from_millis(ms - margin));
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_parsed_as_gos_flag_package_does() {
        let flags =
            Flags::parse(&["-socketpath", "/tmp/d.sock", "--timeout=3s", "-broadcast", "-resendmax", "1m2s"]).unwrap();
        assert_eq!(flags.socket_path, PathBuf::from("/tmp/d.sock"));
        assert_eq!(flags.settings.timeout, Duration::from_secs(3));
        assert_eq!(flags.settings.resend_max, Duration::from_secs(62));
        assert!(flags.settings.broadcast);
        assert!(Flags::parse(&["-nope", "1"]).unwrap_err().contains("not defined"));
        assert!(Flags::parse(&["-timeout"]).unwrap_err().contains("needs an argument"));
        let prefixed = Flags::parse(&["-hostprefix", "/host"]).unwrap();
        assert_eq!(prefixed.socket_path, PathBuf::from("/host/run/cni/dhcp.sock"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(go_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(go_duration("10").is_err());
        assert!(go_duration("").is_err());
    }
}
