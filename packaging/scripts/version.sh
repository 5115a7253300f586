#!/usr/bin/env bash
# Prints the version of runtimed's binaries and of its package, one and
# the same: X.Y.Z at a release tag vX.Y.Z; after it, X.Y.Z+gitDATE.SHA
# (which sorts after X.Y.Z and before the next release, for dpkg and
# semver alike); 0.0.0+gitDATE.SHA before the first release; .dirty at the
# end (+dirty at a tag) when the tree has uncommitted changes;
# 0.0.0+unknown outside git.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "0.0.0+unknown"
  exit 0
fi
dirty=
git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
  echo "${tag#v}${dirty:++dirty}"
  exit 0
fi
last=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || echo v0.0.0)
echo "${last#v}+git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short=12 HEAD)$dirty"
