#!/usr/bin/env bash
# gvisor.sh: builds runsc and containerd-shim-runsc-v1 from the gVisor
# release pinned in packaging/gvisor/go.mod (systrap needs no cgo), once
# per pin, into the cache, and prints the directory that holds them.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${RUNTIMED_CACHE:-/var/cache/runtimed-build}

command -v go >/dev/null 2>&1 || { echo "gvisor: Go is required to build gVisor (https://go.dev/doc/install)" >&2; exit 1; }
key=$(cat "$top/packaging/gvisor/go.mod" "$top/packaging/gvisor/go.sum" | sha256sum | cut -c1-16)
build="$cache/gvisor/$key"
if [ ! -x "$build/runsc" ] || [ ! -x "$build/containerd-shim-runsc-v1" ]; then
  echo "gvisor: building gVisor $(awk '/gvisor.dev\/gvisor /{print $2}' "$top/packaging/gvisor/go.mod") (a few minutes)" >&2
  rm -rf "$build.tmp" && mkdir -p "$build.tmp"
  (cd "$top/packaging/gvisor" &&
    CGO_ENABLED=0 go build -trimpath -o "$build.tmp/runsc" gvisor.dev/gvisor/runsc &&
    CGO_ENABLED=0 go build -trimpath -o "$build.tmp/containerd-shim-runsc-v1" gvisor.dev/gvisor/shim)
  rm -rf "$build" && mv "$build.tmp" "$build"
fi
echo "$build"
