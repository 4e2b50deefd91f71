//! undeclared: a plugin whose code calls `routes` while its manifest
//! declares only `links`. The host must refuse to run it at all: what a
//! component can call is what its manifest says it needs.

use cni_plugin_sdk::config::no_dns;
use cni_plugin_sdk::error::Result;
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, namespaces, routes};

struct Undeclared;

impl cni_plugin_sdk::Plugin for Undeclared {
    fn manifest() -> Manifest {
        cni_plugin_sdk::manifest(&[Capability::Links])
    }

    fn add(_call: &Invocation) -> Result<CniResult> {
        let filter = routes::RouteFilter { family: None, table: None, link: None };
        routes::dump(&namespaces::host(), &filter)?;
        Ok(CniResult { interfaces: Vec::new(), ips: Vec::new(), routes: Vec::new(), dns: no_dns() })
    }

    fn del(_call: &Invocation) -> Result<()> {
        Ok(())
    }

    fn check(_call: &Invocation) -> Result<()> {
        Ok(())
    }
}

cni_plugin_sdk::plugin!(Undeclared);
