//! tap, on this kernel. The Debian 1.1.1 package has no tap plugin, so
//! these tests hold ours to upstream's behaviour rather than running a
//! reference: a persistent tap named CNI_IFNAME in the container with the
//! flags, owner, group, MTU and MAC the config asks for (MAC precedence
//! runtimeConfig > CNI_ARGS > config), enslaved to a bridge in the
//! container, addressed by IPAM or left at layer 2; CHECK; the DEL matrix;
//! rollback; VERSION. No traffic test: a tap carries frames only once a VMM
//! opens it, and that is the VMM's side of the contract, not the plugin's.

use cni_wasm_tests::direct::Direct;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::plugin::{Installation, assert_versions_are_upstreams};
use cni_wasm_tests::{kernel, result};
use serde_json::{Value, json};

fn tap(extra: Value) -> Value {
    let mut plugin = json!({
        "type": "tap",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24", "gateway": "10.78.0.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        plugin[k] = v.clone();
    }
    plugin
}

/// `ip -d link show eth0` in the container.
fn eth0(ct: &Netns) -> Value {
    ct.ip_json(&["-d", "link", "show", "eth0"])[0].clone()
}

#[test]
fn a_layer3_tap_gets_ipams_addresses_and_the_configured_flags_mtu_and_mac() {
    let direct = Direct::new("tap-l3", "tap", "tapnet");
    let ct = Netns::new("tap-l3-c");
    let config = direct.config(tap(json!({
        "multiQueue": true, "mtu": 1400, "mac": "02:00:00:00:00:01", "owner": 4242, "group": 4243,
        "dns": {"nameservers": ["10.78.0.53"]}
    })));
    let added = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(added.success, "{}", added.stdout);
    let link = eth0(&ct);
    assert_eq!(link["linkinfo"]["info_kind"], "tun", "{link}");
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(
        (&data["type"], &data["pi"], &data["vnet_hdr"], &data["multi_queue"], &data["persist"]),
        (&json!("tap"), &json!(false), &json!(true), &json!(true), &json!(true)),
        "owner and group given: the netlink path with IFF_VNET_HDR: {data}"
    );
    assert_eq!((&data["user"], &data["group"]), (&json!(4242), &json!(4243)), "{data}");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(link["address"], "02:00:00:00:00:01");
    assert!(link["flags"].as_array().unwrap().contains(&json!("UP")), "{link}");

    let result = added.json();
    assert_eq!(
        result["interfaces"],
        json!([{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": ct.path()}]),
        "{result}"
    );
    assert_eq!(result::ip(&result, 0), "10.78.0.2");
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(result["dns"], json!({"nameservers": ["10.78.0.53"]}), "the config's DNS");
    let address = ct.ip_json(&["addr", "show", "eth0"]).to_string();
    assert!(address.contains("10.78.0.2"), "{address}");
    assert_eq!(ct.exec("sysctl", &["-n", "net.ipv4.conf.eth0.arp_notify"]).trim(), "1");

    let checked = direct.config(json!({"type": "tap", "ipam": tap(json!({}))["ipam"], "prevResult": result}));
    let check = direct.ours("CHECK", "a", &ct.path(), &checked);
    assert!(check.success, "CHECK after ADD: {}", check.stdout);
    ct.exec("ip", &["addr", "flush", "dev", "eth0"]);
    let check = direct.ours("CHECK", "a", &ct.path(), &checked);
    assert!(check.stdout.contains("Failed to match addr 10.78.0.2/24"), "{}", check.stdout);

    assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
    assert!(direct.reservations().is_empty());
}

/// Without both owner and group (or with a SELinux label) the reference
/// runs `ip tuntap add`, which sets no IFF_VNET_HDR; ours creates the same
/// tap itself. A label is ignored (there is no `ip` process to label).
#[test]
fn without_both_owner_and_group_the_tap_is_the_ip_tools_and_a_label_is_ignored() {
    let direct = Direct::new("tap-ip", "tap", "tapnet");
    for (tag, extra) in [
        ("tap-ip-a", json!({"owner": 4242})),
        ("tap-ip-b", json!({})),
        ("tap-ip-c", json!({"owner": 4242, "group": 4243, "selinuxContext": "system_u:system_r:container_t:s0"})),
    ] {
        let ct = Netns::new(tag);
        let config = direct.config(tap(extra.clone()));
        let added = direct.ours("ADD", "a", &ct.path(), &config);
        assert!(added.success, "{extra}: {}", added.stdout);
        let data = &eth0(&ct)["linkinfo"]["info_data"];
        assert_eq!(
            (&data["vnet_hdr"], &data["multi_queue"], &data["persist"]),
            (&json!(false), &json!(false), &json!(true)),
            "{extra}: {data}"
        );
        assert_eq!(data.get("user"), extra.get("owner"), "{extra}: {data}");
        assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
    }
}

#[test]
fn the_mac_comes_from_runtime_config_then_cni_args_then_the_config() {
    let direct = Direct::new("tap-mac", "tap", "tapnet");
    // host-local refuses CNI_ARGS it does not know, as the reference does;
    // runtimes pass IgnoreUnknown=1.
    let cases = [
        (
            json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
            "02:00:00:00:00:03",
        ),
        (json!({"mac": "02:00:00:00:00:01"}), "IgnoreUnknown=1;MAC=02:00:00:00:00:02", "02:00:00:00:00:02"),
        (json!({"mac": "02:00:00:00:00:01"}), "", "02:00:00:00:00:01"),
    ];
    for (extra, args, expected) in cases {
        let ct = Netns::new("tap-mac-c");
        let config = direct.config(tap(extra.clone()));
        let added = direct.ours_with_args("ADD", "a", &ct.path(), &config, args);
        assert!(added.success, "{extra} {args}: {}", added.stdout);
        assert_eq!(eth0(&ct)["address"], expected, "{extra} {args}");
        assert_eq!(added.json()["interfaces"][0]["mac"], expected);
        assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
    }
    let ct = Netns::new("tap-mac-bad");
    let bad = direct.ours("ADD", "a", &ct.path(), &direct.config(tap(json!({"mac": "not-a-mac"}))));
    assert!(bad.stdout.contains("invalid MAC address"), "{}", bad.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"]);
}

/// Layer 2 (no IPAM): the tap is enslaved to a bridge the container has,
/// up, and the result has no addresses. A missing bridge fails the ADD and
/// leaves no tap behind.
#[test]
fn a_layer2_tap_joins_a_bridge_in_the_container() {
    let direct = Direct::new("tap-br", "tap", "tapnet");
    let ct = Netns::new("tap-br-c");
    let config = direct.config(json!({"type": "tap", "bridge": "br0"}));
    let missing = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(missing.stdout.contains("failed to get bridge br0"), "{}", missing.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "no tap left");

    ct.exec("ip", &["link", "add", "br0", "type", "bridge"]);
    let added = direct.ours("ADD", "a", &ct.path(), &config);
    assert!(added.success, "{}", added.stdout);
    let link = eth0(&ct);
    assert_eq!(link["master"], "br0", "{link}");
    assert!(link["flags"].as_array().unwrap().contains(&json!("UP")), "{link}");
    let result = added.json();
    assert!(result.get("ips").is_none_or(|ips| ips.as_array().unwrap().is_empty()), "{result}");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo", "br0"], "the container's bridge stays");
}

#[test]
fn del_succeeds_twice_never_added_without_a_netns_and_after_the_netns_is_gone() {
    let direct = Direct::new("tap-del", "tap", "tapnet");
    let config = direct.config(tap(json!({})));
    let ct = Netns::new("tap-del-c");
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);
    for (id, netns) in [("a", ct.path()), ("a", ct.path()), ("never", ct.path()), ("a", String::new())] {
        let outcome = direct.ours("DEL", id, &netns, &config);
        assert!(outcome.success, "DEL {id} {netns:?}: {}", outcome.stdout);
    }
    let gone = Netns::new("tap-del-gone");
    assert!(direct.ours("ADD", "b", &gone.path(), &config).success);
    let path = gone.path();
    drop(gone);
    let outcome = direct.ours("DEL", "b", &path, &config);
    assert!(outcome.success, "DEL after the netns is gone: {}", outcome.stdout);
    assert!(direct.reservations().is_empty(), "every address released");
}

#[test]
fn a_failed_add_leaves_nothing() {
    let direct = Direct::new("tap-fail", "tap", "tapnet");
    let ct = Netns::new("tap-fail-c");
    let unreachable = direct
        .config(tap(json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24"}]],
        "routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}})));
    let outcome = direct.ours("ADD", "a", &ct.path(), &unreachable);
    assert!(outcome.stdout.contains("failed to add route"), "{}", outcome.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "no tap left in the container");
    assert!(direct.reservations().is_empty(), "no address left reserved");
    let too_big = direct.ours("ADD", "a", &ct.path(), &direct.config(tap(json!({"mtu": 70000}))));
    assert!(!too_big.success, "{}", too_big.stdout);
    assert_eq!(cni_wasm_tests::link_names(&ct), ["lo"], "no tap left in the container");
    assert!(direct.reservations().is_empty(), "no address left reserved");
}

#[test]
fn version_lists_upstreams_versions() {
    cni_wasm_tests::require_root();
    assert_versions_are_upstreams(&Installation::new("tap-version"), "tap");
}

/// What a VMM does: opens the persistent tap `name` in `ns` (IFF_TAP,
/// IFF_NO_PI, as the tap was made without owner and group), non-blocking.
fn attach(ns: &Netns, name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let namespace = cni_wasm_capabilities::netns::Netns::open(&ns.path()).expect("opening the container netns");
    let name = name.to_string();
    namespace
        .run("attaching to the tap", move || {
            let tun = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
            // SAFETY: ifreq is plain data; all-zero is a valid value.
            let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
            for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
                *slot = byte as libc::c_char;
            }
            request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
            // SAFETY: TUNSETIFF reads and writes the ifreq it is given.
            if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut request as *mut libc::ifreq) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: plain fcntl on a descriptor this closure owns.
            unsafe { libc::fcntl(tun.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            Ok(tun)
        })
        .expect("attaching to the tap")
}

/// An ARP request for `target` from `mac`/`sender`, as a guest would send.
fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend(mac);
    frame.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend(mac);
    frame.extend(sender);
    frame.extend([0; 6]);
    frame.extend(target);
    frame
}

/// A layer 2 tap in a container bridge passes frames both ways: a "guest"
/// on the tap's fd asks for a peer's MAC across the bridge and gets the
/// peer's ARP reply back through the tap.
#[test]
fn a_tap_in_a_bridge_passes_frames_both_ways() {
    use std::io::{Read, Write};
    let direct = Direct::new("tap-frm", "tap", "tapnet");
    let ct = Netns::new("tap-frm-c");
    let peer = Netns::new("tap-frm-p");
    ct.exec("ip", &["link", "add", "br0", "type", "bridge"]);
    ct.exec("ip", &["link", "add", "v0", "master", "br0", "type", "veth", "peer", "name", "v0p", "netns", &peer.name]);
    for link in ["br0", "v0"] {
        ct.exec("ip", &["link", "set", link, "up"]);
    }
    peer.exec("ip", &["addr", "add", "10.82.0.1/24", "dev", "v0p"]);
    peer.exec("ip", &["link", "set", "v0p", "up"]);
    let config = direct.config(json!({"type": "tap", "bridge": "br0"}));
    assert!(direct.ours("ADD", "a", &ct.path(), &config).success);

    let mut tap = attach(&ct, "eth0");
    let guest = [0x02, 0, 0, 0, 0xcc, 0x01];
    let deadline = std::time::Instant::now() + kernel::SETTLE;
    let mut buffer = [0u8; 2048];
    let reply = loop {
        // Re-sent until answered: the port may still be coming up.
        tap.write_all(&arp_request(guest, [10, 82, 0, 2], [10, 82, 0, 1])).expect("writing a frame to the tap");
        let mut answered = None;
        for _ in 0..20 {
            match tap.read(&mut buffer) {
                Ok(n) if n >= 42 && buffer[12..14] == [0x08, 0x06] && buffer[21] == 2 => {
                    answered = Some(buffer[..n].to_vec());
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("reading the tap: {e}"),
            }
        }
        if let Some(frame) = answered {
            break frame;
        }
        assert!(std::time::Instant::now() < deadline, "no ARP reply through the tap within {:?}", kernel::SETTLE);
    };
    assert_eq!(reply[0..6], guest, "the reply is addressed to the guest");
    assert_eq!(reply[28..32], [10, 82, 0, 1], "from the peer's address");
    drop(tap);
    assert!(direct.ours("DEL", "a", &ct.path(), &config).success);
}
