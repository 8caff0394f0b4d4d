#!/bin/sh
# Regenerates the .gcda files under testdata/profile with the machine's GCC
# (the committed ones come from Debian's gcc 12.2.0). Run from internal/pgo:
#   go generate ./internal/pgo   (or: sh testdata/gen.sh)
# The objects are built at kernel/sched/core.o and fs/unused.o relative to a
# scratch directory, as Kbuild builds them, so the .gcda files land at the
# same relative paths; testdata/profile mirrors that tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mkdir -p kernel/sched fs
cp "$here/src/core.c" kernel/sched/core.c
cp "$here/src/unused.c" fs/unused.c
gcc=${GCC:-gcc}
$gcc -O2 -fprofile-arcs -ftest-coverage -c -o kernel/sched/core.o kernel/sched/core.c
$gcc -O2 -fprofile-arcs -ftest-coverage -c -o fs/unused.o fs/unused.c
$gcc -fprofile-arcs -o prog kernel/sched/core.o fs/unused.o
./prog >/dev/null
rm -rf "$here/profile"
mkdir -p "$here/profile/kernel/sched" "$here/profile/fs"
cp kernel/sched/core.gcda "$here/profile/kernel/sched/core.gcda"
cp fs/unused.gcda "$here/profile/fs/unused.gcda"
