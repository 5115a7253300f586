#!/usr/bin/env bash
# golangci-lint.sh ARGS...: runs golangci-lint at its pinned version with
# the committed .golangci.yml; it is installed once into the cache.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${RUNTIMED_CACHE:-/var/cache/runtimed-build}
version=v2.15.0
bin="$cache/tools/golangci-lint-$version/golangci-lint"
if [ ! -x "$bin" ]; then
  echo "lint: installing golangci-lint $version" >&2
  GOBIN="$(dirname "$bin")" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
cd "$top"
exec "$bin" "$@"
