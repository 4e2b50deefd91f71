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
use crate::journal::Entry;

/// The most table text (nft JSON, iptables-save) handed to a plugin: a
/// node's real tables are far smaller, and a plugin that filled its own
/// table must not make the host copy gigabytes into its memory.
const MAX_TABLE_TEXT: usize = 16 << 20;

impl HostState {
    fn bounded(&self, call: &str, text: String) -> CallResult<String> {
        if text.len() > MAX_TABLE_TEXT {
            let why =
                format!("the table's text is {} bytes, more than the {MAX_TABLE_TEXT} passed to a plugin", text.len());
            return Err(self.refuse(call, why));
        }
        Ok(text)
    }

    fn refuse(&self, call: &str, why: String) -> super::CallError {
        Error::new(ErrorKind::Denied, format!("{}: {call} refused: {why}", self.grants.plugin)).into()
    }

    /// Checks and applies an nft batch, joining the rollback journal during
    /// ADD; returns nft's echo when asked for or when the journal needs it.
    fn apply_nft(
        &mut self,
        call: &str,
        ns: Resource<NetnsHandle>,
        batch: String,
        echo: bool,
    ) -> CallResult<Option<String>> {
        self.require_on(Capability::Netfilter, call, &"")?;
        let (which, netns) = self.netns(&ns)?;
        ownership::check_nft_batch(&batch, &self.grants.nft_tables).map_err(|why| self.refuse(call, why))?;
        let deadline = self.session.deadline();
        if !self.journal.is_recording() {
            if echo {
                return Ok(Some(native::nft_apply_echo(&netns, &batch, deadline)?));
            }
            native::nft_apply(&netns, &batch, deadline)?;
            return Ok(None);
        }
        // What existed before decides what undoing the batch may delete.
        let existed = |family: &str, table: &str, object: native::NftObject<'_>| {
            native::nft_object_exists(&netns, family, table, object).unwrap_or(true)
        };
        let plan = undo::NftPlan::before(&batch, &existed);
        let text = native::nft_apply_echo(&netns, &batch, deadline)?;
        let parsed = serde_json::from_str(&text).unwrap_or_default();
        self.journal.record(Entry::NftApplied { ns: which, undo: plan.after(&parsed) });
        Ok(Some(text))
    }

    /// One table, or one chain of it, as nft JSON (bounded). Reading is not
    /// owning: any table may be read, names are only checked for shape.
    fn list_nft(
        &mut self,
        call: &str,
        ns: Resource<NetnsHandle>,
        family: &str,
        table: &str,
        chain: Option<&str>,
    ) -> CallResult<Option<String>> {
        self.require_on(Capability::Netfilter, call, &table)?;
        let (_, netns) = self.netns(&ns)?;
        for name in std::iter::once(table).chain(chain) {
            ownership::check_nft_name(family, name).map_err(|why| self.refuse(call, why))?;
        }
        let deadline = self.session.deadline();
        let text = match chain {
            Some(chain) => native::nft_list_chain(&netns, family, table, chain, deadline)?,
            None => native::nft_list_table(&netns, family, table, deadline)?,
        };
        text.map(|text| self.bounded(call, text)).transpose()
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
        self.apply_nft("netfilter.nft-apply", ns, batch, false).map(drop)
    }

    fn nft_apply_echo(&mut self, ns: Resource<NetnsHandle>, batch: String) -> CallResult<String> {
        let echo = self.apply_nft("netfilter.nft-apply-echo", ns, batch, true)?;
        self.bounded("netfilter.nft-apply-echo", echo.unwrap_or_default())
    }

    fn nft_list_chain(
        &mut self,
        ns: Resource<NetnsHandle>,
        family: String,
        table: String,
        chain: String,
    ) -> CallResult<Option<String>> {
        self.list_nft("netfilter.nft-list-chain", ns, &family, &table, Some(&chain))
    }

    fn nft_list_table(
        &mut self,
        ns: Resource<NetnsHandle>,
        family: String,
        table: String,
    ) -> CallResult<Option<String>> {
        self.list_nft("netfilter.nft-list-table", ns, &family, &table, None)
    }

    fn iptables_restore(
        &mut self,
        ns: Resource<NetnsHandle>,
        family: IpFamily,
        table: String,
        rules: String,
    ) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.iptables-restore", &table)?;
        let (which, netns) = self.netns(&ns)?;
        ownership::check_table_name(&table).map_err(|why| self.refuse("netfilter.iptables-restore", why))?;
        ownership::check_iptables_rules(&rules, &|chain| self.owns_chain(chain))
            .map_err(|why| self.refuse("netfilter.iptables-restore", why))?;
        let family = family_from_wit(family);
        native::iptables_restore(&netns, family, &table, &rules, self.session.deadline())?;
        if self.journal.is_recording() {
            let undo = undo::iptables(&rules);
            if !undo.is_empty() {
                self.journal.record(Entry::IptablesApplied { ns: which, family, table, undo });
            }
        }
        Ok(())
    }

    fn iptables_save(&mut self, ns: Resource<NetnsHandle>, family: IpFamily, table: String) -> CallResult<String> {
        self.require_on(Capability::Netfilter, "netfilter.iptables-save", &table)?;
        let (_, netns) = self.netns(&ns)?;
        ownership::check_table_name(&table).map_err(|why| self.refuse("netfilter.iptables-save", why))?;
        let text = native::iptables_save(&netns, family_from_wit(family), &table, self.session.deadline())?;
        self.bounded("netfilter.iptables-save", text)
    }

    fn firewalld_running(&mut self) -> wasmtime::Result<bool> {
        Ok(self.grants.has(Capability::Netfilter) && cni_wasm_capabilities::firewalld::running(self.session.deadline()))
    }

    fn firewalld_add_source(&mut self, zone: String, source: String) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-add-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::add_source(&zone, &source, self.session.deadline())?)
    }

    fn firewalld_remove_source(&mut self, zone: String, source: String) -> CallResult<()> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-remove-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::remove_source(&zone, &source, self.session.deadline())?)
    }

    fn firewalld_query_source(&mut self, zone: String, source: String) -> CallResult<bool> {
        self.require_on(Capability::Netfilter, "netfilter.firewalld-query-source", &zone)?;
        Ok(cni_wasm_capabilities::firewalld::query_source(&zone, &source, self.session.deadline())?)
    }
}

