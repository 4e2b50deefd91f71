#!/bin/sh
# A minimal CNI runtime, enough for the demo: runs every plugin of a
# conflist (stdin) for one container, the way libcni does.
#
#   scripts/cni-run.sh ADD|DEL|CHECK CONTAINER_ID NETNS_PATH IFNAME < conflist
#
# ADD runs the plugins in order, passing each one's result to the next as
# prevResult, and prints the last result; DEL runs them in reverse with the
# cached ADD result. CNI_PATH must name the plugins' directory.
# CNI_RUN_CAPS, a JSON object such as {"portMappings": [...]}, is passed as
# runtimeConfig to the plugins that declare those capabilities.
set -eu
command=$1 container=$2 netns=$3 ifname=$4
conflist=$(cat)
cache=${CNI_RUN_CACHE:-/tmp/cni-run-cache}
mkdir -p "$cache"
cached="$cache/$(printf '%s' "$conflist" | jq -r .name)-$container-$ifname"

count=$(printf '%s' "$conflist" | jq '.plugins | length')
indexes=$(seq 0 $((count - 1)))
[ "$command" = DEL ] && indexes=$(seq $((count - 1)) -1 0)

result=
[ "$command" != ADD ] && [ -f "$cached" ] && result=$(cat "$cached")
for i in $indexes; do
    plugin=$(printf '%s' "$conflist" | jq -c --argjson i "$i" --argjson caps "${CNI_RUN_CAPS:-{\}}" '
        .plugins[$i] as $p
        | $p + {name: .name, cniVersion: .cniVersion}
        | ($caps | with_entries(select(.key as $k | ($p.capabilities // {})[$k] == true))) as $runtime
        | if ($runtime | length) > 0 then . + {runtimeConfig: $runtime} else . end')
    if [ -n "$result" ]; then
        plugin=$(printf '%s' "$plugin" | jq -c --argjson prev "$result" '. + {prevResult: $prev}')
    fi
    type=$(printf '%s' "$plugin" | jq -r .type)
    output=$(printf '%s' "$plugin" | CNI_COMMAND=$command CNI_CONTAINERID=$container CNI_NETNS=$netns \
        CNI_IFNAME=$ifname "$(echo "$CNI_PATH" | cut -d: -f1)/$type") || {
        echo "$type $command failed: $output" >&2
        exit 1
    }
    [ "$command" = ADD ] && result=$output
done
if [ "$command" = ADD ]; then
    printf '%s' "$result" > "$cached"
    printf '%s\n' "$result"
elif [ "$command" = DEL ]; then
    rm -f "$cached"
fi
