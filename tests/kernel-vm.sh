#!/bin/bash
# The full-kernel test lane: runs the tests that need kernel features this
# machine's kernel lacks (dummy, vlan, ipvlan, vrf links, bridge VLAN
# filtering, ...) inside a throw-away QEMU VM booting Debian's own kernel.
# Run as root, after tests/run.sh (or on its own: it builds what it runs).
#
#   tests/kernel-vm.sh                  run every test binary's ignored tests
#   tests/kernel-vm.sh capabilities     only these test targets
#   tests/kernel-vm.sh --setup          only install and build the VM files
#   tests/kernel-vm.sh --run CMD ARG..  run a command in the VM (cwd kept)
#
# Such tests are marked #[ignore = "needs a full kernel (<feature>): ..."]
# (tests/src/lane.rs): the normal lane lists them as ignored, this lane runs
# each test binary with --ignored. Inside the VM the host's / is visible
# read-only under a tmpfs overlay (writes vanish with the VM), so the tests
# find target/, /usr/lib/cni, iptables, ... where they are on the host.
#
# Environment:
#   CNI_WASM_VM_CACHE    cache dir (default /var/tmp/cni-wasm-vm): QEMU's
#                        sandboxed apt state, the unpacked kernel, initrds
#   CNI_WASM_VM_KERNEL   kernel package (default: what linux-image-amd64
#                        depends on)
#   CNI_WASM_VM_REFRESH  1: refresh the sandboxed package lists (otherwise
#                        fetched once, so a cached run needs no network)
#   CNI_WASM_VM_MEM      guest memory in MiB (default 2048)
#   CNI_WASM_VM_SMP      guest CPUs (default 2; see boot())
#   CNI_WASM_VM_TIMEOUT  seconds one test binary (or --run's command) may take
#                        in the VM before it is killed (default 600)
#
# Why QEMU's TCG (software emulation) and not KVM: /dev/kvm here is PVM,
# which boots only kernels built as PVM guests; a stock Debian kernel stalls
# or dies under it (shared/reference/kernel-vm.md). A boot costs ~3.5 s and
# every exec in the guest ~10x what it costs on the host.
set -euo pipefail
start=$(date +%s.%N)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE="$ROOT/tests/kernel-vm"
CACHE=${CNI_WASM_VM_CACHE:-/var/tmp/cni-wasm-vm}
MEM=${CNI_WASM_VM_MEM:-2048}
SMP=${CNI_WASM_VM_SMP:-2}
TIMEOUT=${CNI_WASM_VM_TIMEOUT:-600}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

say() { printf 'kernel-vm: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

mode=tests run_cmd=()
case "${1:-}" in
    --setup) mode=setup; shift ;;
    --run) mode=run; shift; [ $# -gt 0 ] || die "--run needs a command"; run_cmd=("$@"); set -- ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
targets=("$@")

[ "$(id -u)" = 0 ] || die "run as root (it installs QEMU, and the tests create network namespaces)"

mkdir -p "$CACHE"
# One setup at a time (two lanes started together would race on the cache).
exec 9>"$CACHE/lock"
flock 9

# --- Packages, through a sandboxed apt -------------------------------------
# Its own sources (the system's Debian mirror, plus <codename>-backports),
# lists and caches under $CACHE/apt; /etc/apt is not touched. Backports
# because this image carries qemu-utils from bookworm-backports on purpose,
# and bookworm's own qemu-system-x86 (7.2) would remove it (qemu-utils 10
# Breaks qemu-system-common << 8.0); backports' QEMU matches it.
APT_DIR="$CACHE/apt"
APT=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=-
     -o "Dir::State::lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
     -o APT::Sandbox::User=root -qq)

# Sets up the sandboxed apt on first use in this run (a cached run never
# needs it, and so no network).
apt_sandbox() {
    [ -z "${BACKPORTS:-}" ] || return 0
    . /etc/os-release
    local codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
    if [ ! -f "$APT_DIR/sources.list" ]; then
        # The mirrors this machine is configured with, not a hard-coded one.
        local archive security
        archive=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
                  awk -v r="$codename" '$2 == r { print $1; exit }')
        security=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
                   awk -v r="$codename-security" '$2 == r { print $1; exit }')
        [ -n "$archive" ] || die "no Debian $codename archive in the system's apt sources"
        {
            echo "deb $archive $codename main"
            echo "deb $archive $codename-updates main"
            echo "deb $archive $codename-backports main"
            [ -z "$security" ] || echo "deb $security $codename-security main"
        } > "$APT_DIR/sources.list.new"
        mv "$APT_DIR/sources.list.new" "$APT_DIR/sources.list"
    fi
    if [ -z "$(ls "$APT_DIR/lists" | grep _Packages)" ] || [ "${CNI_WASM_VM_REFRESH:-0}" = 1 ]; then
        say "fetching package lists (sandboxed apt in $APT_DIR)"
        apt-get "${APT[@]}" update
    fi
    BACKPORTS="$codename-backports"
}

