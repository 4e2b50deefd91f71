//! `cni-bench`: cni-wasm against the Go reference plugins, in one run.
//!
//! Every scenario runs each implementation as a runtime would (a fresh
//! process per call, env + stdin), alternating between the two so that
//! machine noise hits both alike, and reports medians and the ratio
//! cni-wasm / reference. Needs root (it creates a network namespace).
//!
//!     cargo build --release && target/release/cni-bench [--runs N] [--markdown]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, Installation, run};
use cni_wasm_tests::{REFERENCE_DIR, reference_available};

struct Scenario {
    name: &'static str,
    /// Runs one iteration against the plugins in `dir`: returns the timed
    /// calls' durations, in the scenario's column order.
    run: Box<dyn Fn(&Path, usize) -> Vec<Duration>>,
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
    let mut markdown = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
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

    let scenarios = vec![
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
                    vec![timed(&plugin, &env, &host_local_conf), timed(&plugin, &env.with_command("DEL"), &host_local_conf)]
                }
            }),
        },
    ];

    let warmup = 10.min(runs);
    let mut rows = Vec::new();
    for scenario in &scenarios {
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

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if markdown {
        println!("| scenario | cni-wasm median | reference median | ratio |");
        println!("|---|---|---|---|");
        for (name, a, b) in &rows {
            println!("| {name} | {:.2} ms | {:.2} ms | {:.2}x |", ms(*a), ms(*b), ms(*a) / ms(*b));
        }
    } else {
        println!("{runs} runs per scenario, medians (wall time of the whole plugin process)");
        println!("{:<18} {:>12} {:>12} {:>8}", "scenario", "cni-wasm", "reference", "ratio");
        for (name, a, b) in &rows {
            println!("{name:<18} {:>9.2} ms {:>9.2} ms {:>7.2}x", ms(*a), ms(*b), ms(*a) / ms(*b));
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
