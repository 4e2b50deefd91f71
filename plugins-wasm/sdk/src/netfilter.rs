//! Working with netfilter through the `netfilter` capability: iptables
//! tables read from iptables-save and edited with iptables-restore in one
//! transaction, nftables batches in nft's JSON schema, and the reference's
//! chain and comment names.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use crate::error::{Result, internal};
use crate::namespaces::Netns;
use crate::types::{ErrorKind, IpFamily};

/// `prefix + hex(sha512(input))`, cut to `length`: the reference's
/// `MustFormatHashWithPrefix`.
pub fn hash_with_prefix(length: usize, prefix: &str, input: &str) -> String {
    let digest = Sha512::digest(input.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = format!("{prefix}{hex}");
    name.truncate(length);
    name
}

/// The reference's chain names: "CNI-" + prefix + sha512(network + id),
/// 28 characters in all.
pub fn chain_name(network: &str, container_id: &str, prefix: &str) -> String {
    hash_with_prefix(28, &format!("CNI-{prefix}"), &format!("{network}{container_id}"))
}

/// The reference's rule comment: `name: "<net>" id: "<id>"` (Go's %q).
pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Go's `%q` for the plain strings network names and ids are.
pub fn go_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A value as iptables-save prints it: bare when it is only letters,
/// digits, `_` and `-`; otherwise double-quoted with `"`, `\` and `'`
/// escaped (xtables_save_string). Rules written this way compare equal to
/// what iptables-save prints back.
pub fn save_string(value: &str) -> String {
    let bare = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One iptables table as iptables-save printed it.
#[derive(Debug, Default, Clone)]
pub struct IptablesTable {
    /// Chain name -> rule specs (the text after `-A CHAIN `), in order.
    chains: BTreeMap<String, Vec<String>>,
}

impl IptablesTable {
    /// The raw capability error on failure, so callers can tell "not
    /// usable here" ([`iptables_unusable`]) from a real failure.
    pub fn read(ns: &Netns, family: IpFamily, table: &str) -> std::result::Result<IptablesTable, crate::types::Error> {
        let text = crate::netfilter_capability::iptables_save(ns, family, table)?;
        Ok(IptablesTable::parse(&text))
    }

    pub fn parse(text: &str) -> IptablesTable {
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(declaration) = line.strip_prefix(':') {
                let name = declaration.split_whitespace().next().unwrap_or_default();
                chains.entry(name.to_string()).or_default();
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
                chains.entry(chain.to_string()).or_default().push(spec.to_string());
            }
        }
        IptablesTable { chains }
    }

    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.contains_key(chain)
    }

    pub fn rules(&self, chain: &str) -> &[String] {
        self.chains.get(chain).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn has_rule(&self, chain: &str, spec: &str) -> bool {
        self.rules(chain).iter().any(|r| r == spec)
    }

    pub fn chain_names(&self) -> impl Iterator<Item = &str> {
        self.chains.keys().map(String::as_str)
    }
}

/// Whether a failed iptables read means iptables (of that family) is not
/// usable here: the tool is missing or the kernel lacks the table. Any
/// other failure is real and must not pass for "nothing to do".
pub fn iptables_unusable(error: &crate::types::Error) -> bool {
    matches!(error.kind, ErrorKind::Unsupported | ErrorKind::NotFound)
}

/// iptables-restore lines built against a snapshot of the table, so that
/// "unique" additions and deletions of absent rules never fail the whole
/// transaction.
pub struct IptablesChange<'a> {
    table: &'a IptablesTable,
    lines: Vec<String>,
}

impl<'a> IptablesChange<'a> {
    pub fn new(table: &'a IptablesTable) -> Self {
        IptablesChange { table, lines: Vec::new() }
    }

    /// Creates a chain unless it exists (declaring it would flush it).
    pub fn ensure_chain(&mut self, chain: &str) -> &mut Self {
        if !self.table.has_chain(chain) {
            self.lines.push(format!("-N {chain}"));
        }
        self
    }

    /// Creates the chain or empties it: for chains of one attachment.
    pub fn reset_chain(&mut self, chain: &str) -> &mut Self {
        self.lines.push(format!(":{chain} - [0:0]"));
        self
    }

    pub fn append_unique(&mut self, chain: &str, spec: &str) -> &mut Self {
        if !self.table.has_rule(chain, spec) {
            self.lines.push(format!("-A {chain} {spec}"));
        }
        self
    }

