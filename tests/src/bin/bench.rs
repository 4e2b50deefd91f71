//! `cni-bench`: cni-wasm against the Go reference plugins, in one run.
//!
//! Every scenario runs each implementation as a runtime would (a fresh
//! process per call, env + stdin), alternating between the two so that
//! machine noise hits both alike, and reports medians and the ratio
//! cni-wasm / reference. Needs root (it creates a network namespace).
//!
//! The chain scenarios run podman's conflist (bridge + host-local, portmap,
//! firewall, tuning) through the real libcni, each implementation in its
//! own scratch host namespace, like `tests/plugins/chain.rs`.
//!
//! The scale scenario adds N attachments of bridge + host-local + ipMasq
//! to one bridge, one plugin process per call, then deletes them, both
//! implementations interleaved call by call: how the cost of a call grows
//! with the number of attachments already there.
//!
//!     cargo build --release && target/release/cni-bench [--runs N] [--chain-runs N] [--scale N] [--markdown] [--only NAME]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::side::{Side, podman_chain, port_mappings};
use cni_wasm_tests::{REFERENCE_DIR, reference_available};
use serde_json::{Value, json};

/// Runs one iteration against the plugins in a directory.
type Iteration = Box<dyn Fn(&Path, usize) -> Vec<Duration>>;

struct Scenario {
    name: &'static str,
    /// Runs one iteration against the plugins in `dir`: returns the timed
    /// calls' durations, in the scenario's column order.
    run: Iteration,
    columns: &'static [&'static str],
}

fn timed(program: &Path, env: &Env, stdin: &str) -> Duration {
    let start = Instant::now();
    let outcome = run(program, env, stdin);
    let elapsed = start.elapsed();
    assert!(outcome.success, "{} {} failed: {}{}", program.display(), env.command, outcome.stdout, outcome.stderr);
    elapsed
}

