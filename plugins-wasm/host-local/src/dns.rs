//! `resolvConf`: nameserver, domain, search and options lines of a
//! resolv.conf-style file become the result's DNS (as the reference parses it).

use cni_plugin_sdk::cni::Dns;
use cni_plugin_sdk::error::{Context, Result, internal};
use cni_plugin_sdk::files;

pub fn parse_resolv_conf(path: &str) -> Result<Dns> {
    let contents = files::read(path)
        .context(format!("reading resolvConf {path}"))?
        .ok_or_else(|| internal(format!("open {path}: no such file or directory")))?;
    Ok(parse(&String::from_utf8_lossy(&contents)))
}

fn parse(text: &str) -> Dns {
    let mut dns = Dns { nameservers: Vec::new(), domain: None, search: Vec::new(), options: Vec::new() };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let values = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = Some(fields[1].to_string()),
            "search" => dns.search.extend(values),
            "options" => dns.options.extend(values),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_four_keywords_and_skips_comments() {
        let dns = super::parse(
            "# c\n; c\nnameserver 10.0.0.1\nnameserver 10.0.0.2 ignored\ndomain example.com\nsearch a b\noptions ndots:5\nbogus\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(dns.domain.as_deref(), Some("example.com"));
        assert_eq!(dns.search, ["a", "b"]);
        assert_eq!(dns.options, ["ndots:5"]);
    }
}
