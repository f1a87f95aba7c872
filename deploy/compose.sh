#!/usr/bin/env bash
# `docker compose` (the v2 plugin) or `docker-compose` (v1.29), whichever this machine has,
# run on ferry's compose.yaml from the repository root: `deploy/compose.sh ps`,
# `deploy/compose.sh logs -f gateway`, ... Variables are those of compose.yaml; a relative
# FERRY_DATA_DIR is made absolute (it is mounted at the same path inside the provider).
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

cd "$repo"
exec "${compose[@]}" --project-directory "$repo" -f "$repo/compose.yaml" "$@"
