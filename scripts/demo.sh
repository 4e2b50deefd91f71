#!/bin/sh
# The main job, end to end (run as root): build cni-wasm, install it into a
# temporary CNI_PATH, and run podman's network config (bridge + host-local,
# portmap, firewall, tuning) for a container in a fresh namespace, the way a
# runtime does; show the result, the container's and the host's state, reach
# the container through its mapped port, CHECK, DEL, and clean up.
#
# The "host" is a scratch namespace too, so the demo's bridge, iptables rules
# and sysctls never touch this machine's own network.
set -eu
cd "$(dirname "$0")/.."
cargo build --release

bin=$(mktemp -d /tmp/cni-wasm-demo.XXXXXX)
store=$(mktemp -d /tmp/cni-wasm-demo-store.XXXXXX)
host=cni-wasm-demo-host-$$
container=cni-wasm-demo-$$
server=
export CNI_RUN_CACHE="$bin/cache"
export CNI_RUN_CAPS='{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}'
in_host() { ip netns exec "$host" env CNI_PATH="$bin" "$@"; }
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    in_host scripts/cni-run.sh DEL demo-container "/var/run/netns/$container" eth0 < "$bin/podman.conflist" 2>/dev/null || true
    ip netns del "$container" 2>/dev/null || true
    ip netns del "$host" 2>/dev/null || true
    rm -rf "$bin" "$store"
}
trap cleanup EXIT

target/release/cni-wasm install "$bin" > /dev/null
ip netns add "$host"
ip -n "$host" link set lo up
ip netns add "$container"
cat > "$bin/podman.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "podman",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$store",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.88.0.0/16", "gateway": "10.88.0.1" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall" },
    { "type": "tuning" }
  ]
}
CONF

echo "== cni-wasm list"
"$bin/cni-wasm" list
echo
echo "== ADD: podman's chain for a container in $container (plugins from $bin)"
in_host scripts/cni-run.sh ADD demo-container "/var/run/netns/$container" eth0 < "$bin/podman.conflist" | jq .
echo
echo "== the container"
ip -n "$container" -br addr
ip -n "$container" route
echo
echo "== the host: links and the rules cni-wasm wrote"
ip -n "$host" -br link
ip netns exec "$host" iptables-save | grep -E '^-A .*CNI' || true
echo
echo "== traffic: a server on the container's port 80, reached on the host's 127.0.0.1:8080"
ip netns exec "$container" target/release/nettest serve tcp 0.0.0.0:80 "hello from the container" > /dev/null &
server=$!
sleep 0.3
ip netns exec "$host" target/release/nettest connect tcp 127.0.0.1:8080
echo
echo "== CHECK, then DEL"
in_host scripts/cni-run.sh CHECK demo-container "/var/run/netns/$container" eth0 < "$bin/podman.conflist" && echo "CHECK ok"
in_host scripts/cni-run.sh DEL demo-container "/var/run/netns/$container" eth0 < "$bin/podman.conflist" && echo "DEL ok"
echo
echo "== after DEL: the container has only lo, no per-container rules remain"
ip -n "$container" -br link
ip netns exec "$host" iptables-save | grep -cE '^-A .*(10\.88\.|CNI-DN-)' || true
