// Package pgo holds the pieces of bespoke's profile-guided kernel build
// (the Tarax method) that work with stock GCC 12 and stock Linux 6.12:
//
//   - Read parses a .gcda profile as GCC 12's libgcov writes it and as the
//     kernel's gcov (kernel/gcov/gcc_4_7.c) serializes it under
//     /sys/kernel/debug/gcov; Classify splits a tree of them into executed
//     (hot) and never executed (cold) translation units.
//   - CCMain is the compiler wrapper that Kbuild runs as CC (cmd/bespoke-cc):
//     per translation unit it adds -fprofile-use (hot) or -Os (cold),
//     honouring an exclusion list.
//
// # The .gcda format (GCC 12)
//
// A file is a sequence of 32-bit words in the byte order of the machine that
// wrote it: the magic "gcda" (0x67636461; the bytes read "adcg" on a
// little-endian machine), the GCC version ('B22*' is 12.2), a stamp, and
// from GCC 12 on a checksum (the kernel writes 0). Records follow, each a
// tag and a length, which since GCC 12 counts bytes (before: words):
//
//	0x01000000 function: ident, lineno_checksum, cfg_checksum
//	           (length 0: the function was not emitted in this unit)
//	0x01a10000 + i<<17 counters of kind i (0 = arcs) of the last function:
//	           64-bit values, each two words, low word first; a negative
//	           length -8n means n counters that are all zero (libgcov
//	           does not stream them; the kernel always does)
//	0xa1000000 object summary: runs, sum_max (libgcov only)
//	0x00000000 end of file (libgcov only; the kernel's file just ends)
//
// gcov-dump-12 -l FILE.gcda prints the same records.
package pgo
