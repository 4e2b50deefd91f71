//! nftables batches sent over netlink, without an `nft` process, for the
//! commands an attachment's ADD and DEL send once the shared tables exist:
//! adding rules built of the expressions below and deleting rules by
//! handle. Starting nft costs milliseconds, and nft's echo (`-e`, for the
//! handles) first lists every rule of the table, so a per-attachment ADD
//! through nft costs what the table holds; here the kernel echoes each new
//! rule's handle itself (NLM_F_ECHO).
//!
//! Rules are encoded as nft 1.0 encodes them (its `--debug=netlink`
//! output), dependencies included, so `nft list` shows them exactly as if
//! nft had added them. A batch with anything else (tables, chains, sets,
//! other expressions, a prefix not on a byte boundary) is not encoded here:
//! [`encode`] returns None and the caller runs nft. netlink-packet-netfilter
//! has no nftables rule expressions, and the other crates need libnftnl or
//! are GPL (see the commit), so the few messages are written here.
//!
//! Listing goes the other way ([`list_chain`], [`list_table`]): the
//! kernel's dumps are decoded into nft's JSON for the same expressions,
//! and anything else is again left to nft.

use std::time::Instant;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
// Listing.
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;

// Attribute numbers from linux/netfilter/nf_tables.h.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;

const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_CT_STATE: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IFNAMSIZ: usize = 16;

/// One encoded batch: netlink messages between BATCH_BEGIN and BATCH_END.
pub struct Batch {
    messages: Vec<Vec<u8>>,
    /// For each message that adds an object, the index of its command in
    /// the JSON batch and the object's kind ("table", "chain", "rule"): the
    /// kernel's echo carries its handle.
    adds: Vec<Option<(usize, &'static str)>>,
}

/// The batch in netlink, or None when any command is not one this module
/// encodes (then nft must apply it).
pub fn encode(batch: &Value) -> Option<Batch> {
    let commands = batch.get("nftables")?.as_array()?;
    let mut out = Batch { messages: Vec::new(), adds: Vec::new() };
    for (index, command) in commands.iter().enumerate() {
        let object = command.as_object()?;
        let (verb, spec) = object.iter().next().filter(|_| object.len() == 1)?;
        let spec = spec.as_object().filter(|s| s.len() == 1)?;
        let (kind, body) = spec.iter().next()?;
        let (message, added) = match (verb.as_str(), kind.as_str()) {
            ("add", "rule") => (add_rule(body)?, Some((index, "rule"))),
            ("add", "table") => (add_table(body)?, Some((index, "table"))),
            ("add", "chain") => (add_chain(body)?, Some((index, "chain"))),
            ("delete", "rule") => (delete_rule(body)?, None),
            ("flush", "chain") => (flush_chain(body)?, None),
            _ => return None,
        };
        out.messages.push(message);
        out.adds.push(added);
    }
    (!out.messages.is_empty()).then_some(out)
}

/// Applies the batch in one transaction; returns, for each command of the
/// JSON batch that added a rule, the handle the kernel gave it.
pub fn apply(ns: &Netns, batch: &Batch, deadline: Instant) -> Result<Vec<(usize, u64)>> {
    let mut request = message(NFNL_MSG_BATCH_BEGIN, libc::NLM_F_REQUEST as u16, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
    let first_seq = 1u32;
    for (i, body) in batch.messages.iter().enumerate() {
        request.extend_from_slice(body);
        // Sequence numbers: the BATCH_BEGIN is 0, the commands from 1.
        let at = request.len() - body.len();
        request[at + 8..at + 12].copy_from_slice(&(first_seq + i as u32).to_ne_bytes());
    }
    let end_seq = first_seq + batch.messages.len() as u32;
    request.extend(message(NFNL_MSG_BATCH_END, libc::NLM_F_REQUEST as u16, end_seq, 0, NFNL_SUBSYS_NFTABLES, &[]));
    let last_seq = end_seq - 1;
    let timeout = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
    let replies = ns.run("applying an nftables batch over netlink", || {
        let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        set_receive_timeout(&socket, timeout)?;
        socket.send(&request, 0)?;
        let mut replies = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        // Every command asked for an acknowledgement; the last one's ends
        // the batch's replies (the kernel sends them after the commit or
        // the abort, after the echoes).
        loop {
            let n = socket.recv(&mut &mut buffer[..], 0)?;
            let mut done = false;
            for reply in split(&buffer[..n]) {
                let seq = seq_of(reply);
                // An error for the batch header (seq 0) ends them too.
                done |= reply_type(reply) == NLMSG_ERROR && (seq == last_seq || seq == 0);
                replies.push(reply.to_vec());
            }
            if done {
                return Ok(replies);
            }
        }
    })?;
    let mut handles = Vec::new();
    let mut failure: Option<(u32, i32)> = None;
    for reply in &replies {
        let seq = seq_of(reply);
        let command = seq.checked_sub(first_seq).map(|i| i as usize).and_then(|i| batch.adds.get(i));
        match reply_type(reply) {
            NLMSG_ERROR => {
                let errno = error_of(reply);
                if errno != 0 && failure.is_none() {
                    failure = Some((seq, -errno));
                }
            }
            t if t >> 8 == NFNL_SUBSYS_NFTABLES => {
                // The echo of an added table, chain or rule: its handle. An
                // "add" of what exists changes nothing and echoes nothing.
                let attribute = match t & 0xff {
                    NFT_MSG_NEWTABLE => NFTA_TABLE_HANDLE,
                    NFT_MSG_NEWCHAIN => NFTA_CHAIN_HANDLE,
                    NFT_MSG_NEWRULE => NFTA_RULE_HANDLE,
                    _ => continue,
                };
                let handle = reply.get(20..).and_then(|a| crate::netlink::find_attribute(a, attribute));
                if let (Some(Some((index, _))), Some(handle)) = (command, handle.and_then(|h| h.try_into().ok())) {
                    handles.push((*index, u64::from_be_bytes(handle)));
                }
            }
            _ => {}
        }
    }
    if let Some((seq, errno)) = failure {
        let doing =
            format!("applying an nftables batch (command {}) in {}", seq.saturating_sub(first_seq) + 1, ns.label());
        return Err(Error::from_errno(errno, doing));
    }
    let is_rule = |index: &usize| batch.adds.iter().flatten().any(|(i, kind)| i == index && *kind == "rule");
    let rules = batch.adds.iter().flatten().filter(|(_, kind)| *kind == "rule").count();
    if handles.iter().filter(|(index, _)| is_rule(index)).count() != rules {
        return Err(Error::new(ErrorKind::Io, "nftables batch: the kernel did not echo every added rule"));
    }
    Ok(handles)
}

/// The JSON batch as nft's echo (`nft -j -e -a`) shows it: each added
/// object with its handle.
pub fn echo(batch: &Value, handles: &[(usize, u64)]) -> Value {
    let mut echo = batch.clone();
    if let Some(commands) = echo.get_mut("nftables").and_then(Value::as_array_mut) {
        for (index, handle) in handles {
            let added = commands.get_mut(*index).and_then(|c| c.get_mut("add")).and_then(Value::as_object_mut);
            if let Some(object) = added.and_then(|a| a.values_mut().next()) {
                object["handle"] = (*handle).into();
            }
        }
    }
    echo
}

fn set_receive_timeout(socket: &netlink_sys::Socket, timeout: std::time::Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket and a timeval that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn seq_of(reply: &[u8]) -> u32 {
    u32::from_ne_bytes(reply[8..12].try_into().unwrap_or_default())
}

fn reply_type(reply: &[u8]) -> u16 {
    u16::from_ne_bytes(reply[4..6].try_into().unwrap_or_default())
}

/// The netlink messages in one datagram.
fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap_or_default()) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        out.push(&data[..len]);
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

/// nlmsghdr (its sequence number set by [`apply`]), nfgenmsg, attributes.
fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attributes: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attributes.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attributes);
    out
}

