#!/usr/bin/env bash
# docs/results.md: the six examples on bespoke's kernel and on Debian's
# cloud kernel for 6.12, side by side in one run (bespoke bench --baseline,
# with the cost model and without it for wall-clock figures), with the
# least memory of each (bespoke min-memory, and with --baseline), then one
# report page over all six.
# All six images target qemu-pc (Debian's cloud kernel does not boot on
# -M microvm) and share one kernel: the shared test kernel's options on the
# redis example, which covers all six (each application's own kernel is
# smaller: docs/apps.md).
# KERNEL=dce: each application builds its own kernel instead, with
# --kernel-dce (Clang ThinLTO and --gc-sections; needs clang-14, lld-14,
# llvm-14: make deps), from its own spec.
# MODEL=0 leaves out the cost model's bench, MINMEM=0 the two min-memory
# searches (the wall-clock bench alone).
# Usage: scripts/results.sh [OUT_DIR] [APP...] (default out/results, all six).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/results}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
runs=${RUNS:-3}
mkdir -p "$out"
enable=$(go run ./internal/testkernel/budget -enable qemu-pc)
{ cat examples/redis/bespoke.yaml; echo "kernel: {enable: [$enable]}"; } >"$out/redis.yaml"
log() { echo "== $*" >&2; }
for app in "${apps[@]}"; do
  img="$out/$app.image"
  if [ "${KERNEL:-}" = dce ]; then
    args=(-f "examples/$app/bespoke.yaml" --kernel-dce)
  elif [ "$app" = redis ]; then
    args=(-f "$out/redis.yaml" --name redis)
  else
    args=(-f "examples/$app/bespoke.yaml" --kernel-from "$out/redis.image")
  fi
  log "$app: build (log: $img.build.log)"
  bin/bespoke build "${args[@]}" --target qemu-pc -o "$img" >"$img.build.log" 2>&1
  if [ "${MODEL:-1}" != 0 ]; then
    log "$app: bench --baseline --model --runs $runs (log: $img.bench.log)"
    bin/bespoke bench "$img" --baseline --model --runs "$runs" >"$img.bench.md" 2>"$img.bench.log"
    cp "$img/bench.json" "$img/bench-model.json"
  fi
  # Wall clock without the cost model's plugin, which slows every boot.
  log "$app: bench --baseline --runs $runs (log: $img.bench-wall.log)"
  bin/bespoke bench "$img" --baseline --runs "$runs" >"$img.bench-wall.md" 2>"$img.bench-wall.log"
  cat "$img.bench-wall.md"
  [ "${MODEL:-1}" = 0 ] || cat "$img.bench.md"
  if [ "${MINMEM:-1}" != 0 ]; then
    log "$app: min-memory, image's kernel and baseline (log: $img.mem.log)"
    bin/bespoke min-memory "$img" --step 1 >"$img.mem.txt" 2>"$img.mem.log"
    bin/bespoke min-memory "$img" --baseline --step 1 >>"$img.mem.txt" 2>>"$img.mem.log"
    cat "$img.mem.txt"
  fi
done
images=()
for app in "${apps[@]}"; do images+=("$out/$app.image"); done
bin/bespoke report --html "$out/report.html" --json "$out/report.json" "${images[@]}"