fn main() {
    let mut runs = 200;
    let mut chain_runs = 30;
    let mut only: Option<String> = None;
    let mut markdown = false;
    let mut scale_n = 250;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--chain-runs" => chain_runs = args.next().and_then(|n| n.parse().ok()).expect("--chain-runs N"),
            "--only" => only = args.next(),
            "--scale" => scale_n = args.next().and_then(|n| n.parse().ok()).expect("--scale N"),
            "--markdown" => markdown = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(reference_available(), "the reference plugins are missing: apt-get install containernetworking-plugins");
    let ours = Installation::new("bench");
    let reference = PathBuf::from(REFERENCE_DIR);
    let netns = Netns::new("bench");
    let netns_path = netns.path();
    let data_dir = std::env::temp_dir().join(format!("cni-bench-store-{}", std::process::id()));

    let loopback_conf = r#"{"cniVersion":"1.0.0","name":"bench-lo","type":"loopback"}"#.to_string();
    let host_local_conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"bench-hl","type":"host-local","ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"10.77.0.0/16"}}]]}}}}"#,
        data_dir.display()
    );

    let scenarios = [
        Scenario {
            name: "loopback",
            columns: &["ADD", "DEL"],
            run: Box::new({
                let netns_path = netns_path.clone();
                move |dir, _| {
                    let plugin = dir.join("loopback");
                    let env = Env::new("ADD", "bench", &netns_path, "lo", dir);
                    vec![timed(&plugin, &env, &loopback_conf), timed(&plugin, &env.with_command("DEL"), &loopback_conf)]
                }
            }),
        },
        Scenario {
            name: "host-local",
            columns: &["ADD", "DEL"],
            run: Box::new({
                let netns_path = netns_path.clone();
                move |dir, i| {
                    let plugin = dir.join("host-local");
                    let env = Env::new("ADD", &format!("bench-{i}"), &netns_path, "eth0", dir);
                    vec![
                        timed(&plugin, &env, &host_local_conf),
                        timed(&plugin, &env.with_command("DEL"), &host_local_conf),
                    ]
                }
            }),
        },
    ];

    let warmup = 10.min(runs);
    let mut rows = Vec::new();
    let selected = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    for scenario in scenarios.iter().filter(|s| selected(s.name)) {
        let mut samples: Vec<[Vec<Duration>; 2]> = scenario.columns.iter().map(|_| [Vec::new(), Vec::new()]).collect();
        for i in 0..warmup + runs {
            for (which, dir) in [ours.dir.as_path(), reference.as_path()].into_iter().enumerate() {
                let durations = (scenario.run)(dir, i);
                if i >= warmup {
                    for (column, d) in durations.into_iter().enumerate() {
                        samples[column][which].push(d);
                    }
                }
            }
        }
        for (column, [ours, theirs]) in scenario.columns.iter().zip(samples) {
            let (a, b) = (median(ours), median(theirs));
            rows.push((format!("{} {column}", scenario.name), a, b));
        }
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut floors = Vec::new();
    if selected("chain") {
        rows.extend(chain(chain_runs, None, "chain iptables"));
        floors.push(("chain iptables DEL", del_floor(chain_runs, false)));
        rows.extend(chain(chain_runs, Some("nftables"), "chain nftables"));
        floors.push(("chain nftables DEL", del_floor(chain_runs, true)));
    }
    if selected("20 concurrent") {
        rows.extend(concurrent(chain_runs.div_ceil(6), None, "20 concurrent iptables"));
        rows.extend(concurrent(chain_runs.div_ceil(6), Some("nftables"), "20 concurrent nftables"));
    }

    let mut scale_rows = Vec::new();
    // `--only scale` runs both backends, `--only "scale nftables"` one.
    if selected("scale iptables") {
        scale_rows.extend(scale(scale_n, None, &format!("scale {scale_n} iptables")));
    }
    if selected("scale nftables") {
        scale_rows.extend(scale(scale_n, Some("nftables"), &format!("scale {scale_n} nftables")));
    }

    let footprint = selected("footprint").then(|| footprint(&ours.dir, &reference, &netns_path));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if !scale_rows.is_empty() {
        println!("scale: bridge+host-local+ipMasq, one bridge, one process per call (reference: iptables)");
        println!("{:<28} {:>10} {:>10} {:>10} {:>10}", "", "first 20", "last 20", "growth", "total");
        for row in &scale_rows {
            println!(
                "{:<28} {:>7.2} ms {:>7.2} ms {:>9.2}x {:>8.1} s",
                row.name,
                ms(row.first),
                ms(row.last),
                row.last.as_secs_f64() / row.first.as_secs_f64(),
                row.total.as_secs_f64()
            );
        }
        for pair in scale_rows.chunks(2) {
            if let [ours, theirs] = pair {
                println!(
                    "{:<28} total ratio {:.2}x",
                    ours.name.replace(" cni-wasm", ""),
                    ours.total.as_secs_f64() / theirs.total.as_secs_f64()
                );
            }
        }
    }
    if markdown {
        println!("| scenario | cni-wasm median | reference median | ratio |");
        println!("|---|---|---|---|");
        for (name, a, b) in &rows {
            println!("| {name} | {:.2} ms | {:.2} ms | {:.2}x |", ms(*a), ms(*b), ms(*a) / ms(*b));
        }
    } else {
        println!(
            "medians: {runs} runs per plugin scenario, {chain_runs} per chain scenario (wall time of whole processes)"
        );
        println!("{:<30} {:>12} {:>12} {:>8}", "scenario", "cni-wasm", "reference", "ratio");
        for (name, a, b) in &rows {
            println!("{name:<30} {:>9.2} ms {:>9.2} ms {:>7.2}x", ms(*a), ms(*b), ms(*a) / ms(*b));
        }
        println!("chain: bridge+host-local, portmap (one TCP mapping), firewall, tuning, through libcni 1.1 (Go);");
        println!("the reference (Debian 1.1.1) always uses iptables: it has no nftables backend.");
    }
    if let Some(lines) = footprint {
        for line in lines {
            println!("{line}");
        }
    }
    for (name, floor) in &floors {
        if let Some((_, ours, _)) = rows.iter().find(|(row, _, _)| row == name) {
            println!(
                "{name} floor (ip link del, then one netfilter transaction per plugin with rules): {:.2} ms; \
                 cni-wasm {:.2} ms = {:.2}x the floor",
                ms(*floor),
                ms(*ours),
                ms(*ours) / ms(*floor)
            );
        }
    }
}