/// Netlink attributes, each padded to 4 bytes.
#[derive(Default)]
struct Attributes(Vec<u8>);

impl Attributes {
    fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn string(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.bytes(kind, &bytes)
    }

    fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    fn nested(&mut self, kind: u16, inner: &Attributes) -> &mut Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }

    /// NFTA_DATA_VALUE inside `kind`.
    fn data(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let mut inner = Attributes::default();
        inner.bytes(NFTA_DATA_VALUE, value);
        self.nested(kind, &inner)
    }
}

/// The nfgenmsg family of an nft family name.
pub(crate) fn family_number_of(family: &str) -> Option<u8> {
    let number = match family {
        "ip" => libc::NFPROTO_IPV4,
        "ip6" => libc::NFPROTO_IPV6,
        "inet" => libc::NFPROTO_INET,
        "bridge" => libc::NFPROTO_BRIDGE,
        "arp" => libc::NFPROTO_ARP,
        "netdev" => libc::NFPROTO_NETDEV,
        _ => return None,
    };
    Some(number as u8)
}

/// The families whose rules, hooks and dependencies this module encodes
/// and decodes; others are nft's.
fn family_number(family: &str) -> Option<u8> {
    ["ip", "ip6", "inet"].contains(&family).then(|| family_number_of(family)).flatten()
}

/// family, table and chain of a rule command.
fn rule_location(rule: &Value) -> Option<(&str, u8, Attributes)> {
    let family = rule.get("family")?.as_str()?;
    let mut attributes = Attributes::default();
    attributes.string(NFTA_RULE_TABLE, rule.get("table")?.as_str()?);
    attributes.string(NFTA_RULE_CHAIN, rule.get("chain")?.as_str()?);
    Some((family, family_number(family)?, attributes))
}

fn delete_rule(rule: &Value) -> Option<Vec<u8>> {
    let allowed = ["family", "table", "chain", "handle"];
    if rule.as_object()?.keys().any(|k| !allowed.contains(&k.as_str())) {
        return None;
    }
    let (_, family, mut attributes) = rule_location(rule)?;
    attributes.bytes(NFTA_RULE_HANDLE, &rule.get("handle")?.as_u64()?.to_be_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    Some(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE, flags, 0, family, 0, &attributes.0))
}

/// libnftnl's user data holding only a comment: type 0 (the comment type
/// of tables, chains and rules alike), length, the text and its NUL.
fn comment_userdata(comment: &Value) -> Option<Vec<u8>> {
    let comment = comment.as_str()?;
    let len = u8::try_from(comment.len() + 1).ok()?;
    let mut userdata = vec![0, len];
    userdata.extend_from_slice(comment.as_bytes());
    userdata.push(0);
    Some(userdata)
}

fn only(object: &Value, allowed: &[&str]) -> Option<()> {
    object.as_object()?.keys().all(|k| allowed.contains(&k.as_str())).then_some(())
}

/// Created unless it exists: no NLM_F_EXCL, as nft's `add`.
const ADD_FLAGS: i32 = libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_ACK | libc::NLM_F_ECHO;

fn add_table(table: &Value) -> Option<Vec<u8>> {
    only(table, &["family", "name", "comment"])?;
    let family = family_number(table.get("family")?.as_str()?)?;
    let mut attributes = Attributes::default();
    attributes.string(1, table.get("name")?.as_str()?); // NFTA_TABLE_NAME
    if let Some(comment) = table.get("comment") {
        attributes.bytes(6, &comment_userdata(comment)?); // NFTA_TABLE_USERDATA
    }
    Some(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE, ADD_FLAGS as u16, 0, family, 0, &attributes.0))
}

/// A chain, or a base chain with its type, hook, priority and policy.
fn add_chain(chain: &Value) -> Option<Vec<u8>> {
    only(chain, &["family", "table", "name", "comment", "type", "hook", "prio", "policy"])?;
    let family = family_number(chain.get("family")?.as_str()?)?;
    let mut attributes = Attributes::default();
    attributes.string(1, chain.get("table")?.as_str()?).string(3, chain.get("name")?.as_str()?);
    if let Some(hook) = chain.get("hook") {
        let number = ["prerouting", "input", "forward", "output", "postrouting"].iter().position(|h| hook == *h)?;
        let priority = i32::try_from(chain.get("prio")?.as_i64()?).ok()?;
        let mut nested = Attributes::default();
        nested.u32(NFTA_HOOK_HOOKNUM, number as u32).u32(NFTA_HOOK_PRIORITY, priority as u32);
        attributes.nested(NFTA_CHAIN_HOOK, &nested);
        let policy = match chain.get("policy").map(Value::as_str) {
            None | Some(Some("accept")) => 1,
            Some(Some("drop")) => 0,
            _ => return None,
        };
        attributes.u32(NFTA_CHAIN_POLICY, policy);
        let kind = chain.get("type")?.as_str().filter(|k| ["filter", "nat", "route"].contains(k))?;
        attributes.string(NFTA_CHAIN_TYPE, kind);
    } else if ["type", "prio", "policy"].iter().any(|k| chain.get(k).is_some()) {
        return None;
    }
    if let Some(comment) = chain.get("comment") {
        attributes.bytes(12, &comment_userdata(comment)?); // NFTA_CHAIN_USERDATA
    }
    Some(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN, ADD_FLAGS as u16, 0, family, 0, &attributes.0))
}

