//! cni-wasm driven through the real libcni (Debian's 1.1.2), the way
//! container runtimes run plugins: conflists, chains with prevResult,
//! capability arguments, cached results fed back to CHECK and DEL. Side by
//! side with the reference plugins where they agree with the spec.

use cni_wasm_tests::kernel::lo_state;
use cni_wasm_tests::libcni::{Runtime, cni_error};
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::Installation;
use cni_wasm_tests::{REFERENCE_DIR, TempDir, reference, require_root};
use serde_json::{Value, json};

/// cni-wasm's runtime and the reference's, each with its own libcni cache.
fn runtimes(tag: &str) -> (Installation, Runtime, Runtime) {
    require_root();
    reference("loopback");
    let install = Installation::new(tag);
    let ours = Runtime::new(&install.dir.display().to_string());
    let theirs = Runtime::new(REFERENCE_DIR);
    (install, ours, theirs)
}

/// A result with the namespace path replaced by NETNS, to compare results
/// obtained in two namespaces.
fn normalized(result: &Value, ns: &Netns) -> Value {
    serde_json::from_str(&result.to_string().replace(&ns.path(), "NETNS")).unwrap()
}

fn loopback_list(version: &str) -> String {
    json!({"cniVersion": version, "name": "lo-net", "plugins": [{"type": "loopback"}]}).to_string()
}

/// `static` run as a main plugin (libcni does not care that it is an IPAM
/// plugin: it touches no namespace and returns its addresses), so that what
/// a following plugin receives as prevResult is recognisable.
fn static_then_loopback() -> String {
    json!({"cniVersion": "1.0.0", "name": "chain-net", "plugins": [
        {"type": "static", "ipam": {"type": "static",
            "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.10.0.53"]}}},
        {"type": "loopback"}
    ]})
    .to_string()
}

fn static_only() -> String {
    let mut list: Value = serde_json::from_str(&static_then_loopback()).unwrap();
    list["plugins"].as_array_mut().unwrap().truncate(1);
    list.to_string()
}

#[test]
fn loopback_add_returns_lo_with_127_0_0_1_and_equals_the_reference_result() {
    let (_install, ours, theirs) = runtimes("libcni-lo");
    let (ours_ns, theirs_ns) = (Netns::new("lcni-ours"), Netns::new("lcni-ref"));

    let result = ours.add(&loopback_list("1.0.0"), "c1", &ours_ns.path(), "eth0", &[]).expect("ADD through libcni");
    let expected = theirs.add(&loopback_list("1.0.0"), "c1", &theirs_ns.path(), "eth0", &[]).expect("reference ADD");

    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"], json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ours_ns.path()}]));
    assert_eq!(result["ips"][0], json!({"interface": 0, "address": "127.0.0.1/8"}));
    assert_eq!(normalized(&result, &ours_ns), normalized(&expected, &theirs_ns));
    assert_eq!(lo_state(&ours_ns), lo_state(&theirs_ns));
    assert!(lo_state(&ours_ns).0, "lo is up after ADD");
}

#[test]
fn loopback_add_is_cached_by_libcni_then_check_del_and_a_second_del_succeed() {
    let (_install, ours, _theirs) = runtimes("libcni-lifecycle");
    let ns = Netns::new("lcni-life");
    let list = loopback_list("1.0.0");

    let result = ours.add(&list, "c1", &ns.path(), "eth0", &[]).expect("ADD");
    assert_eq!(ours.cached("lo-net", "c1", "eth0").expect("libcni cached the ADD")["result"], result);

    ours.check(&list, "c1", &ns.path(), "eth0", &[]).expect("CHECK with the cached result as prevResult");
    ours.del(&list, "c1", &ns.path(), "eth0", &[]).expect("DEL");
    assert!(ours.cached("lo-net", "c1", "eth0").is_none(), "libcni forgets the attachment after DEL");
    assert!(!lo_state(&ns).0, "lo is down after DEL");

    // The runtime retries DEL freely: now without any cached result.
    ours.del(&list, "c1", &ns.path(), "eth0", &[]).expect("a second DEL");
}

