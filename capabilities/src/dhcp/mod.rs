//! DHCP leases for container interfaces: the lease daemon (`dhcp daemon`),
//! the DHCP client it runs in container namespaces, and the line protocol
//! the host uses to ask it.

pub mod client;
pub mod daemon;
pub mod wire;
