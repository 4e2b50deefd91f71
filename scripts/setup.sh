#!/bin/sh
# Installs what building, demonstrating and testing cni-wasm needs on a
# Debian machine (run as root; idempotent):
#   - the wasm32-wasip2 Rust target the plugins are built for;
#   - iproute2, and the reference plugins (containernetworking-plugins) the
#     tests and the benchmark compare against;
#   - nftables, iptables and conntrack, which the netfilter capability drives
#     and the tests inspect; iputils-ping for connectivity tests;
#   - Go and libcni (golang-github-appc-cni-dev) for the libcni interop test;
#   - jq, for the demo's small runtime;
#   - dnsmasq (dnsmasq-base), the DHCP server the dhcp tests lease from.
set -eu

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

missing=
for package in iproute2 containernetworking-plugins jq nftables iptables conntrack iputils-ping \
               golang-go golang-github-appc-cni-dev dnsmasq-base; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
