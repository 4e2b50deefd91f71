//! `dhcp`: leases from the node's lease daemon. The host names whose lease
//! it is (the invocation's container id, network and ifname) and where the
//! container is (CNI_NETNS); the plugin chooses only the options and the
//! daemon's socket, and that only as a `socket`-role config key names it.

use std::path::Path;
use std::time::Instant;

use cni_wasm_capabilities::dhcp::wire::{self, LeaseKey, Request};
use cni_wasm_capabilities::{Error, ErrorKind};

use super::CallResult;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::dhcp::{DhcpOption, Host, Lease, LeaseRequest, LeaseRoute};
use crate::bindings::cni_wasm::plugin::types::{IpAddress, IpNetwork};
use crate::context::HostState;

impl Host for HostState {
    fn acquire(&mut self, request: LeaseRequest) -> CallResult<Lease> {
        self.require_on(Capability::Dhcp, "dhcp.acquire", &request.socket)?;
        self.check_socket(&request.socket)?;
        for option in &request.provide {
            if option.code == 0 || option.code == 255 || option.value.len() > 255 {
                return Err(Error::invalid(format!(
                    "{}: DHCP option {} with {} bytes cannot be sent (codes 1-254, at most 255 bytes)",
                    self.grants.plugin,
                    option.code,
                    option.value.len()
                ))
                .into());
            }
        }
        let netns = self.call.env.netns.clone().ok_or_else(|| {
            Error::invalid(format!("{}: a DHCP lease needs CNI_NETNS, and it is not set", self.grants.plugin))
        })?;
        // The daemon runs elsewhere: it needs the path as the host sees it.
        let netns = std::path::absolute(&netns)
            .map_err(|e| Error::from_io(&e, format!("making CNI_NETNS {netns} absolute")))?
            .to_string_lossy()
            .into_owned();
        let deadline = self.session.deadline();
        let wire_request = Request::Acquire {
            key: self.lease_key(),
            netns,
            provide: request
                .provide
                .into_iter()
                .map(|o: DhcpOption| wire::DhcpOption { code: o.code, value: o.value })
                .collect(),
            request: request.request,
            timeout_ms: Some(deadline.saturating_duration_since(Instant::now()).as_millis() as u64),
        };
        let lease = wire::ask(Path::new(&request.socket), &wire_request, deadline)?
            .ok_or_else(|| Error::new(ErrorKind::Io, "the dhcp daemon answered without a lease"))?;
        Ok(lease_to_wit(&lease))
    }

    fn release(&mut self, socket: String) -> CallResult<()> {
        self.require_on(Capability::Dhcp, "dhcp.release", &socket)?;
        self.check_socket(&socket)?;
        let request = Request::Release { key: self.lease_key() };
        wire::ask(Path::new(&socket), &request, self.session.deadline())?;
        Ok(())
    }

    fn held(&mut self, socket: String) -> CallResult<Option<Lease>> {
        self.require_on(Capability::Dhcp, "dhcp.held", &socket)?;
        self.check_socket(&socket)?;
        let request = Request::Held { key: self.lease_key() };
        Ok(wire::ask(Path::new(&socket), &request, self.session.deadline())?.as_ref().map(lease_to_wit))
    }

    fn status(&mut self, socket: String) -> CallResult<()> {
        self.require_on(Capability::Dhcp, "dhcp.status", &socket)?;
        self.check_socket(&socket)?;
        wire::ask(Path::new(&socket), &Request::Status, self.session.deadline())?;
        Ok(())
    }

    fn gc(&mut self, socket: String) -> CallResult<()> {
        self.require_on(Capability::Dhcp, "dhcp.gc", &socket)?;
        self.check_socket(&socket)?;
        let valid = self
            .call
            .config
            .valid_attachments()
            .map_err(|e| Error::invalid(e.msg))?
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect();
        let request = Request::Gc { network: self.call.config.name.clone(), valid };
        wire::ask(Path::new(&socket), &request, self.session.deadline())?;
        Ok(())
    }
}

impl HostState {
    fn lease_key(&self) -> LeaseKey {
        LeaseKey {
            container_id: self.call.env.container_id.clone(),
            network: self.call.config.name.clone(),
            ifname: self.call.env.ifname.clone(),
        }
    }

    fn check_socket(&self, socket: &str) -> CallResult<()> {
        if self.grants.allows_socket(socket) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{}: asking the daemon at {socket} refused: no socket-role config key names it",
                self.grants.plugin
            ),
        )
        .into())
    }
}

fn v4(address: std::net::Ipv4Addr) -> IpAddress {
    let [a, b, c, d] = address.octets();
    IpAddress::Ipv4((a, b, c, d))
}

fn lease_to_wit(lease: &wire::Lease) -> Lease {
    Lease {
        address: IpNetwork { address: v4(lease.address), prefix_len: lease.prefix_len },
        gateway: lease.gateway.map(v4),
        routes: lease
            .routes
            .iter()
            .map(|r| LeaseRoute { dst: IpNetwork { address: v4(r.dst), prefix_len: r.prefix_len }, gw: r.gw.map(v4) })
            .collect(),
    }
}
