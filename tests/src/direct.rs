//! A plugin run directly (not through libcni) in a scratch host namespace,
//! as the DEL matrix, rollback and bad-input tests need: CNI_* by hand, the
//! config as given, ours or the reference.

use std::path::Path;

use serde_json::{Value, json};

use crate::netns::Netns;
use crate::plugin::{Env, Installation, Outcome, run};
use crate::{TempDir, require_root};

pub struct Direct {
    pub install: Installation,
    /// The namespace playing the host.
    pub host: Netns,
    /// The IPAM store (`ipam.dataDir`).
    pub store: TempDir,
    plugin: String,
    network: String,
}

impl Direct {
    pub fn new(tag: &str, plugin: &str, network: &str) -> Direct {
        require_root();
        let host = Netns::new(&format!("{tag}-h"));
        host.exec("ip", &["link", "set", "lo", "up"]);
        Direct {
            install: Installation::new(tag),
            host,
            store: TempDir::new(tag),
            plugin: plugin.to_string(),
            network: network.to_string(),
        }
    }

    /// `plugin` as a whole config: `cniVersion` 1.0.0 unless it has one, the
    /// network's name, the type, and `ipam.dataDir` pointed at the store.
    pub fn config(&self, plugin: Value) -> String {
        let mut config = plugin;
        if config.get("cniVersion").is_none() {
            config["cniVersion"] = json!("1.0.0");
        }
        config["name"] = json!(self.network);
        if config.get("type").is_none() {
            config["type"] = json!(self.plugin);
        }
        if config.get("ipam").is_some_and(|i| i.get("type").is_some()) {
            config["ipam"]["dataDir"] = json!(self.store.display());
        }
        config.to_string()
    }

    fn run_as(&self, program: &Path, command: &str, id: &str, netns: &str, config: &str, args: &str) -> Outcome {
        self.run_on(program, command, id, netns, "eth0", config, args)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_on(
        &self,
        program: &Path,
        command: &str,
        id: &str,
        netns: &str,
        ifname: &str,
        config: &str,
        args: &str,
    ) -> Outcome {
        let env = Env {
            host_netns: Some(self.host.name.clone()),
            args: args.to_string(),
            ..Env::new(command, id, netns, ifname, &self.install.dir)
        };
        run(program, &env, config)
    }

    /// Ours on an interface other than eth0.
    pub fn ours_on(&self, command: &str, id: &str, netns: &str, ifname: &str, config: &str) -> Outcome {
        self.run_on(&self.install.plugin(&self.plugin), command, id, netns, ifname, config, "")
    }

    /// The reference on an interface other than eth0.
    pub fn reference_on(&self, command: &str, id: &str, netns: &str, ifname: &str, config: &str) -> Outcome {
        self.run_on(&crate::reference(&self.plugin), command, id, netns, ifname, config, "")
    }

    pub fn ours(&self, command: &str, id: &str, netns: &str, config: &str) -> Outcome {
        self.run_as(&self.install.plugin(&self.plugin), command, id, netns, config, "")
    }

    /// Ours with CNI_ARGS.
    pub fn ours_with_args(&self, command: &str, id: &str, netns: &str, config: &str, args: &str) -> Outcome {
        self.run_as(&self.install.plugin(&self.plugin), command, id, netns, config, args)
    }

    pub fn reference(&self, command: &str, id: &str, netns: &str, config: &str) -> Outcome {
        self.run_as(&crate::reference(&self.plugin), command, id, netns, config, "")
    }

    /// The addresses reserved in the store for the network.
    pub fn reservations(&self) -> Vec<String> {
        crate::snapshot(&self.store.join(&self.network))
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }
}
