//! Traffic control for the bandwidth plugin: a token-bucket (TBF) root
//! qdisc, the ingress qdisc, and a match-all u32 filter that redirects a
//! link's incoming traffic to another link's egress (an ifb).
//!
//! netlink-packet-route types the ingress qdisc, u32 and mirred, but not
//! TBF: its `tc_tbf_qopt` is encoded here, as the Go reference's netlink
//! library encodes it (rate, limit and buffer only), so the kernel holds
//! the same qdisc either implementation installs.

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector,
    TcU32SelectorFlags,
};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::links;
use crate::netns::Netns;

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
/// `struct tc_tbf_qopt`: two 12-byte ratespecs, then limit, buffer, mtu.
const TBF_QOPT_LEN: usize = 36;
const TIME_UNITS_PER_SEC: f64 = 1_000_000.0;
const ETH_P_ALL: u16 = 0x0003;

/// The root qdisc's handle (1:) and the ingress qdisc's (ffff:).
pub const ROOT_HANDLE: u32 = 0x0001_0000;
pub const INGRESS_HANDLE: u32 = 0xffff_0000;
/// Parents: the root, and the ingress hook.
pub const PARENT_ROOT: u32 = 0xffff_ffff;
pub const PARENT_INGRESS: u32 = 0xffff_fff1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Bytes per second.
    pub rate: u64,
    /// Bucket size in bytes (the kernel keeps it as transmit time).
    pub burst: u32,
    /// Queue limit in bytes.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QdiscKind {
    Tbf(TokenBucket),
    Ingress,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub handle: u32,
    pub parent: u32,
    pub kind: QdiscKind,
}

/// Microseconds per scheduler tick, from /proc/net/psched, as iproute2 and
/// the Go netlink library compute it (15.625 on current kernels).
fn tick_in_usec() -> f64 {
    let text = std::fs::read_to_string("/proc/net/psched").unwrap_or_default();
    let values: Vec<u64> = text.split_whitespace().filter_map(|v| u64::from_str_radix(v, 16).ok()).collect();
    let [mut t2us, us2t, clock_res, ..] = values[..] else { return 1.0 };
    if clock_res == 1_000_000_000 {
        t2us = us2t;
    }
    if us2t == 0 {
        return 1.0;
    }
    t2us as f64 / us2t as f64 * (clock_res as f64 / TIME_UNITS_PER_SEC)
}

/// The bucket as scheduler ticks: the time `burst` bytes take at `rate`
/// (the reference's buffer(), with its conversions to u32).
fn buffer_ticks(rate: u64, burst: u32) -> u32 {
    let usec = (f64::from(burst) * TIME_UNITS_PER_SEC / rate as f64) as u32;
    (f64::from(usec) * tick_in_usec()) as u32
}

/// The inverse of [`buffer_ticks`], rounded to whole bytes.
fn burst_bytes(rate: u64, ticks: u32) -> u32 {
    let usec = (f64::from(ticks) / tick_in_usec()) as u32;
    (f64::from(usec) * rate as f64 / TIME_UNITS_PER_SEC).round() as u32
}

fn link_index(ns: &Netns, link: &str, doing: &str) -> Result<i32> {
    let index = links::require(ns, link).context(doing)?.index;
    i32::try_from(index).map_err(|_| Error::invalid(format!("{doing}: link index {index} out of range")))
}

fn qdisc_message(index: i32, handle: u32, parent: u32, kind: &str) -> TcMessage {
    let mut message = TcMessage::with_index(index);
    message.header.handle = TcHandle::from(handle);
    message.header.parent = TcHandle::from(parent);
    message.attributes.push(TcAttribute::Kind(kind.to_string()));
    message
}

