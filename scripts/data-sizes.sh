#!/usr/bin/env bash
# The table of docs/images.md "Data trees": each example built with
# --data trees (the default) and with --data traced, side by side. All six
# share one kernel (the shared test kernel's options on the redis
# example), so only the roots differ; the traced image reuses the trees
# image's trace (--manifest) and skips the smoke boot.
# Usage: scripts/data-sizes.sh [OUT_DIR] [APP...] (default out/data, all six).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/data}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
mkdir -p "$out"
enable=$(go run ./internal/testkernel/budget -enable qemu-microvm)
{ cat examples/redis/bespoke.yaml; echo "kernel: {enable: [$enable]}"; } >"$out/kernel.yaml"
echo "== the shared kernel (log: $out/kernel.build.log)" >&2
bin/bespoke build -f "$out/kernel.yaml" --name kernel --no-boot -o "$out/kernel.image" >"$out/kernel.build.log" 2>&1
for app in "${apps[@]}"; do
  for data in trees traced; do
    img="$out/$app.$data.image"
    args=(-f "examples/$app/bespoke.yaml" --kernel-from "$out/kernel.image" --data "$data" -o "$img")
    [ "$data" = traced ] && args+=(--manifest "$out/$app.trees.image/manifest.json" --no-boot)
    echo "== $app --data $data (log: $img.log)" >&2
    bin/bespoke build "${args[@]}" >"$img.log" 2>&1 || { echo "== $app --data $data: FAILED, tail of $img.log:" >&2; tail -20 "$img.log" >&2; exit 1; }
  done
done
echo "| app | root, --data traced | root, --data trees | trees added |"
echo "| --- | --- | --- | --- |"
for app in "${apps[@]}"; do
  traced=$(grep -o '"initramfs_bytes": *[0-9]*' "$out/$app.traced.image/report.json" | grep -o '[0-9]*$')
  trees=$(grep -o '"initramfs_bytes": *[0-9]*' "$out/$app.trees.image/report.json" | grep -o '[0-9]*$')
  names=$(sed -n 's/^data tree \([a-z]*\):.*/\1/p' "$out/$app.trees.image/build.log" 2>/dev/null | tr '\n' ' ')
  printf '| %s | %d B | %d B (%+d) | %s |\n' "$app" "$traced" "$trees" "$((trees - traced))" "${names:-none}"
done
