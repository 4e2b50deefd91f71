#!/bin/sh
# cni-wasm against the reference plugins, in one run (run as root).
#   scripts/bench.sh [--runs N] [--markdown]
set -eu
cd "$(dirname "$0")/.."
cargo build --release
exec target/release/cni-bench "$@"