/// `flush chain`: a rule deletion naming the chain and no handle.
fn flush_chain(chain: &Value) -> Option<Vec<u8>> {
    only(chain, &["family", "table", "name"])?;
    let family = family_number(chain.get("family")?.as_str()?)?;
    let mut attributes = Attributes::default();
    attributes.string(NFTA_RULE_TABLE, chain.get("table")?.as_str()?);
    attributes.string(NFTA_RULE_CHAIN, chain.get("name")?.as_str()?);
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    Some(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE, flags, 0, family, 0, &attributes.0))
}

fn add_rule(rule: &Value) -> Option<Vec<u8>> {
    let allowed = ["family", "table", "chain", "expr", "comment"];
    if rule.as_object()?.keys().any(|k| !allowed.contains(&k.as_str())) {
        return None;
    }
    let (family_name, family, mut attributes) = rule_location(rule)?;
    let mut encoder = Rule { family: family_name, list: Attributes::default(), network: None, transport: false };
    for expression in rule.get("expr")?.as_array()? {
        encoder.statement(expression)?;
    }
    attributes.nested(NFTA_RULE_EXPRESSIONS, &encoder.list);
    if let Some(comment) = rule.get("comment") {
        attributes.bytes(NFTA_RULE_USERDATA, &comment_userdata(comment)?);
    }
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_APPEND | libc::NLM_F_ACK | libc::NLM_F_ECHO) as u16;
    Some(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, flags, 0, family, 0, &attributes.0))
}

/// One rule's expressions, with the dependencies nft adds: `meta nfproto`
/// before the first network header match of an inet table, `meta l4proto`
/// before the first transport header match.
struct Rule<'a> {
    family: &'a str,
    list: Attributes,
    /// The network protocol already matched ("ip" or "ip6").
    network: Option<&'static str>,
    transport: bool,
}

