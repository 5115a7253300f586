#!/usr/bin/env bash
# package.sh OUTDIR: builds runtimed's .deb with nfpm from what `make
# build` left in bin/, the pinned gVisor's runsc, and the files under
# packaging/, systemd/ and docs/; the manual pages come from the commands'
# own definitions. nfpm is installed at its pinned version, once, into the
# cache.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/dist}
cache=${RUNTIMED_CACHE:-/var/cache/runtimed-build}
# Later nfpm releases need modules the Go proxy here does not serve.
nfpm_version=v2.44.0
cd "$top"

for b in runtimed runtimectl runtimed-init; do
  [ -x "bin/$b" ] || { echo "package: bin/$b is missing (make build)" >&2; exit 1; }
done
nfpm="$cache/tools/nfpm-$nfpm_version/nfpm"
if [ ! -x "$nfpm" ]; then
  echo "package: installing nfpm $nfpm_version" >&2
  GOBIN="$(dirname "$nfpm")" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version"
fi
gvisor=$(packaging/scripts/gvisor.sh)

# The binaries' version (make build sets it from the same script).
version=$(packaging/scripts/version.sh)
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
bin/runtimed man | gzip -9n >"$stage/runtimed.8.gz"
bin/runtimectl man | gzip -9n >"$stage/runtimectl.1.gz"

cat >"$stage/nfpm.yaml" <<YAML
name: runtimed
arch: $arch
platform: linux
version: $version
version_schema: none
section: admin
priority: optional
maintainer: runtimed developers <runtimed@localhost>
homepage: https://github.com/runtimed/runtimed
description: |-
  untrusted code in gVisor sandboxes, through containerd
  runtimed is a daemon that runs code snippets (online judges, course
  platforms, playgrounds, AI agents) in gVisor sandboxes that containerd
  creates: no network, a read-only root, no capabilities, a non-root user,
  and limits on memory, CPU, processes, time, output and disk. It answers
  a JSON API on a unix socket (and optionally TCP, behind NGINX).
  runtimectl is its command-line client. gVisor's runsc is included.
depends:
  - containerd
recommends:
  - debootstrap
suggests:
  - nginx
contents:
  - src: bin/runtimed
    dst: /usr/bin/runtimed
    file_info: {mode: 0755}
  - src: bin/runtimectl
    dst: /usr/bin/runtimectl
    file_info: {mode: 0755}
  - src: bin/runtimed-init
    dst: /usr/lib/runtimed/runtimed-init
    file_info: {mode: 0755}
  - src: $gvisor/runsc
    dst: /usr/lib/runtimed/runsc
    file_info: {mode: 0755}
  - src: packaging/runsc-runtimed
    dst: /usr/lib/runtimed/runsc-runtimed
    file_info: {mode: 0755}
  - src: packaging/runtimed.toml
    dst: /etc/runtimed/runtimed.toml
    type: config|noreplace
    file_info: {mode: 0640}
  - dst: /etc/runtimed/languages.d
    type: dir
    file_info: {mode: 0755}
  - src: packaging/nginx/runtimed.conf
    dst: /etc/nginx/sites-available/runtimed.conf
    type: config|noreplace
    file_info: {mode: 0644}
  - src: systemd/runtimed.service
    dst: /lib/systemd/system/runtimed.service
    file_info: {mode: 0644}
  - src: systemd/runtimed.socket
    dst: /lib/systemd/system/runtimed.socket
    file_info: {mode: 0644}
  - src: packaging/images/*.toml
    dst: /usr/share/runtimed/images/
    file_info: {mode: 0644}
  - src: packaging/completion/runtimed.bash
    dst: /usr/share/bash-completion/completions/runtimectl
    file_info: {mode: 0644}
  - src: packaging/completion/runtimed.bash
    dst: /usr/share/bash-completion/completions/runtimed
    file_info: {mode: 0644}
  - src: packaging/completion/_runtimectl
    dst: /usr/share/zsh/vendor-completions/_runtimectl
    file_info: {mode: 0644}
  - src: $stage/runtimed.8.gz
    dst: /usr/share/man/man8/runtimed.8.gz
    file_info: {mode: 0644}
  - src: $stage/runtimectl.1.gz
    dst: /usr/share/man/man1/runtimectl.1.gz
    file_info: {mode: 0644}
  - src: README.md
    dst: /usr/share/doc/runtimed/README.md
    file_info: {mode: 0644}
  - src: docs/*.md
    dst: /usr/share/doc/runtimed/
    file_info: {mode: 0644}
scripts:
  postinstall: packaging/deb/postinst
  preremove: packaging/deb/prerm
  postremove: packaging/deb/postrm
YAML

mkdir -p "$out"
deb="$out/runtimed_${version}_${arch}.deb"
rm -f "$deb"
"$nfpm" package --config "$stage/nfpm.yaml" --packager deb --target "$deb" >&2
echo "$deb"