/// Peak RSS of one plugin process (the largest of a few runs) and the size
/// on disk: cni-wasm is one binary for every plugin, the reference one per
/// plugin.
fn footprint(ours: &Path, reference: &Path, netns_path: &str) -> Vec<String> {
    let bridge = json!({"cniVersion": "1.0.0", "name": "bench-fp", "type": "bridge", "bridge": "cni-fp0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.61.0.0/24"}]]}});
    let mut lines = Vec::new();
    for (label, plugin, config, bridged) in [
        (
            "loopback ADD",
            "loopback",
            r#"{"cniVersion":"1.0.0","name":"bench-lo","type":"loopback"}"#.to_string(),
            false,
        ),
        ("bridge+host-local+ipMasq ADD", "bridge", bridge.to_string(), true),
    ] {
        let mut peaks = [0u64; 2];
        for (which, dir) in [ours, reference].into_iter().enumerate() {
            for i in 0..5 {
                // A fresh host namespace and store each time: every ADD
                // creates the bridge and its masquerading.
                let (host, container) = (Netns::new("bench-fp-h"), Netns::new("bench-fp-c"));
                let store = cni_wasm_tests::TempDir::new("bench-fp");
                let mut config: Value = serde_json::from_str(&config).unwrap();
                if bridged {
                    config["ipam"]["dataDir"] = json!(store.display());
                }
                let container_path = if bridged { container.path() } else { netns_path.to_string() };
                let env = Env {
                    host_netns: bridged.then(|| host.name.clone()),
                    ..Env::new("ADD", &format!("fp-{i}"), &container_path, "eth0", dir)
                };
                let (outcome, peak) =
                    cni_wasm_tests::plugin::run_measured(&dir.join(plugin), &env, &config.to_string());
                assert!(outcome.success, "{label}: {}", outcome.stdout);
                peaks[which] = peaks[which].max(peak);
            }
        }
        lines.push(format!(
            "peak RSS {label:<29} cni-wasm {:>6} KiB  reference {:>6} KiB  {:.2}x",
            peaks[0],
            peaks[1],
            peaks[0] as f64 / peaks[1] as f64
        ));
    }
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
    let binary = std::fs::canonicalize(ours.join("loopback")).unwrap_or_else(|_| ours.join("loopback"));
    let reference_total: u64 =
        std::fs::read_dir(reference).map(|dir| dir.flatten().map(|e| size(&e.path())).sum()).unwrap_or_default();
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    lines.push(format!(
        "size on disk: cni-wasm {:.1} MiB (one binary, every plugin); reference {:.1} MiB in all, bridge alone {:.1} MiB",
        mib(size(&binary)),
        mib(reference_total),
        mib(size(&reference.join("bridge")))
    ));
    lines
}

