#!/usr/bin/env bash
# Installs the Debian packages that bespoke's full test tier and demo need,
# only when some are missing. Safe to run again.
set -euo pipefail
pkgs=(
  # kernel build
  build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils zstd ccache
  linux-source-6.12
  # --kernel-dce: Clang ThinLTO and lld's --gc-sections (internal/kdce)
  clang-14 lld-14 llvm-14
  # VMs, and their roots and volumes (mkfs.erofs, fsck.erofs; mkfs.ext4, e2fsck)
  qemu-system-x86 erofs-utils e2fsprogs
  # erofs-utils 1.8.6 with lzma, built from Debian's source (scripts/erofs-utils.sh)
  autoconf automake libtool pkg-config liblz4-dev liblzma-dev uuid-dev zlib1g-dev
  # tracing comparison and applications
  strace redis-server redis-tools file
  # the cost model's QEMU plugin header (scripts/qemu-plugin.sh)
  curl
  # the six example applications (examples/) and their benchmark clients
  nginx-light wrk postgresql-15 postgresql-contrib
  memcached libmemcached-tools apache2 apache2-utils mariadb-server sysbench
  # MIME tables the nginx and apache2 examples read (their fidelity test)
  media-types
  # the report page's browser test (bespoke report --html)
  chromium
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts redis-server as a service on install; the tests start their own.
# The same for the other servers.
if command -v systemctl >/dev/null 2>&1; then
  for s in redis-server nginx postgresql memcached apache2 mariadb; do $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true; done
fi
