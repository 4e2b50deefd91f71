//! `netfilter`: nftables batches and iptables-restore input, checked for
//! ownership before anything runs (see [`ownership`]), and firewalld.

use cni_wasm_capabilities::netfilter as native;
use cni_wasm_capabilities::{Error, ErrorKind};
use wasmtime::component::Resource;

use super::CallResult;
use super::convert::family_from_wit;
use super::namespaces::NetnsHandle;
use crate::bindings::cni_wasm::plugin::cni::Capability;
use crate::bindings::cni_wasm::plugin::netfilter::Host;
use crate::bindings::cni_wasm::plugin::types::IpFamily;
use crate::context::HostState;

impl HostState {
    fn refuse(&self, call: &str, why: String) -> super::CallError {
        Error::new(ErrorKind::Denied, format!("{}: {call} refused: {why}", self.grants.plugin)).into()
    }

    /// Chains the plugin owns: the manifest's patterns, and chain names the
    /// request config mentions (firewall's admin chain).
    fn owns_chain(&self, chain: &str) -> bool {
        self.grants.iptables_chains.iter().any(|pattern| ownership::glob(pattern, chain))
            || self.grants.names_chain(chain)
    }
}

impl Host for HostState {
    fn nft_apply(&mut self, ns: Resource<NetnsHandle>, batch: String) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.nft-apply", &"")?;
        let (_, netns) = self.netns(&ns)?;
        ownership::check_nft_batch(&batch, &self.grants.nft_tables)
            .map_err(|why| self.refuse("netfilter.nft-apply", why))?;
        Ok(native::nft_apply(&netns, &batch, self.process.deadline())?)
    }

    fn nft_list_table(
        &mut self,
        ns: Resource<NetnsHandle>,
        family: String,
        table: String,
    ) -> CallResult<Option<String>> {
        self.require_on(Capability::Netfilter, "netfilter.nft-list-table", &table)?;
        let (_, netns) = self.netns(&ns)?;
        ownership::check_nft_name(&family, &table).map_err(|why| self.refuse("netfilter.nft-list-table", why))?;
        Ok(native::nft_list_table(&netns, &family, &table, self.process.deadline())?)
    }

    fn iptables_restore(
        &mut self,
        ns: Resource<NetnsHandle>,
        family: IpFamily,
        table: String,
        rules: String,
    ) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.iptables-restore", &table)?;
        let (_, netns) = self.netns(&ns)?;
        ownership::check_table_name(&table).map_err(|why| self.refuse("netfilter.iptables-restore", why))?;
        ownership::check_iptables_rules(&rules, &|chain| self.owns_chain(chain))
            .map_err(|why| self.refuse("netfilter.iptables-restore", why))?;
        Ok(native::iptables_restore(&netns, family_from_wit(family), &table, &rules, self.process.deadline())?)
    }

    fn iptables_save(&mut self, ns: Resource<NetnsHandle>, family: IpFamily, table: String) -> CallResult<String> {
        self.require_on(Capability::Netfilter, "netfilter.iptables-save", &table)?;
        let (_, netns) = self.netns(&ns)?;
        ownership::check_table_name(&table).map_err(|why| self.refuse("netfilter.iptables-save", why))?;
        Ok(native::iptables_save(&netns, family_from_wit(family), &table, self.process.deadline())?)
    }

    fn firewalld_running(&mut self) -> wasmtime::Result<bool> {
        Ok(self.grants.has(Capability::Netfilter) && cni_wasm_capabilities::firewalld::running(self.process.deadline()))
    }

    fn firewalld_add_source(&mut self, zone: String, source: String) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-add-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::add_source(&zone, &source, self.process.deadline())?)
    }

    fn firewalld_remove_source(&mut self, zone: String, source: String) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-remove-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::remove_source(&zone, &source, self.process.deadline())?)
    }

    fn firewalld_query_source(&mut self, zone: String, source: String) -> CallResult<bool> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-query-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::query_source(&zone, &source, self.process.deadline())?)
    }
}

/// What a plugin may change: pure checks over the text it hands in.
pub mod ownership {
    use serde_json::Value;

    /// The built-in chains of every iptables table.
    const BUILTIN_CHAINS: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

    pub use crate::policy::glob;

    pub fn check_table_name(table: &str) -> Result<(), String> {
        match table {
            "filter" | "nat" | "mangle" | "raw" | "security" => Ok(()),
            other => Err(format!("{other:?} is not an iptables table")),
        }
    }

    pub fn check_nft_name(family: &str, table: &str) -> Result<(), String> {
        let families = ["ip", "ip6", "inet", "bridge", "arp", "netdev"];
        let plain = !table.is_empty() && table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if families.contains(&family) && plain {
            Ok(())
        } else {
            Err(format!("bad nftables table {family:?} {table:?}"))
        }
    }

