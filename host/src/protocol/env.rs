//! The CNI_* environment of one invocation, validated per verb the way the
//! Go skel validates it (so runtimes see the errors they expect).

use std::path::PathBuf;

use super::config::is_valid_identifier;
use super::error::{CniError, code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Version,
    Gc,
}

impl Command {
    pub fn parse(text: &str) -> Result<Command, CniError> {
        Ok(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            other => return Err(CniError::new(code::INVALID_ENVIRONMENT, format!("unknown CNI_COMMAND: {other}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }

    /// Verbs that act on one attachment (container id + ifname).
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub command: Command,
    pub container_id: String,
    /// None when CNI_NETNS is empty (allowed for DEL).
    pub netns: Option<String>,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
    /// CNI_NETNS_OVERRIDE: allow CNI_NETNS to be the plugin's own namespace.
    pub netns_override: bool,
}

impl Environment {
    pub fn from_process() -> Result<Environment, CniError> {
        Self::read(|key| std::env::var(key).ok())
    }

    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Environment, CniError> {
        let var = |key: &str| get(key).filter(|v| !v.is_empty());
        let command_text = var("CNI_COMMAND")
            .ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, "required env variables [CNI_COMMAND] missing"))?;
        let command = Command::parse(&command_text)?;
        // (variable, required for this verb) in the order skel reports them.
        let requirements = [
            ("CNI_CONTAINERID", command.is_attachment()),
            ("CNI_NETNS", matches!(command, Command::Add | Command::Check)),
            ("CNI_IFNAME", command.is_attachment()),
            ("CNI_PATH", command != Command::Version),
        ];
        let missing: Vec<&str> = requirements
            .iter()
            .filter(|(key, required)| *required && var(key).is_none())
            .map(|(key, _)| *key)
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        let container_id = var("CNI_CONTAINERID").unwrap_or_default();
        let ifname = var("CNI_IFNAME").unwrap_or_default();
        if command.is_attachment() {
            if !is_valid_identifier(&container_id) {
                return Err(CniError::new(code::INVALID_ENVIRONMENT, "invalid characters in containerID")
                    .with_details(container_id));
            }
            validate_ifname(&ifname)?;
        }
        let path_text = var("CNI_PATH").unwrap_or_default();
        Ok(Environment {
            command,
            container_id,
            netns: var("CNI_NETNS"),
            ifname,
            args: var("CNI_ARGS").unwrap_or_default(),
            path: path_text.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
            netns_override: matches!(var("CNI_NETNS_OVERRIDE").as_deref(), Some("1" | "true")),
        })
    }
}

/// Linux interface names: 1-15 bytes, not "." or "..", no '/', ':' or space.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let problem = if name.is_empty() {
        Some("interface name is empty")
    } else if name.len() > 15 {
        Some("interface name is too long")
    } else if name == "." || name == ".." {
        Some("interface name is . or ..")
    } else if name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace()) {
        Some("interface name contains / or : or whitespace characters")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(CniError::new(code::INVALID_ENVIRONMENT, problem).with_details(name.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Environment, CniError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Environment::read(|key| map.get(key).cloned())
    }

    #[test]
    fn add_names_every_missing_variable_at_once() {
        let error = env(&[("CNI_COMMAND", "ADD"), ("CNI_PATH", "/opt/cni/bin")]).unwrap_err();
        assert_eq!(error.code, code::INVALID_ENVIRONMENT);
        assert_eq!(error.msg, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing");
    }

    #[test]
    fn del_does_not_need_a_netns() {
        let env = env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0"), ("CNI_PATH", "/x")])
            .unwrap();
        assert_eq!(env.netns, None);
    }

    #[test]
    fn version_needs_only_the_command() {
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn unknown_command_is_code_4() {
        assert_eq!(env(&[("CNI_COMMAND", "FOO")]).unwrap_err().msg, "unknown CNI_COMMAND: FOO");
    }

    #[test]
    fn bad_container_ids_and_ifnames_are_code_4() {
        let base = [("CNI_COMMAND", "ADD"), ("CNI_NETNS", "/run/netns/x"), ("CNI_PATH", "/x")];
        for (id, ifname) in [
            ("-abc", "eth0"),
            ("a/b", "eth0"),
            ("a b", "eth0"),
            ("c", "0123456789abcdef"),
            ("c", "."),
            ("c", ".."),
            ("c", "a/b"),
            ("c", "a:b"),
            ("c", "a b"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(("CNI_CONTAINERID", id));
            pairs.push(("CNI_IFNAME", ifname));
            assert_eq!(env(&pairs).unwrap_err().code, code::INVALID_ENVIRONMENT, "{id} {ifname}");
        }
    }
}
