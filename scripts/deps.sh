#!/bin/sh
# Install what building, testing and running seed needs, from Debian's archive.
# (openssh-server: sshd in the image-mode test images; libcrypt-dev: seed-init hashes
# ROOT_PASSWORD with a static libcrypt; nix-bin: Nix store closures and flakes.)
# Idempotent and quick when everything is present. Needs root (or sudo).
set -eu

PACKAGES="
  build-essential meson ninja-build pkg-config clang clang-format
  libjansson-dev libssl-dev libcmocka-dev libsqlite3-dev libseccomp-dev
  libmnl-dev libnftables-dev libmicrohttpd-dev libsystemd-dev libarchive-dev zlib1g-dev
  e2fsprogs iproute2 nftables util-linux procps curl busybox-static
  git openssh-client
  libcurl4-openssl-dev umoci podman skopeo crun docker-registry apache2-utils
  python3 python3-pytest python3-pytest-timeout jq
  nix-bin
  openssh-server libcrypt-dev
"
# Secrets (issue 11): age for the interop tests, libyaml for sops YAML, swtpm and tpm2-tss
# for the sealed node key, python3-cryptography for the sops fixtures.
PACKAGES="$PACKAGES age libyaml-dev swtpm swtpm-tools libtss2-dev python3-cryptography"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; an old list may name files the
# mirror no longer has. Update once, then install.
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
