//! bandwidth side by side with the reference through libcni, chained after
//! ptp (a veth, as bandwidth needs): the same results (the ifb appended
//! under the reference's name), the same qdiscs and filter on the host veth
//! and the ifb, limits from the config or the runtime's `bandwidth`
//! capability; real traffic through both buckets; CHECK noticing a changed
//! bucket; DEL with and without the netns; bad input; VERSION.

use cni_wasm_tests::kernel::{self, normalize_name};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_extend_the_references};
use cni_wasm_tests::side::{Side, ping};
use serde_json::{Value, json};

fn conflist(bandwidth: Value) -> Value {
    let mut bw = json!({"type": "bandwidth", "capabilities": {"bandwidth": true}});
    for (k, v) in bandwidth.as_object().unwrap() {
        bw[k] = v.clone();
    }
    json!({"cniVersion": "1.0.0", "name": "bwnet", "plugins": [
        {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.81.0.0/24"}]]}},
        bw
    ]})
}

const BOTH: &str = r#"{"ingressRate": 8000000, "ingressBurst": 80000, "egressRate": 4000000, "egressBurst": 40000}"#;

/// The host's qdiscs and ingress filters on the result's host interfaces
/// (the veth and the ifb), with their names normalized.
fn shaping(side: &Side, result: &Value) -> Value {
    let mut state = serde_json::Map::new();
    for interface in result["interfaces"].as_array().unwrap() {
        if interface.get("sandbox").is_some_and(|s| !s.is_null()) {
            continue;
        }
        let name = interface["name"].as_str().unwrap();
        let qdiscs: Vec<Value> = side
            .host
            .exec("tc", &["-j", "qdisc", "show", "dev", name])
            .parse::<Value>()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|q| json!({"kind": q["kind"], "handle": q["handle"], "parent": q["parent"], "root": q["root"], "options": q["options"]}))
            .collect();
        let filters: Value = side.host.exec("tc", &["-j", "filter", "show", "dev", name, "ingress"]).parse().unwrap();
        state.insert(normalize_name(name), json!({"qdiscs": qdiscs, "filters": filters}));
    }
    Value::Object(state)
}

/// Bytes a device's root TBF has sent.
fn tbf_bytes(side: &Side, dev: &str) -> u64 {
    let qdiscs: Value = side.host.exec("tc", &["-s", "-j", "qdisc", "show", "dev", dev]).parse().unwrap();
    qdiscs.as_array().unwrap().iter().find(|q| q["kind"] == "tbf").map(|q| q["bytes"].as_u64().unwrap()).unwrap_or(0)
}

fn host_names(result: &Value) -> Vec<String> {
    result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("sandbox").is_none_or(Value::is_null))
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn limits_from_the_config_or_the_runtime_shape_like_the_references() {
    for (tag, own, caps) in [
        ("bw-own", serde_json::from_str::<Value>(BOTH).unwrap(), vec![]),
        ("bw-rt", json!({}), vec![("bandwidth", serde_json::from_str::<Value>(BOTH).unwrap())]),
        ("bw-in", json!({"ingressRate": 1000000, "ingressBurst": 32000}), vec![]),
    ] {
        let conflist = conflist(own);
        let (ours, theirs) = (Side::ours(&format!("{tag}-o")), Side::reference(&format!("{tag}-r")));
        let (ours_ct, theirs_ct) = (Netns::new(&format!("{tag}-oc")), Netns::new(&format!("{tag}-rc")));
        let ours_result = ours.add(&conflist, "a", &ours_ct, &caps).unwrap();
        let theirs_result = theirs.add(&conflist, "a", &theirs_ct, &caps).unwrap();
        let normalize = cni_wasm_tests::result::normalize;
        kernel::assert_same(&normalize(&ours_result), &normalize(&theirs_result), &format!("{tag}: results"));
        kernel::assert_same(
            &shaping(&ours, &ours_result),
            &shaping(&theirs, &theirs_result),
            &format!("{tag}: qdiscs"),
        );
        ours.check(&conflist, "a", &ours_ct, &caps).unwrap_or_else(|e| panic!("{tag}: CHECK after ADD: {e}"));

        ours.del(&conflist, "a", &ours_ct, &caps).unwrap();
        theirs.del(&conflist, "a", &theirs_ct, &caps).unwrap();
        for name in host_names(&ours_result) {
            assert!(!cni_wasm_tests::link_names(&ours.host).contains(&name), "{tag}: {name} is gone");
        }
    }
}