impl Rule<'_> {
    fn expression(&mut self, name: &str, data: &Attributes) {
        let mut element = Attributes::default();
        element.string(NFTA_EXPR_NAME, name);
        element.nested(NFTA_EXPR_DATA, data);
        self.list.nested(NFTA_LIST_ELEM, &element);
    }

    fn meta(&mut self, key: u32) {
        let mut data = Attributes::default();
        data.u32(2, key).u32(1, NFT_REG_1); // NFTA_META_KEY, NFTA_META_DREG
        self.expression("meta", &data);
    }

    fn cmp(&mut self, op: u32, value: &[u8]) {
        let mut data = Attributes::default();
        data.u32(1, NFT_REG_1).u32(2, op).data(3, value); // SREG, OP, DATA
        self.expression("cmp", &data);
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32) {
        let mut data = Attributes::default();
        // DREG, BASE, OFFSET, LEN
        data.u32(1, NFT_REG_1).u32(2, base).u32(3, offset).u32(4, len);
        self.expression("payload", &data);
    }

    fn bitwise(&mut self, mask: &[u8], xor: &[u8]) {
        let mut data = Attributes::default();
        // SREG, DREG, LEN, MASK, XOR
        data.u32(1, NFT_REG_1).u32(2, NFT_REG_1).u32(3, mask.len() as u32).data(4, mask).data(5, xor);
        self.expression("bitwise", &data);
    }

    fn immediate(&mut self, register: u32, value: &[u8]) {
        let mut data = Attributes::default();
        data.u32(1, register).data(2, value); // DREG, DATA
        self.expression("immediate", &data);
    }

    fn verdict(&mut self, code: i32, chain: Option<&str>) {
        let mut verdict = Attributes::default();
        verdict.u32(NFTA_VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            verdict.string(NFTA_VERDICT_CHAIN, chain);
        }
        let mut value = Attributes::default();
        value.nested(NFTA_DATA_VERDICT, &verdict);
        let mut data = Attributes::default();
        data.u32(1, NFT_REG_VERDICT).nested(2, &value);
        self.expression("immediate", &data);
    }

    fn statement(&mut self, statement: &Value) -> Option<()> {
        let object = statement.as_object().filter(|o| o.len() == 1)?;
        let (kind, body) = object.iter().next()?;
        // Verdict codes: NF_DROP, NF_ACCEPT, and nftables' own (negative).
        let verdict = match kind.as_str() {
            "match" => return self.matches(body),
            "dnat" => return self.dnat(body),
            "masquerade" if body.is_null() => {
                self.expression("masq", &Attributes::default());
                return Some(());
            }
            "accept" if body.is_null() => (1, None),
            "drop" if body.is_null() => (0, None),
            "return" if body.is_null() => (-5, None),
            "jump" => (-3, Some(body.get("target")?.as_str()?)),
            "goto" => (-4, Some(body.get("target")?.as_str()?)),
            _ => return None,
        };
        self.verdict(verdict.0, verdict.1);
        Some(())
    }

    fn matches(&mut self, body: &Value) -> Option<()> {
        let op = body.get("op")?.as_str()?;
        let left = body.get("left")?;
        let right = body.get("right")?;
        if let Some(ct) = left.get("ct") {
            // `ct state established,related`: any of the flags, as nft
            // encodes a flag list (the state is in host byte order).
            if ct.get("key")?.as_str()? != "state" || ct.as_object()?.len() != 1 || !matches!(op, "in" | "==") {
                return None;
            }
            let states: Vec<&Value> = match right {
                Value::Array(states) => states.iter().collect(),
                state => vec![state],
            };
            let mut mask = 0u32;
            for state in states {
                mask |= match state.as_str()? {
                    "invalid" => 1,
                    "established" => 2,
                    "related" => 4,
                    "new" => 8,
                    "untracked" => 64,
                    _ => return None,
                };
            }
            let mut data = Attributes::default();
            data.u32(2, NFT_CT_STATE).u32(1, NFT_REG_1); // KEY, DREG
            self.expression("ct", &data);
            self.bitwise(&mask.to_ne_bytes(), &[0; 4]);
            self.cmp(NFT_CMP_NEQ, &[0; 4]);
            return Some(());
        }
        let op = match op {
            "==" => NFT_CMP_EQ,
            "!=" => NFT_CMP_NEQ,
            _ => return None,
        };
        if let Some(fib) = left.get("fib") {
            // `fib daddr type local`: the route type, in host byte order.
            let flags = fib.get("flags")?.as_array()?;
            if fib.get("result")?.as_str()? != "type" || flags.len() != 1 || flags[0] != "daddr" || op != NFT_CMP_EQ {
                return None;
            }
            let kind: u32 = match right.as_str()? {
                "unicast" => 1,
                "local" => 2,
                "broadcast" => 3,
                "anycast" => 4,
                "multicast" => 5,
                _ => return None,
            };
            let mut data = Attributes::default();
            data.u32(1, NFT_REG_1).u32(2, 3).u32(3, 2); // DREG, RESULT addrtype, FLAGS daddr
            self.expression("fib", &data);
            self.cmp(NFT_CMP_EQ, &kind.to_ne_bytes());
            return Some(());
        }
        if let Some(meta) = left.get("meta") {
            let key = match meta.get("key")?.as_str()? {
                "iifname" => NFT_META_IIFNAME,
                "oifname" => NFT_META_OIFNAME,
                _ => return None,
            };
            // A name is compared whole, padded to IFNAMSIZ (a trailing '*'
            // would be a prefix match, encoded otherwise).
            let name = right.as_str().filter(|n| n.len() < IFNAMSIZ && !n.contains(['*', '\\']))?;
            let mut value = name.as_bytes().to_vec();
            value.resize(IFNAMSIZ, 0);
            self.meta(key);
            self.cmp(op, &value);
            return Some(());
        }
        let payload = left.get("payload")?;
        if payload.as_object()?.len() != 2 {
            return None;
        }
        let protocol = payload.get("protocol")?.as_str()?;
        let field = payload.get("field")?.as_str()?;
        match protocol {
            "ip" => self.address("ip", field, op, right),
            "ip6" => self.address("ip6", field, op, right),
            "tcp" | "udp" => self.port(protocol, field, op, right),
            _ => None,
        }
    }

    /// `ip saddr 10.0.0.2`, `ip6 daddr != fd00::/64`: the address, or a
    /// prefix on a byte boundary (nft loads only its bytes).
    fn address(&mut self, protocol: &'static str, field: &str, op: u32, right: &Value) -> Option<()> {
        let (nfproto, offset, size) = match (protocol, field) {
            ("ip", "saddr") => (NFPROTO_IPV4, 12, 4),
            ("ip", "daddr") => (NFPROTO_IPV4, 16, 4),
            ("ip6", "saddr") => (NFPROTO_IPV6, 8, 16),
            ("ip6", "daddr") => (NFPROTO_IPV6, 24, 16),
            _ => return None,
        };
        let (address, len) = match right {
            Value::String(address) => (address.as_str(), size * 8),
            Value::Object(o) => {
                let prefix = o.get("prefix").filter(|_| o.len() == 1)?;
                (prefix.get("addr")?.as_str()?, u32::try_from(prefix.get("len")?.as_u64()?).ok()?)
            }
            _ => return None,
        };
        // Off a byte boundary nft loads the whole IPv4 address and masks
        // it; how it loads IPv6 then is not reproduced here.
        let masked = len % 8 != 0;
        if len == 0 || len > size * 8 || (masked && protocol != "ip") {
            return None;
        }
        let bytes: Vec<u8> = match address.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) if protocol == "ip" => a.octets().to_vec(),
            std::net::IpAddr::V6(a) if protocol == "ip6" => a.octets().to_vec(),
            _ => return None,
        };
        let kept = if masked { size as usize } else { (len / 8) as usize };
        let mask: Vec<u8> = (0..size)
            .map(|i| (0xffu32 << 8).checked_shr(len.saturating_sub(i * 8).min(8)).unwrap_or(0) as u8)
            .collect();
        // A prefix's host bits must be zero (nft refuses it otherwise).
        if bytes.iter().zip(&mask).any(|(b, m)| b & !m != 0) {
            return None;
        }
        match (self.family, self.network) {
            ("inet", None) => {
                self.meta(NFT_META_NFPROTO);
                self.cmp(NFT_CMP_EQ, &[nfproto]);
            }
            ("inet", Some(matched)) if matched == protocol => {}
            (family, None) if family == protocol => {}
            (family, Some(matched)) if family == protocol && matched == protocol => {}
            _ => return None,
        }
        self.network = Some(protocol);
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, kept as u32);
        if masked {
            self.bitwise(&mask, &vec![0; mask.len()]);
        }
        self.cmp(op, &bytes[..kept]);
        Some(())
    }

    /// `tcp dport 8080`, after `meta l4proto tcp` (once per rule: nft's
    /// dependency, as it adds it in ip, ip6 and inet tables alike).
    fn port(&mut self, protocol: &str, field: &str, op: u32, right: &Value) -> Option<()> {
        let offset = match field {
            "sport" => 0,
            "dport" => 2,
            _ => return None,
        };
        let port = u16::try_from(right.as_u64()?).ok()?;
        if self.transport {
            // A second transport protocol in one rule: leave it to nft.
            return None;
        }
        self.meta(NFT_META_L4PROTO);
        self.cmp(NFT_CMP_EQ, &[if protocol == "tcp" { 6 } else { 17 }]);
        self.transport = true;
        self.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset, 2);
        self.cmp(op, &port.to_be_bytes());
        Some(())
    }

    /// `dnat to <addr>:<port>` in an ip or ip6 table.
    fn dnat(&mut self, body: &Value) -> Option<()> {
        let object = body.as_object()?;
        if object.keys().any(|k| !["addr", "port", "family"].contains(&k.as_str())) {
            return None;
        }
        let family = match object.get("family") {
            Some(family) => family.as_str()?,
            None => self.family,
        };
        if family != self.family {
            return None;
        }
        let (nfproto, address): (u8, Vec<u8>) = match (family, object.get("addr")?.as_str()?.parse().ok()?) {
            ("ip", std::net::IpAddr::V4(a)) => (NFPROTO_IPV4, a.octets().to_vec()),
            ("ip6", std::net::IpAddr::V6(a)) => (NFPROTO_IPV6, a.octets().to_vec()),
            _ => return None,
        };
        let port = u16::try_from(object.get("port")?.as_u64()?).ok()?;
        self.immediate(NFT_REG_1, &address);
        self.immediate(NFT_REG_2, &port.to_be_bytes());
        let mut data = Attributes::default();
        // TYPE, FAMILY, REG_ADDR_MIN, REG_PROTO_MIN, FLAGS
        data.u32(1, NFT_NAT_DNAT)
            .u32(2, nfproto as u32)
            .u32(3, NFT_REG_1)
            .u32(5, NFT_REG_2)
            .u32(7, NF_NAT_RANGE_PROTO_SPECIFIED);
        self.expression("nat", &data);
        Some(())
    }
}

// Listing one chain. nft lists a chain by first reading every table,
// chain and rule of the namespace; the kernel can instead dump one chain's
// rules (NFT_MSG_GETRULE filtered by table and chain). The rules are
// decoded back into nft's JSON for the same expressions [`encode`] writes
// plus the shared chains' verdicts, prefixes and `fib daddr type`; a
// chain holding anything else is listed by nft.

