#!/usr/bin/env bash
# `make credentials`: prints the gateway's basic-auth user and password and the key the
# workers sign callbacks with, which the gateway generates on first start in /run/secrets
# (the gateway-secrets volume). The images are
# FROM scratch (no shell, no cat), so the files are read with `docker cp`, which streams a
# tar archive, from the gateway container, running or stopped.
# With --password, prints the password alone, for scripts:
#   curl -u admin:"$(deploy/credentials.sh --password)" http://127.0.0.1:8080/system/functions
set -euo pipefail

only_password=false
case "${1:-}" in
  --password) only_password=true ;;
  "") ;;
  *) echo "usage: $0 [--password]" >&2; exit 64 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
id=$("$repo/deploy/compose.sh" ps -a -q gateway 2>/dev/null | head -n 1)
if [ -z "$id" ]; then
  echo "credentials: there is no gateway container: start the stack with 'make up'" >&2
  exit 1
fi

read_secret() { docker cp "$id:/run/secrets/$1" - 2>/dev/null | tar -xO 2>/dev/null; }

if ! user=$(read_secret basic-auth-user) || ! password=$(read_secret basic-auth-password) \
  || [ -z "$user" ] || [ -z "$password" ]; then
  echo "credentials: the gateway has not written /run/secrets/basic-auth-user and" \
    "basic-auth-password (yet)" >&2
  exit 1
fi

if "$only_password"; then
  printf '%s\n' "$password"
  exit 0
fi
printf 'user:     %s\npassword: %s\n' "$user" "$password"
printf 'e.g.      curl -u %s:%s http://127.0.0.1:%s/system/functions\n' \
  "$user" "$password" "${FERRY_GATEWAY_PORT:-8080}"
# Every line is a key receivers may accept; the workers sign with the first.
if key=$(read_secret callback-signing-key) && [ -n "$key" ]; then
  printf '%s\n' "$key" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' \
    -e 's/^/callback signing key: /'
else
  echo "callback signing key: none (callbacks are unsigned)"
fi
