#!/usr/bin/env bash
# Builds, verifies and tabulates the example applications: the table of
# docs/apps.md. Usage: scripts/apps.sh [OUT_DIR] [APP...] (default out/apps,
# all six). Prints the Markdown table on stdout; the images and logs stay
# in OUT_DIR. ROOT=erofs|initramfs builds that root (default: the spec's,
# else erofs); MINMEM=1 also finds each image's least memory
# (bespoke min-memory).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/apps}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
mkdir -p "$out"
images=()
start=$(date +%s)
for app in "${apps[@]}"; do
  t0=$(date +%s)
  echo "== $app: bespoke build (log: $out/$app.build.log)" >&2
  if ! bin/bespoke build -f "examples/$app/bespoke.yaml" ${ROOT:+--root "$ROOT"} -o "$out/$app.image" >"$out/$app.build.log" 2>&1; then
    echo "== $app: build FAILED: tail of $out/$app.build.log:" >&2
    tail -20 "$out/$app.build.log" >&2
    continue
  fi
  echo "== $app: bespoke verify (log: $out/$app.verify.log)" >&2
  bin/bespoke verify "$out/$app.image" >"$out/$app.verify.log" 2>&1 || echo "== $app: verify FAILED (see $out/$app.verify.log)" >&2
  if [ "${MINMEM:-}" = 1 ]; then
    echo "== $app: bespoke min-memory (log: $out/$app.min-memory.log)" >&2
    bin/bespoke min-memory "$out/$app.image" >"$out/$app.min-memory.log" 2>&1 || echo "== $app: min-memory FAILED (see $out/$app.min-memory.log)" >&2
  fi
  echo "== $app: $(( $(date +%s) - t0 )) s" >&2
  images+=("$out/$app.image")
done
echo "== all: $(( $(date +%s) - start )) s" >&2
((${#images[@]})) && bin/bespoke report "${images[@]}"