    /// Every command of the batch must name a table in `owned` ("family
    /// name"); listing and ruleset-wide commands are refused.
    pub fn check_nft_batch(batch: &str, owned: &[String]) -> Result<(), String> {
        let value: Value = serde_json::from_str(batch).map_err(|e| format!("the batch is not JSON: {e}"))?;
        let commands =
            value.get("nftables").and_then(Value::as_array).ok_or("the batch must be {\"nftables\": [...]}")?;
        for command in commands {
            let object =
                command.as_object().filter(|o| o.len() == 1).ok_or("each command must be an object with one verb")?;
            let (verb, target) = object.iter().next().expect("one entry");
            match verb.as_str() {
                "metainfo" => continue,
                "add" | "create" | "insert" | "replace" | "delete" | "destroy" | "flush" => {}
                other => return Err(format!("nftables command {other:?} is not allowed")),
            }
            let target = target.as_object().filter(|o| o.len() == 1).ok_or("each command must name one object")?;
            let (kind, spec) = target.iter().next().expect("one entry");
            let field = |key: &str| spec.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            let (family, table) = match kind.as_str() {
                "ruleset" => return Err(format!("nftables {verb} ruleset is not allowed")),
                "table" => (field("family"), field("name")),
                _ => (field("family"), field("table")),
            };
            if !owned.iter().any(|o| *o == format!("{family} {table}")) {
                return Err(format!("nftables table {family} {table:?} is not one the plugin owns ({verb} {kind})"));
            }
        }
        Ok(())
    }