/// What the kernel said of one chain or table.
pub enum Listed {
    /// The chain or table does not exist.
    Missing,
    /// nft's `{"nftables": [...]}` of it, without metainfo.
    Found(Value),
    /// Something this module does not decode: ask nft.
    Undecoded,
}

fn request(kind: u16, dump: bool, seq: u32, family: u8, attributes: &Attributes) -> Vec<u8> {
    let flags = libc::NLM_F_REQUEST | if dump { libc::NLM_F_DUMP } else { libc::NLM_F_ACK };
    message((NFNL_SUBSYS_NFTABLES << 8) | kind, flags as u16, seq, family, 0, &attributes.0)
}

/// Sends one request and collects its replies, to NLMSG_DONE for a dump
/// and to the acknowledgement otherwise; Ok(Err(errno)) when the kernel
/// refused it.
fn exchange(
    socket: &mut netlink_sys::Socket,
    request: &[u8],
    buffer: &mut [u8],
) -> std::io::Result<std::result::Result<Vec<Vec<u8>>, i32>> {
    socket.send(request, 0)?;
    let mut replies = Vec::new();
    loop {
        let n = socket.recv(&mut &mut buffer[..], 0)?;
        for reply in split(&buffer[..n]) {
            match reply_type(reply) {
                NLMSG_DONE => return Ok(Ok(replies)),
                NLMSG_ERROR => {
                    return Ok(match error_of(reply) {
                        0 => Ok(replies),
                        errno => Err(-errno),
                    });
                }
                _ => replies.push(reply.to_vec()),
            }
        }
    }
}

/// Runs `f` with a netfilter netlink socket opened in the namespace.
fn with_socket<T: Send>(
    ns: &Netns,
    f: impl FnOnce(&mut netlink_sys::Socket, &mut [u8]) -> std::io::Result<T> + Send,
) -> Option<T> {
    ns.run("listing nftables objects over netlink", || {
        let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        set_receive_timeout(&socket, std::time::Duration::from_secs(5))?;
        let mut buffer = vec![0u8; 64 * 1024];
        f(&mut socket, &mut buffer)
    })
    .ok()
}

/// One NFT_MSG_GET* request for an object named by string attributes:
/// Some(Some(reply)) with its NEW* message (or an empty one when the kernel
/// only acknowledged), Some(None) when it does not exist, None when the
/// kernel could not say.
pub(crate) fn get(ns: &Netns, family: &str, kind: u16, names: &[(u16, &str)]) -> Option<Option<Vec<u8>>> {
    let family = family_number_of(family)?;
    let mut attributes = Attributes::default();
    for (kind, value) in names {
        attributes.string(*kind, value);
    }
    let request = request(kind, false, 1, family, &attributes);
    match with_socket(ns, |socket, buffer| exchange(socket, &request, buffer))? {
        Ok(mut replies) => Some(Some(replies.pop().unwrap_or_default())),
        Err(errno) if errno == libc::ENOENT => Some(None),
        Err(_) => None,
    }
}

/// One chain and its rules, read over netlink in the namespace.
pub fn list_chain(ns: &Netns, family: &str, table: &str, chain: &str) -> Listed {
    let Some(family_number) = family_number(family) else { return Listed::Undecoded };
    let mut names = Attributes::default();
    names.string(1, table).string(3, chain); // NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME
    let get_chain = request(NFT_MSG_GETCHAIN, false, 1, family_number, &names);
    let mut location = Attributes::default();
    location.string(NFTA_RULE_TABLE, table).string(NFTA_RULE_CHAIN, chain);
    let dump_rules = request(NFT_MSG_GETRULE, true, 2, family_number, &location);
    let replies = with_socket(ns, |socket, buffer| {
        let chain = exchange(socket, &get_chain, buffer)?;
        let rules = match chain {
            Ok(_) => Some(exchange(socket, &dump_rules, buffer)?),
            Err(_) => None,
        };
        Ok((chain, rules))
    });
    let chain_reply = match replies {
        Some((Ok(chain), Some(Ok(rules)))) => (chain, rules),
        Some((Err(errno), _)) if errno == libc::ENOENT => return Listed::Missing,
        _ => return Listed::Undecoded,
    };
    let (chain_replies, rules) = chain_reply;
    let decoded = (|| {
        let chain_message =
            chain_replies.iter().find(|r| reply_type(r) == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN)?;
        let mut objects = vec![serde_json::json!({"chain": decode_chain(family, table, chain_message.get(20..)?)?})];
        for rule in &rules {
            objects.push(serde_json::json!({"rule": decode_rule(family, table, rule)?}));
        }
        Some(serde_json::json!({ "nftables": objects }))
    })();
    decoded.map_or(Listed::Undecoded, Listed::Found)
}

/// One table, its chains and their rules, as `nft -j list table` lists
/// them (table, chains, then rules chain by chain); a table with sets, or
/// flags, is left to nft.
pub fn list_table(ns: &Netns, family: &str, table: &str) -> Listed {
    let Some(family_number) = family_number(family) else { return Listed::Undecoded };
    let mut name = Attributes::default();
    name.string(1, table); // NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_SET_TABLE, NFTA_RULE_TABLE
    let requests = [
        request(NFT_MSG_GETTABLE, false, 1, family_number, &name),
        request(NFT_MSG_GETCHAIN, true, 2, family_number, &name),
        request(NFT_MSG_GETSET, true, 3, family_number, &name),
        request(NFT_MSG_GETRULE, true, 4, family_number, &name),
    ];
    let replies = with_socket(ns, |socket, buffer| {
        let mut out = Vec::new();
        for request in &requests {
            let reply = exchange(socket, request, buffer)?;
            let failed = reply.is_err();
            out.push(reply);
            if failed {
                break;
            }
        }
        Ok(out)
    });
    let Some(replies) = replies else { return Listed::Undecoded };
    let mut answers = Vec::new();
    for reply in replies {
        match reply {
            Ok(messages) => answers.push(messages),
            Err(errno) if errno == libc::ENOENT && answers.is_empty() => return Listed::Missing,
            Err(_) => return Listed::Undecoded,
        }
    }
    let decoded = (|| {
        let [table_replies, chains, sets, rules] = <[Vec<Vec<u8>>; 4]>::try_from(answers).ok()?;
        let table_message =
            table_replies.iter().find(|r| reply_type(r) == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE)?;
        let attributes = table_message.get(20..)?;
        if crate::netlink::find_attribute(attributes, NFTA_TABLE_FLAGS).and_then(be_u32).unwrap_or(0) != 0 {
            return None;
        }
        let handle =
            u64::from_be_bytes(crate::netlink::find_attribute(attributes, NFTA_TABLE_HANDLE)?.try_into().ok()?);
        // Set dumps filter by table name: any set here is not decoded.
        if sets.iter().any(|s| name_of(s, 1) == Some(table)) {
            return None;
        }
        let mut objects = vec![serde_json::json!({"table": {"family": family, "name": table, "handle": handle}})];
        let mut order = Vec::new();
        for chain in chains.iter().filter(|c| name_of(c, 1) == Some(table)) {
            let decoded = decode_chain(family, table, chain.get(20..)?)?;
            order.push(decoded["name"].as_str()?.to_string());
            objects.push(serde_json::json!({"chain": decoded}));
        }
        let mut decoded_rules = Vec::new();
        for rule in rules.iter().filter(|r| name_of(r, NFTA_RULE_TABLE) == Some(table)) {
            decoded_rules.push(decode_rule(family, table, rule)?);
        }
        // The kernel dumps chain by chain already; keep nft's order anyway.
        decoded_rules.sort_by_key(|r| order.iter().position(|c| r["chain"] == c.as_str()));
        objects.extend(decoded_rules.into_iter().map(|rule| serde_json::json!({"rule": rule})));
        Some(serde_json::json!({ "nftables": objects }))
    })();
    decoded.map_or(Listed::Undecoded, Listed::Found)
}

