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
# (delete it to build it again); TABLE_ONLY=1 prints the matrices of the
# images in OUT_DIR without building or benching.
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
  for app in "${apps[@]}"; do
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
    if ! bin/bespoke bench "$img" --model --runs "$runs" "${args[@]}" >"$img.bench.md" 2>"$img.bench.log"; then
      log "$app: bench FAILED: tail of $img.bench.log:"
      tail -20 "$img.bench.log" >&2
    fi
  done
fi

# The matrices, from each image's bench.json: a row per workload, a column
# per profile, each cell the figure per request on that profile's kernel
# against the -O2 kernel in the same run.
fig() { # FILE LABEL FIELD: the mean of a model figure
  jq -r --arg l "$2" --arg f "$3" '.kernels[] | select(.label == $l) | .model[$f].mean' "$1" 2>/dev/null
}
for f in kernel_insns kernel_tbs kernel_l1i_misses; do
  echo "$f per request, each profile-guided kernel against -O2 (rows: workload; columns: the profile's workload; $runs boots per kernel)"
  echo
  printf '| workload \\ profile |'
  printf ' %s |' "${apps[@]}"
  printf '\n| --- |'
  printf ' --- |%.0s' "${apps[@]}"
  echo
  for app in "${apps[@]}"; do
    file="$out/$app.image/bench.json"
    printf '| %s |' "$app"
    base=$(fig "$file" o2 "$f")
    for other in "${apps[@]}"; do
      label=$other
      [ "$other" = "$app" ] && label=pgo
      v=$(fig "$file" "$label" "$f")
      awk -v a="$base" -v b="$v" 'BEGIN { if (a > 0 && b > 0) printf " %+.1f%% |", (b / a - 1) * 100; else printf " - |" }'
    done
    echo
  done
  echo
done
