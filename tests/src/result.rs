//! Reading plugin results: the parts two runs can compare, and the parts a
//! test needs from them.

use serde_json::{Value, json};

use crate::kernel::normalize_name;

/// A result JSON with the random parts (veth names, MACs, sandbox paths)
/// replaced, so two runs compare equal.
pub fn normalize(result: &Value) -> Value {
    let mut result = result.clone();
    if let Some(interfaces) = result["interfaces"].as_array_mut() {
        for interface in interfaces {
            if let Some(name) = interface["name"].as_str() {
                interface["name"] = json!(normalize_name(name));
            }
            if interface.get("mac").is_some() {
                interface["mac"] = json!("*");
            }
            if interface.get("sandbox").is_some() {
                interface["sandbox"] = json!("*");
            }
        }
    }
    result
}

/// The address of `ips[index]` without its prefix length ("10.89.0.2").
#[track_caller]
pub fn ip(result: &Value, index: usize) -> String {
    let address = result["ips"][index]["address"].as_str().unwrap_or_else(|| panic!("no ips[{index}] in {result}"));
    address.split('/').next().expect("split yields at least one part").to_string()
}
