// cni-libcni drives a CNI network configuration list through the real libcni
// library, the way container runtimes (containerd, CRI-O, podman) do: it
// finds the plugins in the bin dirs, injects name, cniVersion, prevResult and
// runtimeConfig, chains the plugins, caches the ADD result and feeds it back
// to CHECK and DEL.
//
// Usage:
//
//	cni-libcni <add|del|check|gc|status> --conflist FILE --bin-dir DIR[:DIR...]
//	           --container-id ID --netns PATH --ifname IF
//	           [--cache-dir DIR] [--cap NAME=JSON]... [--args K=V;K=V] [--valid ID/IFNAME]...
//
// Exit codes: 0 success; 1 the operation failed (error text on stderr, and for
// a CNI error a last stderr line with its JSON {"code":N,"msg":...,"details":...});
// 2 bad command line; 3 the command is not supported by this libcni (GC and
// STATUS need libcni >= 1.2; Debian 12 ships 1.1.2).
//
// See README.md next to this file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// DefaultCacheDir is used when --cache-dir is not given. It is deliberately
// not libcni's default (/var/lib/cni), so that the driver never touches a
// real runtime's cache.
const DefaultCacheDir = "/tmp/cni-libcni-cache"

type options struct {
	command     string
	conflist    string
	binDirs     []string
	containerID string
	netns       string
	ifname      string
	cacheDir    string
	caps        map[string]interface{}
	args        [][2]string
	valid       [][2]string
}

func usage(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "cni-libcni: "+format+"\n", a...)
	fmt.Fprintln(os.Stderr, "usage: cni-libcni <add|del|check|gc|status> --conflist FILE --bin-dir DIR[:DIR...] "+
		"--container-id ID --netns PATH --ifname IF [--cache-dir DIR] [--cap NAME=JSON]... [--args K=V;K=V] [--valid ID/IFNAME]...")
	os.Exit(2)
}

func parse(argv []string) options {
	if len(argv) < 1 {
		usage("missing command")
	}
	o := options{command: argv[0], cacheDir: DefaultCacheDir, caps: map[string]interface{}{}}
	switch o.command {
	case "add", "del", "check", "gc", "status":
	default:
		usage("unknown command %q", o.command)
	}
	rest := argv[1:]
	for i := 0; i < len(rest); i++ {
		flag := rest[i]
		value := ""
		if eq := strings.IndexByte(flag, '='); strings.HasPrefix(flag, "--") && eq > 0 {
			// --flag=value
			flag, value = flag[:eq], flag[eq+1:]
		} else {
			if i+1 >= len(rest) {
				usage("%s needs a value", flag)
			}
			i++
			value = rest[i]
		}
		switch flag {
		case "--conflist":
			o.conflist = value
		case "--bin-dir":
			for _, dir := range strings.Split(value, ":") {
				if dir != "" {
					o.binDirs = append(o.binDirs, dir)
				}
			}
		case "--container-id":
			o.containerID = value
		case "--netns":
			o.netns = value
		case "--ifname":
			o.ifname = value
		case "--cache-dir":
			o.cacheDir = value
		case "--cap":
			eq := strings.IndexByte(value, '=')
			if eq <= 0 {
				usage("--cap wants NAME=JSON, got %q", value)
			}
			var decoded interface{}
			if err := json.Unmarshal([]byte(value[eq+1:]), &decoded); err != nil {
				usage("--cap %s: value is not JSON: %v", value[:eq], err)
			}
			o.caps[value[:eq]] = decoded
		case "--args":
			for _, pair := range strings.Split(value, ";") {
				if pair == "" {
					continue
				}
				eq := strings.IndexByte(pair, '=')
				if eq <= 0 {
					usage("--args wants K=V;K=V, got %q", pair)
				}
				o.args = append(o.args, [2]string{pair[:eq], pair[eq+1:]})
			}
		case "--valid":
			slash := strings.LastIndexByte(value, '/')
			if slash <= 0 || slash == len(value)-1 {
				usage("--valid wants CONTAINERID/IFNAME, got %q", value)
			}
			o.valid = append(o.valid, [2]string{value[:slash], value[slash+1:]})
		default:
			usage("unknown option %q", flag)
		}
	}
	if o.conflist == "" {
		usage("--conflist is required")
	}
	if len(o.binDirs) == 0 {
		usage("--bin-dir is required")
	}
	return o
}

// fail prints the error and exits 1. For a CNI error returned by a plugin
// (a *types.Error anywhere in the wrapped chain), the last line of stderr is
// its JSON.
func fail(command string, err error) {
	fmt.Fprintf(os.Stderr, "cni-libcni %s: %v\n", command, err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		data, _ := json.Marshal(cniErr)
		fmt.Fprintln(os.Stderr, string(data))
	}
	os.Exit(1)
}

func main() {
	o := parse(os.Args[1:])

	switch o.command {
	case "gc", "status":
		// libcni 1.1.2 has neither GCNetworkList (GCArgs.ValidAttachments) nor
		// GetStatusNetworkList: both arrived with CNI spec 1.1.0 in libcni 1.2.
		fmt.Fprintf(os.Stderr, "cni-libcni %s: not supported by this libcni (1.1.x has no GC or STATUS; they need libcni >= 1.2)\n", o.command)
		os.Exit(3)
	}

	list, err := libcni.ConfListFromFile(o.conflist)
	if err != nil {
		fail(o.command, err)
	}

	if abs, err := filepath.Abs(o.cacheDir); err == nil {
		o.cacheDir = abs
	}
	cni := libcni.NewCNIConfigWithCacheDir(o.binDirs, o.cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID:    o.containerID,
		NetNS:          o.netns,
		IfName:         o.ifname,
		Args:           o.args,
		CapabilityArgs: o.caps,
	}
	ctx := context.Background()

	switch o.command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(o.command, err)
		}
		// The last plugin's result, converted to the conflist's cniVersion
		// (what libcni hands a following plugin as prevResult, and what it
		// cached), marshalled as JSON on one line.
		converted, err := result.GetAsVersion(list.CNIVersion)
		if err != nil {
			fail(o.command, fmt.Errorf("converting the result to %q: %w", list.CNIVersion, err))
		}
		data, err := json.Marshal(converted)
		if err != nil {
			fail(o.command, err)
		}
		fmt.Println(string(data))
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(o.command, err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(o.command, err)
		}
	}
}
