#!/usr/bin/env bash
# docs/perf.md's table: for each example application, its own kernel built
# -O2, profile-guided (--optimize pgo: the image keeps its -O2 twin, and
# bespoke bench measures both side by side in one run) and -Os
# (--optimize size, its own image and bench run), each measured with the
# cost model (bespoke bench --model): kernel instructions, taken branches
# (kernel blocks) and simulated L1i misses per request, mean ± sd of RUNS
# boots per kernel.
# postgresql and mariadb are benched with a workload of a fixed count of
# transactions (their spec's runs for a fixed time, which divides the
# set-up by however many transactions the host's speed allowed:
# docs/perf.md); their profile comes from the spec's workload.
# Usage: scripts/perf.sh [OUT_DIR] [APP...] (default out/perf, all six);
# RUNS (default 3); OS=0 skips the -Os images; TABLE_ONLY=1 prints the
# table of the images in OUT_DIR without building or benching. Prints the table on stdout,
# then the geometric means; each image's bench output stays in OUT_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/perf}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
runs=${RUNS:-3}
mkdir -p "$out"
log() { echo "== $*" >&2; }
. scripts/workloads.sh

# bench IMAGE APP: bespoke bench --model into IMAGE.bench.md.
bench() {
  local wl
  wl=$(count_workload "$2")
  log "$2: bench --model --runs $runs $1 (log: $1.bench.log)"
  if [ -n "$wl" ]; then
    bin/bespoke bench "$1" --model --runs "$runs" --workload "$wl" >"$1.bench.md" 2>"$1.bench.log"
  else
    bin/bespoke bench "$1" --model --runs "$runs" >"$1.bench.md" 2>"$1.bench.log"
  fi || log "$2: bench FAILED (see $1.bench.log)"
}

# build APP VARIANT FLAGS...: bespoke build into OUT/APP.VARIANT.
build() {
  local app=$1 v=$2 img="$out/$1.$2"
  shift 2
  log "$app: build $* (log: $img.build.log)"
  if ! bin/bespoke build -f "examples/$app/bespoke.yaml" "$@" -o "$img" >"$img.build.log" 2>&1; then
    log "$app: build FAILED: tail of $img.build.log:"
    tail -20 "$img.build.log" >&2
    return 1
  fi
}

if [ "${TABLE_ONLY:-}" != 1 ]; then
for app in "${apps[@]}"; do
  build "$app" pgo --optimize pgo && bench "$out/$app.pgo" "$app"
done
fi
if [ "${OS:-1}" != 0 ] && [ "${TABLE_ONLY:-}" != 1 ]; then
  for app in "${apps[@]}"; do
    build "$app" os --optimize size && bench "$out/$app.os" "$app"
  done
fi

# The table, from each image's bench.json.
fig() { # FILE LABEL FIELD: "mean ± sd" of a model figure
  jq -r --arg l "$2" --arg f "$3" '.kernels[] | select(.label == $l) | .model[$f] | "\(.mean) \(.stddev)"' "$1" 2>/dev/null
}
fmt() { awk '{ printf "%.0f ± %.0f", $1, $2 }'; }
delta() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b != "") printf "%+.1f%%", (b / a - 1) * 100 }'; }
echo "| application | kernel | kernel instructions | vs -O2 | kernel blocks | vs -O2 | kernel L1i misses | vs -O2 |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
ratios=()
for app in "${apps[@]}"; do
  p="$out/$app.pgo/bench.json" s="$out/$app.os/bench.json"
  [ -s "$p" ] || { echo "| $app | (no profile-guided image: see $out/$app.pgo.build.log) |"; continue; }
  for row in "-O2:$p:o2" "profile-guided:$p:pgo" "-Os:$s:image"; do
    IFS=: read -r name file label <<<"$row"
    [ -s "$file" ] || continue
    cells=""
    for f in kernel_insns kernel_tbs kernel_l1i_misses; do
      v=$(fig "$file" "$label" "$f")
      base=$(fig "$p" o2 "$f" | cut -d' ' -f1)
      cells+="| $(fmt <<<"$v") | $(delta "$base" "${v%% *}") "
      if [ "$label" = pgo ]; then ratios+=("$f ${v%% *} $base"); fi
    done
    echo "| $app | $name $cells|"
  done
done
echo
printf '%s\n' "${ratios[@]}" | awk '
  { l[$1] += log($2 / $3); n[$1]++ }
  END { for (f in l) printf "profile-guided against -O2, geometric mean over %d: %s %+.1f%%\n", n[f], f, (exp(l[f] / n[f]) - 1) * 100 }'