/// Pings between the container and its gateway: the requests leave the
/// container through the ifb's bucket, the replies enter it through the
/// host veth's.
#[test]
fn traffic_passes_through_both_buckets() {
    let ours = Side::ours("bw-ping");
    let conflist = conflist(serde_json::from_str(BOTH).unwrap());
    let ct = Netns::new("bw-ping-c");
    let result = ours.add(&conflist, "a", &ct, &[]).unwrap();
    let names = host_names(&result);
    let (veth, ifb) = (&names[0], &names[1]);
    assert!(ifb.starts_with("bwp"), "{names:?}");
    let gateway = result["ips"][0]["gateway"].as_str().unwrap();
    assert!(ping(&ct, gateway), "the container reaches its gateway");
    assert!(tbf_bytes(&ours, veth) > 0, "replies went through the host veth's bucket");
    assert!(tbf_bytes(&ours, ifb) > 0, "requests went through the ifb's bucket");
    ours.del(&conflist, "a", &ct, &[]).unwrap();
}

/// Mbit/s of a 500 KB TCP transfer from `from` to a sink at `to_address`
/// in `to`.
fn throughput(from: &Netns, to: &Netns, to_address: &str) -> f64 {
    let address = format!("{to_address}:5201");
    let _sink = cni_wasm_tests::side::Server::start(to, "sink", &address, "sink");
    let bytes = 500_000u64;
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &from.name])
        .arg(cni_wasm_tests::side::nettest())
        .args(["blast", &address, &bytes.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let micros: f64 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    (bytes * 8) as f64 / micros
}

/// A real transfer each way holds a 2 Mbit/s limit within 20 %, and runs
/// unshaped once bandwidth's DEL has run (ours also removes the veth's
/// bucket, which the reference leaves until the veth goes).
#[test]
fn a_transfer_each_way_holds_the_limit_and_is_unshaped_after_del() {
    let ours = Side::ours("bw-rate");
    let limits = json!({"ingressRate": 2000000, "ingressBurst": 16000, "egressRate": 2000000, "egressBurst": 16000});
    let conflist = conflist(limits.clone());
    let ct = Netns::new("bw-rate-c");
    let result = ours.add(&conflist, "a", &ct, &[]).unwrap();
    let inside = cni_wasm_tests::result::ip(&result, 0);
    let gateway = result["ips"][0]["gateway"].as_str().unwrap().to_string();
    // No transfer may beat the limit by more than 20 %. Reaching it is
    // asked of the best of three: a loaded machine can stall a sender (or
    // its TCP can back off after a drop at the bucket) and only ever make
    // a transfer slower, never faster.
    let directions: [(&str, &dyn Fn() -> f64); 2] = [
        ("into the container", &|| throughput(&ours.host, &ct, &inside)),
        ("out of it", &|| throughput(&ct, &ours.host, &gateway)),
    ];
    for (what, measure) in directions {
        let mut rates = Vec::new();
        while rates.len() < 3 && !rates.iter().any(|rate| (1.6..=2.4).contains(rate)) {
            let rate = measure();
            assert!(rate <= 2.4, "{what}: {rate:.2} Mbit/s, above 2 by more than 20 %");
            rates.push(rate);
        }
        assert!(rates.iter().any(|rate| *rate >= 1.6), "{what}: {rates:.2?} Mbit/s, none within 20 % of 2");
    }
    // bandwidth's DEL alone, as the last plugin of the chain is deleted first.
    let direct_env = cni_wasm_tests::plugin::Env {
        host_netns: Some(ours.host.name.clone()),
        ..cni_wasm_tests::plugin::Env::new("DEL", "a", &ct.path(), "eth0", std::path::Path::new(&ours.bin_dir()))
    };
    let mut config = limits;
    config["cniVersion"] = json!("1.0.0");
    config["name"] = json!("bwnet");
    config["type"] = json!("bandwidth");
    config["prevResult"] = result.clone();
    let program = std::path::Path::new(&ours.bin_dir()).join("bandwidth");
    let deleted = cni_wasm_tests::plugin::run(&program, &direct_env, &config.to_string());
    assert!(deleted.success, "{}", deleted.stdout);
    for (what, rate) in [
        ("into the container", throughput(&ours.host, &ct, &inside)),
        ("out of it", throughput(&ct, &ours.host, &gateway)),
    ] {
        assert!(rate > 4.0, "{what}: {rate:.2} Mbit/s after DEL: still shaped");
    }
    ours.del(&conflist, "a", &ct, &[]).unwrap();
}

#[test]
fn check_notices_a_changed_bucket_and_del_needs_no_netns() {
    let ours = Side::ours("bw-chk");
    let conflist = conflist(serde_json::from_str(BOTH).unwrap());
    let ct = Netns::new("bw-chk-c");
    let result = ours.add(&conflist, "a", &ct, &[]).unwrap();
    let names = host_names(&result);
    ours.exec(
        "tc",
        &["qdisc", "replace", "dev", &names[1], "root", "tbf", "rate", "2mbit", "burst", "5000", "limit", "10000"],
    );
    let error = ours.check(&conflist, "a", &ct, &[]).unwrap_err();
    assert!(error.contains("Rate doesn't match"), "{error}");
    drop(ct);
    let gone = Netns::new("bw-chk-gone");
    // libcni needs a netns path; DEL of a namespace already deleted:
    let path = gone.path();
    drop(gone);
    let outcome = ours.runtime.del(&ours.conflist(&conflist), "a", &path, "eth0", &[]);
    assert!(outcome.is_ok(), "DEL after the netns is gone: {outcome:?}");
    kernel::eventually(kernel::SETTLE, "the ifb is gone", || {
        let links = cni_wasm_tests::link_names(&ours.host);
        if links.contains(&names[1]) { Err(format!("{links:?}")) } else { Ok(()) }
    });
    let again = ours.runtime.del(&ours.conflist(&conflist), "a", &path, "eth0", &[]);
    assert!(again.is_ok(), "DEL twice: {again:?}");
}

#[test]
fn bad_input_and_no_limits_as_the_reference() {
    let direct = cni_wasm_tests::direct::Direct::new("bw-bad", "bandwidth", "bwnet");
    let ct = Netns::new("bw-bad-c");
    for (extra, text) in [
        (json!({"ingressRate": 8000}), "if rate is set, burst must also be set"),
        (json!({"egressBurst": 8000}), "if burst is set, rate must also be set"),
        (json!({"egressRate": 8, "egressBurst": 34359738368u64}), "burst cannot be more than 4GB"),
        (json!({"ingressRate": 8000, "ingressBurst": 800}), "must be called as chained plugin"),
    ] {
        let mut plugin = json!({"type": "bandwidth"});
        for (k, v) in extra.as_object().unwrap() {
            plugin[k] = v.clone();
        }
        let config = direct.config(plugin);
        let ours = direct.ours("ADD", "a", &ct.path(), &config);
        let theirs = direct.reference("ADD", "a", &ct.path(), &config);
        assert_eq!(ours.json()["msg"], text, "{extra}: {}", ours.stdout);
        assert_eq!(ours.json(), theirs.json(), "{extra}: the reference's error");
    }
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "x"}], "ips": [], "dns": {}});
    let config = direct.config(json!({"type": "bandwidth", "prevResult": prev}));
    let ours = direct.ours("ADD", "a", &ct.path(), &config);
    let theirs = direct.reference("ADD", "a", &ct.path(), &config);
    assert!(ours.success, "no limits: the previous result passes: {}", ours.stdout);
    assert_eq!(ours.json(), theirs.json());
}

#[test]
fn version_lists_the_references_versions_and_1_1_0() {
    cni_wasm_tests::require_root();
    assert_versions_extend_the_references(&Installation::new("bw-version"), "bandwidth");
}