/// How to undo what a plugin applied, for a failed ADD's rollback: pure
/// functions over the input it handed in (and nft's echo of it).
pub mod undo {
    use serde_json::{Value, json};

    use super::ownership::tokenize;
    use cni_wasm_capabilities::netfilter::NftObject;

    /// iptables-restore lines undoing `rules` (already checked): `-D` for
    /// each rule appended or inserted, newest first, then `-X` for each
    /// chain declared or created.
    pub fn iptables(rules: &str) -> Vec<String> {
        let mut deletes = Vec::new();
        let mut chains = Vec::new();
        for line in rules.split('\n') {
            let Some(tokens) = tokenize(line.trim_matches([' ', '\t'])) else { continue };
            if tokens[0].starts_with('#') {
                continue;
            }
            if let Some(chain) = tokens[0].strip_prefix(':') {
                chains.push(format!("-X {chain}"));
                continue;
            }
            let Some(chain) = tokens.get(1) else { continue };
            let spec = match tokens[0].as_str() {
                "-A" | "--append" => &tokens[2..],
                // An insert's position, if given, is no part of the rule.
                "-I" | "--insert" => match tokens.get(2) {
                    Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => &tokens[3..],
                    _ => &tokens[2..],
                },
                "-N" | "--new-chain" => {
                    chains.push(format!("-X {chain}"));
                    continue;
                }
                _ => continue,
            };
            let spec: Vec<String> = spec.iter().map(|t| quote(t)).collect();
            deletes.push(format!("-D {chain} {}", spec.join(" ")));
        }
        deletes.reverse();
        chains.reverse();
        deletes.extend(chains);
        deletes
    }

