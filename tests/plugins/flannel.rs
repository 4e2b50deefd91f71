//! flannel (upstream flannel-io/cni-plugin; Debian has none, so these hold
//! ours to upstream's behaviour), through libcni with the plain
//! `{"type": "flannel"}` config on two simulated nodes: namespaces joined
//! by a veth, each with its own subnet.env and a host-gw route to the other
//! node's pod subnet, as flanneld's host-gw backend sets. Pods get
//! addresses in their node's subnet, flanneld's MTU and routes, and reach
//! each other across the nodes; the stored delegate config is upstream's
//! format byte for byte; DEL works after subnet.env is gone and replays a
//! config upstream wrote; delegate overrides; STATUS.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_are_upstreams};
use cni_wasm_tests::side::{Side, ping};
use cni_wasm_tests::{TempDir, result};
use serde_json::{Value, json};

/// One node: its namespace (a Side's host), its subnet.env and the
/// flannel dataDir.
struct Node {
    side: Side,
    files: TempDir,
    subnet: &'static str,
}

impl Node {
    fn new(tag: &str, subnet: &'static str, ipmasq: bool) -> Node {
        let side = Side::ours(tag);
        let files = TempDir::new(&format!("{tag}-files"));
        let env = format!(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET={subnet}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ={ipmasq}\n"
        );
        std::fs::write(files.join("subnet.env"), env).unwrap();
        Node { side, files, subnet }
    }

    /// The config a cluster ships, plus where this test keeps the files
    /// (`subnetFile`, `dataDir`, host-local's `dataDir`).
    fn conflist(&self, delegate: Option<Value>) -> Value {
        let mut flannel = json!({
            "type": "flannel",
            "subnetFile": self.files.join("subnet.env").display().to_string(),
            "dataDir": self.files.join("flannel").display().to_string(),
            "ipam": {"type": "host-local"}
        });
        if let Some(delegate) = delegate {
            flannel["delegate"] = delegate;
        }
        json!({"cniVersion": "1.0.0", "name": "cbr0", "plugins": [flannel]})
    }

    fn stored(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.files.join("flannel").join(id)).ok()
    }
}

/// Two nodes joined by a veth (10.0.0.1 and .2), each routing the other's
/// pod subnet through it (host-gw).
fn two_nodes() -> (Node, Node) {
    let a = Node::new("fl-a", "10.244.1.1/24", true);
    let b = Node::new("fl-b", "10.244.2.1/24", true);
    a.side.exec("ip", &["link", "add", "node0", "type", "veth", "peer", "name", "node0", "netns", &b.side.host.name]);
    for (node, own, other, other_subnet) in
        [(&a, "10.0.0.1/24", "10.0.0.2", "10.244.2.0/24"), (&b, "10.0.0.2/24", "10.0.0.1", "10.244.1.0/24")]
    {
        node.side.exec("ip", &["addr", "add", own, "dev", "node0"]);
        node.side.exec("ip", &["link", "set", "node0", "up"]);
        node.side.exec("ip", &["route", "add", other_subnet, "via", other]);
    }
    (a, b)
}

#[test]
fn pods_on_two_nodes_get_their_nodes_subnet_and_reach_each_other() {
    let (a, b) = two_nodes();
    let (pod_a, pod_b) = (Netns::new("fl-pod-a"), Netns::new("fl-pod-b"));
    let added_a = a.side.add(&a.conflist(None), "pa", &pod_a, &[]).unwrap();
    let added_b = b.side.add(&b.conflist(None), "pb", &pod_b, &[]).unwrap();
    let (ip_a, ip_b) = (result::ip(&added_a, 0), result::ip(&added_b, 0));
    assert_eq!((ip_a.as_str(), ip_b.as_str()), ("10.244.1.2", "10.244.2.2"), "each in its node's subnet");
    for (node, pod) in [(&a, &pod_a), (&b, &pod_b)] {
        let eth0 = &pod.ip_json(&["link", "show", "eth0"])[0];
        assert_eq!(eth0["mtu"], 1450, "flanneld's MTU: {eth0}");
        let gateway = node.subnet.split('/').next().unwrap();
        let routes = pod.ip_json(&["route", "show", "10.244.0.0/16"]);
        assert_eq!(routes[0]["gateway"], gateway, "the flannel network via the node's bridge: {routes}");
        let cni0 = &node.side.host.ip_json(&["addr", "show", "cni0"])[0];
        assert!(cni0.to_string().contains(gateway), "cni0 is the gateway: {cni0}");
    }
    assert!(ping(&pod_a, &ip_b) && ping(&pod_b, &ip_a), "pods reach each other across the nodes");

    // Upstream's stored format: Go's json.Marshal of the delegate map.
    let expected = format!(
        r#"{{"cniVersion":"1.0.0","ipMasq":false,"ipam":{{"dataDir":"{}","ranges":[[{{"subnet":"10.244.1.0/24"}}]],"routes":[{{"dst":"10.244.0.0/16"}}],"type":"host-local"}},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}}"#,
        a.side.store.path.display()
    );
    assert_eq!(a.stored("pa").as_deref(), Some(expected.as_str()));
    assert!(
        !a.side.exec("iptables-save", &["-t", "nat"]).contains("CNI-"),
        "FLANNEL_IPMASQ=true: no masquerade of ours"
    );

    // flanneld gone: DEL replays the stored config.
    std::fs::remove_file(a.files.join("subnet.env")).unwrap();
    a.side.del(&a.conflist(None), "pa", &pod_a, &[]).unwrap();
    assert_eq!(a.stored("pa"), None, "the stored config is removed");
    assert_eq!(cni_wasm_tests::link_names(&pod_a), ["lo"]);
    b.side.del(&b.conflist(None), "pb", &pod_b, &[]).unwrap();
    b.side.del(&b.conflist(None), "pb", &pod_b, &[]).expect("DEL twice");
}

