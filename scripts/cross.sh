#!/usr/bin/env bash
# docs/perf.md's cross-evaluation (as Tarax's section 5.1.2): each example
# application's workload on each example's profile-guided kernel.
# The images share one kernel config: each spec gets the shared test
# kernel's options (internal/testkernel, which cover all six) in its
# kernel.enable, so their kernels differ by the profile alone. Each image
# is built --optimize pgo, profiled under its own spec's workload; then
# bespoke bench --model measures each image on the -O2 kernel of that
# config (the same for all six), on its own profile-guided kernel and, with
# --kernel-of, on the five others'. postgresql and mariadb are benched with
# a fixed count of transactions, as in scripts/perf.sh.
# Usage: scripts/cross.sh [OUT_DIR] [APP...] (default out/cross, all six);
# RUNS boots per kernel (default 1); an image already in OUT_DIR is reused
# (delete it to build it again); ROWS="APP..." benches only those rows (a
# failed one, say: each on all the images' kernels); TABLE_ONLY=1 prints
# the report of the images in OUT_DIR without building or benching.
# Prints bespoke report's tables, the matrices last, and writes its page to
# OUT_DIR/report.html; exits 1 when a build, a bench or the report failed
# (a failed bench's row is "-").
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/cross}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
runs=${RUNS:-1}
mkdir -p "$out"
log() { echo "== $*" >&2; }
. scripts/workloads.sh
failed=0

if [ "${TABLE_ONLY:-}" != 1 ]; then
  enable=$(go run ./internal/testkernel/budget -enable qemu-microvm) || exit 1
  for app in "${apps[@]}"; do
    img="$out/$app.image"
    if [ -f "$img/image.json" ]; then
      log "$app: reusing $img"
      continue
    fi
    # A copy of the example's directory: its setup reads files beside the spec.
    rm -rf "$out/$app.spec" && cp -r "examples/$app" "$out/$app.spec" || exit 1
    if grep -q '^kernel:' "$out/$app.spec/bespoke.yaml"; then
      log "$app: its spec has a kernel: section already; add the shared options to its enable by hand"
      exit 1
    fi
    echo "kernel: {enable: [$enable]}" >>"$out/$app.spec/bespoke.yaml"
    log "$app: build --optimize pgo with the shared options (log: $img.build.log)"
    if ! bin/bespoke build -f "$out/$app.spec/bespoke.yaml" --optimize pgo -o "$img" >"$img.build.log" 2>&1; then
      log "$app: build FAILED: tail of $img.build.log:"
      tail -20 "$img.build.log" >&2
      exit 1
    fi
  done
  # One config, or the matrix compares more than profiles.
  n=$(for app in "${apps[@]}"; do sha256sum <"$out/$app.image/config"; done | sort -u | wc -l)
  if [ "$n" != 1 ]; then
    log "the images' kernel configs differ (sha256sum $out/*.image/config): each app's options must be in internal/testkernel's Enable"
    exit 1
  fi
  read -ra rows <<<"${ROWS:-${apps[*]}}"
  for app in "${rows[@]}"; do
    img="$out/$app.image"
    args=()
    for other in "${apps[@]}"; do
      [ "$other" = "$app" ] || args+=(--kernel-of "$out/$other.image")
    done
    wl=$(count_workload "$app")
    if [ -n "$wl" ]; then
      args+=(--workload "$wl")
    fi
    log "$app: bench --model --runs $runs on ${#apps[@]} profile-guided kernels and -O2 (log: $img.bench.log)"
    rm -f "$img/bench.json" # no stale row in the matrices
    if ! bin/bespoke bench "$img" --model --runs "$runs" "${args[@]}" >"$img.bench.md" 2>"$img.bench.log"; then
      log "$app: bench FAILED: tail of $img.bench.log:"
      tail -20 "$img.bench.log" >&2
      failed=1
    fi
  done
fi

# The matrices: bespoke report over the images (a row per workload, a
# column per image's kernel, each cell the figure per request against the
# -O2 kernel of the row's run), with its page.
imgs=()
for app in "${apps[@]}"; do imgs+=("$out/$app.image"); done
bin/bespoke report --html "$out/report.html" --json "$out/report.json" "${imgs[@]}" || failed=1
exit "$failed"