/// The least a chain DEL must do in the kernel, done with the bare tools
/// on objects set up like the chain's: delete the container's veth, then
/// one netfilter transaction for each plugin that has rules to remove
/// (bridge's ipMasq, portmap, firewall: each is its own process, so none can
/// share a transaction). Each waits for an RCU grace period here, which no
/// plugin can avoid; this is what "near the floor" is measured against.
fn del_floor(runs: usize, nftables: bool) -> Duration {
    let host = Netns::new("bench-floor-h");
    let apply = |program: &str, input: &str| {
        let script = format!("printf '%s\\n' \"$1\" | {program}");
        host.exec("sh", &["-c", &script, "sh", input]);
    };
    let (setup, teardown): (&[&str], &[&str]) = if nftables {
        (
            &[
                "table ip floor_masq { chain post { type nat hook postrouting priority 100; ip saddr 10.1.1.2 masquerade; }\n}",
                "table ip floor_dn { chain pre { type nat hook prerouting priority -100; tcp dport 8080 dnat to 10.1.1.2:80; }\n}",
                "table ip floor_fwd { chain forwarding { type filter hook forward priority 0; ip daddr 10.1.1.2 accept; }\n}",
            ],
            &["delete table ip floor_masq", "delete table ip floor_dn", "delete table ip floor_fwd"],
        )
    } else {
        (
            &[
                "*nat\n:FLOOR-MASQ - [0:0]\n-A FLOOR-MASQ -j MASQUERADE\n-A POSTROUTING -s 10.1.1.2 -j FLOOR-MASQ\nCOMMIT",
                "*nat\n:FLOOR-DN - [0:0]\n-A FLOOR-DN -p tcp --dport 8080 -j DNAT --to-destination 10.1.1.2:80\n\
                 -A PREROUTING -j FLOOR-DN\nCOMMIT",
                "*filter\n-A FORWARD -d 10.1.1.2 -j ACCEPT\nCOMMIT",
            ],
            &[
                "*nat\n-D POSTROUTING -s 10.1.1.2 -j FLOOR-MASQ\n-F FLOOR-MASQ\n-X FLOOR-MASQ\nCOMMIT",
                "*nat\n-D PREROUTING -j FLOOR-DN\n-F FLOOR-DN\n-X FLOOR-DN\nCOMMIT",
                "*filter\n-D FORWARD -d 10.1.1.2 -j ACCEPT\nCOMMIT",
            ],
        )
    };
    let tool = if nftables { "nft -f -" } else { "iptables-restore --noflush -w" };
    let mut samples = Vec::new();
    for i in 0..runs + 3 {
        let container = Netns::new("bench-floor-c");
        host.exec(
            "ip",
            &["link", "add", "vethfloor", "type", "veth", "peer", "name", "eth0", "netns", &container.name],
        );
        for input in setup {
            apply(tool, input);
        }
        let start = Instant::now();
        container.exec("ip", &["link", "del", "eth0"]);
        for input in teardown {
            apply(tool, input);
        }
        if i >= 3 {
            samples.push(start.elapsed());
        }
    }
    median(samples)
}

/// The podman chain with one TCP port mapping; `backend` selects the
/// netfilter backend of cni-wasm's plugins (the reference always gets the
/// default, iptables).
fn chain_conflist(backend: Option<&str>) -> Value {
    podman_chain(backend, json!({"type": "tuning"}))
}

fn chain_caps() -> [(&'static str, Value); 1] {
    [("portMappings", port_mappings(&[(8080, 80, "tcp", None)]))]
}

/// Chain ADD and DEL through libcni, alternating implementations.
fn chain(runs: usize, backend: Option<&str>, name: &str) -> Vec<(String, Duration, Duration)> {
    let sides = [
        (Side::ours("bench-chain-o"), chain_conflist(backend)),
        (Side::reference("bench-chain-r"), chain_conflist(None)),
    ];
    let mut samples: [[Vec<Duration>; 2]; 2] = Default::default();
    for i in 0..runs + 3 {
        for (which, (side, conflist)) in sides.iter().enumerate() {
            let container = Netns::new("bench-chain-c");
            let start = Instant::now();
            side.add(conflist, "bench", &container, &chain_caps())
                .unwrap_or_else(|e| panic!("{} chain ADD: {e}", side.name));
            let added = start.elapsed();
            let start = Instant::now();
            side.del(conflist, "bench", &container, &chain_caps())
                .unwrap_or_else(|e| panic!("{} chain DEL: {e}", side.name));
            let deleted = start.elapsed();
            if i >= 3 {
                samples[0][which].push(added);
                samples[1][which].push(deleted);
            }
        }
    }
    let [add, del] = samples;
    let [add_ours, add_theirs] = add;
    let [del_ours, del_theirs] = del;
    vec![
        (format!("{name} ADD"), median(add_ours), median(add_theirs)),
        (format!("{name} DEL"), median(del_ours), median(del_theirs)),
    ]
}

/// 20 chain ADDs at once, then their 20 DELs at once: wall time of each
/// wave.
fn concurrent(runs: usize, backend: Option<&str>, name: &str) -> Vec<(String, Duration, Duration)> {
    const N: usize = 20;
    let sides = [
        (Side::ours("bench-conc-o"), chain_conflist(backend)),
        (Side::reference("bench-conc-r"), chain_conflist(None)),
    ];
    let mut samples: [[Vec<Duration>; 2]; 2] = Default::default();
    for _ in 0..runs {
        for (which, (side, conflist)) in sides.iter().enumerate() {
            let containers: Vec<Netns> = (0..N).map(|_| Netns::new("bench-conc-c")).collect();
            for (wave, command) in ["add", "del"].into_iter().enumerate() {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for (i, container) in containers.iter().enumerate() {
                        s.spawn(move || {
                            let caps = [("portMappings", port_mappings(&[(8000 + i as u16, 80, "tcp", None)]))];
                            let id = format!("bench-{i}");
                            let outcome = match command {
                                "add" => side.add(conflist, &id, container, &caps).map(drop),
                                _ => side.del(conflist, &id, container, &caps),
                            };
                            outcome.unwrap_or_else(|e| panic!("{} concurrent {command}: {e}", side.name));
                        });
                    }
                });
                samples[wave][which].push(start.elapsed());
            }
        }
    }
    let [add, del] = samples;
    let [add_ours, add_theirs] = add;
    let [del_ours, del_theirs] = del;
    vec![
        (format!("{name} ADDs"), median(add_ours), median(add_theirs)),
        (format!("{name} DELs"), median(del_ours), median(del_theirs)),
    ]
}

