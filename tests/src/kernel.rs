//! Reading a namespace's kernel state in a form two runs can be compared
//! in: random veth names, MACs, interface indexes and counters normalized
//! away, everything else kept.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::netns::Netns;

/// A veth name the plugins make up (`veth` + 8 hex digits).
pub fn is_random_veth(name: &str) -> bool {
    name.len() == 12 && name.starts_with("veth") && name[4..].chars().all(|c| c.is_ascii_hexdigit())
}

/// A random veth name replaced by `veth*`, any other name kept.
pub fn normalize_name(name: &str) -> String {
    if is_random_veth(name) { "veth*".into() } else { name.into() }
}

/// Links with the attributes a plugin sets: kind, mtu, txqlen, flags,
/// master, bridge-port settings.
pub fn links(ns: &Netns) -> Value {
    let mut links: Vec<Value> = ns
        .ip_json(&["-d", "link", "show"])
        .as_array()
        .expect("ip -j link prints a list")
        .iter()
        .map(|l| {
            let info = &l["linkinfo"];
            let slave = &info["info_slave_data"];
            json!({
                "name": normalize_name(l["ifname"].as_str().unwrap_or_default()),
                "kind": info["info_kind"],
                "mtu": l["mtu"],
                "txqlen": l["txqlen"],
                "flags": l["flags"],
                "promiscuity": l["promiscuity"],
                "master": l["master"].as_str().map(normalize_name),
                "hairpin": slave["hairpin"],
                "isolated": slave["isolated"],
                "link_type": l["link_type"],
            })
        })
        .collect();
    links.sort_by_key(|l| l.to_string());
    Value::Array(links)
}

/// Addresses other than IPv6 link-local (derived from the random MACs).
pub fn addresses(ns: &Netns) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for link in ns.ip_json(&["addr", "show"]).as_array().expect("a list") {
        let name = normalize_name(link["ifname"].as_str().unwrap_or_default());
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let local = a["local"].as_str().unwrap_or_default();
            if local.starts_with("fe80:") {
                continue;
            }
            out.push(json!({"dev": name, "family": a["family"], "local": local, "prefixlen": a["prefixlen"], "scope": a["scope"]}));
        }
    }
    out.sort_by_key(|a| a.to_string());
    Value::Array(out)
}

/// Routes of both families in every table, link-local IPv6 ones aside.
pub fn routes(ns: &Netns) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for family in ["-4", "-6"] {
        for r in ns.ip_json(&[family, "route", "show", "table", "all"]).as_array().expect("a list") {
            let dst = r["dst"].as_str().unwrap_or_default();
            if dst.starts_with("fe80:") || dst.starts_with("ff00:") || dst.starts_with("multicast") {
                continue;
            }
            out.push(json!({
                "dst": dst, "gateway": r["gateway"], "dev": r["dev"].as_str().map(normalize_name),
                "table": r["table"], "scope": r["scope"], "protocol": r["protocol"], "type": r["type"],
                "prefsrc": r["prefsrc"], "metric": r["metric"], "flags": r["flags"],
            }));
        }
    }
    out.sort_by_key(|r| r.to_string());
    Value::Array(out)
}

/// lo's state in a namespace: up, and its addresses.
pub fn lo_state(ns: &Netns) -> (bool, Vec<String>) {
    let link = ns.ip_json(&["link", "show", "lo"]);
    let up = link[0]["flags"].as_array().is_some_and(|flags| flags.iter().any(|f| f == "UP"));
    let addresses = ns.ip_json(&["addr", "show", "lo"])[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or_default(), a["prefixlen"]))
        .collect();
    (up, addresses)
}

/// Everything above, for one namespace.
pub fn state(ns: &Netns) -> Value {
    json!({"links": links(ns), "addresses": addresses(ns), "routes": routes(ns)})
}

