#!/usr/bin/env bash
# Usage: deploy/promtool.sh [DEST]
#
# Puts Prometheus' promtool at DEST (default target/tools/promtool), taken from Debian's
# prometheus package (downloaded and extracted by deploy/debs.sh, not installed). The tests
# check every service's /metrics with `promtool check metrics`; `make test` runs this first.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/target/tools/promtool}
root=$(dirname "$dest")/.cache/prometheus-root
"$repo/deploy/debs.sh" "$root" prometheus
mkdir -p "$(dirname "$dest")"
cp -L "$root/usr/bin/promtool" "$dest.tmp"
mv -f "$dest.tmp" "$dest"
printf 'promtool: %s\n' "$("$dest" --version 2>&1 | head -1)" >&2
