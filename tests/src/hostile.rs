//! A scratch host for hostile-plugin tests: a namespace that plays the node,
//! with the objects an attacker would go for, and a snapshot of everything
//! in it a plugin could change.
//!
//! The host holds an `eth0` (a veth to an "upstream" namespace, with an
//! address and the default route), a bridge `cni0` with an address, a link
//! `attkvictim0` whose name the attacker's policy patterns admit but no
//! admin config names, someone else's nftables table (`inet other`) and
//! iptables chains (`OTHER-CHAIN`, `CNI-FORWARD`, jumped to from FORWARD;
//! `OTHER-NAT` from POSTROUTING), and two conntrack entries. Beside it, a
//! canary directory the attacker must not reach and the attacker's own state
//! directory.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::kernel;
use crate::netns::Netns;
use crate::plugin::{Env, Installation, Outcome, run};
use crate::{TempDir, test_component};

/// Every family the attacker's manifest declares: its policy grants them all.
pub const FAMILIES: &[&str] =
    &["links", "addresses", "routes", "rules", "sysctl", "netfilter", "conntrack", "state", "files", "delegation"];

pub struct ScratchHost {
    pub host: Netns,
    _upstream: Netns,
    pub container: Netns,
    pub install: Installation,
    pub attacker: PathBuf,
    /// Must stay byte for byte as the test made it.
    pub canary: TempDir,
    /// The attacker's state directory (its policy's stateDir).
    pub state: TempDir,
    /// The admin's host-local store for the attacker's network.
    pub store: TempDir,
    policy: TempDir,
    cache: TempDir,
}

