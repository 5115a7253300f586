#!/usr/bin/env bash
# Installs what runtimed needs on a Debian 12 host, and only what is
# missing: containerd and debootstrap from Debian, runsc built from the
# gVisor release pinned in packaging/gvisor/go.mod with its wrapper in
# /usr/lib/runtimed (where the package puts them; an installed runtimed
# package's are left alone), gVisor's own containerd shim in
# /usr/local/bin, and the group runtimed. A second run does nothing.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
lib=/usr/lib/runtimed # runsc-runtimed execs $lib/runsc

say() { printf 'deps: %s\n' "$*"; }

# --test adds what the test suites use: nginx, for the tests that put it in
# front of runtimed; docker-registry, a registry to pull from; zsh and
# systemd-analyze, to check the package's completion and units. nfpm is
# installed by make package itself.
missing=()
# --vm: what the VM suite (make test-vm) needs on the host: QEMU, and
# busybox and cpio for the guest's initramfs; that alone.
if [ "${1:-}" = "--vm" ]; then
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
  command -v cpio >/dev/null 2>&1 || missing+=(cpio)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  exit 0
fi
# --no-gvisor: all but gVisor; --gvisor: gVisor alone; --runsc: gVisor's
# runsc alone (make run builds it while the first images build, and does
# not use gVisor's shim).
mode=${1:-}
if [ "$mode" != "--gvisor" ] && [ "$mode" != "--runsc" ]; then
if [ "$mode" = "--test" ]; then
  command -v nginx >/dev/null 2>&1 || missing+=(nginx)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v zsh >/dev/null 2>&1 || missing+=(zsh)
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
fi
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v chroot >/dev/null 2>&1 || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' services are not started: the tests start their own.
  policy=/usr/sbin/policy-rc.d ours=
  if [ ! -e "$policy" ]; then
    ours=$policy
    printf '#!/bin/sh\nexit 101\n' >"$ours" && chmod 0755 "$ours"
    trap 'rm -f "$ours"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$ours" ] || rm -f "$ours"
  trap - EXIT
fi
# Members of this group may use runtimed's socket.
if ! getent group runtimed >/dev/null; then
  say "creating the system group runtimed"
  groupadd --system runtimed
fi

fi
[ "$mode" != "--no-gvisor" ] || exit 0

# gVisor: built once per pinned version into the cache, installed when the
# installed binaries differ from the cached ones.
if [ "$mode" = "--runsc" ]; then
  build=$("$top/packaging/scripts/gvisor.sh" --runsc-only)
else
  build=$("$top/packaging/scripts/gvisor.sh")
fi

install_if_changed() { # src dst
  if ! cmp -s "$1" "$2"; then
    say "installing $2"
    install -D -m 0755 "$1" "$2"
  fi
}
[ ! -x "$build/containerd-shim-runsc-v1" ] ||
  install_if_changed "$build/containerd-shim-runsc-v1" /usr/local/bin/containerd-shim-runsc-v1
if dpkg-query -W -f '${Status}' runtimed 2>/dev/null | grep -q 'ok installed'; then
  say "the runtimed package is installed: its runsc in $lib stays"
else
  install_if_changed "$build/runsc" "$lib/runsc"
  install_if_changed "$top/packaging/runsc-runtimed" "$lib/runsc-runtimed"
fi