#[test]
fn delegate_overrides_and_masquerade_when_flanneld_does_not() {
    let node = Node::new("fl-ovr", "10.244.3.1/24", false);
    let pod = Netns::new("fl-ovr-p");
    let conflist = node.conflist(Some(json!({"bridge": "flbr0", "mtu": 1400, "hairpinMode": true})));
    node.side.add(&conflist, "p", &pod, &[]).unwrap();
    assert_eq!(pod.ip_json(&["link", "show", "eth0"])[0]["mtu"], 1400);
    assert!(cni_wasm_tests::link_names(&node.side.host).contains(&"flbr0".to_string()));
    let stored: Value = serde_json::from_str(&node.stored("p").unwrap()).unwrap();
    assert_eq!(
        (&stored["ipMasq"], &stored["hairpinMode"], &stored["bridge"]),
        (&json!(true), &json!(true), &json!("flbr0"))
    );
    assert!(
        node.side.exec("iptables-save", &["-t", "nat"]).contains("CNI-"),
        "FLANNEL_IPMASQ=false: the bridge masquerades"
    );
    node.side.del(&conflist, "p", &pod, &[]).unwrap();
    assert!(!node.side.exec("iptables-save", &["-t", "nat"]).contains("CNI-"), "and DEL removes it");

    for (delegate, text) in [
        (json!({"name": "x"}), "'delegate' dictionary must not have 'name' field"),
        (json!({"ipam": {}}), "'delegate' dictionary must not have 'ipam' field"),
        (json!({"type": 7}), "must have (string) 'type' field"),
    ] {
        let error = node.side.add(&node.conflist(Some(delegate.clone())), "q", &pod, &[]).unwrap_err();
        assert!(error.contains(text), "{delegate}: {error}");
    }
}

/// A config upstream's plugin stored (written here by hand in its format)
/// is replayed by ours; STATUS reports a missing subnet.env with code 50.
#[test]
fn del_replays_upstreams_stored_config_and_status_needs_subnet_env() {
    let direct = Direct::new("fl-del", "flannel", "cbr0");
    let files = TempDir::new("fl-del-files");
    let ct = Netns::new("fl-del-c");
    let store = direct.store.display();
    let upstream = format!(
        r#"{{"cniVersion":"1.0.0","ipMasq":false,"ipam":{{"dataDir":"{store}","ranges":[[{{"subnet":"10.244.4.0/24"}}]],"routes":[{{"dst":"10.244.0.0/16"}}],"type":"host-local"}},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}}"#
    );
    let bridge = direct.install.plugin("bridge");
    let env = cni_wasm_tests::plugin::Env {
        host_netns: Some(direct.host.name.clone()),
        ..cni_wasm_tests::plugin::Env::new("ADD", "u", &ct.path(), "eth0", &direct.install.dir)
    };
    assert!(cni_wasm_tests::plugin::run(&bridge, &env, &upstream).success, "the pod upstream's flannel added");
    std::fs::create_dir_all(files.join("flannel")).unwrap();
    std::fs::write(files.join("flannel").join("u"), &upstream).unwrap();
    let config = |version: &str| {
        json!({"cniVersion": version, "name": "cbr0", "type": "flannel",
               "subnetFile": files.join("subnet.env").display().to_string(),
               "dataDir": files.join("flannel").display().to_string()})
        .to_string()
    };
    let deleted = direct.ours("DEL", "u", &ct.path(), &config("1.0.0"));
    assert!(deleted.success, "{}", deleted.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "the bridge delegate's DEL ran");
    assert!(!files.join("flannel").join("u").exists());
    assert!(direct.reservations().is_empty(), "its address released");

    let status = direct.ours("STATUS", "", "", &config("1.1.0"));
    assert_eq!(status.json()["code"], 50, "{}", status.stdout);
    assert!(status.stdout.contains("subnet.env"), "{}", status.stdout);
}

#[test]
fn version_lists_upstreams_versions() {
    cni_wasm_tests::require_root();
    assert_versions_are_upstreams(&Installation::new("fl-version"), "flannel");
}
