//! `rules`: policy-routing rules, in the container namespace only. A rule
//! in the host namespace steers every packet of the node ("from all lookup
//! 100"), which no object grant could scope, so none is allowed there.

use cni_wasm_capabilities::rules as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::{family_from_wit, family_to_wit, network_from_wit, network_to_wit};
use super::namespaces::{NetnsHandle, Which};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::rules::{Host, Rule};
use crate::bindings::cni_wasm::plugin::types::IpFamily;
use crate::context::HostState;

fn to_native(rule: Rule) -> Result<native::Rule, Error> {
    Ok(native::Rule {
        family: family_from_wit(rule.family),
        priority: rule.priority,
        source: rule.source.map(network_from_wit).transpose()?,
        destination: rule.destination.map(network_from_wit).transpose()?,
        table: rule.table,
        in_link: rule.in_link,
        out_link: rule.out_link,
    })
}

impl HostState {
    fn check_rule_namespace(&self, which: Which, call: &str) -> CallResult<()> {
        if which == Which::Container {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{}: {call} refused: policy-routing rules may be changed only in the container netns",
                self.grants.plugin
            ),
        )
        .into())
    }
}

impl Host for HostState {
    fn dump(&mut self, ns: Resource<NetnsHandle>, family: IpFamily) -> CallResult<Vec<Rule>> {
        self.require_on(Capability::Rules, "rules.dump", &family)?;
        let (_, ns) = self.netns(&ns)?;
        let rules = native::dump(&ns, family_from_wit(family))?;
        Ok(rules
            .into_iter()
            .map(|r| Rule {
                family: family_to_wit(r.family),
                priority: r.priority,
                source: r.source.map(network_to_wit),
                destination: r.destination.map(network_to_wit),
                table: r.table,
                in_link: r.in_link,
                out_link: r.out_link,
            })
            .collect())
    }

    fn add(&mut self, ns: Resource<NetnsHandle>, rule: Rule) -> CallResult<()> {
        self.require_on(Capability::Rules, "rules.add", &rule)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_rule_namespace(which, "rules.add")?;
        Ok(native::add(&netns, &to_native(rule)?)?)
    }

    fn delete(&mut self, ns: Resource<NetnsHandle>, rule: Rule) -> CallResult<()> {
        self.require_on(Capability::Rules, "rules.delete", &rule)?;
        let (which, netns) = self.netns(&ns)?;
        self.check_rule_namespace(which, "rules.delete")?;
        Ok(native::delete(&netns, &to_native(rule)?)?)
    }
}
