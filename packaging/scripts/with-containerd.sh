#!/usr/bin/env bash
# with-containerd.sh ADDRESS CMD...: runs CMD with a containerd answering
# at ADDRESS. If none answers, starts one with packaging/containerd's
# private config for the duration of CMD, and stops it after, also on
# Ctrl-C.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
addr=$1; shift

# ctr waits 10 s on a socket nobody listens on; a live containerd answers
# in milliseconds.
answers() { timeout 2 ctr -a "$addr" version >/dev/null 2>&1; }

if answers; then
  "$@"
  exit
fi

conf="$top/packaging/containerd/config.toml"
if ! grep -q "address = \"$addr\"" "$conf"; then
  echo "with-containerd: no containerd answers at $addr, and $conf listens elsewhere" >&2
  exit 1
fi
log=/var/log/runtimed-containerd.log
echo "with-containerd: starting containerd ($conf), log in $log" >&2
# A session of its own: Ctrl-C reaches the command, which stops first;
# containerd is stopped after it.
setsid containerd --config "$conf" >>"$log" 2>&1 &
pid=$!
stop() {
  echo "with-containerd: stopping containerd" >&2
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
  answers && break
  kill -0 "$pid" 2>/dev/null || { echo "with-containerd: containerd exited; see $log" >&2; exit 1; }
  sleep 0.1
done
answers || { echo "with-containerd: containerd did not answer; see $log" >&2; exit 1; }
"$@"
