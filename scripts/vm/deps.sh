#!/bin/sh
# What `make check-vm` needs, from Debian only: qemu-system-x86 and kmod (installed with
# apt-get), and Debian's generic amd64 kernel package (downloaded with `apt-get download`
# and extracted under VMDIR, never installed: a kernel package's hooks would touch /boot
# and the boot loader of this host). Idempotent; the extracted kernel is reused.
#
# Usage: scripts/vm/deps.sh VMDIR
# Exit status: 0 ready (prints the kernel directory), 77 check-vm cannot run on this
# host (why, on stderr, after "check-vm: skipped: "), 1 something else broke.
set -u
VMDIR=${1:?usage: deps.sh VMDIR}
PACKAGES="qemu-system-x86 kmod busybox-static python3-pytest python3-pytest-timeout"

skip() {
    echo "check-vm: skipped: $*" >&2
    exit 77
}

[ "$(uname -m)" = x86_64 ] || skip "the guest is an x86-64 Debian kernel; this host is $(uname -m)"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
    skip "apt-get is not available (check-vm takes QEMU and its kernel from Debian)"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || skip "installing QEMU and running nodes need root (or sudo)"
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# Without a network to the archive, fail fast instead of retrying for minutes.
APT_NET="-o Acquire::Retries=0 -o Acquire::http::Timeout=15 -o Acquire::https::Timeout=15"

updated=""
update_once() {
    [ -n "$updated" ] && return 0
    updated=1
    $SUDO apt-get $APT_NET update -qq >/dev/null 2>&1
}

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "check-vm: installing$missing" >&2
    # shellcheck disable=SC2086
    if ! $SUDO apt-get $APT_NET install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
        update_once
        # shellcheck disable=SC2086
        $SUDO apt-get $APT_NET install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
            skip "could not install$missing from the Debian archive (no network to it?)"
    fi
fi

KDIR="$VMDIR/kernel"
if [ -f "$KDIR/.ready" ]; then
    echo "$KDIR"
    exit 0
fi

# The generic flavour that linux-image-amd64 points at (it has 9p, virtio, overlay,
# veth, bridge and nf_tables as modules); never the cloud one, which lacks 9p.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
pkg=$(kernel_package)
if [ -z "$pkg" ]; then
    update_once
    pkg=$(kernel_package)
fi
[ -n "$pkg" ] || skip "no linux-image-amd64 in the package lists (apt-get update failed: no network to the archive?)"

mkdir -p "$VMDIR" || exit 1
tmp=$(mktemp -d "$VMDIR/.fetch.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# apt downloads as the unprivileged _apt user when it can write there.
id _apt >/dev/null 2>&1 && chown _apt "$tmp" 2>/dev/null
echo "check-vm: downloading $pkg (not installed: only extracted under $KDIR)" >&2
if ! (cd "$tmp" && apt-get $APT_NET download -qq "$pkg" >/dev/null 2>&1); then
    update_once
    (cd "$tmp" && apt-get $APT_NET download -qq "$pkg" >/dev/null 2>&1) ||
        skip "could not download $pkg from the Debian archive (no network to it?)"
fi
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || skip "apt-get download $pkg left no .deb"
mkdir "$tmp/x" && dpkg-deb -x "$deb" "$tmp/x" || { echo "check-vm: extracting $deb failed" >&2; exit 1; }
rm -f "$deb"
ver=$(ls "$tmp/x/lib/modules" 2>/dev/null | head -n 1)
[ -n "$ver" ] && [ -f "$tmp/x/boot/vmlinuz-$ver" ] || { echo "check-vm: $pkg has no kernel image" >&2; exit 1; }
# A guest without hardware loads none of these: drop them (they are most of the 400 MB).
m="$tmp/x/lib/modules/$ver/kernel"
rm -rf "$m/sound" "$m/drivers/net/wireless" "$m/drivers/net/ethernet"
for d in "$m"/drivers/*; do
    case ${d##*/} in virtio | block | net | char) ;; *) rm -rf "$d" ;; esac
done
depmod -b "$tmp/x" "$ver" || { echo "check-vm: depmod for $ver failed" >&2; exit 1; }
rm -rf "$KDIR"
mv "$tmp/x" "$KDIR" || exit 1
echo "$pkg" >"$KDIR/.ready"
echo "$KDIR"
