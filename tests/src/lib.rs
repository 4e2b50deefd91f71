//! What the end-to-end tests and the benchmark share: running plugins the
//! way a runtime does, and scratch network namespaces.

pub mod netns;
pub mod plugin;

use std::path::PathBuf;

/// The workspace's target directory (this test binary lives in
/// target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The release host binary that `cargo build --release` produces.
pub fn cni_wasm_binary() -> PathBuf {
    let path = target_dir().join("release").join("cni-wasm");
    assert!(path.is_file(), "{} is missing: run `cargo build --release` first", path.display());
    path
}

/// Where the Debian package `containernetworking-plugins` puts the Go
/// reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

pub fn reference_available() -> bool {
    std::path::Path::new(REFERENCE_DIR).join("loopback").is_file()
}
