//! firewalld zone sources over the system D-Bus, through `busctl` (the
//! four calls the firewall plugin needs do not justify a D-Bus library).

use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::process;

const FIREWALLD: &str = "org.fedoraproject.FirewallD1";
const FIREWALLD_PATH: &str = "/org/fedoraproject/FirewallD1";
const ZONE_INTERFACE: &str = "org.fedoraproject.FirewallD1.zone";

/// Where the system bus listens unless DBUS_SYSTEM_BUS_ADDRESS says
/// otherwise (sd-bus's default, and godbus's through the /var/run link).
const SYSTEM_BUS_SOCKETS: [&str; 2] = ["/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"];

/// Whether something owns `org.fedoraproject.FirewallD1` on the system bus.
pub fn running(deadline: Instant) -> bool {
    // Without a system bus nothing owns the name; starting busctl to learn
    // that costs milliseconds on every firewall ADD and DEL.
    let bus_configured = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some();
    if !bus_configured && !SYSTEM_BUS_SOCKETS.iter().any(|s| std::path::Path::new(s).exists()) {
        return false;
    }
    let Ok(busctl) = process::find_tool("busctl") else { return false };
    let args = [
        "--system",
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "GetNameOwner",
        "s",
        FIREWALLD,
    ];
    process::run_tool(&crate::netns::Netns::host(), &busctl, &args, &[], deadline).is_ok_and(|o| o.status.success())
}

/// Binds `source` to `zone`; a source already in the zone is fine.
pub fn add_source(zone: &str, source: &str, deadline: Instant) -> Result<()> {
    match call("addSource", zone, source, deadline) {
        Err(e) if e.message.contains("ZONE_ALREADY_SET") => Ok(()),
        other => other.map(drop),
    }
}

pub fn remove_source(zone: &str, source: &str, deadline: Instant) -> Result<()> {
    call("removeSource", zone, source, deadline).map(drop)
}

pub fn query_source(zone: &str, source: &str, deadline: Instant) -> Result<bool> {
    Ok(call("querySource", zone, source, deadline)?.trim() == "b true")
}

fn call(method: &str, zone: &str, source: &str, deadline: Instant) -> Result<String> {
    let doing = format!("firewalld {method}({zone}, {source})");
    let busctl = process::find_tool("busctl").map_err(|e| e.context(&doing))?;
    let args = ["--system", "call", FIREWALLD, FIREWALLD_PATH, ZONE_INTERFACE, method, "ss", zone, source];
    let output = process::run_tool(&crate::netns::Netns::host(), &busctl, &args, &[], deadline)?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::new(ErrorKind::Io, format!("{doing}: {text}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
