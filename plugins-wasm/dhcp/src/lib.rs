//! dhcp IPAM: asks the node's lease daemon (`dhcp daemon`, a mode of the
//! cni-wasm binary) for a lease on the container's interface, as the
//! reference's plugin asks its daemon. The daemon runs the DHCP exchange in
//! the container's namespace and keeps the lease renewed until DEL, which
//! sends DHCPRELEASE. `ipam.provide` / `ipam.request` choose the options
//! sent and asked for; `ipam.priority` becomes every route's metric.

use std::net::IpAddr;

use cni_plugin_sdk::config::{self, no_dns};
use cni_plugin_sdk::dhcp::{self, DhcpOption, Lease, LeaseRequest};
use cni_plugin_sdk::error::{Context, Result, code, error, internal, invalid_config};
use cni_plugin_sdk::net::{IpNet, ip_from_wit};
use cni_plugin_sdk::{Capability, CniResult, Invocation, Manifest, ObjectDefault, ObjectRole, cni};
use serde::Deserialize;

/// The reference's default socket (without `-hostprefix`).
const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";
const SOCKET_KEY: &str = "ipam.daemonSocketPath";
/// Asked for unless a `request` entry says `skipDefault`: routers, then
/// subnet mask, as the reference orders them.
const DEFAULT_REQUEST: [u8; 2] = [3, 1];
/// The names the reference's `parseOptionName` knows; anything else must
/// be a decimal code.
const OPTION_NAMES: [(&str, u8); 6] = [
    ("dhcp-client-identifier", 61),
    ("subnet-mask", 1),
    ("routers", 3),
    ("host-name", 12),
    ("user-class", 77),
    ("vendor-class-identifier", 60),
];
const SCOPE_LINK: u32 = 253;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Net {
    ipam: Option<IpamConf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IpamConf {
    daemon_socket_path: String,
    provide: Vec<Provide>,
    request: Vec<RequestOption>,
    priority: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Provide {
    option: String,
    value: String,
    /// A CNI_ARGS key whose value is sent as well.
    from_arg: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RequestOption {
    option: String,
    skip_default: bool,
}

#[derive(Debug)]
struct Conf {
    socket: String,
    provide: Vec<DhcpOption>,
    request: Vec<u8>,
    priority: Option<u32>,
}

fn option_code(name: &str) -> Result<u8> {
    if let Some((_, code)) = OPTION_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*code);
    }
    name.parse::<u8>().map_err(|_| {
        let names: Vec<&str> = OPTION_NAMES.iter().map(|(n, _)| *n).collect();
        invalid_config(format!("dhcp: unknown option {name:?}: use one of {} or a decimal code", names.join(", ")))
    })
}

fn option_value(option: &str, value: &str, source: &str) -> Result<Vec<u8>> {
    if value.len() > 255 {
        return Err(invalid_config(format!(
            "dhcp: value too long for option {option:?} {source}: {} bytes, at most 255",
            value.len()
        )));
    }
    Ok(value.as_bytes().to_vec())
}

/// The IPAM config, with `fromArg` values looked up in CNI_ARGS as the
/// reference does (a plain "K=V;K=V" split, unknown keys allowed).
fn load(config: &str, cni_args: &str) -> Result<Conf> {
    let net: Net = config::parse(config)?;
    let ipam = net.ipam.ok_or_else(|| invalid_config("dhcp: IPAM config missing 'ipam' key"))?;
    let args: Vec<(&str, &str)> = cni_args.split(';').filter_map(|pair| pair.split_once('=')).collect();
    let mut provide = Vec::new();
    for entry in &ipam.provide {
        let code = option_code(&entry.option)?;
        if !entry.value.is_empty() {
            provide.push(DhcpOption { code, value: option_value(&entry.option, &entry.value, "")? });
        }
        if let Some((_, value)) =
            args.iter().rev().find(|(key, _)| !entry.from_arg.is_empty() && *key == entry.from_arg)
        {
            let source = format!("from CNI_ARGS {}", entry.from_arg);
            provide.push(DhcpOption { code, value: option_value(&entry.option, value, &source)? });
        }
    }
    let mut request = Vec::new();
    for entry in &ipam.request {
        let code = option_code(&entry.option)?;
        if !request.contains(&code) {
            request.push(code);
        }
    }
    if !ipam.request.iter().any(|r| r.skip_default) {
        for code in DEFAULT_REQUEST {
            if !request.contains(&code) {
                request.push(code);
            }
        }
    }
    let socket = match ipam.daemon_socket_path.as_str() {
        "" => DEFAULT_SOCKET.to_string(),
        path => path.to_string(),
    };
    Ok(Conf { socket, provide, request, priority: (ipam.priority != 0).then_some(ipam.priority) })
}

fn result_of(lease: &Lease, priority: Option<u32>) -> CniResult {
    let routes = lease
        .routes
        .iter()
        .map(|route| cni::Route {
            dst: route.dst,
            gw: route.gw,
            mtu: None,
            advmss: None,
            priority,
            table: None,
            // A classless route through 0.0.0.0 is on the link.
            scope: route.gw.is_none().then_some(SCOPE_LINK),
        })
        .collect();
    CniResult {
        interfaces: Vec::new(),
        ips: vec![cni::IpConfig { interface_index: None, address: lease.address, gateway: lease.gateway }],
        routes,
        dns: no_dns(),
    }
}

fn lease_label(call: &Invocation) -> String {
    format!("{}/{}", call.container_id, call.ifname)
}

struct Dhcp;

impl cni_plugin_sdk::Plugin for Dhcp {
    fn manifest() -> Manifest {
        let mut manifest = cni_plugin_sdk::manifest(&[Capability::Dhcp]);
        let mut socket = cni_plugin_sdk::object(SOCKET_KEY, ObjectRole::Socket);
        socket.default = ObjectDefault::Name(DEFAULT_SOCKET.to_string());
        manifest.objects.push(socket);
        manifest
    }

    fn add(call: &Invocation) -> Result<CniResult> {
        let conf = load(&call.config, &call.args)?;
        let lease =
            dhcp::acquire(&LeaseRequest { socket: conf.socket.clone(), provide: conf.provide, request: conf.request })
                .context(format!("dhcp: leasing an address for {}", lease_label(call)))?;
        Ok(result_of(&lease, conf.priority))
    }

    /// Stops the daemon renewing and releases the lease; one the daemon
    /// does not hold is already gone. An unreachable daemon is an error, as
    /// in the reference: the lease would stay held (and renewed by a daemon
    /// that comes back) otherwise.
    fn del(call: &Invocation) -> Result<()> {
        let conf = load(&call.config, &call.args)?;
        dhcp::release(&conf.socket).context(format!("dhcp: releasing the lease of {}", lease_label(call)))
    }

    /// The daemon must still hold a lease for the interface, with the
    /// address prevResult has. Unlike the reference's CHECK, nothing is
    /// acquired: a lost lease is reported, not silently replaced.
    fn check(call: &Invocation) -> Result<()> {
        let conf = load(&call.config, &call.args)?;
        let previous = call.prev_result.as_ref().ok_or_else(|| internal("dhcp: Required prevResult missing"))?;
        let held = dhcp::held(&conf.socket).context(format!("dhcp: asking for the lease of {}", lease_label(call)))?;
        let lease = held.ok_or_else(|| {
            internal(format!("dhcp: the daemon at {} holds no lease for {}", conf.socket, lease_label(call)))
        })?;
        let leased: IpAddr = ip_from_wit(&lease.address.address);
        if !previous.ips.iter().any(|ip| ip_from_wit(&ip.address.address) == leased) {
            return Err(internal(format!(
                "dhcp: {} is leased {}, which prevResult does not have",
                lease_label(call),
                IpNet::from_wit(&lease.address)
            )));
        }
        Ok(())
    }

    fn status(config: &str) -> Result<()> {
        let conf = load(config, "")?;
        dhcp::status(&conf.socket).map_err(|e| {
            error(
                code::PLUGIN_NOT_AVAILABLE,
                format!("dhcp: the daemon at {} is not available: {}", conf.socket, e.message),
            )
        })
    }

    fn gc(config: &str, _valid: &[cni::Attachment]) -> Result<()> {
        let conf = load(config, "")?;
        dhcp::gc(&conf.socket).context("dhcp: releasing leases of attachments that are gone")
    }
}

cni_plugin_sdk::plugin!(Dhcp);

#[cfg(test)]
mod tests {
    use super::*;
    use cni_plugin_sdk::net::ip_to_wit;

    fn v4(text: &str) -> cni_plugin_sdk::types::IpAddress {
        ip_to_wit(text.parse().unwrap())
    }

    fn conf(ipam: &str) -> Result<Conf> {
        load(&format!(r#"{{"cniVersion":"1.0.0","name":"n","ipam":{ipam}}}"#), "K8S_POD_NAME=web-0;IgnoreUnknown=1")
    }

    #[test]
    fn defaults_ask_for_routers_and_the_subnet_mask_at_the_default_socket() {
        let conf = conf(r#"{"type":"dhcp"}"#).unwrap();
        assert_eq!(conf.socket, DEFAULT_SOCKET);
        assert_eq!(conf.request, [3, 1]);
        assert!(conf.provide.is_empty());
        assert_eq!(conf.priority, None);
    }

    #[test]
    fn provide_takes_values_and_cni_args() {
        let conf = conf(
            r#"{"type":"dhcp","daemonSocketPath":"/tmp/d.sock","priority":7,"provide":[
                {"option":"host-name","fromArg":"K8S_POD_NAME"},
                {"option":"dhcp-client-identifier","value":"abc"},
                {"option":"77","value":"x","fromArg":"MISSING"}]}"#,
        )
        .unwrap();
        assert_eq!(conf.socket, "/tmp/d.sock");
        assert_eq!(conf.priority, Some(7));
        let provided: Vec<(u8, &[u8])> = conf.provide.iter().map(|o| (o.code, o.value.as_slice())).collect();
        assert_eq!(provided, [(12, &b"web-0"[..]), (61, &b"abc"[..]), (77, &b"x"[..])]);
    }

    #[test]
    fn skip_default_drops_the_default_request_list() {
        let skipped = conf(r#"{"type":"dhcp","request":[{"option":"121"},{"option":"host-name","skipDefault":true}]}"#);
        assert_eq!(skipped.unwrap().request, [121, 12]);
        let added = conf(r#"{"type":"dhcp","request":[{"option":"121"}]}"#).unwrap();
        assert_eq!(added.request, [121, 3, 1]);
    }

    #[test]
    fn bad_options_are_config_errors_that_say_what_is_allowed() {
        let error = conf(r#"{"type":"dhcp","request":[{"option":"nope"}]}"#).unwrap_err();
        assert_eq!(error.code, code::INVALID_NETWORK_CONFIG);
        assert!(error.msg.contains("\"nope\"") && error.msg.contains("host-name"), "{}", error.msg);
        let long = "x".repeat(256);
        let error = conf(&format!(r#"{{"type":"dhcp","provide":[{{"option":"12","value":"{long}"}}]}}"#)).unwrap_err();
        assert!(error.msg.contains("too long"), "{}", error.msg);
        assert!(load(r#"{"cniVersion":"1.0.0","name":"n"}"#, "").unwrap_err().msg.contains("'ipam'"));
    }

    #[test]
    fn on_link_routes_get_link_scope_and_priority_sets_every_metric() {
        let net = |a: &str, p: u8| cni_plugin_sdk::types::IpNetwork { address: v4(a), prefix_len: p };
        let lease = Lease {
            address: net("10.9.0.5", 24),
            gateway: Some(v4("10.9.0.1")),
            routes: vec![
                dhcp::LeaseRoute { dst: net("10.20.0.0", 16), gw: None },
                dhcp::LeaseRoute { dst: net("0.0.0.0", 0), gw: Some(v4("10.9.0.1")) },
            ],
        };
        let result = result_of(&lease, Some(50));
        assert_eq!(result.ips.len(), 1);
        assert_eq!(result.routes[0].scope, Some(SCOPE_LINK));
        assert_eq!(result.routes[1].scope, None);
        assert!(result.routes.iter().all(|r| r.priority == Some(50)));
    }
}