/// The qdiscs of `link`.
pub fn list_qdiscs(ns: &Netns, link: &str) -> Result<Vec<Qdisc>> {
    let doing = format!("listing qdiscs of {link:?} in {}", ns.label());
    let index = link_index(ns, link, &doing)?;
    let replies = ns.route()?.dump(RouteNetlinkMessage::GetQueueDiscipline(TcMessage::with_index(index)), &doing)?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewQueueDiscipline(message) if message.header.index == index => Some(parse(&message)),
            _ => None,
        })
        .collect())
}

fn parse(message: &TcMessage) -> Qdisc {
    let mut kind = String::new();
    let mut tbf = None;
    let mut rate64 = None;
    for attribute in &message.attributes {
        match attribute {
            TcAttribute::Kind(k) => kind = k.clone(),
            TcAttribute::Options(options) => {
                for option in options {
                    // A kind netlink-packet-route does not know (tbf) comes
                    // as one opaque TCA_OPTIONS holding the nested NLAs.
                    let TcOption::Other(nla) = option else { continue };
                    let mut value = vec![0; netlink_packet_core::Nla::value_len(nla)];
                    netlink_packet_core::Nla::emit_value(nla, &mut value);
                    for (kind, value) in nested(&value) {
                        match kind {
                            TCA_TBF_PARMS if value.len() >= TBF_QOPT_LEN => {
                                let word =
                                    |at: usize| u32::from_ne_bytes(value[at..at + 4].try_into().expect("4 bytes"));
                                // rate.rate at 8, limit at 24, buffer at 28.
                                tbf = Some((u64::from(word(8)), word(24), word(28)));
                            }
                            TCA_TBF_RATE64 if value.len() >= 8 => {
                                rate64 = Some(u64::from_ne_bytes(value[..8].try_into().expect("8 bytes")));
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let kind = match (kind.as_str(), tbf) {
        ("tbf", Some((rate, limit, buffer))) => {
            let rate = rate64.unwrap_or(rate);
            QdiscKind::Tbf(TokenBucket { rate, burst: burst_bytes(rate, buffer), limit })
        }
        ("ingress", _) => QdiscKind::Ingress,
        _ => QdiscKind::Other(kind),
    };
    Qdisc { handle: message.header.handle.into(), parent: message.header.parent.into(), kind }
}

/// The (type, value) pairs of a run of netlink attributes.
fn nested(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if length < 4 || length > bytes.len() {
            break;
        }
        out.push((kind, &bytes[4..length]));
        bytes = bytes.get((length + 3) & !3..).unwrap_or_default();
    }
    out
}

/// Installs a TBF as the root qdisc (1:) of `link`; `already-exists` when
/// the link has a root qdisc of its own already.
pub fn add_root_tbf(ns: &Netns, link: &str, bucket: TokenBucket) -> Result<()> {
    let doing = format!(
        "adding a TBF root qdisc (rate {} B/s, burst {} B, limit {} B) to {link:?} in {}",
        bucket.rate,
        bucket.burst,
        bucket.limit,
        ns.label()
    );
    if bucket.rate == 0 || bucket.burst == 0 {
        return Err(Error::invalid(format!("{doing}: rate and burst must be above zero")));
    }
    let index = link_index(ns, link, &doing)?;
    let mut qopt = [0u8; TBF_QOPT_LEN];
    qopt[8..12].copy_from_slice(&(bucket.rate.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    qopt[24..28].copy_from_slice(&bucket.limit.to_ne_bytes());
    qopt[28..32].copy_from_slice(&buffer_ticks(bucket.rate, bucket.burst).to_ne_bytes());
    let mut options = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt.to_vec()))];
    if bucket.rate >= 1 << 32 {
        options.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, bucket.rate.to_ne_bytes().to_vec())));
    }
    let mut message = qdisc_message(index, ROOT_HANDLE, PARENT_ROOT, "tbf");
    message.attributes.push(TcAttribute::Options(options));
    ns.route()?.execute(RouteNetlinkMessage::NewQueueDiscipline(message), NLM_F_CREATE | NLM_F_EXCL, &doing)
}

/// Installs the ingress qdisc (ffff:) on `link`.
pub fn add_ingress(ns: &Netns, link: &str) -> Result<()> {
    let doing = format!("adding the ingress qdisc to {link:?} in {}", ns.label());
    let index = link_index(ns, link, &doing)?;
    let message = qdisc_message(index, INGRESS_HANDLE, PARENT_INGRESS, "ingress");
    ns.route()?.execute(RouteNetlinkMessage::NewQueueDiscipline(message), NLM_F_CREATE | NLM_F_EXCL, &doing)
}

fn mirred(ifindex: u32, action: TcActionType, order: u16) -> TcAction {
    let mut generic = TcActionGeneric::default();
    generic.action = action;
    let mut mirror = TcMirror::default();
    mirror.generic = generic;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = ifindex;
    let mut action = TcAction::default();
    action.tab = order;
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirror))]),
    ];
    action
}

