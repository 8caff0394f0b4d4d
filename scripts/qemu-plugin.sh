#!/usr/bin/env bash
# Builds bespoke's cost-model QEMU plugin (internal/costmodel/plugin/cost.c)
# as bin/bespoke-cost.so, against qemu-plugin.h of the QEMU Debian 12 ships
# (7.2, plugin API version 1). The header is not in any binary package: it
# is taken from Debian's qemu source tarball, fetched once into .tools/ and
# checked against its SHA-256, never copied into the repository.
set -euo pipefail
out=${1:-bin/bespoke-cost.so}
dir=.tools/qemu-plugin-7.2
hdr=$dir/qemu-plugin.h
url=http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2+dfsg.orig.tar.xz
sha=91aca71520040edc40b8d437aa3004dae614f58e286cf653ee8996c07af2962f
if [ ! -s "$hdr" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "qemu-plugin: fetching qemu-plugin.h from Debian's qemu 7.2 source ($url)"
  curl -fsSL --retry 3 -o "$tmp/qemu.tar.xz" "$url"
  echo "$sha  $tmp/qemu.tar.xz" | sha256sum -c --quiet -
  tar --no-same-owner -xJf "$tmp/qemu.tar.xz" -C "$tmp" --wildcards '*/include/qemu/qemu-plugin.h'
  mv "$tmp"/qemu-*/include/qemu/qemu-plugin.h "$hdr.tmp"
  mv "$hdr.tmp" "$hdr"
fi
mkdir -p "$(dirname "$out")"
cc -shared -fPIC -O2 -Wall -Wextra -Werror -I "$dir" -o "$out.tmp" internal/costmodel/plugin/cost.c -lpthread
mv "$out.tmp" "$out"
echo "qemu-plugin: built $out"
