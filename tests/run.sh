#!/bin/sh
# Builds everything and runs every test. Run as root: the tests create
# network namespaces and configure them (nothing outside them).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (the tests create network namespaces)" >&2
    exit 1
fi
cargo build --release
# The compiler for third-party plugins, built on its own so Cranelift never
# ends up in the runtime binary.
cargo build --release -p cni-wasm-compiler
cargo test --release
(cd plugins-wasm && cargo test --release)