#[test]
fn a_chain_passes_the_first_plugins_result_through_a_following_loopback_unchanged() {
    let (_install, ours, theirs) = runtimes("libcni-chain");
    let (ours_ns, theirs_ns) = (Netns::new("lcni-chain"), Netns::new("lcni-chain-ref"));
    let list = static_then_loopback();

    let first_alone = ours.add(&static_only(), "c0", &ours_ns.path(), "eth0", &[]).expect("static alone");
    assert_eq!(first_alone["ips"], json!([{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]));

    let result = ours.add(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("ADD of the chain");
    assert_eq!(result, first_alone, "loopback returns its prevResult as is");
    assert!(lo_state(&ours_ns).0, "and still brings lo up");
    let expected = theirs.add(&list, "c1", &theirs_ns.path(), "eth0", &[]).expect("reference chain");
    assert_eq!(result, expected);

    ours.check(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("CHECK of the chain");
    ours.del(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("DEL of the chain");
}

#[test]
fn a_chain_of_two_loopbacks_returns_the_single_loopback_result() {
    let (_install, ours, _theirs) = runtimes("libcni-lolo");
    let ns = Netns::new("lcni-lolo");
    let single = ours.add(&loopback_list("1.0.0"), "c1", &ns.path(), "eth0", &[]).expect("one loopback");
    let list =
        json!({"cniVersion": "1.0.0", "name": "lolo-net", "plugins": [{"type": "loopback"}, {"type": "loopback"}]})
            .to_string();

    let result = ours.add(&list, "c2", &ns.path(), "eth0", &[]).expect("ADD of two loopbacks");
    assert_eq!(result, single);
    ours.check(&list, "c2", &ns.path(), "eth0", &[]).expect("CHECK");
    ours.del(&list, "c2", &ns.path(), "eth0", &[]).expect("DEL");
}

#[test]
fn cni_wasm_and_reference_plugins_consume_each_others_results_in_one_chain() {
    require_root();
    let install = Installation::new("libcni-mixed");
    let list = static_then_loopback();
    let mut results = Vec::new();
    // cni-wasm's static feeding the reference loopback, then the reverse.
    for (static_from, loopback_from) in
        [(install.plugin("static"), reference("loopback")), (reference("static"), install.plugin("loopback"))]
    {
        let bin = TempDir::new("libcni-mixed-bin");
        std::os::unix::fs::symlink(&static_from, bin.join("static")).unwrap();
        std::os::unix::fs::symlink(&loopback_from, bin.join("loopback")).unwrap();
        let runtime = Runtime::new(&bin.display());
        let ns = Netns::new("lcni-mixed");
        let result = runtime.add(&list, "c1", &ns.path(), "eth0", &[]).expect("ADD of a mixed chain");
        assert!(lo_state(&ns).0, "lo is up");
        runtime.check(&list, "c1", &ns.path(), "eth0", &[]).expect("CHECK of a mixed chain");
        runtime.del(&list, "c1", &ns.path(), "eth0", &[]).expect("DEL of a mixed chain");
        results.push(result);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0]["ips"], json!([{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]));
}

#[test]
fn capability_arguments_reach_a_plugin_only_when_it_declares_them() {
    let (_install, ours, theirs) = runtimes("libcni-caps");
    let ns = Netns::new("lcni-caps");
    let declaring = json!({"cniVersion": "1.0.0", "name": "caps-net",
        "plugins": [{"type": "static", "capabilities": {"ips": true}, "ipam": {"type": "static"}}]})
    .to_string();
    let silent = json!({"cniVersion": "1.0.0", "name": "caps-net",
        "plugins": [{"type": "static", "ipam": {"type": "static"}}]})
    .to_string();
    let caps = [("ips", json!(["10.1.2.3/24"]))];

    let result = ours.add(&declaring, "c1", &ns.path(), "eth0", &caps).expect("ADD with runtimeConfig.ips");
    assert_eq!(result["ips"], json!([{"address": "10.1.2.3/24"}]));
    assert_eq!(result, theirs.add(&declaring, "c1", &ns.path(), "eth0", &caps).expect("reference"));

    let result = ours.add(&silent, "c2", &ns.path(), "eth0", &caps).expect("ADD, capability filtered out by libcni");
    assert!(result.get("ips").is_none(), "no addresses: {result}");
    assert_eq!(result, theirs.add(&silent, "c2", &ns.path(), "eth0", &caps).expect("reference"));
}

#[test]
fn a_conflist_listing_cni_versions_runs_at_its_cni_version() {
    // libcni 1.1.2 ignores "cniVersions" (spec 1.1): the plugins are run at
    // "cniVersion".
    let (_install, ours, theirs) = runtimes("libcni-versions");
    let (ours_ns, theirs_ns) = (Netns::new("lcni-vers"), Netns::new("lcni-vers-ref"));
    let list = json!({"cniVersion": "1.0.0", "cniVersions": ["0.4.0", "1.0.0"], "name": "lo-net",
        "plugins": [{"type": "loopback"}]})
    .to_string();

    let result = ours.add(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("ADD");
    assert_eq!(result["cniVersion"], "1.0.0");
    let expected = theirs.add(&list, "c1", &theirs_ns.path(), "eth0", &[]).expect("reference ADD");
    assert_eq!(normalized(&result, &ours_ns), normalized(&expected, &theirs_ns));
    ours.check(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("CHECK");
    ours.del(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("DEL");
}

#[test]
fn a_0_4_0_conflist_gets_a_0_4_0_result_with_ip_versions_and_can_be_checked() {
    let (_install, ours, theirs) = runtimes("libcni-040");
    let (ours_ns, theirs_ns) = (Netns::new("lcni-040"), Netns::new("lcni-040-ref"));
    let list = loopback_list("0.4.0");

    let result = ours.add(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("ADD at 0.4.0");
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(result["ips"][0], json!({"version": "4", "interface": 0, "address": "127.0.0.1/8"}));

    // Reference bug (see plugins/loopback.rs): below 1.0.0 it prints its
    // 1.0-shaped result without ips[].version, which the 0.4.0 spec
    // requires; libcni passes that on as an empty version. Otherwise equal.
    let mut expected = theirs.add(&list, "c1", &theirs_ns.path(), "eth0", &[]).expect("reference ADD");
    for ip in expected["ips"].as_array_mut().unwrap() {
        assert_eq!(ip["version"], "", "the reference bug is still there: {ip}");
    }
    let mut without_versions = result.clone();
    for ips in [&mut without_versions["ips"], &mut expected["ips"]] {
        for ip in ips.as_array_mut().unwrap() {
            ip.as_object_mut().unwrap().remove("version");
        }
    }
    assert_eq!(normalized(&without_versions, &ours_ns), normalized(&expected, &theirs_ns));

    ours.check(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("CHECK at 0.4.0");
    ours.del(&list, "c1", &ours_ns.path(), "eth0", &[]).expect("DEL at 0.4.0");
}

#[test]
fn an_unsupported_cni_version_fails_with_cni_error_code_1_like_the_reference() {
    let (_install, ours, theirs) = runtimes("libcni-badversion");
    let ns = Netns::new("lcni-badv");
    let list = loopback_list("2.0.0");

    let ours_error = ours.add(&list, "c1", &ns.path(), "eth0", &[]).expect_err("ADD at 2.0.0 fails");
    let theirs_error = theirs.add(&list, "c1", &ns.path(), "eth0", &[]).expect_err("reference ADD at 2.0.0 fails");
    let (ours_error, theirs_error) =
        (cni_error(&ours_error).expect(&ours_error), cni_error(&theirs_error).expect(&theirs_error));
    assert_eq!(ours_error["code"], 1, "{ours_error}");
    assert_eq!(ours_error["msg"], theirs_error["msg"]);
    assert!(!lo_state(&ns).0, "nothing was configured");
}

#[test]
fn gc_and_status_are_not_supported_by_libcni_1_1() {
    let (_install, ours, _theirs) = runtimes("libcni-gc");
    let list = loopback_list("1.0.0");
    let error = ours.gc(&list, &[("c1", "eth0")]).expect_err("GC");
    assert!(error.contains("not supported by this libcni"), "{error}");
    let status = ours.invoke("status", &list, &[]);
    assert_eq!(status.code, 3, "{status:?}");
    assert_eq!(ours.invoke("gc", &list, &[]).code, 3);
}