    /// Inserts at the top unless present anywhere in the chain.
    pub fn insert_unique(&mut self, chain: &str, spec: &str) -> &mut Self {
        if !self.table.has_rule(chain, spec) {
            self.lines.push(format!("-I {chain} 1 {spec}"));
        }
        self
    }

    /// Appends without checking (for a chain just reset).
    pub fn append(&mut self, chain: &str, spec: &str) -> &mut Self {
        self.lines.push(format!("-A {chain} {spec}"));
        self
    }

    /// Deletes every copy of a rule that exists.
    pub fn delete(&mut self, chain: &str, spec: &str) -> &mut Self {
        let copies = self.table.rules(chain).iter().filter(|r| *r == spec).count();
        for _ in 0..copies {
            self.lines.push(format!("-D {chain} {spec}"));
        }
        self
    }

    /// Flushes and deletes a chain if it exists.
    pub fn delete_chain(&mut self, chain: &str) -> &mut Self {
        if self.table.has_chain(chain) {
            self.lines.push(format!("-F {chain}"));
            self.lines.push(format!("-X {chain}"));
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn apply(&self, ns: &Netns, family: IpFamily, table: &str) -> std::result::Result<(), crate::types::Error> {
        if self.lines.is_empty() {
            return Ok(());
        }
        crate::netfilter_capability::iptables_restore(ns, family, table, &self.lines.join("\n"))
    }
}

/// Reads `table`, lets `edit` build a change, applies it; when a chain
/// appeared or vanished meanwhile (a concurrent plugin), reads again.
pub fn edit_iptables(
    ns: &Netns,
    family: IpFamily,
    table: &str,
    edit: impl Fn(&IptablesTable, &mut IptablesChange) -> Result<()>,
) -> Result<()> {
    let snapshot = IptablesTable::read(ns, family, table)?;
    edit_iptables_from(ns, family, table, snapshot, edit)
}

/// [`edit_iptables`] starting from a snapshot the caller just read (each
/// read is an iptables-save process).
pub fn edit_iptables_from(
    ns: &Netns,
    family: IpFamily,
    table: &str,
    snapshot: IptablesTable,
    edit: impl Fn(&IptablesTable, &mut IptablesChange) -> Result<()>,
) -> Result<()> {
    const ATTEMPTS: usize = 5;
    let mut snapshot = snapshot;
    for attempt in 1..=ATTEMPTS {
        let mut change = IptablesChange::new(&snapshot);
        edit(&snapshot, &mut change)?;
        match change.apply(ns, family, table) {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && matches!(e.kind, ErrorKind::AlreadyExists | ErrorKind::NotFound) => {
                snapshot = IptablesTable::read(ns, family, table)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// An nftables batch in nft's JSON schema.
#[derive(Debug, Default)]
pub struct NftBatch {
    commands: Vec<Value>,
}

impl NftBatch {
    pub fn new() -> Self {
        NftBatch::default()
    }

    pub fn push(&mut self, verb: &str, kind: &str, spec: Value) -> &mut Self {
        self.commands.push(json!({ verb: { kind: spec } }));
        self
    }

    pub fn add_table(&mut self, family: &str, table: &str, comment: Option<&str>) -> &mut Self {
        let mut spec = json!({"family": family, "name": table});
        if let Some(comment) = comment {
            spec["comment"] = json!(comment);
        }
        self.push("add", "table", spec)
    }

    pub fn add_chain(&mut self, family: &str, table: &str, chain: &str, comment: Option<&str>) -> &mut Self {
        let mut spec = json!({"family": family, "table": table, "name": chain});
        if let Some(comment) = comment {
            spec["comment"] = json!(comment);
        }
        self.push("add", "chain", spec)
    }

    /// A base chain: `type` nat/filter, `hook`, numeric priority.
    pub fn add_base_chain(
        &mut self,
        family: &str,
        table: &str,
        chain: &str,
        kind: &str,
        hook: &str,
        priority: i32,
    ) -> &mut Self {
        self.push(
            "add",
            "chain",
            json!({"family": family, "table": table, "name": chain, "type": kind, "hook": hook, "prio": priority, "policy": "accept"}),
        )
    }

    pub fn flush_chain(&mut self, family: &str, table: &str, chain: &str) -> &mut Self {
        self.push("flush", "chain", json!({"family": family, "table": table, "name": chain}))
    }

    pub fn delete_chain(&mut self, family: &str, table: &str, chain: &str) -> &mut Self {
        self.push("delete", "chain", json!({"family": family, "table": table, "name": chain}))
    }

    pub fn add_rule(
        &mut self,
        family: &str,
        table: &str,
        chain: &str,
        expr: Vec<Value>,
        comment: Option<&str>,
    ) -> &mut Self {
        let mut spec = json!({"family": family, "table": table, "chain": chain, "expr": expr});
        if let Some(comment) = comment {
            spec["comment"] = json!(comment);
        }
        self.push("add", "rule", spec)
    }

    pub fn delete_rule(&mut self, rule: &NftRule) -> &mut Self {
        self.delete_rule_by_handle(&rule.family, &rule.table, &rule.chain, rule.handle)
    }

    /// Deletes a rule by the handle the kernel gave it (e.g. from
    /// [`NftBatch::apply_echo`]); the batch fails if it is gone.
    pub fn delete_rule_by_handle(&mut self, family: &str, table: &str, chain: &str, handle: u64) -> &mut Self {
        self.push("delete", "rule", json!({"family": family, "table": table, "chain": chain, "handle": handle}))
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn apply(&self, ns: &Netns) -> Result<()> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let batch = json!({ "nftables": self.commands }).to_string();
        Ok(crate::netfilter_capability::nft_apply(ns, &batch)?)
    }

    /// Applies the batch and returns the handles the kernel gave its added
    /// rules, in the order they were added, and the handle of a table it
    /// added (nft's echo).
    pub fn apply_echo(&self, ns: &Netns) -> Result<NftEcho> {
        if self.commands.is_empty() {
            return Ok(NftEcho::default());
        }
        let batch = json!({ "nftables": self.commands }).to_string();
        let text = crate::netfilter_capability::nft_apply_echo(ns, &batch)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| internal(format!("parsing nft's echo: {e}")))?;
        let mut echo = NftEcho::default();
        for command in value["nftables"].as_array().into_iter().flatten() {
            let added = &command["add"];
            let rule = &added["rule"];
            if let Some(handle) = rule["handle"].as_u64() {
                echo.rules.push(NftAdded {
                    chain: rule["chain"].as_str().unwrap_or_default().to_string(),
                    handle,
                    comment: rule["comment"].as_str().map(str::to_string),
                });
            } else if let Some(handle) = added["table"]["handle"].as_u64() {
                echo.table = Some(handle);
            }
        }
        Ok(echo)
    }
}

/// What nft's echo of a batch says the kernel numbered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NftEcho {
    pub table: Option<u64>,
    /// The added rules, in the order the batch added them.
    pub rules: Vec<NftAdded>,
}

/// One rule a batch added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftAdded {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

/// The rules one attachment's ADD added to a table, by the handles the
/// kernel gave them, with the table's identity: its handle and its
/// namespace's cookie, neither ever reused. nft deletes a rule only by its
/// handle, so with this a DEL deletes an attachment's rules without
/// listing chains that hold every attachment's. It is a hint kept in the
/// plugin's state, checked against the kernel before use, never a grant:
/// the host still checks that the table is the plugin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftHandles {
    pub netns: u64,
    pub table: u64,
    /// (chain, rule handle)
    pub rules: Vec<(String, u64)>,
}

impl NftHandles {
    /// The rules of `echo` whose comment `ours` picks. `known` is the table
    /// as read before the batch; when the batch created it, the table's
    /// identity is read now, from its small `probe` chain. None when the
    /// identity cannot be had: then DEL lists, as the reference does.
    pub fn of_echo(
        ns: &Netns,
        (family, table, probe): (&str, &str, &str),
        known: Option<&NftTable>,
        echo: &NftEcho,
        ours: impl Fn(&str) -> bool,
    ) -> Option<NftHandles> {
        let read;
        let identity = match known.filter(|t| t.netns_cookie.is_some()) {
            Some(table) => table,
            None => {
                read = NftTable::read_chain(ns, family, table, probe).ok().flatten()?;
                &read
            }
        };
        let rules = echo
            .rules
            .iter()
            .filter(|r| r.comment.as_deref().is_some_and(&ours))
            .map(|r| (r.chain.clone(), r.handle))
            .collect();
        Some(NftHandles { netns: identity.netns_cookie?, table: identity.handle?, rules })
    }

    /// Whether `table` (as read) is the table these handles were given in.
    pub fn names(&self, table: &NftTable) -> bool {
        table.handle == Some(self.table) && table.netns_cookie == Some(self.netns)
    }

    /// Adds the deletion of these rules to `batch`.
    pub fn delete_in(&self, batch: &mut NftBatch, family: &str, table: &str) {
        for (chain, handle) in &self.rules {
            batch.delete_rule_by_handle(family, table, chain, *handle);
        }
    }

    /// Deletes the rules while their table, read from its small `probe`
    /// chain, is the one they were added to. False when the caller must find
    /// them by listing instead: no such table or chain, another table of the
    /// same name, or a rule already gone (the batch is all or nothing).
    pub fn delete(&self, ns: &Netns, (family, table, probe): (&str, &str, &str)) -> bool {
        let current = NftTable::read_chain(ns, family, table, probe).ok().flatten();
        if !current.is_some_and(|t| self.names(&t)) {
            return false;
        }
        let mut batch = NftBatch::new();
        self.delete_in(&mut batch, family, table);
        batch.apply(ns).is_ok()
    }

    /// `<netns cookie> <table handle> <chain>:<handle>...`; a bare
    /// `<handle>` (the masquerade records of cni-wasm 0.1) is in
    /// `default_chain`.
    pub fn encode(&self) -> String {
        let mut text = format!("{} {}", self.netns, self.table);
        for (chain, handle) in &self.rules {
            text.push_str(&format!(" {chain}:{handle}"));
        }
        text
    }

    pub fn decode(text: &str, default_chain: &str) -> Option<NftHandles> {
        let mut words = text.split_whitespace();
        let netns = words.next()?.parse().ok()?;
        let table = words.next()?.parse().ok()?;
        let rules = words
            .map(|word| match word.rsplit_once(':') {
                Some((chain, handle)) if !chain.is_empty() => Some((chain.to_string(), handle.parse().ok()?)),
                Some(_) => None,
                None => Some((default_chain.to_string(), word.parse().ok()?)),
            })
            .collect::<Option<Vec<_>>>()?;
        Some(NftHandles { netns, table, rules })
    }
}

/// A rule as `nft -j list table` shows it.
#[derive(Debug, Clone)]
pub struct NftRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub expr: Value,
}

/// A table's chains and rules, or None when the table does not exist.
#[derive(Debug, Clone, Default)]
pub struct NftTable {
    /// The table's handle: numbered per namespace, never reused.
    pub handle: Option<u64>,
    /// The namespace's cookie, from [`NftTable::read_chain`] only: with the
    /// handle it names this table's lifetime on the node.
    pub netns_cookie: Option<u64>,
    pub chains: Vec<String>,
    pub rules: Vec<NftRule>,
}

impl NftTable {
    pub fn read(ns: &Netns, family: &str, table: &str) -> Result<Option<NftTable>> {
        let text = crate::netfilter_capability::nft_list_table(ns, family, table)?;
        text.map(|text| NftTable::parse(&text)).transpose()
    }

    /// The table with only one chain and its rules, or None when the table
    /// or the chain does not exist. Its cost does not grow with the rest of
    /// the table.
    pub fn read_chain(ns: &Netns, family: &str, table: &str, chain: &str) -> Result<Option<NftTable>> {
        let text = crate::netfilter_capability::nft_list_chain(ns, family, table, chain)?;
        text.map(|text| NftTable::parse(&text)).transpose()
    }

    fn parse(text: &str) -> Result<NftTable> {
        let value: Value = serde_json::from_str(text).map_err(|e| internal(format!("parsing nft output: {e}")))?;
        let mut out = NftTable::default();
        for object in value["nftables"].as_array().into_iter().flatten() {
            if let Some(table) = object.get("table") {
                out.handle = table["handle"].as_u64();
                out.netns_cookie = table["netns-cookie"].as_u64();
            } else if let Some(chain) = object.get("chain") {
                out.chains.push(chain["name"].as_str().unwrap_or_default().to_string());
            } else if let Some(rule) = object.get("rule") {
                out.rules.push(NftRule {
                    family: rule["family"].as_str().unwrap_or_default().to_string(),
                    table: rule["table"].as_str().unwrap_or_default().to_string(),
                    chain: rule["chain"].as_str().unwrap_or_default().to_string(),
                    handle: rule["handle"].as_u64().unwrap_or_default(),
                    comment: rule["comment"].as_str().map(str::to_string),
                    expr: rule["expr"].clone(),
                });
            }
        }
        Ok(out)
    }

    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    pub fn rules_in<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a NftRule> {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// nft JSON expressions the plugins use.
pub mod expr {
    use serde_json::{Value, json};

    /// `<protocol> <field> <op> <right>`, e.g. ip saddr == 10.0.0.2.
    pub fn payload(protocol: &str, field: &str, op: &str, right: Value) -> Value {
        json!({"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}})
    }

    /// An address or prefix as a match's right-hand side.
    pub fn prefix(address: &str, len: u8) -> Value {
        json!({"prefix": {"addr": address, "len": len}})
    }

    pub fn meta(key: &str, op: &str, right: Value) -> Value {
        json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}})
    }

    /// `fib daddr type local`.
    pub fn fib_daddr_local() -> Value {
        json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
    }

    pub fn jump(chain: &str) -> Value {
        json!({"jump": {"target": chain}})
    }

    pub fn goto(chain: &str) -> Value {
        json!({"goto": {"target": chain}})
    }

    pub fn ret() -> Value {
        json!({"return": null})
    }

    pub fn accept() -> Value {
        json!({"accept": null})
    }

    pub fn drop() -> Value {
        json!({"drop": null})
    }

    pub fn masquerade() -> Value {
        json!({"masquerade": null})
    }

    /// `dnat to <addr>:<port>` (family "ip" or "ip6").
    pub fn dnat(family: &str, address: &str, port: u16) -> Value {
        json!({"dnat": {"family": family, "addr": address, "port": port}})
    }

    /// `ct state <states> ...` (e.g. ["established", "related"]).
    pub fn ct_state(states: &[&str]) -> Value {
        json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}})
    }
}

