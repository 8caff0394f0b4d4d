#!/usr/bin/env bash
# Builds mkfs.erofs and fsck.erofs of erofs-utils 1.8.6 with LZMA into
# OUT_DIR (default bin/erofs-utils), for roots built with --compression
# lzma (internal/initramfs.ErofsTool finds them there, beside bin/bespoke).
# Debian 12's erofs-utils 1.5 has lz4 and lz4hc only. The source is
# Debian's (trixie's erofs-utils 1.8.6), fetched once into .tools/ and
# checked against its SHA-256; should Debian's pool no longer hold that
# version, the one trixie's source index names is taken instead (the index
# checked against trixie's InRelease, whose signature gpgv checks with
# Debian's archive keyring; the tarball against the index's SHA-256), and
# the script says so. The build
# needs autoconf, automake, libtool, pkg-config and liblzma-dev
# (scripts/deps.sh installs them).
set -euo pipefail
out=${1:-bin/erofs-utils}
version=1.8.6
dir=.tools/erofs-utils-$version
url=https://deb.debian.org/debian/pool/main/e/erofs-utils/erofs-utils_$version.orig.tar.gz
sha=5b221dc3fd6d151425b30534ede46fb7a90dc233a8659cba0372796b0a066547
help=$([ -x "$out/mkfs.erofs" ] && "$out/mkfs.erofs" --help 2>&1 || true)
if [ -x "$out/fsck.erofs" ] && grep -qx ' *lzma' <<<"$help"; then
  echo "erofs-utils: $out has erofs-utils with lzma"
  exit 0
fi
pool=https://deb.debian.org/debian/pool/main/e/erofs-utils
if [ ! -x "$dir/fsck/fsck.erofs" ]; then
  mkdir -p .tools
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "erofs-utils: fetching Debian's erofs-utils $version source ($url)"
  if ! curl -fsSL --retry 3 -o "$tmp/src.tar" "$url"; then
    # The pinned version left the pool: trixie's, as its index says.
    dist=https://deb.debian.org/debian/dists/trixie
    index=$dist/main/source/Sources.xz
    curl -fsSL --retry 3 -o "$tmp/InRelease" "$dist/InRelease"
    gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$tmp/InRelease" 2>"$tmp/gpgv.log" || {
      cat "$tmp/gpgv.log" >&2
      echo "erofs-utils: trixie's InRelease does not verify with Debian's archive keyring: not building" >&2
      exit 1
    }
    curl -fsSL --retry 3 -o "$tmp/Sources.xz" "$index"
    want=$(awk '/^SHA256:/ {c = 1; next} c && !/^ / {c = 0} c && $3 == "main/source/Sources.xz" {print $1}' "$tmp/InRelease")
    echo "$want  $tmp/Sources.xz" | sha256sum -c --quiet -
    entry=$(xz -dc "$tmp/Sources.xz" | awk '/^Package: erofs-utils$/ {p = 1} p && /^$/ {p = 0; n++} p && n == 0')
    orig=$(printf '%s\n' "$entry" | awk '/^Checksums-Sha256:/ {c = 1; next} c && !/^ / {c = 0} c && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ {print $1, $3; exit}')
    sha=${orig%% *} file=${orig#* }
    version=$(printf '%s\n' "$entry" | sed -n 's/^Version: \([^-]*\).*/\1/p')
    if [ -z "$orig" ] || [ -z "$version" ]; then
      echo "erofs-utils: $url cannot be fetched and $index names no erofs-utils source: --compression lzma is not available" >&2
      exit 1
    fi
    dir=.tools/erofs-utils-$version
    url=$pool/$file
    echo "erofs-utils: the pinned version is not in Debian's pool any more; fetching trixie's $version instead ($url)" >&2
    curl -fsSL --retry 3 -o "$tmp/src.tar" "$url"
  fi
  echo "$sha  $tmp/src.tar" | sha256sum -c --quiet -
  rm -rf "$dir"
  tar --no-same-owner -xf "$tmp/src.tar" -C "$tmp"
  mv "$tmp/erofs-utils-$version" "$dir"
  echo "erofs-utils: building mkfs.erofs and fsck.erofs with lzma (log: $dir/build.log)"
  if ! (cd "$dir" && ./autogen.sh && ./configure --enable-lz4 --enable-lzma --without-libzstd --disable-fuse --without-selinux &&
    make -j"$(nproc)") >"$dir/build.log" 2>&1; then
    tail -20 "$dir/build.log" >&2
    echo "erofs-utils: the build failed (log: $dir/build.log); --compression lzma is not available" >&2
    exit 1
  fi
fi
mkdir -p "$out"
cp "$dir/mkfs/mkfs.erofs" "$out/mkfs.erofs.tmp" && mv "$out/mkfs.erofs.tmp" "$out/mkfs.erofs"
cp "$dir/fsck/fsck.erofs" "$out/fsck.erofs.tmp" && mv "$out/fsck.erofs.tmp" "$out/fsck.erofs"
echo "erofs-utils: built $out/mkfs.erofs and $out/fsck.erofs ($version, with lzma)"
