//! Side-by-side runs: the same conflist through the real libcni, once with
//! cni-wasm's plugins and once with the reference's, each in its own
//! scratch namespace playing the host (so bridges, iptables, nftables and
//! sysctls never touch the machine) with its own IPAM store.

use std::path::Path;

use serde_json::{Value, json};

use crate::libcni::Runtime;
use crate::netns::Netns;
use crate::plugin::Installation;
use crate::{REFERENCE_DIR, TempDir, require_root};

pub const NETWORK: &str = "podman";
pub const BRIDGE: &str = "cni-podman0";
pub const SUBNET: &str = "10.89.0.0/24";
pub const GATEWAY: &str = "10.89.0.1";

/// One implementation's world.
pub struct Side {
    pub name: &'static str,
    pub host: Netns,
    pub runtime: Runtime,
    pub store: TempDir,
    _install: Option<Installation>,
}

impl Side {
    pub fn ours(tag: &str) -> Side {
        require_root();
        let install = Installation::new(tag);
        let dir = install.dir.display().to_string();
        Side::new("cni-wasm", tag, &dir, Some(install))
    }

    pub fn reference(tag: &str) -> Side {
        require_root();
        Side::new("reference", tag, REFERENCE_DIR, None)
    }

    fn new(name: &'static str, tag: &str, bin_dir: &str, install: Option<Installation>) -> Side {
        let host = Netns::new(&format!("{tag}-h"));
        host.exec("ip", &["link", "set", "lo", "up"]);
        let runtime = Runtime::new(bin_dir).in_netns(&host.name);
        Side { name, host, runtime, store: TempDir::new(tag), _install: install }
    }

    /// The plugin directory (CNI_PATH) of this side.
    pub fn bin_dir(&self) -> String {
        match &self._install {
            Some(install) => install.dir.display().to_string(),
            None => REFERENCE_DIR.to_string(),
        }
    }

    /// A conflist with every `ipam.dataDir` pointed at this side's store.
    pub fn conflist(&self, template: &Value) -> String {
        let mut conflist = template.clone();
        for plugin in conflist["plugins"].as_array_mut().into_iter().flatten() {
            if plugin.get("ipam").is_some_and(|i| i.get("type").is_some()) {
                plugin["ipam"]["dataDir"] = json!(self.store.path.display().to_string());
            }
        }
        conflist.to_string()
    }

    pub fn add(&self, template: &Value, id: &str, container: &Netns, caps: &[(&str, Value)]) -> Result<Value, String> {
        self.runtime.add(&self.conflist(template), id, &container.path(), "eth0", caps)
    }

    pub fn check(&self, template: &Value, id: &str, container: &Netns, caps: &[(&str, Value)]) -> Result<(), String> {
        self.runtime.check(&self.conflist(template), id, &container.path(), "eth0", caps)
    }

    pub fn del(&self, template: &Value, id: &str, container: &Netns, caps: &[(&str, Value)]) -> Result<(), String> {
        self.runtime.del(&self.conflist(template), id, &container.path(), "eth0", caps)
    }

    /// Runs a program inside the host namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        self.host.exec(program, args)
    }

    pub fn store_dir(&self) -> &Path {
        &self.store.path
    }
}

/// podman's default network as a conflist: bridge + host-local, then the
/// given chained plugins (portmap, firewall, tuning, ...).
pub fn podman(version: &str, chained: &[Value]) -> Value {
    let mut plugins = vec![json!({
        "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true, "hairpinMode": true,
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]]}
    })];
    plugins.extend(chained.iter().cloned());
    json!({"cniVersion": version, "name": NETWORK, "plugins": plugins})
}