    /// A token as iptables-restore reads it back (see `tokenize`).
    fn quote(token: &str) -> String {
        if !token.is_empty() && !token.contains([' ', '\t', '"', '\\']) {
            return token.to_string();
        }
        let mut quoted = String::from('"');
        for c in token.chars() {
            if matches!(c, '"' | '\\') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    }

    /// Undoing an nftables batch, planned before it is applied (which of
    /// the tables, chains and sets it adds are new) and completed from
    /// nft's echo (the handles of the rules it added).
    pub struct NftPlan {
        /// "family table" of tables the batch creates: deleting one
        /// deletes everything the batch put in it.
        new_tables: Vec<(String, String)>,
        /// Chains and sets the batch creates in tables that existed.
        new_objects: Vec<Value>,
    }

    fn field(spec: &Value, key: &str) -> String {
        spec.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
    }

    fn adds(commands: &Value) -> impl Iterator<Item = (&str, &Value)> {
        commands
            .get("nftables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|command| command.as_object()?.iter().next())
            .filter(|(verb, _)| matches!(verb.as_str(), "add" | "create" | "insert"))
            .filter_map(|(_, target)| target.as_object()?.iter().next())
            .map(|(kind, spec)| (kind.as_str(), spec))
    }

    impl NftPlan {
        pub fn before(batch: &str, existed: &dyn Fn(&str, &str, NftObject<'_>) -> bool) -> NftPlan {
            let commands: Value = serde_json::from_str(batch).unwrap_or(Value::Null);
            let mut plan = NftPlan { new_tables: Vec::new(), new_objects: Vec::new() };
            for (kind, spec) in adds(&commands) {
                let family = field(spec, "family");
                match kind {
                    "table" => {
                        let table = field(spec, "name");
                        let key = (family.clone(), table.clone());
                        if !plan.new_tables.contains(&key) && !existed(&family, &table, NftObject::Table) {
                            plan.new_tables.push(key);
                        }
                    }
                    "chain" | "set" | "map" => {
                        let (table, name) = (field(spec, "table"), field(spec, "name"));
                        if plan.new_tables.contains(&(family.clone(), table.clone())) {
                            continue;
                        }
                        let object = if kind == "chain" { NftObject::Chain(&name) } else { NftObject::Set(&name) };
                        if !existed(&family, &table, object) {
                            let kind = if kind == "map" { "map" } else { kind };
                            plan.new_objects
                                .push(json!({"delete": {kind: {"family": family, "table": table, "name": name}}}));
                        }
                    }
                    _ => {}
                }
            }
            plan
        }

        /// The undo commands, in the order to apply them: rules and
        /// elements (newest first), then new chains and sets, then new
        /// tables.
        pub fn after(self, echo: &Value) -> Vec<Value> {
            let in_new_table = |spec: &Value| {
                self.new_tables.iter().any(|(f, t)| *f == field(spec, "family") && *t == field(spec, "table"))
            };
            let mut undo = Vec::new();
            for (kind, spec) in adds(echo) {
                match kind {
                    "rule" if !in_new_table(spec) => {
                        if let Some(handle) = spec.get("handle").and_then(Value::as_u64) {
                            undo.push(json!({"delete": {"rule": {"family": field(spec, "family"),
                                "table": field(spec, "table"), "chain": field(spec, "chain"), "handle": handle}}}));
                        }
                    }
                    "element" if !in_new_table(spec) => {
                        undo.push(json!({"delete": {"element": {"family": field(spec, "family"),
                            "table": field(spec, "table"), "name": field(spec, "name"), "elem": spec["elem"].clone()}}}));
                    }
                    _ => {}
                }
            }
            undo.reverse();
            undo.extend(self.new_objects.into_iter().rev());
            for (family, table) in self.new_tables.into_iter().rev() {
                undo.push(json!({"delete": {"table": {"family": family, "name": table}}}));
            }
            undo
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn iptables_rules_are_undone_newest_first_then_their_chains() {
            let rules = ":CNI-DN-x - [0:0]\n-A CNI-DN-x -m comment --comment \"two words\" -j DNAT --to-destination 10.0.0.2:80\n-I PREROUTING 1 -j CNI-DN-x\n-D FORWARD -j OLD\n-N CNI-HOSTPORT-X";
            assert_eq!(
                iptables(rules),
                [
                    "-D PREROUTING -j CNI-DN-x",
                    "-D CNI-DN-x -m comment --comment \"two words\" -j DNAT --to-destination 10.0.0.2:80",
                    "-X CNI-HOSTPORT-X",
                    "-X CNI-DN-x",
                ]
            );
        }

        #[test]
        fn nft_batches_are_undone_by_what_was_new() {
            let batch = r#"{"nftables":[
                {"add":{"table":{"family":"ip","name":"old"}}},
                {"add":{"chain":{"family":"ip","table":"old","name":"shared"}}},
                {"add":{"chain":{"family":"ip","table":"old","name":"mine"}}},
                {"add":{"element":{"family":"ip","table":"old","name":"ports","elem":[80]}}},
                {"add":{"table":{"family":"inet","name":"new"}}},
                {"add":{"chain":{"family":"inet","table":"new","name":"c"}}}]}"#;
            let existed = |family: &str, table: &str, object: NftObject<'_>| {
                (family, table) == ("ip", "old") && object != NftObject::Chain("mine")
            };
            let plan = NftPlan::before(batch, &existed);
            let echo = json!({"nftables": [
                {"add": {"rule": {"family": "ip", "table": "old", "chain": "shared", "expr": [], "handle": 7}}},
                {"add": {"element": {"family": "ip", "table": "old", "name": "ports", "elem": [80]}}},
                {"add": {"rule": {"family": "inet", "table": "new", "chain": "c", "expr": [], "handle": 2}}}]});
            assert_eq!(
                plan.after(&echo),
                [
                    json!({"delete": {"element": {"family": "ip", "table": "old", "name": "ports", "elem": [80]}}}),
                    json!({"delete": {"rule": {"family": "ip", "table": "old", "chain": "shared", "handle": 7}}}),
                    json!({"delete": {"chain": {"family": "ip", "table": "old", "name": "mine"}}}),
                    json!({"delete": {"table": {"family": "inet", "name": "new"}}}),
                ]
            );
        }
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
