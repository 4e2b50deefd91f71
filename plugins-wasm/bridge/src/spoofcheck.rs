//! `macspoofchk`: drop frames from the container's port whose source MAC
//! is not the container's (the reference's pkg/link, nftables bridge
//! family, table `nat`, base chain PREROUTING at priority -300).

use cni_plugin_sdk::error::Result;
use cni_plugin_sdk::namespaces::Netns;
use cni_plugin_sdk::netfilter::{NftBatch, NftTable, expr};
use serde_json::json;

const FAMILY: &str = "bridge";
const TABLE: &str = "nat";
const BASE_CHAIN: &str = "PREROUTING";

/// The per-attachment id in chain names and comments.
pub fn ref_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

fn chains(ref_id: &str) -> (String, String) {
    let iface = format!("cni-br-iface-{ref_id}");
    let mac = format!("{iface}-mac");
    (iface, mac)
}

fn comment(ref_id: &str) -> String {
    format!("macspoofchk-{ref_id}")
}

pub fn setup(host: &Netns, host_veth: &str, container_mac: &str, ref_id: &str) -> Result<()> {
    let (iface_chain, mac_chain) = chains(ref_id);
    let comment = comment(ref_id);
    let mut declare = NftBatch::new();
    declare.add_table(FAMILY, TABLE, None);
    declare.add_base_chain(FAMILY, TABLE, BASE_CHAIN, "filter", "prerouting", -300);
    declare.add_chain(FAMILY, TABLE, &iface_chain, None);
    declare.add_chain(FAMILY, TABLE, &mac_chain, None);
    declare.apply(host)?;

    let mut rules = NftBatch::new();
    rules.flush_chain(FAMILY, TABLE, &iface_chain);
    rules.flush_chain(FAMILY, TABLE, &mac_chain);
    rules.add_rule(
        FAMILY,
        TABLE,
        BASE_CHAIN,
        vec![expr::meta("iifname", "==", json!(host_veth)), expr::jump(&iface_chain)],
        Some(&comment),
    );
    rules.add_rule(FAMILY, TABLE, &iface_chain, vec![expr::jump(&mac_chain)], Some(&comment));
    rules.add_rule(
        FAMILY,
        TABLE,
        &mac_chain,
        vec![expr::payload("ether", "saddr", "==", json!(container_mac)), expr::ret()],
        Some(&comment),
    );
    rules.add_rule(FAMILY, TABLE, &mac_chain, vec![expr::drop()], Some(&comment));
    rules.apply(host)
}

/// Removes the attachment's jump and chains; what is gone already is fine.
pub fn teardown(host: &Netns, ref_id: &str) -> Result<()> {
    let Some(table) = NftTable::read(host, FAMILY, TABLE)? else { return Ok(()) };
    let (iface_chain, mac_chain) = chains(ref_id);
    let comment = comment(ref_id);
    let mut batch = NftBatch::new();
    for rule in table.rules_in(BASE_CHAIN) {
        if rule.comment.as_deref() == Some(comment.as_str()) {
            batch.delete_rule(rule);
        }
    }
    for chain in [&iface_chain, &mac_chain] {
        if table.has_chain(chain) {
            batch.flush_chain(FAMILY, TABLE, chain);
        }
    }
    for chain in [&iface_chain, &mac_chain] {
        if table.has_chain(chain) {
            batch.delete_chain(FAMILY, TABLE, chain);
        }
    }
    batch.apply(host)
}

/// Tears down the checkers of attachments not in `valid`.
pub fn gc(host: &Netns, valid: &[cni_plugin_sdk::Attachment]) -> Result<()> {
    let Some(table) = NftTable::read(host, FAMILY, TABLE)? else { return Ok(()) };
    let keep: Vec<String> = valid.iter().map(|a| ref_id(&a.container_id, &a.ifname)).collect();
    for chain in &table.chains {
        let Some(id) = chain.strip_prefix("cni-br-iface-").filter(|id| !id.ends_with("-mac")) else { continue };
        if !keep.iter().any(|k| k == id) {
            teardown(host, id)?;
        }
    }
    Ok(())
}