/// The whole podman chain: bridge + host-local, portmap, firewall, then
/// `tuning` (a tuning plugin config). `backend` selects the netfilter
/// backend of bridge's ipMasq, portmap and firewall; None is the default
/// (iptables), the only one the Debian reference has.
pub fn podman_chain(backend: Option<&str>, tuning: Value) -> Value {
    let mut portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    let mut firewall = json!({"type": "firewall"});
    let mut conflist = podman("1.0.0", &[]);
    if let Some(backend) = backend {
        portmap["backend"] = json!(backend);
        firewall["backend"] = json!(backend);
        conflist["plugins"][0]["ipMasqBackend"] = json!(backend);
    }
    conflist["plugins"].as_array_mut().expect("a plugin list").extend([portmap, firewall, tuning]);
    conflist
}

/// Mappings for the `portMappings` capability.
pub fn port_mappings(mappings: &[(u16, u16, &str, Option<&str>)]) -> Value {
    Value::Array(
        mappings
            .iter()
            .map(|(host, container, protocol, host_ip)| {
                let mut m = json!({"hostPort": host, "containerPort": container, "protocol": protocol});
                if let Some(ip) = host_ip {
                    m["hostIP"] = json!(ip);
                }
                m
            })
            .collect(),
    )
}

/// The test-traffic tool (tests/src/bin/nettest.rs).
pub fn nettest() -> std::path::PathBuf {
    crate::target_dir().join("release").join("nettest")
}

/// A nettest server in a namespace, killed when dropped.
pub struct Server {
    child: std::process::Child,
}