impl ScratchHost {
    pub fn new(tag: &str) -> ScratchHost {
        crate::require_root();
        let host = Netns::new(&format!("{tag}-host"));
        let upstream = Netns::new(&format!("{tag}-up"));
        let container = Netns::new(&format!("{tag}-ctr"));
        // No duplicate address detection: addresses are final at once, so
        // the snapshot taken before the attack is the settled state.
        for ns in [&host, &container] {
            ns.exec("sysctl", &["-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
        }
        let ip = |args: &str| host.exec("ip", &args.split(' ').collect::<Vec<_>>());
        ip("link set lo up");
        ip(&format!("link add eth0 type veth peer name up0 netns {}", upstream.name));
        upstream.exec("ip", &["link", "set", "up0", "up"]);
        ip("link set eth0 up");
        ip("address add 192.168.50.2/24 dev eth0");
        ip("route add default via 192.168.50.1 dev eth0");
        ip("link add cni0 type bridge");
        ip("address add 10.88.0.1/16 dev cni0");
        ip("link set cni0 up");
        ip("link add attkvictim0 type veth peer name victimpeer0");
        host.exec(
            "nft",
            &["add table inet other; add chain inet other input { type filter hook input priority 0; policy accept; }; \
               add rule inet other input tcp dport 22 accept"],
        );
        let restore = |program: &str, input: &str| {
            let script = format!("printf '%s\\n' \"$1\" | {program} --noflush");
            host.exec("sh", &["-c", &script, "sh", input]);
        };
        restore(
            "iptables-restore",
            "*filter\n:OTHER-CHAIN - [0:0]\n:CNI-FORWARD - [0:0]\n-A OTHER-CHAIN -j RETURN\n-A CNI-FORWARD -j ACCEPT\n\
             -A FORWARD -j CNI-FORWARD\n-A FORWARD -j OTHER-CHAIN\nCOMMIT\n*nat\n:OTHER-NAT - [0:0]\n\
             -A OTHER-NAT -s 10.88.0.0/16 -j MASQUERADE\n-A POSTROUTING -j OTHER-NAT\nCOMMIT",
        );
        for dport in ["80", "8080"] {
            host.exec(
                "conntrack",
                &[
                    "-I",
                    "-p",
                    "tcp",
                    "-s",
                    "192.168.50.9",
                    "-d",
                    "192.168.50.2",
                    "--sport",
                    "40000",
                    "--dport",
                    dport,
                    "--state",
                    "ESTABLISHED",
                    "-t",
                    "600",
                    "-u",
                    "SEEN_REPLY",
                ],
            );
        }
        let canary = TempDir::new(&format!("{tag}-canary"));
        std::fs::write(canary.join("keep"), "the canary\n").unwrap();
        std::fs::write(canary.join("readable"), "a file the policy lets the attacker read\n").unwrap();
        let install = Installation::new(tag);
        let attacker = install.add_component("attacker", &test_component("attacker"));
        let state = TempDir::new(&format!("{tag}-state"));
        let policy = TempDir::new(&format!("{tag}-policy"));
        let scratch = ScratchHost {
            host,
            _upstream: upstream,
            container,
            install,
            attacker,
            canary,
            state,
            store: TempDir::new(&format!("{tag}-store")),
            policy,
            cache: TempDir::new(&format!("{tag}-cache")),
        };
        scratch.set_policy(json!({}));
        scratch
    }

    /// The attacker's policy entry: every family, generous patterns for
    /// what is its own (links `attk*`, chains `ATTK-*`, table `inet attk`,
    /// the canary's `readable` file), a 3 s deadline; `extra` overrides.
    pub fn set_policy(&self, extra: Value) {
        let mut entry = json!({
            "capabilities": FAMILIES,
            "hostLinks": ["attk*"],
            "iptablesChains": ["ATTK-*"],
            "nftTables": ["inet attk"],
            "readableFiles": [self.canary.join("readable").display().to_string()],
            "stateDir": self.state.display(),
            "timeoutMs": 3000,
        });
        for (key, value) in extra.as_object().expect("an object") {
            entry[key] = value.clone();
        }
        let policy = json!({"plugins": {"attacker": entry}});
        std::fs::write(self.policy.join("policy.json"), policy.to_string()).unwrap();
    }

    /// An environment that runs a plugin with this host as its host
    /// namespace, for the scratch container.
    pub fn env(&self, command: &str) -> Env {
        Env {
            host_netns: Some(self.host.name.clone()),
            ..Env::new(command, "c1", &self.container.path(), "eth0", &self.install.dir)
        }
        .var("CNI_WASM_POLICY", self.policy.join("policy.json").display().to_string())
        .var("CNI_WASM_CACHE_DIR", self.cache.display())
    }

    /// The admin's config for the attacker: `attack`, plus `extra` keys.
    pub fn config(&self, attack: &str, extra: &Value) -> Value {
        let mut config = json!({
            "cniVersion": "1.0.0", "name": "attk-net", "type": "attacker", "attack": attack,
            "ipam": {"type": "host-local", "subnet": "10.89.0.0/24", "dataDir": self.store.display()},
        });
        for (key, value) in extra.as_object().expect("an object") {
            config[key] = value.clone();
        }
        config
    }

    pub fn run_attack(&self, attack: &str, extra: &Value) -> Outcome {
        run(&self.attacker, &self.env("ADD"), &self.config(attack, extra).to_string())
    }

    /// Everything in the host a plugin could change, and the canary.
    pub fn snapshot(&self) -> Value {
        let ns = &self.host;
        let ip = |args: &[&str]| ns.ip_json(args);
        let mut tables = serde_json::Map::new();
        for v6 in [false, true] {
            for table in ["filter", "nat", "mangle", "raw"] {
                tables
                    .insert(format!("{table}{}", if v6 { 6 } else { 4 }), json!(kernel::iptables_save(ns, v6, table)));
            }
        }
        json!({
            "links": without_timers(ip(&["-d", "link", "show"])),
            "addresses": ip(&["address", "show"]),
            "routes4": ip(&["route", "show", "table", "all"]),
            "routes6": ip(&["-6", "route", "show", "table", "all"]),
            "rules4": ip(&["rule", "show"]),
            "rules6": ip(&["-6", "rule", "show"]),
            "qdiscs": serde_json::from_str::<Value>(&ns.exec("tc", &["-j", "qdisc", "show"])).unwrap_or(Value::Null),
            "nft": kernel::nft_ruleset(ns),
            "iptables": tables,
            "sysctls": net_sysctls(ns),
            "conntrack": flows(ns),
            "canary": tree(&self.canary.path),
        })
    }

    /// Asserts that the host and the canary are as `before`, waiting for
    /// what the kernel settles asynchronously (carrier, RCU-deferred
    /// netfilter objects); returns the differing lines on failure.
    pub fn unchanged_since(&self, before: &Value) -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let now = self.snapshot();
            if now == *before {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(differing_lines(before, &now));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A bridge's timers (`gc_timer`, `hello_timer`, ...) count down on
/// their own.
fn without_timers(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.retain(|key, _| !key.ends_with("_timer"));
            for v in map.values_mut() {
                *v = without_timers(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_timers(v.take());
            }
        }
        _ => {}
    }
    value
}

/// The network sysctls of a namespace, but the counters the kernel keeps
/// (`nf_conntrack_count`) and settings no plugin can reach.
fn net_sysctls(ns: &Netns) -> Value {
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-a", "-r", "^net\\."])
        .output()
        .expect("running sysctl");
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("net.netfilter.nf_conntrack_count")).collect();
    json!(lines)
}

/// TCP and UDP conntrack entries as their tuples (the timeout counts down;
/// the kernel's own IGMP and ICMPv6 flows come and go).
fn flows(ns: &Netns) -> Value {
    let mut flows: Vec<String> = [false, true]
        .iter()
        .flat_map(|v6| kernel::conntrack(ns, *v6))
        .filter(|l| l.starts_with("tcp") || l.starts_with("udp"))
        .map(|l| {
            l.split_whitespace().filter(|t| t.contains('=') && !t.starts_with("use=")).collect::<Vec<_>>().join(" ")
        })
        .collect();
    flows.sort();
    json!(flows)
}

/// A directory's files and their contents, recursively; symlinks as their
/// targets.
fn tree(dir: &Path) -> Value {
    let mut entries = serde_json::Map::new();
    let mut names: Vec<_> = std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).collect()).unwrap_or_default();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let value = if meta.file_type().is_symlink() {
            json!({"symlink": std::fs::read_link(&path).unwrap().display().to_string()})
        } else if meta.is_dir() {
            tree(&path)
        } else {
            json!(std::fs::read_to_string(&path).unwrap_or_default())
        };
        entries.insert(name, value);
    }
    Value::Object(entries)
}

fn differing_lines(before: &Value, after: &Value) -> String {
    let (a, b) = (serde_json::to_string_pretty(before).unwrap(), serde_json::to_string_pretty(after).unwrap());
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let gone: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    let new: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    format!("only before: {gone:#?}\nonly after: {new:#?}")
}
