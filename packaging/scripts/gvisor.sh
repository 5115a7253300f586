#!/usr/bin/env bash
# gvisor.sh [--runsc-only]: builds runsc and containerd-shim-runsc-v1 (or
# runsc alone) from the gVisor release pinned in packaging/gvisor/go.mod
# (systrap needs no cgo), once per pin, into the cache, and prints the
# directory that holds them.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${RUNTIMED_CACHE:-/var/cache/runtimed-build}

command -v go >/dev/null 2>&1 || { echo "gvisor: Go is required to build gVisor (https://go.dev/doc/install)" >&2; exit 1; }
key=$(cat "$top/packaging/gvisor/go.mod" "$top/packaging/gvisor/go.sum" | sha256sum | cut -c1-16)
build="$cache/gvisor/$key"
version=$(awk '/gvisor.dev\/gvisor /{print $2}' "$top/packaging/gvisor/go.mod")
# build_one NAME PACKAGE: one binary, unless built; written whole or not at all.
build_one() {
  [ ! -x "$build/$1" ] || return 0
  echo "gvisor: building $1 of gVisor $version (minutes on a fresh machine)" >&2
  mkdir -p "$build"
  (cd "$top/packaging/gvisor" && CGO_ENABLED=0 go build -trimpath -o "$build/$1.tmp" "$2")
  mv "$build/$1.tmp" "$build/$1"
}
build_one runsc gvisor.dev/gvisor/runsc
# --runsc-only: make run, whose runtime is runc's shim with runsc, does
# not wait for gVisor's own shim.
[ "${1:-}" = "--runsc-only" ] || build_one containerd-shim-runsc-v1 gvisor.dev/gvisor/shim
echo "$build"