/// Redirects everything arriving on `link` (which needs the ingress qdisc)
/// to the egress of `target`: a u32 match-all filter, priority 1, protocol
/// all, flowid 1:1, with a mirred egress redirect. The Go reference's
/// netlink library adds two redirects (one `stolen`, from its RedirIndex,
/// then its explicit action, `pass`, never reached); the same two are
/// installed here so the kernel holds the same filter either way.
pub fn add_ingress_redirect(ns: &Netns, link: &str, target: &str) -> Result<()> {
    let doing = format!("redirecting ingress of {link:?} to {target:?} in {}", ns.label());
    let index = link_index(ns, link, &doing)?;
    let target_index = links::require(ns, target).context(&doing)?.index;
    let mut message = TcMessage::with_index(index);
    message.header.parent = TcHandle::from(INGRESS_HANDLE);
    // tcm_info: the priority above, the protocol (network order) below.
    message.header.info = (1 << 16) | u32::from(ETH_P_ALL.to_be());
    message.attributes.push(TcAttribute::Kind("u32".into()));
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    selector.keys = vec![TcU32Key::default()];
    message.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::ClassId(TcHandle::from(0x0001_0001))),
        TcOption::U32(TcFilterU32Option::Selector(selector)),
        TcOption::U32(TcFilterU32Option::Action(vec![
            mirred(target_index, TcActionType::Stolen, 1),
            mirred(target_index, TcActionType::Ok, 2),
        ])),
    ]));
    ns.route()?.execute(RouteNetlinkMessage::NewTrafficFilter(message), NLM_F_CREATE | NLM_F_EXCL, &doing)
}

/// Deletes the root (`PARENT_ROOT`) or ingress (`PARENT_INGRESS`) qdisc of
/// `link`; `not-found` when there is none.
pub fn delete_qdisc(ns: &Netns, link: &str, parent: u32) -> Result<()> {
    let doing = format!("deleting the qdisc at parent {parent:#x} of {link:?} in {}", ns.label());
    let handle = match parent {
        PARENT_ROOT => 0,
        PARENT_INGRESS => INGRESS_HANDLE,
        other => return Err(Error::new(ErrorKind::InvalidArgument, format!("{doing}: parent {other:#x} is neither"))),
    };
    let index = link_index(ns, link, &doing)?;
    let mut message = TcMessage::with_index(index);
    message.header.handle = TcHandle::from(handle);
    message.header.parent = TcHandle::from(parent);
    ns.route()?.execute(RouteNetlinkMessage::DelQueueDiscipline(message), 0, &doing).map_err(|e| {
        // The kernel says ENOENT / EINVAL for "no such qdisc".
        if e.errno == Some(libc::EINVAL) { Error::not_found(e.message) } else { e }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_round_trips_through_ticks() {
        // 2 Mbit/s with an 80 kbit burst, as the bandwidth plugin's tests use.
        let (rate, burst) = (250_000, 10_000);
        assert_eq!(burst_bytes(rate, buffer_ticks(rate, burst)), burst);
    }
}
