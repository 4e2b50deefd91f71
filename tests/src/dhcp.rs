//! A DHCP LAN for the dhcp tests: dnsmasq in a namespace of its own, wired
//! by a veth to a bridge `lan0` in the namespace playing the host (the
//! master of macvlan containers and the bridge of bridge containers), and
//! lease daemons (`dhcp daemon`, ours or the reference's) on sockets of
//! their own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::TempDir;
use crate::kernel::eventually;
use crate::netns::Netns;

/// The LAN's bridge in the host namespace.
pub const BRIDGE: &str = "lan0";
pub const SERVER_IP: &str = "10.77.0.1";
/// dnsmasq's pool (a /24 around SERVER_IP).
pub const POOL: (&str, &str) = ("10.77.0.50", "10.77.0.99");

/// dnsmasq serving the host namespace's `lan0`.
pub struct DhcpServer {
    pub ns: Netns,
    dir: TempDir,
    child: Child,
}

impl DhcpServer {
    /// `options` are extra dnsmasq arguments ("--dhcp-option=option:T1,3").
    /// The lease time is dnsmasq's minimum, two minutes.
    pub fn start(host: &Netns, tag: &str, options: &[&str]) -> DhcpServer {
        let ns = Netns::new(&format!("{tag}-s"));
        // The veth's names inside either namespace only: no clash between
        // tests running at once.
        host.exec("ip", &["link", "add", BRIDGE, "type", "bridge"]);
        host.exec("ip", &["link", "add", "lan0v", "type", "veth", "peer", "name", "srv0", "netns", &ns.name]);
        host.exec("ip", &["link", "set", "lan0v", "master", BRIDGE, "up"]);
        host.exec("ip", &["link", "set", BRIDGE, "up"]);
        ns.exec("ip", &["addr", "add", &format!("{SERVER_IP}/24"), "dev", "srv0"]);
        ns.exec("ip", &["link", "set", "srv0", "up"]);
        ns.exec("ip", &["link", "set", "lo", "up"]);
        let dir = TempDir::new(tag);
        let mut args = vec![
            "--no-daemon".to_string(),
            "--conf-file=/dev/null".into(),
            // DHCP only: no DNS server.
            "--port=0".into(),
            "--interface=srv0".into(),
            "--bind-interfaces".into(),
            "--dhcp-authoritative".into(),
            format!("--dhcp-range={},{},255.255.255.0,2m", POOL.0, POOL.1),
            format!("--dhcp-leasefile={}", dir.join("leases").display()),
            "--log-dhcp".into(),
            format!("--log-facility={}", dir.join("log").display()),
        ];
        args.extend(options.iter().map(|o| o.to_string()));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "dnsmasq"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq (apt-get install dnsmasq-base)");
        let server = DhcpServer { ns, dir, child };
        eventually(Duration::from_secs(10), "dnsmasq listening", || {
            let log = server.log();
            log.contains("DHCP, sockets bound").then_some(()).ok_or(log)
        });
        server
    }

    /// dnsmasq's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The addresses in dnsmasq's lease file (it rewrites the file on every
    /// change: a released lease leaves it).
    pub fn leased(&self) -> Vec<String> {
        let leases = std::fs::read_to_string(self.dir.join("leases")).unwrap_or_default();
        leases.lines().filter_map(|line| line.split_whitespace().nth(2)).map(str::to_string).collect()
    }

    /// How many times dnsmasq has acknowledged `address`.
    pub fn acks(&self, address: &str) -> usize {
        self.log().lines().filter(|l| l.contains("DHCPACK(") && l.contains(&format!(" {address} "))).count()
    }

    /// Whether dnsmasq has seen a DHCPRELEASE of `address`.
    pub fn released(&self, address: &str) -> bool {
        self.log().lines().any(|l| l.contains("DHCPRELEASE(") && l.contains(&format!(" {address} ")))
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lease daemon: `<program> daemon -socketpath <dir>/dhcp.sock <flags>`.
pub struct LeaseDaemon {
    pub socket: PathBuf,
    program: PathBuf,
    flags: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    _dir: Option<TempDir>,
}

impl LeaseDaemon {
    pub fn start(program: &Path, tag: &str, flags: &[&str]) -> LeaseDaemon {
        let dir = TempDir::new(tag);
        let mut daemon = LeaseDaemon {
            socket: dir.join("dhcp.sock"),
            program: program.to_path_buf(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            log: dir.join("daemon.log"),
            child: None,
            _dir: Some(dir),
        };
        daemon.restart();
        daemon
    }

    pub fn socket_path(&self) -> String {
        self.socket.display().to_string()
    }

    /// What the daemon has written to stderr (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills the daemon (SIGKILL: no chance to tidy up, as in a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same socket, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("opening the daemon log");
        let child = Command::new(&self.program)
            .arg("daemon")
            .arg("-socketpath")
            .arg(&self.socket)
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} daemon: {e}", self.program.display()));
        self.child = Some(child);
        let socket = self.socket.clone();
        eventually(Duration::from_secs(10), "the dhcp daemon listening", || {
            std::os::unix::net::UnixStream::connect(&socket).map(drop).map_err(|e| e.to_string())
        });
    }
}

impl Drop for LeaseDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}
