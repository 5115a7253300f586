#!/usr/bin/env bash
# Installs what runtimed needs on a Debian 12 host, and only what is
# missing: containerd and debootstrap from Debian, and runsc plus
# containerd-shim-runsc-v1 built from the gVisor release pinned in
# packaging/gvisor/go.mod, and the group runtimed. A second run does
# nothing.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
prefix=/usr/local # runsc-runtimed execs $prefix/bin/runsc
cache=${RUNTIMED_CACHE:-/var/cache/runtimed}

say() { printf 'deps: %s\n' "$*"; }

# --test adds what the test suites use: nginx, for the tests that put it in
# front of runtimed.
missing=()
if [ "${1:-}" = "--test" ]; then
  command -v nginx >/dev/null 2>&1 || missing+=(nginx)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v chroot >/dev/null 2>&1 || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Members of this group may use runtimed's socket.
if ! getent group runtimed >/dev/null; then
  say "creating the system group runtimed"
  groupadd --system runtimed
fi

command -v go >/dev/null 2>&1 || { echo "deps: Go is required to build gVisor (https://go.dev/doc/install)" >&2; exit 1; }

# gVisor: built once per pinned version into the cache, installed when the
# installed binaries differ from the cached ones.
key=$(cat "$top/packaging/gvisor/go.mod" "$top/packaging/gvisor/go.sum" | sha256sum | cut -c1-16)
build="$cache/gvisor/$key"
if [ ! -x "$build/runsc" ] || [ ! -x "$build/containerd-shim-runsc-v1" ]; then
  say "building gVisor $(awk '/gvisor.dev\/gvisor /{print $2}' "$top/packaging/gvisor/go.mod") (a few minutes)"
  mkdir -p "$build.tmp"
  (cd "$top/packaging/gvisor" &&
    CGO_ENABLED=0 go build -trimpath -o "$build.tmp/runsc" gvisor.dev/gvisor/runsc &&
    CGO_ENABLED=0 go build -trimpath -o "$build.tmp/containerd-shim-runsc-v1" gvisor.dev/gvisor/shim)
  rm -rf "$build" && mv "$build.tmp" "$build"
fi

install_if_changed() { # src dst
  if ! cmp -s "$1" "$2"; then
    say "installing $2"
    install -D -m 0755 "$1" "$2"
  fi
}
install_if_changed "$build/runsc" "$prefix/bin/runsc"
install_if_changed "$build/containerd-shim-runsc-v1" "$prefix/bin/containerd-shim-runsc-v1"
install_if_changed "$top/packaging/runsc-runtimed" "$prefix/bin/runsc-runtimed"
