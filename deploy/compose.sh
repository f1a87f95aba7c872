#!/usr/bin/env bash
# `docker compose` (the v2 plugin) or `docker-compose` (v1.29), whichever this machine has,
# run on ferry's compose.yaml from the repository root: `deploy/compose.sh ps`,
# `deploy/compose.sh logs -f gateway`, ... Variables are those of compose.yaml; a relative
# FERRY_DATA_DIR is made absolute (it is mounted at the same path inside the provider).
# FERRY_TLS=1 (true, yes, on) adds deploy/compose.tls.yaml: HTTPS on the gateway.
# FERRY_COMPOSE_FILE: the compose file, relative to the repository root [compose.yaml];
# compose.cluster.yaml is the clustered stack (`make up-cluster`), which has no TLS variant.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose.sh: neither 'docker compose' nor 'docker-compose' is installed" \
    "(Debian: apt-get install docker-compose)" >&2
  exit 1
fi

if [ -n "${FERRY_DATA_DIR:-}" ] && [ "${FERRY_DATA_DIR#/}" = "$FERRY_DATA_DIR" ]; then
  FERRY_DATA_DIR="$PWD/$FERRY_DATA_DIR"
  export FERRY_DATA_DIR
fi

file=${FERRY_COMPOSE_FILE:-compose.yaml}
[ -f "$repo/$file" ] || { echo "compose.sh: FERRY_COMPOSE_FILE=$file: no such file in $repo" >&2; exit 64; }
files=(-f "$repo/$file")
case "$(printf '%s' "${FERRY_TLS:-}" | tr '[:upper:]' '[:lower:]')" in
  1|true|yes|on)
    if [ "$file" != compose.yaml ]; then
      echo "compose.sh: FERRY_TLS=1 applies to compose.yaml only, not $file" >&2
      exit 64
    fi
    files+=(-f "$repo/deploy/compose.tls.yaml") ;;
  ""|0|false|no|off) ;;
  *) echo "compose.sh: FERRY_TLS=$FERRY_TLS is not valid: use 1 (HTTPS) or 0" >&2; exit 64 ;;
esac

cd "$repo"
exec "${compose[@]}" --project-directory "$repo" "${files[@]}" "$@"
