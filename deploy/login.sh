#!/usr/bin/env bash
# `make login`: what `faas-cli login` does, without faas-cli: writes the gateway's basic-auth
# credentials (from deploy/credentials.sh) into faas-cli's config file, so that faas-cli, and
# any tool reading that file, can use the stack's /system/* API straight away.
#
# The file is faas-cli's: `$OPENFAAS_CONFIG/config.yml`, else `~/.openfaas/config.yml` (folder
# 0700, file 0600), one entry per gateway URL under `auths:` with `auth: basic` and
# `token: base64(user:password)`. An entry for the same gateway URL is replaced, the others are
# kept. The gateway URL is `http://127.0.0.1:$FERRY_GATEWAY_PORT` (8080), `https://...` when the
# gateway serves HTTPS (`make up TLS=1`), or the first argument:
#   deploy/login.sh http://gateway.example:8080
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
gateway=${1:-$("$repo/deploy/credentials.sh" --url)}
gateway=${gateway%/}
case "$gateway" in
  http://*|https://*) ;;
  *) echo "login: the gateway URL must start with http:// or https://, not: $gateway" >&2; exit 64 ;;
esac

creds=$("$repo/deploy/credentials.sh")
user=$(printf '%s\n' "$creds" | sed -n 's/^user: *//p')
password=$(printf '%s\n' "$creds" | sed -n 's/^password: *//p')
token=$(printf '%s:%s' "$user" "$password" | base64 -w0)

dir=${OPENFAAS_CONFIG:-$HOME/.openfaas}
file="$dir/config.yml"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
tmp=$(mktemp "$dir/.config.yml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
  echo "auths:"
  if [ -f "$file" ]; then
    # Keep every entry but this gateway's (faas-cli writes one "- gateway:" block per entry).
    awk -v gw="$gateway" '
      /^auths:/ { next }
      /^- / { skip = ($0 == "- gateway: " gw || $0 == "- gateway: \"" gw "\"") }
      /^[^ -]/ { skip = 0; next }
      !skip { print }
    ' "$file"
  fi
  printf -- '- gateway: %s\n  auth: basic\n  token: %s\n' "$gateway" "$token"
} > "$tmp"
chmod 600 "$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "login: credentials for $gateway saved in $file (as faas-cli login does)"
case "$gateway" in
  https://*) echo "login: HTTPS with a self-signed certificate (make up TLS=1): give faas-cli" \
    "--tls-no-verify; deploy/credentials.sh --cert prints it for curl --cacert" ;;
esac