struct ScaleRow {
    name: String,
    /// Median of the first 20 calls, and of the last 20.
    first: Duration,
    last: Duration,
    total: Duration,
}

/// N attachments of bridge + host-local + ipMasq on one bridge in a scratch
/// host namespace per implementation: ADD them all, then DEL them all in
/// the same order, the two implementations taking turns call by call.
fn scale(n: usize, backend: Option<&str>, name: &str) -> Vec<ScaleRow> {
    let sides = [Side::ours("bench-scale-o"), Side::reference("bench-scale-r")];
    let configs: Vec<String> = sides
        .iter()
        .enumerate()
        .map(|(which, side)| {
            let mut config = json!({"cniVersion": "1.0.0", "name": "scale", "type": "bridge", "bridge": "cni-scale0",
                "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "dataDir": side.store.display(), "ranges": [[{"subnet": "10.60.0.0/16"}]]}});
            if which == 0
                && let Some(backend) = backend
            {
                config["ipMasqBackend"] = json!(backend);
            }
            config.to_string()
        })
        .collect();
    let containers: Vec<[Netns; 2]> =
        (0..n).map(|_| [Netns::new("bench-scale-c"), Netns::new("bench-scale-c")]).collect();
    let mut durations: [[Vec<Duration>; 2]; 2] = Default::default();
    // DEL gets the ADD's result as prevResult, as libcni passes it.
    let mut results: Vec<[Value; 2]> = Vec::new();
    for (wave, command) in ["ADD", "DEL"].into_iter().enumerate() {
        for (i, pair) in containers.iter().enumerate() {
            let mut added = [Value::Null, Value::Null];
            for (which, side) in sides.iter().enumerate() {
                let bin_dir = PathBuf::from(side.bin_dir());
                let env = Env {
                    host_netns: Some(side.host.name.clone()),
                    ..Env::new(command, &format!("scale-{i}"), &pair[which].path(), "eth0", &bin_dir)
                };
                let config = match command {
                    "ADD" => configs[which].clone(),
                    _ => {
                        let mut config: Value = serde_json::from_str(&configs[which]).unwrap();
                        config["prevResult"] = results[i][which].clone();
                        config.to_string()
                    }
                };
                let start = Instant::now();
                let outcome = run(&bin_dir.join("bridge"), &env, &config);
                durations[wave][which].push(start.elapsed());
                assert!(outcome.success, "{} scale {command} {i}: {}", side.name, outcome.stdout);
                if command == "ADD" {
                    added[which] = outcome.json();
                }
            }
            if command == "ADD" {
                results.push(added);
            }
        }
    }
    let mut rows = Vec::new();
    for (wave, command) in ["ADD", "DEL"].into_iter().enumerate() {
        for (which, label) in ["cni-wasm", "reference"].into_iter().enumerate() {
            let calls = &durations[wave][which];
            let k = 20.min(calls.len());
            rows.push(ScaleRow {
                name: format!("{name} {command} {label}"),
                first: median(calls[..k].to_vec()),
                last: median(calls[calls.len() - k..].to_vec()),
                total: calls.iter().sum(),
            });
        }
    }
    rows
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