impl Server {
    pub fn start(ns: &Netns, protocol: &str, address: &str, name: &str) -> Server {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(nettest())
            .args(["serve", protocol, address, name])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting nettest");
        // Wait for "listening", so a connect right after finds the socket.
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut line).expect("reading nettest");
        assert_eq!(line.trim(), "listening", "nettest serve {protocol} {address} did not start");
        Server { child }
    }

    /// The child's stdout, for servers whose output the test reads.
    pub fn stdout(&mut self) -> &mut std::process::ChildStdout {
        self.child.stdout.as_mut().expect("piped")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nettest connect`: the server's answer ("NAME PEER"), or None.
pub fn connect(ns: &Netns, protocol: &str, address: &str) -> Option<String> {
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(nettest())
        .args(["connect", protocol, address, "1500"])
        .output()
        .expect("running nettest");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether `ping -c1` from `ns` reaches `address`.
pub fn ping(ns: &Netns, address: &str) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-c1", "-W2", address])
        .output()
        .expect("running ping")
        .status
        .success()
}

/// A client namespace wired to a host namespace by a veth, as a machine on
/// the host's LAN: the host side gets `host_ip`, the client `client_ip`
/// (both /24) and a default route through the host.
pub fn lan_client(host: &Netns, tag: &str, host_ip: &str, client_ip: &str) -> Netns {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let client = Netns::new(tag);
    let peer = format!("lan{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    crate::netns::run(
        "ip",
        &["-n", &host.name, "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", &client.name],
    );
    crate::netns::run("ip", &["-n", &host.name, "addr", "add", &format!("{host_ip}/24"), "dev", &peer]);
    crate::netns::run("ip", &["-n", &host.name, "link", "set", &peer, "up"]);
    crate::netns::run("ip", &["-n", &client.name, "addr", "add", &format!("{client_ip}/24"), "dev", "eth0"]);
    crate::netns::run("ip", &["-n", &client.name, "link", "set", "eth0", "up"]);
    crate::netns::run("ip", &["-n", &client.name, "link", "set", "lo", "up"]);
    crate::netns::run("ip", &["-n", &client.name, "route", "add", "default", "via", host_ip]);
    client
}

/// How the reference's CHECK is treated in a [`SideBySide`] case.
#[derive(Clone, Copy)]
pub enum ReferenceCheck {
    /// Not run: only cni-wasm's CHECK is asserted.
    NotRun,
    /// Run, and must pass as ours does.
    Passes,
    /// Run; when it fails, its error must satisfy the predicate (a known
    /// reference bug that ours fixes, e.g. ptp's #886).
    MayFail(fn(&str) -> bool),
}

type Snapshot = Box<dyn Fn(&Netns) -> Value>;
type Prepare = Box<dyn Fn(&Netns)>;

/// One side-by-side case, the reference's `testCase`/tester pattern: the
/// same conflist through libcni with cni-wasm's plugins and the reference's,
/// each in its own scratch host namespace. Every container is added on both
/// sides, with the results, both host namespaces and both container
/// namespaces compared after each ADD (and CHECK run when the version has
/// it); then every container is deleted, comparing again after each DEL.
///
/// ```ignore
/// SideBySide::new("br-gw", conflist).cni_args("IgnoreUnknown=1;MAC=...").run();
/// ```
pub struct SideBySide {
    tag: String,
    conflist: Value,
    containers: usize,
    /// Extra libcni driver arguments of every attachment (CNI_ARGS, capabilities).
    attachment_args: Vec<String>,
    prepare: Option<Prepare>,
    host_state: Snapshot,
    container_state: Snapshot,
    reference_check: ReferenceCheck,
}

impl SideBySide {
    pub fn new(tag: &str, conflist: Value) -> SideBySide {
        SideBySide {
            tag: tag.to_string(),
            conflist,
            containers: 2,
            attachment_args: Vec::new(),
            prepare: None,
            host_state: Box::new(crate::kernel::host_state),
            container_state: Box::new(crate::kernel::container_state),
            reference_check: ReferenceCheck::NotRun,
        }
    }

    /// How many containers to attach (default 2).
    pub fn containers(mut self, count: usize) -> SideBySide {
        self.containers = count;
        self
    }

    /// CNI_ARGS for every attachment.
    pub fn cni_args(mut self, args: &str) -> SideBySide {
        if !args.is_empty() {
            self.attachment_args.extend(["--args".to_string(), args.to_string()]);
        }
        self
    }

    /// A capability argument (`runtimeConfig`) for every attachment.
    pub fn capability(mut self, name: &str, value: Value) -> SideBySide {
        self.attachment_args.extend(["--cap".to_string(), format!("{name}={value}")]);
        self
    }

    /// Prepares each side's host namespace before the first ADD (a master
    /// link, an existing chain, ...).
    pub fn prepare(mut self, prepare: impl Fn(&Netns) + 'static) -> SideBySide {
        self.prepare = Some(Box::new(prepare));
        self
    }

    /// What to compare in the host namespaces (default [`kernel::host_state`](crate::kernel::host_state)).
    pub fn host_state(mut self, snapshot: impl Fn(&Netns) -> Value + 'static) -> SideBySide {
        self.host_state = Box::new(snapshot);
        self
    }

    /// What to compare in the container namespaces (default
    /// [`kernel::container_state`](crate::kernel::container_state)).
    pub fn container_state(mut self, snapshot: impl Fn(&Netns) -> Value + 'static) -> SideBySide {
        self.container_state = Box::new(snapshot);
        self
    }

    pub fn reference_check(mut self, check: ReferenceCheck) -> SideBySide {
        self.reference_check = check;
        self
    }

    /// ADD and DEL of every container, compared at each step.
    pub fn run(self) -> Detached {
        self.add().del()
    }

    /// ADD (and CHECK) of every container, compared at each step.
    pub fn add(self) -> Attached {
        let tag = self.tag.clone();
        let (ours, theirs) = (Side::ours(&format!("{tag}-o")), Side::reference(&format!("{tag}-r")));
        if let Some(prepare) = &self.prepare {
            prepare(&ours.host);
            prepare(&theirs.host);
        }
        let containers: Vec<(Netns, Netns)> = (0..self.containers)
            .map(|i| (Netns::new(&format!("{tag}-o{i}")), Netns::new(&format!("{tag}-r{i}"))))
            .collect();
        let with_check = self.conflist["cniVersion"].as_str().is_some_and(|v| crate::version_at_least(v, "0.4.0"));
        let mut results = Vec::new();
        for (i, (our_ct, their_ct)) in containers.iter().enumerate() {
            let id = format!("c{i}");
            let our_result =
                self.invoke(&ours, "add", &id, our_ct).unwrap_or_else(|e| panic!("{tag}: our ADD {id}: {e}"));
            let their_result =
                self.invoke(&theirs, "add", &id, their_ct).unwrap_or_else(|e| panic!("{tag}: reference ADD {id}: {e}"));
            let (our_result, their_result): (Value, Value) = (parse(&our_result), parse(&their_result));
            crate::kernel::assert_same(
                &crate::result::normalize(&our_result),
                &crate::result::normalize(&their_result),
                &format!("{tag}: result of ADD {id}"),
            );
            self.compare(&ours, &theirs, our_ct, their_ct, &format!("ADD {id}"));
            if with_check {
                self.invoke(&ours, "check", &id, our_ct).unwrap_or_else(|e| panic!("{tag}: our CHECK {id}: {e}"));
                match (self.reference_check, self.invoke(&theirs, "check", &id, their_ct)) {
                    (ReferenceCheck::NotRun, _) | (_, Ok(_)) => {}
                    (ReferenceCheck::Passes, Err(e)) => panic!("{tag}: reference CHECK {id}: {e}"),
                    (ReferenceCheck::MayFail(known), Err(e)) => {
                        assert!(known(&e), "{tag}: the reference's CHECK {id} fails another way: {e}")
                    }
                }
            }
            results.push((our_result, their_result));
        }
        Attached { case: self, ours, theirs, containers, results }
    }

    fn invoke(&self, side: &Side, command: &str, id: &str, container: &Netns) -> Result<String, String> {
        let mut args = vec!["--container-id".to_string(), id.to_string(), "--netns".into(), container.path()];
        args.extend(["--ifname".to_string(), "eth0".to_string()]);
        args.extend(self.attachment_args.iter().cloned());
        side.runtime.invoke(command, &side.conflist(&self.conflist), &args).into_result()
    }

    fn compare(&self, ours: &Side, theirs: &Side, our_ct: &Netns, their_ct: &Netns, after: &str) {
        let tag = &self.tag;
        let (host, container) = (&self.host_state, &self.container_state);
        crate::kernel::assert_converges(
            || host(&ours.host),
            || host(&theirs.host),
            &format!("{tag}: host after {after}"),
        );
        crate::kernel::assert_converges(
            || container(our_ct),
            || container(their_ct),
            &format!("{tag}: container after {after}"),
        );
    }
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("the driver printed no JSON result ({e}): {stdout:?}"))
}