/// A string attribute of a reply's message (after nlmsghdr and nfgenmsg).
fn name_of(reply: &[u8], kind: u16) -> Option<&str> {
    let value = crate::netlink::find_attribute(reply.get(20..)?, kind)?;
    std::str::from_utf8(value).ok().map(|s| s.trim_end_matches('\0'))
}

fn error_of(reply: &[u8]) -> i32 {
    reply.get(16..20).map_or(0, |e| i32::from_ne_bytes(e.try_into().unwrap_or_default()))
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// A chain as nft 1.0's JSON shows it: a comment (userdata) is not shown.
fn decode_chain(family: &str, table: &str, attributes: &[u8]) -> Option<Value> {
    let find = |kind| crate::netlink::find_attribute(attributes, kind);
    let name = std::str::from_utf8(find(3)?).ok()?.trim_end_matches('\0'); // NFTA_CHAIN_NAME
    let handle = u64::from_be_bytes(find(NFTA_CHAIN_HANDLE)?.try_into().ok()?);
    let mut chain = serde_json::json!({"family": family, "table": table, "name": name, "handle": handle});
    if let Some(hook) = find(NFTA_CHAIN_HOOK) {
        let number = be_u32(crate::netlink::find_attribute(hook, NFTA_HOOK_HOOKNUM)?)?;
        let priority = be_u32(crate::netlink::find_attribute(hook, NFTA_HOOK_PRIORITY)?)? as i32;
        let hook = ["prerouting", "input", "forward", "output", "postrouting"].get(number as usize)?;
        let kind = std::str::from_utf8(find(NFTA_CHAIN_TYPE)?).ok()?.trim_end_matches('\0');
        let policy = match be_u32(find(NFTA_CHAIN_POLICY)?)? {
            0 => "drop",
            1 => "accept",
            _ => return None,
        };
        chain["type"] = kind.into();
        chain["hook"] = (*hook).into();
        chain["prio"] = priority.into();
        chain["policy"] = policy.into();
    }
    Some(chain)
}

fn decode_rule(family: &str, table: &str, reply: &[u8]) -> Option<Value> {
    if reply_type(reply) != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE {
        return None;
    }
    let chain = name_of(reply, NFTA_RULE_CHAIN)?;
    let attributes = reply.get(20..)?;
    let mut handle = None;
    let mut comment = None;
    let mut expressions = None;
    for (kind, payload) in crate::netlink::attributes(attributes) {
        match kind {
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(payload.try_into().ok()?)),
            NFTA_RULE_EXPRESSIONS => expressions = Some(payload),
            NFTA_RULE_USERDATA => comment = Some(rule_comment(payload)?),
            NFTA_RULE_TABLE | NFTA_RULE_CHAIN => {}
            // NFTA_RULE_POSITION and the like say nothing nft lists.
            5 | 6 | 8 => {}
            _ => return None,
        }
    }
    let mut decoder = Decoder { family, ..Decoder::default() };
    for (kind, element) in crate::netlink::attributes(expressions?) {
        if kind != NFTA_LIST_ELEM {
            return None;
        }
        let name = crate::netlink::find_attribute(element, NFTA_EXPR_NAME)?;
        let name = std::str::from_utf8(name).ok()?.trim_end_matches('\0');
        let data = crate::netlink::find_attribute(element, NFTA_EXPR_DATA).unwrap_or_default();
        decoder.expression(name, data)?;
    }
    let expr = decoder.finish()?;
    let mut rule = serde_json::json!({"family": family, "table": table, "chain": chain, "handle": handle?});
    if let Some(comment) = comment {
        rule["comment"] = Value::String(comment);
    }
    rule["expr"] = Value::Array(expr);
    Some(rule)
}

/// libnftnl's user data: only a comment (type 0) is decoded.
fn rule_comment(userdata: &[u8]) -> Option<String> {
    let (&kind, rest) = userdata.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let value = rest.get(..len as usize)?;
    if kind != 0 || rest.len() != len as usize {
        return None;
    }
    Some(std::str::from_utf8(value).ok()?.trim_end_matches('\0').to_string())
}

/// What register 1 holds while a rule is decoded.
#[derive(Clone, Debug, PartialEq)]
enum Loaded {
    Meta(u32),
    Payload { base: u32, offset: u32, len: u32 },
    Ct(u32),
    Fib { result: u32, flags: u32 },
    Masked(Box<Loaded>, Vec<u8>),
}

