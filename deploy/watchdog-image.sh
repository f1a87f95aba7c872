#!/usr/bin/env bash
# Builds ferry/watchdog:${FERRY_IMAGE_TAG:-latest}, the image the `ferry` CLI's templates start
# from (no registry: `make up` runs this; `make watchdog-image` alone). Its build context,
# target/compose/watchdog/ (FERRY_STAGE_DIR), holds deploy/watchdog/Dockerfile and rootfs/: the
# static watchdog (`make static`, FERRY_STATIC_DIR) as usr/bin/fwatchdog, the host's static
# /bin/busybox (Debian's busybox-static, `make deps`) with its applets linked in bin/, and tmp/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
static_dir=${FERRY_STATIC_DIR:-$repo/target/x86_64-unknown-linux-gnu/release}
out=${FERRY_STAGE_DIR:-$repo/target/compose}/watchdog
tag=ferry/watchdog:${FERRY_IMAGE_TAG:-latest}
busybox=${FERRY_BUSYBOX:-/bin/busybox}
# The applets of tests/src/images.rs, so templates and test images offer the same commands.
applets="sh ash cat echo printf sleep env true false test [ ls head tail tr wc grep sed awk cut
  sort uniq tee dd seq date stat id kill ps mkdir rm cp mv touch timeout base64 sha256sum xargs
  yes uname hostname wget nc"

die() { printf 'watchdog-image: error: %s\n' "$*" >&2; exit 1; }

[ -x "$static_dir/watchdog" ] || die "$static_dir/watchdog is missing: run 'make static' first"
[ -x "$busybox" ] || die "$busybox is missing: install Debian's busybox-static (make deps)"
if ldd "$busybox" 2>&1 | grep -q '=>'; then die "$busybox is not statically linked"; fi

rm -rf "$out/rootfs"
mkdir -p "$out/rootfs/usr/bin" "$out/rootfs/bin" "$out/rootfs/tmp"
chmod 1777 "$out/rootfs/tmp"
cp "$repo/deploy/watchdog/Dockerfile" "$out/Dockerfile"
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug -o "$out/rootfs/usr/bin/fwatchdog" "$static_dir/watchdog"
else
  cp "$static_dir/watchdog" "$out/rootfs/usr/bin/fwatchdog"
fi
cp -L "$busybox" "$out/rootfs/bin/busybox"
for applet in $applets; do ln -s busybox "$out/rootfs/bin/$applet"; done

docker build -q -t "$tag" \
  --build-arg "FERRY_LABEL_KEY=${FERRY_LABEL_KEY:-com.ferry.stack}" \
  --build-arg "FERRY_LABEL_VALUE=${FERRY_LABEL_VALUE:-ferry}" \
  "$out" >/dev/null
printf 'watchdog-image: built %s\n' "$tag" >&2