# Downloads package $1 and unpacks it (not installs it) into a new dir $2.
unpack_deb() {
    local pkg=$1 dest=$2
    apt_sandbox
    mkdir -p "$CACHE/debs"
    (cd "$CACHE/debs" && apt-get "${APT[@]}" download "$pkg")
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg-deb -x "$CACHE/debs/${pkg}_"*.deb "$dest"
    rm -f "$CACHE/debs/${pkg}_"*.deb
}

setup() {
    local t0; t0=$(date +%s.%N)
    if ! command -v qemu-system-x86_64 >/dev/null; then
        apt_sandbox
        say "installing QEMU from $BACKPORTS"
        # Only the x86 system emulator; no GUI, audio or firmware recommends.
        apt-get "${APT[@]}" install -y --no-install-recommends -t "$BACKPORTS" qemu-system-x86 \
            > "$APT_DIR/install.log" 2>&1 || { tail -30 "$APT_DIR/install.log" >&2; die "installing QEMU failed"; }
        apt-get "${APT[@]}" clean    # the .debs: installed now
    fi
    # qboot: a minimal firmware, ~0.5 s faster than SeaBIOS, and no escape
    # sequences on the serial console.
    QBOOT=/usr/share/qemu/qboot.rom
    [ -f "$QBOOT" ] || die "$QBOOT is missing (qemu-system-x86's data files?)"

    # A static busybox for the initramfs (its sh, mount, modprobe, chroot),
    # and on the host for depmod and cpio (Debian has no kmod here).
    if [ ! -x "$CACHE/busybox/bin/busybox" ]; then
        unpack_deb busybox-static "$CACHE/busybox.tmp" && mv "$CACHE/busybox.tmp" "$CACHE/busybox"
    fi
    BUSYBOX="$CACHE/busybox/bin/busybox"

    # The kernel: the package linux-image-amd64 resolved to the first time
    # (or with CNI_WASM_VM_REFRESH=1), so runs keep the same kernel.
    local pkg=${CNI_WASM_VM_KERNEL:-}
    if [ -z "$pkg" ] && [ -f "$CACHE/kernel-package" ] && [ "${CNI_WASM_VM_REFRESH:-0}" != 1 ]; then
        pkg=$(cat "$CACHE/kernel-package")
    fi
    if [ -z "$pkg" ]; then
        apt_sandbox
        pkg=$(apt-cache "${APT[@]}" depends linux-image-amd64 |
              awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
        echo "$pkg" > "$CACHE/kernel-package"
    fi
    KVER=${pkg#linux-image-}
    KDIR="$CACHE/kernel-$KVER"
    MODULES="$KDIR/lib/modules/$KVER"
    if [ ! -d "$KDIR" ]; then
        say "unpacking $pkg (not installing it), depmod"
        unpack_deb "$pkg" "$KDIR.tmp"
        # The package ships no modules.dep (its postinst makes one).
        "$BUSYBOX" depmod -b "$KDIR.tmp" "$KVER"
        mv "$KDIR.tmp" "$KDIR"
    fi

    # The uncompressed kernel: QEMU boots an ELF vmlinux through its PVH
    # entry, skipping the xz decompressor that costs ~3 s under TCG. The
    # bzImage embeds it as an xz stream; the first stream that decodes to an
    # ELF file is it (xz complains about the trailing data: ignored).
    VMLINUX="$CACHE/vmlinux-$KVER"
    if [ ! -f "$VMLINUX" ]; then
        local off
        for off in $(grep -abo $'\xfd7zXZ' "$KDIR/boot/vmlinuz-$KVER" | cut -d: -f1); do
            tail -c +$((off + 1)) "$KDIR/boot/vmlinuz-$KVER" | xz -dcq > "$VMLINUX.tmp" 2>/dev/null || true
            [ "$(head -c 4 "$VMLINUX.tmp")" = $'\x7fELF' ] && break
        done
        [ "$(head -c 4 "$VMLINUX.tmp")" = $'\x7fELF' ] || die "no ELF vmlinux inside vmlinuz-$KVER"
        mv "$VMLINUX.tmp" "$VMLINUX"
    fi

    # The initramfs: busybox, /init, and the modules that reach the host's
    # files (virtio, 9p, overlay); all others load from $MODULES over 9p.
    # Keyed by kernel and by the init script and this list, so changing
    # either builds a new one.
    local boot_modules="virtio_pci 9pnet_virtio 9p overlay"
    local key; key=$( (cat "$HERE/init"; echo "$boot_modules") | sha256sum | cut -c1-12)
    INITRD="$CACHE/initrd-$KVER-$key.cpio.gz"
    if [ ! -f "$INITRD" ]; then
        say "building $(basename "$INITRD")"
        local r; r=$(mktemp -d "$CACHE/initrd.XXXXXX")
        mkdir -p "$r"/{bin,proc,sys,dev,run,share,lower,rw,newroot,lib/modules/"$KVER"}
        ln -s bin "$r/sbin"
        cp "$BUSYBOX" "$r/bin/busybox"
        local applet m f
        # (busybox --list names busybox itself: don't replace it with a link.)
        for applet in $("$BUSYBOX" --list); do [ -e "$r/bin/$applet" ] || ln -s busybox "$r/bin/$applet"; done
        for m in $boot_modules; do
            f=$(grep -E "(^|/)$m\.ko[.a-z]*:" "$MODULES/modules.dep") || die "module $m not in $KVER"
            for f in $(echo "$f" | tr -d :); do install -Dm644 "$MODULES/$f" "$r/lib/modules/$KVER/$f"; done
        done
        "$BUSYBOX" depmod -b "$r" "$KVER"
        install -m755 "$HERE/init" "$r/init"
        (cd "$r" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD.tmp"
        mv "$INITRD.tmp" "$INITRD"
        rm -rf "$r"
        # Older initrds of this kernel are stale now.
        find "$CACHE" -maxdepth 1 -name "initrd-$KVER-*.cpio.gz" ! -name "$(basename "$INITRD")" -delete
    fi
    say "setup: $(elapsed "$t0") s (kernel $KVER, qemu $(qemu-system-x86_64 --version | awk 'NR==1 { print $4 }'))"
}

# --- One VM boot ------------------------------------------------------------
# Runs the script $1 (written into a fresh control dir $2) in the guest, as
# root in the chroot, with its output on the serial console (our stdout),
# killing the VM after $3 seconds. Returns the script's exit status, or 125
# if the VM died before it ended.
boot() {
    local script=$1 share=$2 limit=$3
    cp "$script" "$share/cmd.sh"
    local t0 q; t0=$(date +%s.%N)
    # -nodefaults: no VGA, NIC, floppy or CD drive to probe. -smp 2 with
    # multi-threaded TCG: boots take the same ~3.5 s with 1 or 2 vCPUs, and
    # libtest runs 2 tests at once (the capabilities binary, all 17 tests:
    # 7.2 and 9.1 s with one vCPU, 5.6 and 4.9 s with two).
    # mitigations=off: page-table isolation is expensive under TCG.
    # One virtio-net NIC, on a QEMU hub with nothing else on it (no traffic
    # leaves the VM): a PCI network device for host-device's tests.
    set +e
    timeout --kill-after=10 "$limit" qemu-system-x86_64 \
        -accel tcg,thread=multi -nodefaults -no-user-config -display none -serial stdio \
        -bios "$QBOOT" -m "$MEM" -smp "$SMP" -no-reboot \
        -kernel "$VMLINUX" -initrd "$INITRD" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off sharepath=$share modules=$MODULES" \
        -virtfs "local,path=$share,mount_tag=share,security_model=none" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -netdev hubport,id=nic0,hubid=0 -device virtio-net-pci,netdev=nic0,mac=52:54:00:c0:ff:01 \
        </dev/null | sed -u 's/\r$//; /^\[ *[0-9.]*\] reboot: Power down$/d'
    q=${PIPESTATUS[0]}
    set -e
    say "VM: $(elapsed "$t0") s"
    if [ -f "$share/rc" ]; then return "$(cat "$share/rc")"; fi
    if [ "$q" = 124 ] || [ "$q" = 137 ]; then say "the VM timed out after ${limit}s"; else say "the VM died (qemu exit $q)"; fi
    return 125
}

# The guest's command script: the host's PATH (plus sbin, where iptables is)
# and working directory, then $@.
guest_script() {
    printf 'export PATH=%q HOME=%q RUST_BACKTRACE=1\n' "$PATH:/usr/sbin:/sbin" "${HOME:-/root}"
    printf 'cd %q || exit 125\n' "$PWD"
}

share=$(mktemp -d /tmp/cni-wasm-vm.XXXXXX)
trap 'rm -rf "$share"' EXIT

setup
exec 9>&-    # the cache is complete: other runs may go on with theirs
if [ $mode = setup ]; then exit 0; fi

if [ $mode = run ]; then
    { guest_script; printf 'exec'; printf ' %q' "${run_cmd[@]}"; echo; } > "$share/script"
    rc=0; boot "$share/script" "$share" $((TIMEOUT + 60)) || rc=$?
    say "total $(elapsed "$start") s"
    exit $rc
fi

# --- Build on the host --------------------------------------------------------
# Everything the tests use must exist before the VM starts: inside it the
# host's files are read-only (a build would land in the tmpfs and be lost)
# and compiling under TCG would take ages.
cd "$ROOT"
t0=$(date +%s.%N)
cargo build --release
# As tests/run.sh does: the third-party plugin compiler, built on its own.
cargo build --release -p cni-wasm-compiler
# The test binaries (of tests/, the cni-wasm-tests package: the end-to-end
# tests); cargo's JSON messages name each test executable.
only=(); for t in "${targets[@]}"; do only+=(--test "$t"); done
cargo test --release -p cni-wasm-tests --no-run --message-format=json-render-diagnostics "${only[@]}" > "$share/build.json"
jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
       | [.target.name, .executable, .target.src_path] | @tsv' "$share/build.json" | sort > "$share/executables"
# The libcni Go driver (target/libcni/cni-libcni) that tests build on first
# use: built here through the tests' own code, so its build command lives in
# one place (tests/src/libcni.rs).
cargo run --release -q -p cni-wasm-tests --bin libcni-driver >/dev/null
say "host build: $(elapsed "$t0") s"

# Which binaries have tests for this lane: `--list --ignored` on the host
# (cheap), so no VM boots for a binary without any. (No `| grep -q` on the
# listing: grep quitting early would kill the lister with SIGPIPE, and
# pipefail would then drop the binary at random.)
wanted() {
    [ ${#targets[@]} = 0 ] && return 0
    local t; for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}
selected=()
while IFS=$'\t' read -r name exe src; do
    wanted "$name" || continue
    list=$("$exe" --list --ignored) || die "$exe --list --ignored failed"
    case $list in *": test"*) selected+=("$name"$'\t'"$exe"$'\t'"${src#"$ROOT"/}") ;; esac
done < "$share/executables"
if [ ${#selected[@]} = 0 ]; then
    say "no ignored (full-kernel) tests in ${targets[*]:-any test binary}"
    exit 0
fi

# libtest colours its output only on a terminal; in the guest it always is
# one (the serial console), so follow the host's stdout instead.
if [ -t 1 ]; then color=always; else color=never; fi

# One boot for all binaries, each run in turn like `cargo test` does (a fresh
# process each, one kernel for all, as on the host lane). A boot costs ~3.5 s
# under TCG, more than most binaries' tests; a boot per binary would buy
# isolation the host lane does not have either. A binary's failure does not
# stop the others; its status is written to the control dir.
{
    guest_script
    for entry in "${selected[@]}"; do
        IFS=$'\t' read -r name exe src <<< "$entry"
        printf 'echo; echo %q\n' "     Running $src (${exe#"$ROOT"/}) in the VM, --ignored"
        printf 'timeout -k 10 %d %q --ignored --color=%s; echo $? > %q\n' "$TIMEOUT" "$exe" "$color" "$share/rc.$name"
    done
    echo 'exit 0'
} > "$share/script"
rc=0; boot "$share/script" "$share" $((60 + (TIMEOUT + 10) * ${#selected[@]})) || rc=$?

failed=()
for entry in "${selected[@]}"; do
    name=${entry%%$'\t'*}
    r=$(cat "$share/rc.$name" 2>/dev/null || echo "none (the VM stopped before it ended)")
    case $r in
        0) ;;
        124|137) failed+=("$name: timed out after ${TIMEOUT}s") ;;
        *) failed+=("$name: exit $r") ;;
    esac
done
[ $rc = 0 ] || failed+=("the VM: exit $rc")
say "lane: ${#selected[@]} test binaries in the VM, total $(elapsed "$start") s"
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED:"; printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