#[derive(Default)]
struct Decoder<'a> {
    family: &'a str,
    out: Vec<Value>,
    reg1: Option<Loaded>,
    /// Register 1 and 2 immediates, for nat.
    immediates: [Option<Vec<u8>>; 2],
    /// `meta nfproto` matched (inet), and whether a payload used it.
    network: Option<(&'static str, bool)>,
    /// `meta l4proto` matched, and whether a payload used it.
    transport: Option<(&'static str, bool)>,
}

impl Decoder<'_> {
    fn expression(&mut self, name: &str, data: &[u8]) -> Option<()> {
        let attributes: Vec<(u16, &[u8])> = crate::netlink::attributes(data).collect();
        let get = |kind: u16| attributes.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        let value = |kind: u16| get(kind).and_then(|nested| crate::netlink::find_attribute(nested, NFTA_DATA_VALUE));
        match name {
            "meta" if be_u32(get(1)?)? == NFT_REG_1 => self.reg1 = Some(Loaded::Meta(be_u32(get(2)?)?)),
            "payload" if be_u32(get(1)?)? == NFT_REG_1 => {
                self.reg1 =
                    Some(Loaded::Payload { base: be_u32(get(2)?)?, offset: be_u32(get(3)?)?, len: be_u32(get(4)?)? })
            }
            "ct" if be_u32(get(1)?)? == NFT_REG_1 && get(3).is_none() => self.reg1 = Some(Loaded::Ct(be_u32(get(2)?)?)),
            "fib" if be_u32(get(1)?)? == NFT_REG_1 => {
                self.reg1 = Some(Loaded::Fib { result: be_u32(get(2)?)?, flags: be_u32(get(3)?)? })
            }
            "bitwise" => {
                let op = get(6).map_or(Some(0), be_u32)?;
                let xor = value(5)?;
                if op != 0
                    || be_u32(get(1)?)? != NFT_REG_1
                    || be_u32(get(2)?)? != NFT_REG_1
                    || xor.iter().any(|b| *b != 0)
                {
                    return None;
                }
                let inner = self.reg1.take()?;
                self.reg1 = Some(Loaded::Masked(Box::new(inner), value(4)?.to_vec()));
            }
            "cmp" if be_u32(get(1)?)? == NFT_REG_1 => {
                let op = match be_u32(get(2)?)? {
                    NFT_CMP_EQ => "==",
                    NFT_CMP_NEQ => "!=",
                    _ => return None,
                };
                let loaded = self.reg1.take()?;
                self.compare(loaded, op, value(3)?)?;
            }
            "immediate" => {
                let register = be_u32(get(1)?)?;
                let data = get(2)?;
                if register == NFT_REG_VERDICT {
                    let verdict = crate::netlink::find_attribute(data, NFTA_DATA_VERDICT)?;
                    let code = be_u32(crate::netlink::find_attribute(verdict, NFTA_VERDICT_CODE)?)? as i32;
                    let target = crate::netlink::find_attribute(verdict, NFTA_VERDICT_CHAIN)
                        .and_then(|c| std::str::from_utf8(c).ok())
                        .map(|c| c.trim_end_matches('\0'));
                    self.out.push(match (code, target) {
                        (1, None) => serde_json::json!({"accept": null}),
                        (0, None) => serde_json::json!({"drop": null}),
                        (-5, None) => serde_json::json!({"return": null}),
                        (-3, Some(chain)) => serde_json::json!({"jump": {"target": chain}}),
                        (-4, Some(chain)) => serde_json::json!({"goto": {"target": chain}}),
                        _ => return None,
                    });
                } else {
                    let slot = self.immediates.get_mut((register as usize).checked_sub(1)?)?;
                    *slot = Some(crate::netlink::find_attribute(data, NFTA_DATA_VALUE)?.to_vec());
                }
            }
            "masq" if attributes.is_empty() => self.out.push(serde_json::json!({"masquerade": null})),
            "nat" => self.nat(&get)?,
            _ => return None,
        }
        Some(())
    }

    fn compare(&mut self, loaded: Loaded, op: &str, data: &[u8]) -> Option<()> {
        let matched =
            |left: Value, right: Value| serde_json::json!({"match": {"op": op, "left": left, "right": right}});
        match loaded {
            Loaded::Meta(NFT_META_NFPROTO) if op == "==" && self.family == "inet" && self.network.is_none() => {
                self.network = Some((
                    match data {
                        [NFPROTO_IPV4] => "ip",
                        [NFPROTO_IPV6] => "ip6",
                        _ => return None,
                    },
                    false,
                ));
            }
            Loaded::Meta(NFT_META_L4PROTO) if op == "==" && self.transport.is_none() => {
                self.transport = Some((
                    match data {
                        [6] => "tcp",
                        [17] => "udp",
                        _ => return None,
                    },
                    false,
                ));
            }
            Loaded::Meta(key @ (NFT_META_IIFNAME | NFT_META_OIFNAME)) if data.len() == IFNAMSIZ => {
                let end = data.iter().position(|b| *b == 0)?;
                if data[end..].iter().any(|b| *b != 0) || end == 0 {
                    return None;
                }
                let name = std::str::from_utf8(&data[..end]).ok()?;
                let key = if key == NFT_META_IIFNAME { "iifname" } else { "oifname" };
                self.out.push(matched(serde_json::json!({"meta": {"key": key}}), name.into()));
            }
            Loaded::Payload { base: NFT_PAYLOAD_NETWORK_HEADER, offset, len } => {
                let (protocol, field, size) = self.network_field(offset)?;
                if len as usize != data.len() || len == 0 || len > size {
                    return None;
                }
                let right = address(protocol, data, (len * 8) as usize, size)?;
                self.out.push(matched(serde_json::json!({"payload": {"protocol": protocol, "field": field}}), right));
            }
            Loaded::Masked(inner, mask) => match *inner {
                Loaded::Payload { base: NFT_PAYLOAD_NETWORK_HEADER, offset, len } => {
                    let (protocol, field, size) = self.network_field(offset)?;
                    let bits = prefix_bits(&mask)?;
                    if len as usize != data.len() || mask.len() != data.len() || bits == 0 || bits as u32 >= len * 8 {
                        return None;
                    }
                    let right = address(protocol, data, bits, size)?;
                    self.out
                        .push(matched(serde_json::json!({"payload": {"protocol": protocol, "field": field}}), right));
                }
                Loaded::Ct(NFT_CT_STATE) if op == "!=" && data == [0; 4] && mask.len() == 4 => {
                    let mask = u32::from_ne_bytes(mask.as_slice().try_into().ok()?);
                    let names = [(1, "invalid"), (2, "established"), (4, "related"), (8, "new"), (64, "untracked")];
                    let known: u32 = names.iter().map(|(bit, _)| bit).sum();
                    if mask == 0 || mask & !known != 0 {
                        return None;
                    }
                    let states: Vec<Value> =
                        names.iter().filter(|(bit, _)| mask & bit != 0).map(|(_, name)| Value::from(*name)).collect();
                    let right = if states.len() == 1 { states[0].clone() } else { Value::Array(states) };
                    self.out.push(
                        serde_json::json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": right}}),
                    );
                }
                _ => return None,
            },
            Loaded::Payload { base: NFT_PAYLOAD_TRANSPORT_HEADER, offset, len: 2 } if data.len() == 2 => {
                let (protocol, used) = self.transport.as_mut()?;
                if *used {
                    return None;
                }
                *used = true;
                let field = match offset {
                    0 => "sport",
                    2 => "dport",
                    _ => return None,
                };
                let port = u16::from_be_bytes([data[0], data[1]]);
                self.out.push(matched(
                    serde_json::json!({"payload": {"protocol": *protocol, "field": field}}),
                    port.into(),
                ));
            }
            // `fib daddr type <type>`: the route type, in host byte order.
            Loaded::Fib { result: 3, flags: 2 } if data.len() == 4 => {
                let kind = match u32::from_ne_bytes(data.try_into().ok()?) {
                    1 => "unicast",
                    2 => "local",
                    3 => "broadcast",
                    4 => "anycast",
                    5 => "multicast",
                    _ => return None,
                };
                self.out.push(matched(serde_json::json!({"fib": {"result": "type", "flags": ["daddr"]}}), kind.into()));
            }
            _ => return None,
        }
        Some(())
    }

    /// (protocol, field, address size) of a network header offset, in the
    /// table's family or after inet's `meta nfproto`.
    fn network_field(&mut self, offset: u32) -> Option<(&'static str, &'static str, u32)> {
        let protocol = match (self.family, &mut self.network) {
            ("ip", None) => "ip",
            ("ip6", None) => "ip6",
            ("inet", Some((protocol, used))) => {
                *used = true;
                *protocol
            }
            _ => return None,
        };
        match (protocol, offset) {
            ("ip", 12) => Some(("ip", "saddr", 4)),
            ("ip", 16) => Some(("ip", "daddr", 4)),
            ("ip6", 8) => Some(("ip6", "saddr", 16)),
            ("ip6", 24) => Some(("ip6", "daddr", 16)),
            _ => None,
        }
    }

    fn nat<'d>(&mut self, get: &dyn Fn(u16) -> Option<&'d [u8]>) -> Option<()> {
        // TYPE dnat, FAMILY, REG_ADDR_MIN 1 (MAX 1), REG_PROTO_MIN 2 (MAX 2).
        if be_u32(get(1)?)? != NFT_NAT_DNAT
            || be_u32(get(3)?)? != NFT_REG_1
            || get(4).is_some_and(|r| be_u32(r) != Some(NFT_REG_1))
            || be_u32(get(5)?)? != NFT_REG_2
            || get(6).is_some_and(|r| be_u32(r) != Some(NFT_REG_2))
        {
            return None;
        }
        let flags = get(7).map_or(Some(0), be_u32)?;
        // MAP_IPS and PROTO_SPECIFIED only (the kernel adds MAP_IPS).
        if flags & !3 != 0 {
            return None;
        }
        let protocol = match (be_u32(get(2)?)? as u8, self.family) {
            (NFPROTO_IPV4, "ip") => "ip",
            (NFPROTO_IPV6, "ip6") => "ip6",
            _ => return None,
        };
        let [Some(addr), Some(port)] = std::mem::take(&mut self.immediates) else { return None };
        let size = if protocol == "ip" { 4 } else { 16 };
        let addr = address(protocol, &addr, size as usize * 8, size)?;
        let port: [u8; 2] = port.as_slice().try_into().ok()?;
        self.out.push(serde_json::json!({"dnat": {"addr": addr, "port": u16::from_be_bytes(port)}}));
        Some(())
    }

    /// The expressions, once every dependency was used by the match it
    /// stands for (a lone `meta nfproto` is listed by nft, not here).
    fn finish(self) -> Option<Vec<Value>> {
        let used = |dependency: Option<(&str, bool)>| dependency.is_none_or(|(_, used)| used);
        let clean = self.reg1.is_none() && self.immediates.iter().all(Option::is_none);
        (used(self.network) && used(self.transport) && clean).then_some(self.out)
    }
}

