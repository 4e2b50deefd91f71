//! Native implementations of the cni-wasm capability interfaces (`wit/`).
//!
//! Every system call the plugin host makes on a plugin's behalf is in this
//! crate: rtnetlink, sysctl files, the state store, child processes. The
//! host's WIT bindings check policy first and then call in here; nothing in
//! this crate knows about WebAssembly or about any particular CNI plugin.
//!
//! Namespaces: functions take a [`netns::Netns`], which opens sockets and
//! files inside its namespace on a short-lived thread (see [`netns`]); no
//! thread that outlives a call ever changes namespace.

pub mod addresses;
pub mod conntrack;
pub mod devices;
pub mod dhcp;
pub mod error;
pub mod files;
pub mod firewalld;
pub mod links;
pub mod neighbours;
pub mod net;
pub mod netfilter;
pub mod netlink;
pub mod netns;
pub mod nft_netlink;
pub mod process;
pub mod routes;
pub mod rules;
pub mod state;
pub mod sysctl;
pub mod tap;
pub mod tc;

pub use error::{Error, ErrorKind, Result};