/// A [`SideBySide`] case with every container added on both sides.
pub struct Attached {
    case: SideBySide,
    pub ours: Side,
    pub theirs: Side,
    /// (ours, reference) for each container `c0`, `c1`, ...
    pub containers: Vec<(Netns, Netns)>,
    /// (ours, reference) ADD results, in container order.
    pub results: Vec<(Value, Value)>,
}

impl Attached {
    /// DEL of every container, in ADD order, compared after each.
    pub fn del(self) -> Detached {
        let Attached { case, ours, theirs, containers, results } = self;
        let tag = &case.tag;
        for (i, (our_ct, their_ct)) in containers.iter().enumerate() {
            let id = format!("c{i}");
            case.invoke(&ours, "del", &id, our_ct).unwrap_or_else(|e| panic!("{tag}: our DEL {id}: {e}"));
            case.invoke(&theirs, "del", &id, their_ct).unwrap_or_else(|e| panic!("{tag}: reference DEL {id}: {e}"));
            case.compare(&ours, &theirs, our_ct, their_ct, &format!("DEL {id}"));
        }
        Detached { ours, theirs, results }
    }
}

/// A [`SideBySide`] case after every DEL, for assertions on what is left.
pub struct Detached {
    pub ours: Side,
    pub theirs: Side,
    pub results: Vec<(Value, Value)>,
}
