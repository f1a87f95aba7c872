#!/usr/bin/env bash
# `make credentials`: prints the gateway's basic-auth user and password and the key the
# workers sign callbacks with, which the gateway generates on first start in /run/secrets
# (the gateway-secrets volume), and, when the gateway serves HTTPS (`make up TLS=1`), the
# SHA-256 fingerprint of its certificate. The images are FROM scratch (no shell, no cat), so
# the files are read with `docker cp`, which streams a tar archive, from the gateway
# container, running or stopped; whether it serves HTTPS is read from its environment.
# Options, for scripts (one at most):
#   --password  the password alone:
#               curl -u admin:"$(deploy/credentials.sh --password)" http://127.0.0.1:8080/system/functions
#   --cert      the gateway's certificate (PEM), e.g. for curl --cacert; fails without TLS
#   --url       the gateway's URL on this machine: http://127.0.0.1:8080, or https://...
set -euo pipefail

only=
case "${1:-}" in
  --password|--cert|--url) only=${1#--} ;;
  "") ;;
  *) echo "usage: $0 [--password | --cert | --url]" >&2; exit 64 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
port=${FERRY_GATEWAY_PORT:-8080}
# compose.yaml's gateway, or the first of compose.cluster.yaml's two (they share the volume).
id=
for service in gateway gateway-1; do
  id=$("$repo/deploy/compose.sh" ps -a -q "$service" 2>/dev/null | head -n 1) || id=
  [ -z "$id" ] || break
done
if [ -z "$id" ]; then
  echo "credentials: there is no gateway container: start the stack with 'make up'" >&2
  exit 1
fi

read_file() { docker cp "$id:$1" - 2>/dev/null | tar -xO 2>/dev/null; }
read_secret() { read_file "/run/secrets/$1"; }

# The gateway's certificate file when it serves HTTPS (tls_cert_file, or tls.crt in
# secret_mount_path with tls_self_signed), from the container's environment; empty without.
cert_path() {
  local env cert self_signed dir
  env=$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id")
  value() { printf '%s\n' "$env" | sed -n "s/^$1=//p" | tail -n 1; }
  cert=$(value tls_cert_file)
  self_signed=$(value tls_self_signed | tr '[:upper:]' '[:lower:]')
  dir=$(value secret_mount_path)
  if [ -n "$cert" ]; then
    printf '%s\n' "$cert"
  elif [[ "$self_signed" =~ ^(1|true|yes|on)$ ]]; then
    printf '%s/tls.crt\n' "${dir:-/run/secrets}"
  fi
}

# SHA-256 of the first certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
fingerprint() {
  sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{/-----/!p;/-----END/q}' \
    | base64 -d | sha256sum | cut -d' ' -f1 | tr '[:lower:]' '[:upper:]' | sed 's/../&:/g; s/:$//'
}

cert_file=
[ "$only" = password ] || cert_file=$(cert_path)
cert=
if [ -n "$cert_file" ]; then
  if ! cert=$(read_file "$cert_file") || [ -z "$cert" ]; then
    echo "credentials: the gateway serves HTTPS but has not written $cert_file (yet)" >&2
    exit 1
  fi
  url="https://127.0.0.1:$port"
else
  url="http://127.0.0.1:$port"
fi

case "$only" in
  url) printf '%s\n' "$url"; exit 0 ;;
  cert)
    if [ -z "$cert" ]; then
      echo "credentials: the gateway serves plain HTTP (make up TLS=1 for HTTPS)" >&2
      exit 1
    fi
    printf '%s\n' "$cert"
    exit 0
    ;;
esac

if ! user=$(read_secret basic-auth-user) || ! password=$(read_secret basic-auth-password) \
  || [ -z "$user" ] || [ -z "$password" ]; then
  echo "credentials: the gateway has not written /run/secrets/basic-auth-user and" \
    "basic-auth-password (yet)" >&2
  exit 1
fi

if [ "$only" = password ]; then
  printf '%s\n' "$password"
  exit 0
fi
printf 'user:     %s\npassword: %s\n' "$user" "$password"
if [ -n "$cert" ]; then
  printf 'tls:      HTTPS only; certificate SHA-256 fingerprint %s\n' \
    "$(printf '%s\n' "$cert" | fingerprint)"
  printf 'e.g.      deploy/credentials.sh --cert > ferry-gateway.crt\n'
  printf '          curl --cacert ferry-gateway.crt -u %s:%s %s/system/functions\n' \
    "$user" "$password" "$url"
  printf '          faas-cli list --gateway %s --tls-no-verify\n' "$url"
else
  printf 'e.g.      curl -u %s:%s %s/system/functions\n' "$user" "$password" "$url"
fi
# Every line is a key receivers may accept; the workers sign with the first.
if key=$(read_secret callback-signing-key) && [ -n "$key" ]; then
  printf '%s\n' "$key" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' \
    -e 's/^/callback signing key: /'
else
  echo "callback signing key: none (callbacks are unsigned)"
fi
