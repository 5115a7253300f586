#!/usr/bin/env bash
# run.sh CONFIG CACHE LANGUAGES [FLAG...]: make run's last step. Builds
# the images of LANGUAGES (comma-separated) into CACHE and imports them,
# then runs runtimed in the foreground with FLAG... (--build-missing: it
# builds the other images while it serves).
set -euo pipefail
cd "$(dirname "$0")/../.."
config=$1 cache=$2
IFS=, read -ra languages <<<"$3"
shift 3
bin/runtimed --config "$config" image build --recipes packaging/images --cache "$cache" "${languages[@]}"
exec bin/runtimed --config "$config" --recipes packaging/images --cache "$cache" --log-format text "$@"