/// The number of leading one bits of a prefix mask, None if not a prefix.
fn prefix_bits(mask: &[u8]) -> Option<usize> {
    let bits: Vec<bool> = mask.iter().flat_map(|b| (0..8).rev().map(move |i| b & (1 << i) != 0)).collect();
    let ones = bits.iter().take_while(|b| **b).count();
    bits[ones..].iter().all(|b| !b).then_some(ones)
}

/// An address (all `size` bytes given) or a prefix of `bits`, as nft writes
/// the right-hand side; the bytes beyond `data` are zero.
fn address(protocol: &str, data: &[u8], bits: usize, size: u32) -> Option<Value> {
    let mut bytes = data.to_vec();
    bytes.resize(size as usize, 0);
    let text = match protocol {
        "ip" => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes.as_slice()).ok()?).to_string(),
        _ => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?).to_string(),
    };
    Some(if bits == size as usize * 8 {
        Value::String(text)
    } else {
        serde_json::json!({"prefix": {"addr": text, "len": bits}})
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(family: &str, expr: Value) -> Value {
        json!({"nftables": [{"add": {"rule": {"family": family, "table": "t", "chain": "c", "expr": expr, "comment": "x"}}}]})
    }

    #[test]
    fn what_nft_must_apply_is_left_to_it() {
        let masquerade = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.5"}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}},
            {"masquerade": null}
        ]);
        assert!(encode(&rule("inet", masquerade)).is_some());
        for unsupported in [
            json!([{"counter": null}]),
            // An IPv6 prefix off a byte boundary; host bits in a prefix.
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "fd00::", "len": 60}}}}]),
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.0.0.1", "len": 8}}}}]),
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "10.0.0.1"}}]),
            json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth*"}}]),
        ] {
            assert!(encode(&rule("inet", unsupported.clone())).is_none(), "{unsupported}");
        }
        // An ip6 match in an ip table is nft's error to report.
        let ip6 = json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd00::1"}}]);
        assert!(encode(&rule("ip", ip6)).is_none());
        assert!(encode(&json!({"nftables": [{"add": {"table": {"family": "ip", "name": "t"}}}]})).is_some());
        let set =
            json!({"nftables": [{"add": {"set": {"family": "ip", "table": "t", "name": "s", "type": "ipv4_addr"}}}]});
        assert!(encode(&set).is_none());
        let chain =
            json!({"nftables": [{"add": {"chain": {"family": "ip", "table": "t", "name": "c", "devices": ["eth0"]}}}]});
        assert!(encode(&chain).is_none());
        let delete =
            json!({"nftables": [{"delete": {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 4}}}]});
        assert!(encode(&delete).is_some());
    }

    #[test]
    fn the_echo_carries_each_added_rules_handle() {
        let batch = json!({"nftables": [
            {"delete": {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 4}}},
            {"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"accept": null}]}}}
        ]});
        let echo = echo(&batch, &[(1, 9)]);
        assert_eq!(echo["nftables"][1]["add"]["rule"]["handle"], 9);
        assert!(echo["nftables"][0]["delete"]["rule"].get("handle").is_some());
    }
}