/// `iptables-save` (or `ip6tables-save`) of one table, without the
/// timestamps and packet counters.
pub fn iptables_save(ns: &Netns, v6: bool, table: &str) -> String {
    let program = if v6 { "ip6tables-save" } else { "iptables-save" };
    let text = ns.exec(program, &["-t", table]);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.rfind(" [") {
            Some(i) if l.starts_with(':') => format!("{} [*]", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The nftables ruleset, as text, without handles and counter values
/// (`-s`: traffic of the moment is not state a plugin set).
pub fn nft_ruleset(ns: &Netns) -> String {
    ns.exec("nft", &["-s", "list", "ruleset"])
}

/// The comments of the rules in `chains` of one nftables table, from
/// `nft -j list table` (none when the table does not exist).
pub fn nft_rule_comments(ns: &Netns, family: &str, table: &str, chains: &[&str]) -> Vec<String> {
    let listing = ns.exec("nft", &["-j", "list", "table", family, table]);
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap_or(serde_json::Value::Null);
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| chains.contains(&o["rule"]["chain"].as_str().unwrap_or_default()))
        .map(|o| o["rule"]["comment"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `conntrack -L` of one family in the namespace (one entry per line).
pub fn conntrack(ns: &Netns, v6: bool) -> Vec<String> {
    let family = if v6 { "ipv6" } else { "ipv4" };
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name, "conntrack", "-L", "-f", family])
        .output()
        .expect("running conntrack (apt-get install conntrack)");
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

/// A sysctl value in the namespace ("net/ipv4/ip_forward").
pub fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec("cat", &[&format!("/proc/sys/{key}")]).trim().to_string()
}

/// Sysctl values by key, read by one process; a key that does not exist
/// (its link is gone) is null.
pub fn sysctls(ns: &Netns, keys: &[&str]) -> Value {
    let script = "for key; do cat /proc/sys/$key 2>/dev/null || echo '<absent>'; done";
    let mut args = vec!["-c", script, "sh"];
    args.extend_from_slice(keys);
    let output = ns.exec("sh", &args);
    let values = output.lines().map(|v| if v == "<absent>" { Value::Null } else { json!(v) });
    Value::Object(keys.iter().map(|k| k.to_string()).zip(values).collect())
}

/// The host sysctls the plugins change: forwarding, per family.
pub const HOST_SYSCTLS: &[&str] = &["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

/// The sysctls of a container's `eth0` the plugins set: ARP/NDP
/// announcements, duplicate address detection, IPv6. Not
/// `keep_addr_on_down`, which ours sets and the Debian reference does not
/// (tests/plugins/chain.rs shows why).
pub const CONTAINER_SYSCTLS: &[&str] = &[
    "net/ipv4/conf/eth0/arp_notify",
    "net/ipv6/conf/eth0/ndisc_notify",
    "net/ipv6/conf/eth0/accept_dad",
    "net/ipv6/conf/eth0/enhanced_dad",
    "net/ipv6/conf/eth0/disable_ipv6",
];

/// Everything a plugin may change in a host namespace: links, addresses,
/// routes, both families' nat and filter tables, the nftables ruleset and
/// the forwarding sysctls.
pub fn host_state(ns: &Netns) -> Value {
    json!({
        "kernel": state(ns),
        "nat4": iptables_save(ns, false, "nat"),
        "nat6": iptables_save(ns, true, "nat"),
        "filter4": iptables_save(ns, false, "filter"),
        "filter6": iptables_save(ns, true, "filter"),
        "nft": normalize_tables(&normalize_veth_names(&nft_ruleset(ns))),
        "sysctls": sysctls(ns, HOST_SYSCTLS),
    })
}

/// Everything a plugin may change in a container namespace: links,
/// addresses, routes and `eth0`'s sysctls.
pub fn container_state(ns: &Netns) -> Value {
    let mut state = state(ns);
    state["sysctls"] = sysctls(ns, CONTAINER_SYSCTLS);
    state
}

/// How long a test waits for state the kernel settles asynchronously (the
/// links of a deleted namespace, DAD, carrier, neighbour entries,
/// RCU-deferred netfilter objects). Generous, because a loaded 2-core
/// machine can take seconds; a passing test waits only as long as the
/// kernel needs, so only a failure ever waits this long.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Polls `probe` until it returns `Ok`, and returns that. Once `within` has
/// passed, panics with `what` and the last `Err` it returned: the last
/// state seen, so a failure says what the kernel still showed.
#[track_caller]
pub fn eventually<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: still not so after {within:?}; last seen: {last}")
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// The lines of two JSON values that differ, or None when they are equal.
fn difference(ours: &Value, theirs: &Value) -> Option<String> {
    if ours == theirs {
        return None;
    }
    let (a, b) = (serde_json::to_string_pretty(ours).unwrap(), serde_json::to_string_pretty(theirs).unwrap());
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let only_ours: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    let only_theirs: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    Some(format!(
        "cni-wasm and the reference differ\n only cni-wasm: {only_ours:#?}\n only reference: {only_theirs:#?}"
    ))
}

/// Asserts two JSON values are equal, showing only the lines that differ.
#[track_caller]
pub fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    if let Some(difference) = difference(ours, theirs) {
        panic!("{what}: {difference}");
    }
}

/// Like [`assert_same`], for kernel state that settles asynchronously
/// (DAD, carrier changes through linkwatch): both sides must reach the
/// same state within [`SETTLE`].
#[track_caller]
pub fn assert_converges(ours: impl Fn() -> Value, theirs: impl Fn() -> Value, what: &str) {
    eventually(SETTLE, what, || match difference(&ours(), &theirs()) {
        None => Ok(()),
        Some(difference) => Err(difference),
    })
}

/// A ruleset's tables in a fixed order, without the empty ones: the order
/// tables were created in (which of two families a plugin got to first) is
/// not state, and the Debian reference's ip6tables calls leave an empty
/// `table ip6 nat` behind where it had nothing to do; a table with no
/// chains does nothing.
pub fn normalize_tables(ruleset: &str) -> String {
    let mut tables: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in ruleset.lines() {
        current.push_str(line);
        current.push('\n');
        // Tables open at column 0 and close with a "}" there.
        if line == "}" {
            tables.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        tables.push(current);
    }
    tables.retain(|table| table.lines().count() > 2);
    tables.sort();
    tables.concat()
}

/// Random veth names in free text (nft rulesets) replaced by `veth*`.
pub fn normalize_veth_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("veth") {
        out.push_str(&rest[..i]);
        let candidate = rest.get(i..i + 12).unwrap_or("");
        if is_random_veth(candidate) {
            out.push_str("veth*");
            rest = &rest[i + 12..];
        } else {
            out.push_str("veth");
            rest = &rest[i + 4..];
        }
    }
    out.push_str(rest);
    out
}
