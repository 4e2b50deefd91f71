//! `sysctl`: /proc/sys/net of a namespace. Anything under net/ in the
//! container; in the host only the conf/ and neigh/ keys of links the
//! invocation may change, plus the global keys the manifest lists.

use cni_wasm_capabilities::sysctl as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::{NetnsHandle, Which};
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::sysctl::Host;
use crate::context::HostState;

/// The link a per-interface key is about: net/ipv4/conf/<link>/...,
/// net/ipv6/neigh/<link>/..., and so on.
fn link_of(key: &str) -> Option<&str> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", link, _setting] if *link != "all" && *link != "default" => {
            Some(link)
        }
        _ => None,
    }
}

impl Host for HostState {
    fn get(&mut self, ns: Resource<NetnsHandle>, key: String) -> CallResult<String> {
        self.require_on(Capability::Sysctl, "sysctl.get", &key)?;
        let (_, ns) = self.netns(&ns)?;
        Ok(native::get(&ns, &key)?)
    }

    fn set(&mut self, ns: Resource<NetnsHandle>, key: String, value: String) -> CallResult<()> {
        self.require_on(Capability::Sysctl, "sysctl.set", &key)?;
        let (which, netns) = self.netns(&ns)?;
        native::validate_key(&key)?;
        if which == Which::Host && !self.grants.allows_host_sysctl(&key) {
            match link_of(&key) {
                Some(link) => self.check_host_link(which, link, &format!("writing sysctl {key}"))?,
                None => {
                    return Err(Error::new(
                        ErrorKind::Denied,
                        format!(
                            "{}: writing sysctl {key} in the host netns refused: the manifest does not list it",
                            self.grants.plugin
                        ),
                    )
                    .into());
                }
            }
        }
        Ok(native::set(&netns, &key, &value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::link_of;

    #[test]
    fn per_link_keys_name_their_link() {
        assert_eq!(link_of("net/ipv4/conf/eth0.100/arp_notify"), Some("eth0.100"));
        assert_eq!(link_of("net/ipv6/neigh/cni0/base_reachable_time"), Some("cni0"));
        assert_eq!(link_of("net/ipv4/conf/all/forwarding"), None);
        assert_eq!(link_of("net/ipv4/ip_forward"), None);
    }
}
