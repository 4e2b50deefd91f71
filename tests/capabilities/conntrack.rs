//! Connection tracking (ctnetlink) in scratch namespaces: entries are made
//! with `conntrack -I` (or real traffic) and checked with `conntrack -L`,
//! so both sides of the capability are seen by an independent tool.

use std::net::IpAddr;
use std::process::Command;
use std::sync::OnceLock;

use cni_wasm_capabilities::ErrorKind;
use cni_wasm_capabilities::addresses::Family;
use cni_wasm_capabilities::conntrack::{self, Flow, FlowFilter};
use cni_wasm_capabilities::netns::Netns as Namespace;
use cni_wasm_tests::netns::Netns;
use cni_wasm_tests::require_root;

const UDP: u8 = 17;
const TCP: u8 = 6;
const ICMP: u8 = 1;

#[test]
fn dump_reads_both_directions_of_an_entry() {
    if !conntrack_works("dump_reads_both_directions_of_an_entry") {
        return;
    }
    let a = Netns::new("ct-dump");
    // A client's DNS query to a host port, DNATed to a container's port 53.
    insert(&a, "udp", ("10.0.0.1", 40000), ("192.0.2.1", 5353), ("10.88.0.5", 53));
    insert(&a, "udp", ("fd00::1", 40000), ("fd00::2", 5353), ("fd00:88::5", 53));

    let ns = open(&a);
    assert_eq!(
        conntrack::dump(&ns, &everything(Family::V4)).unwrap(),
        [Flow {
            family: Family::V4,
            protocol: UDP,
            original_source: ip("10.0.0.1"),
            original_destination: ip("192.0.2.1"),
            original_source_port: Some(40000),
            original_destination_port: Some(5353),
            reply_source: ip("10.88.0.5"),
            reply_destination: ip("10.0.0.1"),
            reply_source_port: Some(53),
            reply_destination_port: Some(40000),
        }],
        "ports are in host byte order (5353 is 0x14e9; swapped it would read 59668)"
    );
    assert_eq!(
        conntrack::dump(&ns, &everything(Family::V6)).unwrap(),
        [Flow {
            family: Family::V6,
            protocol: UDP,
            original_source: ip("fd00::1"),
            original_destination: ip("fd00::2"),
            original_source_port: Some(40000),
            original_destination_port: Some(5353),
            reply_source: ip("fd00:88::5"),
            reply_destination: ip("fd00::1"),
            reply_source_port: Some(53),
            reply_destination_port: Some(40000),
        }]
    );
}

#[test]
fn delete_removes_only_entries_matching_the_filter() {
    if !conntrack_works("delete_removes_only_entries_matching_the_filter") {
        return;
    }
    let a = Netns::new("ct-delete");
    insert(&a, "udp", ("10.0.0.1", 40001), ("192.0.2.1", 5353), ("192.0.2.1", 5353));
    insert(&a, "udp", ("10.0.0.1", 40002), ("192.0.2.1", 6000), ("192.0.2.1", 6000));
    insert(&a, "tcp", ("10.0.0.1", 40003), ("192.0.2.1", 5353), ("192.0.2.1", 5353));
    insert(&a, "udp", ("fd00::1", 40004), ("fd00::2", 5353), ("fd00::2", 5353));
    let ns = open(&a);

    let udp_5353 = FlowFilter { protocol: Some(UDP), original_destination_port: Some(5353), ..everything(Family::V4) };
    assert_eq!(summaries(conntrack::dump(&ns, &udp_5353).unwrap()), ["udp 10.0.0.1:40001 -> 192.0.2.1:5353"]);
    assert_eq!(conntrack::delete(&ns, &udp_5353).unwrap(), 1);

    let left = [
        "tcp 10.0.0.1:40003 -> 192.0.2.1:5353",
        "udp 10.0.0.1:40002 -> 192.0.2.1:6000",
        "udp [fd00::1]:40004 -> [fd00::2]:5353",
    ];
    assert_eq!(listed(&a), left, "the other port, the other protocol and the other family stay");
    let mut dumped = summaries(conntrack::dump(&ns, &everything(Family::V4)).unwrap());
    dumped.extend(summaries(conntrack::dump(&ns, &everything(Family::V6)).unwrap()));
    assert_eq!(dumped, left);
    assert_eq!(conntrack::delete(&ns, &udp_5353).unwrap(), 0, "deleting again finds nothing");
}

