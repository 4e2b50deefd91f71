//! `netfilter`: nftables and iptables in tables/chains the plugin owns, and
//! firewalld zones. The host side arrives with the podman chain's plugins.

use wasmtime::component::Resource;

use super::CallResult;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::netfilter::Host;
use crate::bindings::cni_wasm::plugin::types::IpFamily;
use crate::context::HostState;

impl Host for HostState {
    fn nft_apply(&mut self, _ns: Resource<NetnsHandle>, _batch: String) -> CallResult<()> {
        self.require(Capability::Netfilter, "netfilter.nft-apply")?;
        Err(self.not_implemented("netfilter.nft-apply"))
    }

    fn nft_list_table(&mut self, _ns: Resource<NetnsHandle>, _family: String, _table: String) -> CallResult<Option<String>> {
        self.require(Capability::Netfilter, "netfilter.nft-list-table")?;
        Err(self.not_implemented("netfilter.nft-list-table"))
    }

    fn iptables_restore(&mut self, _ns: Resource<NetnsHandle>, _family: IpFamily, _table: String, _rules: String) -> CallResult<()> {
        self.require(Capability::Netfilter, "netfilter.iptables-restore")?;
        Err(self.not_implemented("netfilter.iptables-restore"))
    }

    fn iptables_save(&mut self, _ns: Resource<NetnsHandle>, _family: IpFamily, _table: String) -> CallResult<String> {
        self.require(Capability::Netfilter, "netfilter.iptables-save")?;
        Err(self.not_implemented("netfilter.iptables-save"))
    }

    fn firewalld_running(&mut self) -> wasmtime::Result<bool> {
        Ok(false)
    }

    fn firewalld_add_source(&mut self, _zone: String, _source: String) -> CallResult<()> {
        self.require(Capability::Netfilter, "netfilter.firewalld-add-source")?;
        Err(self.not_implemented("netfilter.firewalld-add-source"))
    }

    fn firewalld_remove_source(&mut self, _zone: String, _source: String) -> CallResult<()> {
        self.require(Capability::Netfilter, "netfilter.firewalld-remove-source")?;
        Err(self.not_implemented("netfilter.firewalld-remove-source"))
    }

    fn firewalld_query_source(&mut self, _zone: String, _source: String) -> CallResult<bool> {
        self.require(Capability::Netfilter, "netfilter.firewalld-query-source")?;
        Err(self.not_implemented("netfilter.firewalld-query-source"))
    }
}
