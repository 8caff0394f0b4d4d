#!/usr/bin/env bash
# docs/shake.md: the six examples built three times on one kernel, with
# their programs and libraries copied whole (--shake-libs off) and shaken
# (--shake-libs static, then profile), each shaken image then checked with
# bespoke verify; a table of code removed, ROP gadgets, and the compressed
# root and whole image before and after.
# Every image reuses the kernel of KERNEL_FROM (default out/results/redis.image,
# scripts/results.sh's shared qemu-pc kernel), so the sizes differ by the
# root only.
# Usage: scripts/shake.sh [OUT_DIR] [APP...] (default out/shake, all six);
# TABLE_ONLY=1 prints the tables of images already built.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/shake}
shift || true
apps=("$@")
((${#apps[@]})) || apps=(redis nginx apache2 memcached postgresql mariadb)
kernel=${KERNEL_FROM:-out/results/redis.image}
mkdir -p "$out"
log() { echo "== $*" >&2; }
for app in "${apps[@]}"; do
  [ -n "${TABLE_ONLY:-}" ] && break
  for mode in off static profile; do
    img="$out/$app.$mode.image"
    log "$app: build --shake-libs $mode (log: $img.build.log)"
    bin/bespoke build -f "examples/$app/bespoke.yaml" --target qemu-pc --kernel-from "$kernel" \
      --shake-libs "$mode" -o "$img" >"$img.build.log" 2>&1 || log "$app: --shake-libs $mode: build failed (log: $img.build.log)"
  done
  log "$app: verify the static image (log: $out/$app.static.verify.log)"
  bin/bespoke verify "$out/$app.static.image" >"$out/$app.static.verify.txt" 2>"$out/$app.static.verify.log" || true
  # A profile keeps what the traced run ran: a boot that runs more (a
  # thread's timing, a shutdown path) traps, and --fix restores it.
  log "$app: verify --fix the profile image (log: $out/$app.profile.verify.log)"
  bin/bespoke verify --fix --max-rounds 10 "$out/$app.profile.image" >"$out/$app.profile.verify.txt" 2>"$out/$app.profile.verify.log" || true
done
echo "| application | mode | code in the root | removed | ROP gadgets (before -> after) | root, compressed (off -> shaken) | whole image (off -> shaken) | restored by the smoke boot | verify |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for app in "${apps[@]}"; do
  for mode in static profile; do
    python3 - "$out/$app.off.image/report.json" "$out/$app.$mode.image/report.json" "$(cat "$out/$app.$mode.verify.txt")" "$app" "$mode" <<'PY'
import json, sys
off, st = (json.load(open(p)) for p in sys.argv[1:3])
sh = st["shake"]
mb = lambda n: "%.2f MB" % (n / 1e6)
pct = lambda a, b: "%+.1f%%" % (100.0 * (b - a) / a)
verdict = sys.argv[3].split(":", 1)[1].split(";")[0].strip() if ":" in sys.argv[3] else sys.argv[3]
print("| %s | %s | %s | %s (%.0f%%), %d functions | %d -> %d (%s) | %s -> %s (%s) | %s -> %s (%s) | %d | %s |" % (
    sys.argv[4], sys.argv[5], mb(sh["text_bytes"]), mb(sh["removed_bytes"]), 100.0 * sh["removed_bytes"] / sh["text_bytes"], sh["removed_functions"],
    sh["gadgets_before"], sh["gadgets_after"], pct(sh["gadgets_before"], sh["gadgets_after"]),
    mb(off["initramfs_bytes"]), mb(st["initramfs_bytes"]), pct(off["initramfs_bytes"], st["initramfs_bytes"]),
    mb(off["total_bytes"]), mb(st["total_bytes"]), pct(off["total_bytes"], st["total_bytes"]),
    len(set(sh.get("restored") or [])), verdict))
PY
  done
done
echo
echo "Per object (shaken images):"
for app in "${apps[@]}"; do
  for mode in static profile; do
    python3 - "$out/$app.$mode.image/report.json" "$app" "$mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for o in r["shake"]["objects"]:
    what = "kept whole: " + o["kept_whole"] if o.get("kept_whole") else "%d of %d functions, %.1f of %.1f KB" % (o["removed"], o["functions"], o["removed_bytes"] / 1e3, o["text_bytes"] / 1e3)
    print("%s\t%s\t%s\t%s\tgadgets %d -> %d" % (sys.argv[2], sys.argv[3], o["path"], what, o["gadgets_before"], o["gadgets_after"]))
for f in r["shake"].get("restored") or []:
    print("%s\t%s\trestored: %s" % (sys.argv[2], sys.argv[3], f))
PY
  done
done
