//! Policy-routing rules (RTM_NEWRULE / DELRULE / GETRULE), as sbr uses
//! them: "from <prefix> [to <prefix>] [iif/oif] lookup <table>".

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addresses::Family;
use crate::error::{Error, Result};
use crate::net::IpNetwork;
use crate::netns::Netns;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub priority: Option<u32>,
    pub source: Option<IpNetwork>,
    pub destination: Option<IpNetwork>,
    pub table: u32,
    pub in_link: Option<String>,
    pub out_link: Option<String>,
}

fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

fn describe(rule: &Rule) -> String {
    let mut text = String::new();
    if let Some(priority) = rule.priority {
        text += &format!("{priority}: ");
    }
    match rule.source {
        Some(source) => text += &format!("from {source}"),
        None => text += "from all",
    }
    if let Some(destination) = rule.destination {
        text += &format!(" to {destination}");
    }
    if let Some(link) = &rule.in_link {
        text += &format!(" iif {link}");
    }
    if let Some(link) = &rule.out_link {
        text += &format!(" oif {link}");
    }
    text + &format!(" lookup {}", rule.table)
}

/// Every rule of one family in `ns` (the kernel's own included).
pub fn dump(ns: &Netns, family: Family) -> Result<Vec<Rule>> {
    let doing = format!("listing {family:?} rules in {}", ns.label());
    let mut request = RuleMessage::default();
    request.header.family = address_family(family);
    let replies = ns.route()?.dump(RouteNetlinkMessage::GetRule(request), &doing)?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRule(message) => Some(parse(family, &message)),
            _ => None,
        })
        .collect())
}

/// Adds `rule`; `already-exists` if an equal one is there.
pub fn add(ns: &Netns, rule: &Rule) -> Result<()> {
    let doing = format!("adding rule {} in {}", describe(rule), ns.label());
    let message = message(rule)?;
    ns.route()?.execute(RouteNetlinkMessage::NewRule(message), NLM_F_CREATE | NLM_F_EXCL, &doing)
}

/// Deletes the first rule matching every field `rule` sets; `not-found`
/// if there is none.
pub fn delete(ns: &Netns, rule: &Rule) -> Result<()> {
    let doing = format!("deleting rule {} in {}", describe(rule), ns.label());
    let message = message(rule)?;
    ns.route()?.execute(RouteNetlinkMessage::DelRule(message), 0, &doing)
}

fn message(rule: &Rule) -> Result<RuleMessage> {
    let mut message = RuleMessage::default();
    message.header.family = address_family(rule.family);
    message.header.action = RuleAction::ToTable;
    // Tables above 255 only fit the attribute; the header says "see it".
    message.header.table = if rule.table < 256 { rule.table as u8 } else { 0 };
    message.attributes.push(RuleAttribute::Table(rule.table));
    for (prefix, is_source) in [(rule.source, true), (rule.destination, false)] {
        let Some(prefix) = prefix else { continue };
        if (prefix.address.is_ipv4()) != (rule.family == Family::V4) {
            return Err(Error::invalid(format!("{prefix} is not of the rule's family {:?}", rule.family)));
        }
        if is_source {
            message.header.src_len = prefix.prefix_len;
            message.attributes.push(RuleAttribute::Source(prefix.address));
        } else {
            message.header.dst_len = prefix.prefix_len;
            message.attributes.push(RuleAttribute::Destination(prefix.address));
        }
    }
    if let Some(priority) = rule.priority {
        message.attributes.push(RuleAttribute::Priority(priority));
    }
    if let Some(link) = &rule.in_link {
        message.attributes.push(RuleAttribute::Iifname(link.clone()));
    }
    if let Some(link) = &rule.out_link {
        message.attributes.push(RuleAttribute::Oifname(link.clone()));
    }
    Ok(message)
}

fn parse(family: Family, message: &RuleMessage) -> Rule {
    let mut rule = Rule {
        family,
        priority: None,
        source: None,
        destination: None,
        table: u32::from(message.header.table),
        in_link: None,
        out_link: None,
    };
    let prefix = |address: &IpAddr, len: u8| IpNetwork { address: *address, prefix_len: len };
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Source(address) => rule.source = Some(prefix(address, message.header.src_len)),
            RuleAttribute::Destination(address) => rule.destination = Some(prefix(address, message.header.dst_len)),
            RuleAttribute::Priority(priority) => rule.priority = Some(*priority),
            RuleAttribute::Table(table) => rule.table = *table,
            RuleAttribute::Iifname(name) => rule.in_link = Some(name.clone()),
            RuleAttribute::Oifname(name) => rule.out_link = Some(name.clone()),
            _ => {}
        }
    }
    rule
}