/// The value of a rule's `--comment`, unquoted (the inverse of
/// [`save_string`]).
pub fn comment_of(spec: &str) -> Option<String> {
    let rest = &spec[spec.find("--comment ")? + "--comment ".len()..];
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(rest.split_whitespace().next()?.to_string());
    };
    let mut value = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_reference() {
        // Observed from the Debian reference: bridge ipMasq for network
        // "podman", container "abc123"; portmap's DNAT chain.
        assert_eq!(chain_name("podman", "abc123", ""), "CNI-748d4dd0c88c50c10332c6d8");
        assert_eq!(chain_name("podman", "abc123", "DN-"), "CNI-DN-748d4dd0c88c50c10332c");
        assert_eq!(comment("podman", "abc123"), r#"name: "podman" id: "abc123""#);
    }

    #[test]
    fn rule_handles_read_back_what_was_recorded() {
        let handles =
            NftHandles { netns: 4096, table: 7, rules: vec![("hostports".into(), 12), ("masquerading".into(), 13)] };
        assert_eq!(handles.encode(), "4096 7 hostports:12 masquerading:13");
        assert_eq!(NftHandles::decode(&handles.encode(), "x"), Some(handles));
        // cni-wasm 0.1's masquerade records: bare handles in one chain.
        let old = NftHandles::decode("4096 7 21 22", "masq_checks").unwrap();
        assert_eq!(old.rules, [("masq_checks".to_string(), 21), ("masq_checks".to_string(), 22)]);
        assert_eq!(NftHandles::decode("4096", "x"), None);
        assert_eq!(NftHandles::decode("4096 7 chain:x", "x"), None);
        assert_eq!(NftHandles::decode("4096 7 :3", "x"), None);
    }

    #[test]
    fn values_are_quoted_like_iptables_save() {
        assert_eq!(save_string("CNI-ADMIN"), "CNI-ADMIN");
        assert_eq!(save_string("CNI portfwd masquerade mark"), "\"CNI portfwd masquerade mark\"");
        assert_eq!(save_string(r#"name: "podman" id: "abc""#), r#""name: \"podman\" id: \"abc\"""#);
    }

    #[test]
    fn comments_read_back_what_save_string_wrote() {
        let text = comment("podman", "abc123");
        let spec = format!("-s 10.0.0.2/32 -m comment --comment {} -j CNI-X", save_string(&text));
        assert_eq!(comment_of(&spec).as_deref(), Some(text.as_str()));
        assert_eq!(comment_of("-m comment --comment bare -j X").as_deref(), Some("bare"));
    }

    #[test]
    fn a_saved_table_parses_into_chains_and_rules() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-X - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-X\nCOMMIT\n";
        let table = IptablesTable::parse(saved);
        assert!(table.has_chain("CNI-X") && table.rules("CNI-X").is_empty());
        assert!(table.has_rule("PREROUTING", "-m addrtype --dst-type LOCAL -j CNI-X"));
        let mut change = IptablesChange::new(&table);
        change
            .ensure_chain("CNI-X")
            .ensure_chain("CNI-Y")
            .append_unique("PREROUTING", "-m addrtype --dst-type LOCAL -j CNI-X");
        change.delete("PREROUTING", "-j CNI-Z").delete_chain("CNI-X");
        assert_eq!(change.lines, ["-N CNI-Y", "-F CNI-X", "-X CNI-X"]);
    }
}
