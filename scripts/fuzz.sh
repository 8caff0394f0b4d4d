#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 10s):
# the parsers of specs, manifests, .config and Kconfig files, cpio
# archives, ELF files and the guest console. Seeds are the f.Add calls and
# testdata/fuzz/ (where go test also keeps what a run found failing).
# Prints the executions go test reported for each target (its count lags:
# a worker reports in batches) and the total; fails on the first crash.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
total=0
while read -r pkg target; do
  # A run that ends while a worker is busy minimizing a new input can fail
  # with "context deadline exceeded" and no failing input (go test's fuzz
  # engine, seen on FuzzDecode): that is not a crash. A crash writes its
  # input to testdata/fuzz/ and fails here.
  if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s -parallel "${FUZZPARALLEL:-2}" "$pkg" 2>&1); then
    if grep -q 'Failing input written to' <<<"$out" || ! grep -q 'context deadline exceeded' <<<"$out"; then
      echo "$out"; echo "fuzz: $target in $pkg failed" >&2; exit 1
    fi
    echo "fuzz: $pkg $target: stopped by go test's deadline while a worker was busy, no failing input"
  fi
  execs=$(echo "$out" | sed -n 's/.*execs: \([0-9]*\) .*/\1/p' | tail -1)
  echo "fuzz: $pkg $target: ${execs:-0} executions in $fuzztime"
  total=$((total + ${execs:-0}))
done < <(grep -rl --include='*_test.go' '^func Fuzz' internal | while read -r f; do
  for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do echo "./$(dirname "$f") $t"; done
done | sort)
echo "fuzz: $total executions in all, no crash"
