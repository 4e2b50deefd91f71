#!/bin/sh
# The main job, end to end (run as root): build cni-wasm, install it into a
# temporary CNI_PATH, run a network config for a container in a fresh
# namespace like a runtime would, show the result and the namespace, and
# clean everything up again.
set -eu
cd "$(dirname "$0")/.."
cargo build --release

bin=$(mktemp -d /tmp/cni-wasm-demo.XXXXXX)
store=$(mktemp -d /tmp/cni-wasm-demo-store.XXXXXX)
netns=cni-wasm-demo-$$
cleanup() {
    CNI_PATH=$bin scripts/cni-run.sh DEL demo-container /var/run/netns/$netns eth0 < "$bin/demo.conflist" 2>/dev/null || true
    ip netns del "$netns" 2>/dev/null || true
    rm -rf "$bin" "$store"
}
trap cleanup EXIT

target/release/cni-wasm install "$bin"
ip netns add "$netns"
cat > "$bin/demo.conflist" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [
    { "type": "loopback" }
  ]
}
CONF
export CNI_PATH=$bin

echo "== cni-wasm list"
"$bin/cni-wasm" list
echo
echo "== ADD of the loopback network in $netns (cni-wasm, from $bin)"
scripts/cni-run.sh ADD demo-container "/var/run/netns/$netns" lo < "$bin/demo.conflist"
ip -n "$netns" -br addr
echo
echo "== an IPAM allocation from host-local (store in $store)"
printf '{"cniVersion":"1.1.0","name":"demo","type":"host-local","ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.88.0.0/24"}],[{"subnet":"fd88::/64"}]]}}' "$store" |
    CNI_COMMAND=ADD CNI_CONTAINERID=demo-container CNI_NETNS=/var/run/netns/$netns CNI_IFNAME=eth0 "$bin/host-local"
echo
ls "$store/demo"
echo
echo "== CHECK, then DEL"
CNI_PATH=$bin scripts/cni-run.sh CHECK demo-container "/var/run/netns/$netns" lo < "$bin/demo.conflist" && echo "CHECK ok"
CNI_PATH=$bin scripts/cni-run.sh DEL demo-container "/var/run/netns/$netns" lo < "$bin/demo.conflist" && echo "DEL ok"
ip -n "$netns" -br link
