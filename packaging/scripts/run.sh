#!/usr/bin/env bash
# run.sh CONFIG CACHE LANGUAGES [FLAG...]: make run's last step, after
# deps.sh --no-gvisor. Builds runtimed, then gVisor's runsc (deps.sh
# --runsc) alongside the images of LANGUAGES (comma-separated) into CACHE,
# imports them, then runs runtimed in the foreground with FLAG...
# (--build-missing: it builds the other images while it serves).
set -euo pipefail
cd "$(dirname "$0")/../.."
config=$1 cache=$2
IFS=, read -ra languages <<<"$3"
shift 3
# runtimed builds first, with both cores: the images need it. Then gVisor's
# runsc (built from its module on a fresh machine: minutes of CPU) builds
# while the first images do (debootstrap and dpkg: mostly one core);
# sandboxes need it only once runtimed serves. Its own process group, so
# that a failure here stops it whole.
"${MAKE:-make}" --no-print-directory build
log=$(mktemp)
set -m
packaging/scripts/deps.sh --runsc >"$log" 2>&1 &
gvisor=$!
set +m
trap 'kill -- -"$gvisor" 2>/dev/null || true; rm -f "$log"' EXIT
bin/runtimed --config "$config" image build --recipes packaging/images --cache "$cache" "${languages[@]}"
if ! wait "$gvisor"; then
  cat "$log" >&2
  echo "run: installing gVisor failed" >&2
  exit 1
fi
cat "$log"
trap - EXIT
rm -f "$log"
exec bin/runtimed --config "$config" --recipes packaging/images --cache "$cache" --log-format text "$@"
