#!/usr/bin/env bash
# Usage: deploy/debs.sh ROOT PACKAGE...
#
# Downloads Debian packages with apt-get (never installs them: installing prometheus would
# start a Prometheus service on the host) and extracts them into ROOT, once: ROOT/.complete
# marks a finished extraction, and a later run with the same ROOT does nothing. Runs
# `apt-get update` (as root, through sudo if needed) when the download fails at first.
# Used by deploy/stage.sh (Prometheus and its web UI) and deploy/promtool.sh.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 ROOT PACKAGE..." >&2; exit 2; }
root=$1
shift
log() { printf 'debs: %s\n' "$*" >&2; }
die() { printf 'debs: error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

[ -f "$root/.complete" ] && exit 0
debs=$root.debs
log "downloading $* (not installing)"
rm -rf "$debs" "$root"
mkdir -p "$debs" "$root"
download() {
  # As root, apt's download sandbox user could not write here; downloading as root is fine.
  (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$@")
}
download "$@" >/dev/null 2>&1 || {
  log "apt-get download failed; running apt-get update first"
  as_root apt-get update -q >/dev/null
  download "$@" >/dev/null || die "apt-get download $* failed"
}
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$debs"
touch "$root/.complete"
