//! The ownership ledger: a host link an attachment's ADD created is that
//! attachment's to remove in a later DEL, in a fresh process, and no other
//! attachment's; GC hands the links of attachments no longer listed to the
//! plugin's GC; nothing the plugin can write records ownership.

use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Env, run};
use cni_wasm_tests::{Probe, TempDir, link_names};
use serde_json::json;

/// The probe with links granted, in a scratch host with its own ledger.
struct World {
    probe: Probe,
    host: Netns,
    ledger: TempDir,
}

impl World {
    fn new(tag: &str) -> World {
        let policy = json!({"plugins": {"probe": {"capabilities": ["links", "addresses"]}}});
        World { probe: Probe::new(tag, policy), host: Netns::new(&format!("{tag}-h")), ledger: TempDir::new(tag) }
    }

    fn env(&self, command: &str, container: &str, netns: &str) -> Env {
        Env { host_netns: Some(self.host.name.clone()), ..self.probe.env(command, container, netns) }
            .var("CNI_WASM_LEDGER_DIR", self.ledger.display())
    }

    /// A DEL (or GC) whose probe deletes host link `link`.
    fn delete(
        &self,
        command: &str,
        container: &str,
        link: &str,
        extra: serde_json::Value,
    ) -> cni_wasm_tests::plugin::Outcome {
        let mut config = json!({"cniVersion": "1.1.0", "name": "probe-net", "type": "probe",
            "probe": {"steps": [], "delSteps": ["delete-host-link"], "hostLink": link}});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        run(&self.probe.plugin, &self.env(command, container, ""), &config.to_string())
    }

    fn entries(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in walk(&self.ledger.path) {
            found.push(entry.file_name().unwrap().to_string_lossy().into_owned());
        }
        found
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn a_host_link_an_add_created_is_its_attachments_del_to_remove_and_no_one_elses() {
    let world = World::new("ledger-del");
    let container = Netns::new("ledger-del-c");
    let add = run(
        &world.probe.plugin,
        &world.env("ADD", "c1", &container.path()),
        &Probe::config(&["create-host-veth"], json!({})),
    );
    assert!(add.success, "{}", add.stdout);
    assert!(link_names(&world.host).contains(&"prc1".to_string()));
    assert_eq!(world.entries(), ["c1:eth0.json"], "the ADD's host link is recorded");

    // Another attachment, naming the link in its config, may not.
    let other = world.delete("DEL", "c2", "prc1", json!({}));
    assert!(out_refused(&other), "{}", other.stdout);
    assert!(link_names(&world.host).contains(&"prc1".to_string()));

    // The attachment's own DEL, in a fresh process, may; then its entry goes.
    let own = world.delete("DEL", "c1", "prc1", json!({}));
    assert!(own.success, "{}", own.stdout);
    assert!(!link_names(&world.host).contains(&"prc1".to_string()));
    assert!(world.entries().is_empty(), "the entry went with the DEL");
}

#[test]
fn gc_may_remove_what_attachments_no_longer_listed_created() {
    let world = World::new("ledger-gc");
    let (live, stale) = (Netns::new("ledger-gc-l"), Netns::new("ledger-gc-s"));
    for (id, ns) in [("live", &live), ("stale", &stale)] {
        let add = run(
            &world.probe.plugin,
            &world.env("ADD", id, &ns.path()),
            &Probe::config(&["create-host-veth"], json!({})),
        );
        assert!(add.success, "{}", add.stdout);
    }
    let valid = json!({"cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]});
    // The probe's GC is its DEL steps; GC of the live attachment's link is refused.
    let gc_live = world.delete("GC", "", "prlive", valid.clone());
    assert!(out_refused(&gc_live), "{}", gc_live.stdout);
    let gc_stale = world.delete("GC", "", "prstale", valid);
    assert!(gc_stale.success, "{}", gc_stale.stdout);
    let names = link_names(&world.host);
    assert!(names.contains(&"prlive".to_string()) && !names.contains(&"prstale".to_string()), "{names:?}");
    assert_eq!(world.entries(), ["live:eth0.json"], "GC pruned the stale entry");
}

fn out_refused(outcome: &cni_wasm_tests::plugin::Outcome) -> bool {
    !outcome.success && outcome.json()["msg"].as_str().is_some_and(|m| m.contains("refused"))
}