    /// iptables-restore lines for one table (no `*table`, no `COMMIT`).
    /// Owned chains may be declared, created, flushed, deleted and edited;
    /// built-in chains only get or lose rules whose target is owned. Lines
    /// are split and tokenized exactly as iptables-restore does, and control
    /// characters (but tab) are refused outright, so the check reads the
    /// same rules the tool will.
    pub fn check_iptables_rules(rules: &str, owned: &dyn Fn(&str) -> bool) -> Result<(), String> {
        for (number, line) in rules.split('\n').enumerate() {
            let fail = |why: &str| Err(format!("line {}: {why}: {line:?}", number + 1));
            if line.chars().any(|c| c.is_control() && c != '\t') {
                return fail("control characters are not allowed");
            }
            let trimmed = line.trim_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let tokens = match tokenize(trimmed) {
                Some(tokens) => tokens,
                None => return fail("unbalanced quotes"),
            };
            let first = tokens[0].as_str();
            if let Some(chain) = first.strip_prefix(':') {
                if BUILTIN_CHAINS.contains(&chain) || !owned(chain) {
                    return fail("only chains the plugin owns may be declared");
                }
                continue;
            }
            let Some(chain) = tokens.get(1).map(String::as_str) else { return fail("no chain") };
            match first {
                "-N" | "--new-chain" | "-X" | "--delete-chain" | "-F" | "--flush" | "-Z" | "--zero" => {
                    if !owned(chain) || BUILTIN_CHAINS.contains(&chain) {
                        return fail("only chains the plugin owns may be created, deleted or flushed");
                    }
                }
                "-E" | "--rename-chain" => {
                    let renamed = tokens.get(2).map(String::as_str).unwrap_or_default();
                    if !owned(chain) || !owned(renamed) {
                        return fail("only chains the plugin owns may be renamed");
                    }
                }
                "-A" | "--append" | "-I" | "--insert" | "-D" | "--delete" => {
                    if owned(chain) && !BUILTIN_CHAINS.contains(&chain) {
                        continue;
                    }
                    if !BUILTIN_CHAINS.contains(&chain) {
                        return fail("the chain belongs to someone else");
                    }
                    // A built-in chain's rule is the plugin's only by its
                    // target, and rules by position are nobody's to remove.
                    if first.starts_with("-D") && tokens.get(2).is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit())) {
                        return fail("rules of a built-in chain may not be deleted by position");
                    }
                    let targets: Vec<&String> = tokens
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| matches!(t.as_str(), "-j" | "--jump" | "-g" | "--goto"))
                        .filter_map(|(i, _)| tokens.get(i + 1))
                        .collect();
                    if targets.len() != 1 || !owned(targets[0]) {
                        return fail("a rule in a built-in chain must jump to a chain the plugin owns");
                    }
                }
                "-R" | "--replace" if owned(chain) && !BUILTIN_CHAINS.contains(&chain) => {}
                _ => return fail("not an iptables-restore command the plugin may use"),
            }
        }
        Ok(())
    }

    /// Splits a line as iptables-restore does (its add_param_to_argv):
    /// space, tab and newline separate; double quotes group, and inside
    /// them a backslash takes the next character as it is; single quotes
    /// and backslashes outside quotes are ordinary characters.
    pub fn tokenize(line: &str) -> Option<Vec<String>> {
        let mut tokens = Vec::new();
        let mut current = String::new();
        let mut in_token = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    in_token = true;
                    loop {
                        match chars.next()? {
                            '"' => break,
                            '\\' => current.push(chars.next()?),
                            other => current.push(other),
                        }
                    }
                }
                ' ' | '\t' | '\n' => {
                    if in_token {
                        tokens.push(std::mem::take(&mut current));
                        in_token = false;
                    }
                }
                other => {
                    in_token = true;
                    current.push(other);
                }
            }
        }
        if in_token {
            tokens.push(current);
        }
        (!tokens.is_empty()).then_some(tokens)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn portmap_owns(chain: &str) -> bool {
            ["CNI-HOSTPORT-*", "CNI-DN-*"].iter().any(|p| glob(p, chain))
        }

        #[test]
        fn owned_chains_may_be_edited_freely() {
            let rules = ":CNI-DN-abc - [0:0]\n-A CNI-DN-abc -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80\n-X CNI-DN-abc";
            assert!(check_iptables_rules(rules, &portmap_owns).is_ok());
        }

        #[test]
        fn built_in_chains_only_get_jumps_to_owned_chains() {
            assert!(
                check_iptables_rules("-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT", &portmap_owns)
                    .is_ok()
            );
            assert!(
                check_iptables_rules(
                    "-I POSTROUTING 1 -m comment --comment \"x y\" -j CNI-HOSTPORT-MASQ",
                    &portmap_owns
                )
                .is_ok()
            );
            for bad in [
                "-A PREROUTING -j DROP",
                "-D FORWARD 1",
                "-F POSTROUTING",
                ":FORWARD DROP [0:0]",
                "-P FORWARD DROP",
                "-A KUBE-SERVICES -j RETURN",
                "-X KUBE-MARK-MASQ",
                "-F",
                "*nat",
                "COMMIT",
            ] {
                assert!(check_iptables_rules(bad, &portmap_owns).is_err(), "{bad}");
            }
        }

        #[test]
        fn tokens_are_read_as_iptables_restore_reads_them() {
            // A vertical tab is no separator for iptables-restore: refused.
            assert!(
                check_iptables_rules("-A FORWARD -m comment --comment x\u{b}-j\u{b}CNI-DN-x -j DROP", &portmap_owns)
                    .is_err()
            );
            // Single quotes are plain characters: the target is 'CNI-DN-x', not owned.
            assert!(check_iptables_rules("-A PREROUTING -j 'CNI-DN-x'", &portmap_owns).is_err());
            // Two targets: iptables takes the last.
            assert!(check_iptables_rules("-A PREROUTING -j CNI-DN-x -j DROP", &portmap_owns).is_err());
            // A line break inside a value starts another rule: refused.
            assert!(check_iptables_rules("-A CNI-DN-x -s 1.2.3.4 -j RETURN\r", &portmap_owns).is_err());
            assert!(check_iptables_rules("-D FORWARD 1", &portmap_owns).is_err());
            assert_eq!(
                tokenize(r#"-m comment --comment "two words" 'a b'"#).unwrap(),
                ["-m", "comment", "--comment", "two words", "'a", "b'"]
            );
        }

        #[test]
        fn a_quoted_comment_cannot_smuggle_a_target() {
            let tricky = "-A FORWARD -m comment --comment \"-j CNI-DN-x\" -j ACCEPT";
            assert!(check_iptables_rules(tricky, &portmap_owns).is_err());
            assert_eq!(tokenize(r#"-m comment --comment "name: \"podman\"" -j X"#).unwrap()[3], "name: \"podman\"");
        }

        #[test]
        fn nft_batches_may_only_name_owned_tables() {
            let owned = vec!["ip cni_hostport".to_string()];
            let good = r#"{"nftables":[{"add":{"table":{"family":"ip","name":"cni_hostport"}}},
                {"add":{"rule":{"family":"ip","table":"cni_hostport","chain":"hostports","expr":[]}}},
                {"delete":{"rule":{"family":"ip","table":"cni_hostport","chain":"hostports","handle":4}}}]}"#;
            assert!(check_nft_batch(good, &owned).is_ok());
            for bad in [
                r#"{"nftables":[{"flush":{"ruleset":null}}]}"#,
                r#"{"nftables":[{"add":{"table":{"family":"inet","name":"filter"}}}]}"#,
                r#"{"nftables":[{"delete":{"rule":{"family":"ip6","table":"cni_hostport","chain":"x","handle":1}}}]}"#,
                r#"{"nftables":[{"list":{"table":{"family":"ip","name":"cni_hostport"}}}]}"#,
                r#"[{"add":{}}]"#,
            ] {
                assert!(check_nft_batch(bad, &owned).is_err(), "{bad}");
            }
        }
    }
}
