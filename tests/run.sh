#!/bin/sh
# Checks formatting and lints, builds everything and runs every test of both
# workspaces. Run as root: the tests create network namespaces and configure
# them (nothing outside them).
#
# Every test binary runs even when an earlier one fails (--no-fail-fast), so
# one run reports every failure; the script exits non-zero if any failed.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (the tests create network namespaces)" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "formatting (rustfmt.toml)"
cargo fmt --all --check
(cd plugins-wasm && cargo fmt --all --check)

step "build"
cargo build --release
# The compiler for third-party plugins, built on its own so Cranelift never
# ends up in the runtime binary.
cargo build --release -p cni-wasm-compiler

# Lints are the [workspace.lints] tables of both Cargo.toml files. Clippy runs
# in the release profile after the build, so the build scripts and their
# dependencies (Cranelift among them) are reused rather than built again.
step "lints (clippy)"
cargo clippy --release --all-targets
(cd plugins-wasm && cargo clippy --release --all-targets && cargo clippy --release --target wasm32-wasip2)

failed=
step "tests: host, capabilities, plugins end to end"
cargo test --release --no-fail-fast || failed="$failed host-workspace"
step "tests: plugins-wasm unit tests"
(cd plugins-wasm && cargo test --release --no-fail-fast) || failed="$failed plugins-wasm"
if [ -n "$failed" ]; then
    echo "tests/run.sh: failures in:$failed (each failing binary is listed above)" >&2
    exit 1
fi
echo "tests/run.sh: all passed"
