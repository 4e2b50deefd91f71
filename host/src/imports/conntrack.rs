//! `conntrack`: list and delete connection-tracking entries. A delete must
//! name a port or an address the invocation owns: a host port of its
//! portMappings or an address of its prevResult. There is no "flush
//! everything".

use cni_wasm_capabilities::conntrack as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::{family_from_wit, ip_from_wit, ip_to_wit};
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::conntrack::{Flow, FlowFilter, Host};
use crate::bindings::cni_wasm::plugin::types::IpFamily;
use crate::context::HostState;

fn filter(filter: FlowFilter) -> native::FlowFilter {
    native::FlowFilter {
        family: family_from_wit(filter.family),
        protocol: filter.protocol,
        original_destination: filter.original_destination.map(ip_from_wit),
        original_destination_port: filter.original_destination_port,
        reply_source: filter.reply_source.map(ip_from_wit),
    }
}

impl Host for HostState {
    fn dump(&mut self, ns: Resource<NetnsHandle>, wanted: FlowFilter) -> CallResult<Vec<Flow>> {
        self.require_on(Capability::Conntrack, "conntrack.dump", &wanted)?;
        let (_, netns) = self.netns(&ns)?;
        let flows = native::dump(&netns, &filter(wanted))?;
        Ok(flows
            .into_iter()
            .map(|f| Flow {
                family: match f.family {
                    cni_wasm_capabilities::addresses::Family::V4 => IpFamily::Ipv4,
                    cni_wasm_capabilities::addresses::Family::V6 => IpFamily::Ipv6,
                },
                protocol: f.protocol,
                original_source: ip_to_wit(f.original_source),
                original_destination: ip_to_wit(f.original_destination),
                original_source_port: f.original_source_port,
                original_destination_port: f.original_destination_port,
                reply_source: ip_to_wit(f.reply_source),
                reply_destination: ip_to_wit(f.reply_destination),
                reply_source_port: f.reply_source_port,
                reply_destination_port: f.reply_destination_port,
            })
            .collect())
    }

    fn delete(&mut self, ns: Resource<NetnsHandle>, wanted: Vec<FlowFilter>) -> CallResult<u32> {
        self.require_on(Capability::Conntrack, "conntrack.delete", &wanted)?;
        let (_, netns) = self.netns(&ns)?;
        let wanted: Vec<native::FlowFilter> = wanted.into_iter().map(filter).collect();
        for wanted in &wanted {
            let owned_port = wanted.original_destination_port.is_some_and(|p| self.grants.conntrack_ports.contains(&p));
            let owned_address = [wanted.original_destination, wanted.reply_source]
                .iter()
                .flatten()
                .any(|a| self.grants.conntrack_addresses.contains(a));
            if !owned_port && !owned_address {
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!(
                        "{}: conntrack.delete refused: each filter must name a host port of this request's \
                         portMappings {:?} or an address of its prevResult {:?}",
                        self.grants.plugin, self.grants.conntrack_ports, self.grants.conntrack_addresses
                    ),
                )
                .into());
            }
        }
        Ok(native::delete_any(&netns, &wanted)?)
    }
}
