#!/usr/bin/env bash
# make demo: build the redis example image, boot it, run redis-benchmark
# against it through the forwarded port, and print its size, boot time and
# least memory; then compare it with Debian's cloud kernel (bespoke bench
# --baseline, on -M pc) and write the report page.
set -euo pipefail
cd "$(dirname "$0")/.."
img=out/redis.image
port=${DEMO_PORT:-16379}

echo "== building the redis image (the first kernel build takes several minutes)"
bin/bespoke build -f examples/redis/bespoke.yaml -o "$img"

echo "== booting $img with -p $port:6379"
log=$(mktemp)
bin/bespoke run "$img" -p "$port:6379" >"$log.console" 2>"$log" &
run=$!
stop_vm() { kill -INT $run 2>/dev/null || true; wait $run 2>/dev/null || true; }
trap 'stop_vm; rm -f "$log" "$log.console"' EXIT
for _ in $(seq 240); do
  if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then break; fi
  if ! kill -0 $run 2>/dev/null; then echo "the VM stopped:"; cat "$log"; tail -20 "$log.console"; exit 1; fi
  sleep 0.5
done
[ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || { echo "redis did not answer within 120s"; cat "$log"; exit 1; }

echo "== redis-benchmark against the image"
redis-benchmark -p "$port" -q -n 5000 -t set,get

stop_vm
echo "== bespoke run said"
cat "$log"

echo "== the image"
root=$img/root.erofs
[ -f "$root" ] || root=$img/initramfs.cpio.xz
ls -l "$img"/bzImage "$root"
kernel=$(stat -c %s "$img/bzImage"); rootsize=$(stat -c %s "$root")
echo "total: $(( (kernel + rootsize) / 1024 )) KiB (kernel $((kernel / 1024)) KiB + root $((rootsize / 1024)) KiB, $(basename "$root"))"

echo "== the least memory it passes its workload with"
bin/bespoke min-memory "$img"

echo "== against a stock kernel: the same program and root on Debian's cloud kernel, on -M pc"
# Debian's cloud kernel does not boot on -M microvm: the comparison builds
# the redis image for qemu-pc (a kernel with PCI, built once).
pc=out/redis-pc.image
bin/bespoke build -f examples/redis/bespoke.yaml --target qemu-pc -o "$pc"
bin/bespoke bench "$pc" --baseline --runs 3
bin/bespoke report --html out/redis-report.html "$img" "$pc" >/dev/null
echo "== the report page: $(pwd)/out/redis-report.html"