#[test]
fn delete_by_reply_source_matches_a_container_address() {
    if !conntrack_works("delete_by_reply_source_matches_a_container_address") {
        return;
    }
    let a = Netns::new("ct-reply");
    // Two containers behind DNAT, and one flow that answers itself.
    insert(&a, "udp", ("10.0.0.1", 40001), ("192.0.2.1", 8053), ("10.88.0.5", 53));
    insert(&a, "tcp", ("10.0.0.1", 40002), ("192.0.2.1", 8080), ("10.88.0.5", 80));
    insert(&a, "udp", ("10.0.0.1", 40003), ("192.0.2.1", 9053), ("10.88.0.6", 53));
    insert(&a, "udp", ("10.0.0.1", 40004), ("10.88.0.5", 53), ("10.88.0.7", 53));
    let ns = open(&a);

    let to_container = FlowFilter { reply_source: Some(ip("10.88.0.5")), ..everything(Family::V4) };
    assert_eq!(conntrack::delete(&ns, &to_container).unwrap(), 2, "both protocols, matched by who answers");
    assert_eq!(
        listed(&a),
        ["udp 10.0.0.1:40003 -> 192.0.2.1:9053", "udp 10.0.0.1:40004 -> 10.88.0.5:53",],
        "another container's flow stays, and so does a flow merely addressed to the container's address"
    );
}

#[test]
fn nothing_matching_is_not_an_error() {
    if !conntrack_works("nothing_matching_is_not_an_error") {
        return;
    }
    let a = Netns::new("ct-nothing");
    let ns = open(&a);
    let port = FlowFilter { protocol: Some(UDP), original_destination_port: Some(5353), ..everything(Family::V4) };
    assert_eq!(conntrack::delete(&ns, &port).unwrap(), 0, "an empty table");
    assert_eq!(conntrack::dump(&ns, &port).unwrap(), []);

    insert(&a, "udp", ("10.0.0.1", 40000), ("192.0.2.1", 6000), ("192.0.2.1", 6000));
    assert_eq!(conntrack::delete(&ns, &port).unwrap(), 0, "a table without a match");
    let v6 = FlowFilter { original_destination_port: Some(6000), ..everything(Family::V6) };
    assert_eq!(conntrack::delete(&ns, &v6).unwrap(), 0, "the same port in the other family");
    assert_eq!(listed(&a), ["udp 10.0.0.1:40000 -> 192.0.2.1:6000"]);
}

#[test]
fn entries_in_other_namespaces_are_untouched() {
    if !conntrack_works("entries_in_other_namespaces_are_untouched") {
        return;
    }
    let (a, b) = (Netns::new("ct-ns-a"), Netns::new("ct-ns-b"));
    for ns in [&a, &b] {
        insert(ns, "udp", ("10.0.0.1", 40000), ("192.0.2.1", 5353), ("10.88.0.5", 53));
    }
    let port = FlowFilter { original_destination_port: Some(5353), ..everything(Family::V4) };
    assert_eq!(conntrack::delete(&open(&a), &port).unwrap(), 1);
    assert_eq!(listed(&a), [] as [&str; 0]);
    assert_eq!(listed(&b), ["udp 10.0.0.1:40000 -> 192.0.2.1:5353"]);
    assert_eq!(summaries(conntrack::dump(&open(&b), &port).unwrap()), ["udp 10.0.0.1:40000 -> 192.0.2.1:5353"]);
}

#[test]
fn an_entry_in_another_conntrack_zone_is_deleted_too() {
    if !conntrack_works("an_entry_in_another_conntrack_zone_is_deleted_too") {
        return;
    }
    let a = Netns::new("ct-zone");
    let (client, server) = (("10.0.0.1", 40000), ("192.0.2.1", 5353));
    insert(&a, "udp", client, server, server);
    insert_with(&a, "udp", client, server, server, &["--zone", "5"]);
    assert_eq!(a.exec("conntrack", &["-L"]).lines().filter(|l| l.contains("zone=5")).count(), 1);

    let port = FlowFilter { original_destination_port: Some(5353), ..everything(Family::V4) };
    assert_eq!(conntrack::delete(&open(&a), &port).unwrap(), 2, "the same tuple in zone 0 and zone 5");
    assert_eq!(listed(&a), [] as [&str; 0]);
}

#[test]
fn a_real_ping_is_tracked_and_deleted_without_ports() {
    if !conntrack_works("a_real_ping_is_tracked_and_deleted_without_ports") {
        return;
    }
    let a = Netns::new("ct-ping");
    a.exec("ip", &["link", "set", "lo", "up"]);
    // Any rule that looks at conntrack state makes the namespace track.
    a.exec("nft", &["add table ip t"]);
    a.exec("nft", &["add chain ip t out { type filter hook output priority 0; }"]);
    a.exec("nft", &["add rule ip t out ct state new accept"]);
    a.exec("ping", &["-c", "1", "-W", "1", "127.0.0.1"]);

    let ns = open(&a);
    let to_loopback = FlowFilter { original_destination: Some(ip("127.0.0.1")), ..everything(Family::V4) };
    let flows = conntrack::dump(&ns, &to_loopback).unwrap();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let echo = &flows[0];
    assert_eq!((echo.protocol, echo.original_source_port, echo.original_destination_port), (ICMP, None, None));
    assert_eq!((echo.reply_source, echo.reply_destination), (ip("127.0.0.1"), ip("127.0.0.1")));

    // ICMP tuples are found by type, code and id: the delete must carry them.
    assert_eq!(conntrack::delete(&ns, &to_loopback).unwrap(), 1);
    assert_eq!(listed(&a), [] as [&str; 0]);
}

#[test]
fn a_filter_address_of_the_other_family_is_an_invalid_argument() {
    require_root();
    let a = Netns::new("ct-invalid");
    let v4_filter_v6_address = FlowFilter { reply_source: Some(ip("fd00::5")), ..everything(Family::V4) };
    let error = conntrack::delete(&open(&a), &v4_filter_v6_address).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument, "{}", error.message);
    assert!(error.message.contains("fd00::5"), "{}", error.message);
}

// --- helpers ---

fn open(ns: &Netns) -> Namespace {
    Namespace::open(&ns.path()).expect("opening a test netns")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a test address")
}

fn everything(family: Family) -> FlowFilter {
    FlowFilter {
        family,
        protocol: None,
        original_destination: None,
        original_destination_port: None,
        reply_source: None,
    }
}

/// `conntrack -I`: the flow `client -> server`, answered by `answerer`
/// (the server itself, or the container a DNAT rule sent it to).
fn insert(ns: &Netns, protocol: &str, client: (&str, u16), server: (&str, u16), answerer: (&str, u16)) {
    insert_with(ns, protocol, client, server, answerer, &[]);
}

fn insert_with(
    ns: &Netns,
    protocol: &str,
    client: (&str, u16),
    server: (&str, u16),
    answerer: (&str, u16),
    extra: &[&str],
) {
    let ports = [client.1, server.1, answerer.1].map(|p| p.to_string());
    let mut args = vec![
        "-I",
        "-p",
        protocol,
        "-t",
        "300",
        "-s",
        client.0,
        "-d",
        server.0,
        "--sport",
        &ports[0],
        "--dport",
        &ports[1],
        "--reply-src",
        answerer.0,
        "--reply-dst",
        client.0,
        "--reply-port-src",
        &ports[2],
        "--reply-port-dst",
        &ports[0],
    ];
    if protocol == "tcp" {
        args.extend(["--state", "ESTABLISHED"]);
    }
    args.extend(extra);
    ns.exec("conntrack", &args);
}

/// The namespace's table as `conntrack -L` sees it (both families), one
/// "proto source -> destination" line per entry, in the original direction.
fn listed(ns: &Netns) -> Vec<String> {
    let mut entries: Vec<String> = ["ipv4", "ipv6"]
        .iter()
        .flat_map(|family| ns.exec("conntrack", &["-L", "-f", family]).lines().map(summary_of_line).collect::<Vec<_>>())
        .collect();
    entries.sort();
    entries
}

/// "udp 10.0.0.1:40000 -> 192.0.2.1:5353" from a `conntrack -L` line.
fn summary_of_line(line: &str) -> String {
    let field = |key: &str| {
        let mut words = line.split_whitespace();
        words.find_map(|word| word.strip_prefix(key)).unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    let protocol = line.split_whitespace().next().expect("a protocol name");
    let endpoint = |address: &str, port: &str| match address.contains(':') {
        true => format!("[{address}]:{port}"),
        false => format!("{address}:{port}"),
    };
    format!("{protocol} {} -> {}", endpoint(field("src="), field("sport=")), endpoint(field("dst="), field("dport=")))
}

/// The same summary of dumped flows, sorted.
fn summaries(flows: Vec<Flow>) -> Vec<String> {
    let endpoint = |address: IpAddr, port: Option<u16>| {
        let port = port.expect("a flow with ports");
        match address {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        }
    };
    let mut summaries: Vec<String> = flows
        .into_iter()
        .map(|flow| {
            let protocol = match flow.protocol {
                UDP => "udp".to_string(),
                TCP => "tcp".to_string(),
                other => other.to_string(),
            };
            format!(
                "{protocol} {} -> {}",
                endpoint(flow.original_source, flow.original_source_port),
                endpoint(flow.original_destination, flow.original_destination_port)
            )
        })
        .collect();
    summaries.sort();
    summaries
}

/// Whether this kernel can hold conntrack entries in a network namespace,
/// probed once. A kernel that cannot makes every test here print why it
/// was skipped; a missing `conntrack` tool is a broken test setup.
fn conntrack_works(test: &str) -> bool {
    require_root();
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let ns = Netns::new("ct-probe");
        let output = Command::new("ip")
            .args(["netns", "exec", &ns.name, "conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2"])
            .args(["--sport", "1", "--dport", "2", "-t", "10", "--reply-src", "10.0.0.2", "--reply-dst", "10.0.0.1"])
            .args(["--reply-port-src", "2", "--reply-port-dst", "1"])
            .output()
            .expect("running ip netns exec");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("No such file or directory") && !stderr.contains("executable file not found"),
            "conntrack is missing: apt-get install conntrack ({stderr})"
        );
        match output.status.success() {
            true => Ok(()),
            false => Err(stderr.trim().to_string()),
        }
    });
    match probe {
        Ok(()) => true,
        Err(reason) => {
            cni_wasm_tests::skip(
                test,
                &format!("this kernel cannot track connections in a network namespace: {reason}"),
            );
            false
        }
    }
}
