package initramfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErofsUtilsEnv names a directory holding mkfs.erofs and fsck.erofs to
// use before the others (ErofsTool).
const ErofsUtilsEnv = "BESPOKE_EROFS_UTILS"

// ErofsUtilsDir is the directory, beside bespoke and at the top of its
// source tree's bin/, where make deps puts the erofs-utils it builds
// (scripts/erofs-utils.sh).
const ErofsUtilsDir = "erofs-utils"

// ErrNoErofsTool means no mkfs.erofs or fsck.erofs that knows the root's
// compression was found.
var ErrNoErofsTool = errors.New("no erofs-utils for this compression")

// ErofsTool returns the path of name (mkfs.erofs or fsck.erofs) of an
// erofs-utils that handles compression: from $BESPOKE_EROFS_UTILS, then
// erofs-utils/ beside the running binary, then bin/erofs-utils/ of
// bespoke's source tree (tests), then $PATH (Debian's erofs-utils 1.5,
// which has lz4 and lz4hc only). For lz4hc $PATH comes first: every
// erofs-utils has it. A directory counts when its mkfs.erofs lists the
// compression in its help.
func ErofsTool(ctx context.Context, name, compression string) (string, error) {
	path := ""
	if mkfs, err := exec.LookPath("mkfs.erofs"); err == nil {
		path = filepath.Dir(mkfs)
	}
	candidates := []func() string{
		func() string { return os.Getenv(ErofsUtilsEnv) },
		func() string {
			exe, err := os.Executable()
			if err != nil {
				return ""
			}
			return filepath.Join(filepath.Dir(exe), ErofsUtilsDir)
		},
		func() string {
			root, ok := moduleRoot(ctx)
			if !ok {
				return ""
			}
			return filepath.Join(root, "bin", ErofsUtilsDir)
		},
		func() string { return path },
	}
	if compression == ErofsLZ4HC {
		candidates = append([]func() string{func() string { return path }}, candidates...)
	}
	for _, c := range candidates {
		d := c()
		if d == "" {
			continue
		}
		tool := filepath.Join(d, name)
		if fi, err := os.Stat(tool); err != nil || fi.IsDir() {
			continue
		}
		if knows(ctx, filepath.Join(d, "mkfs.erofs"), compression) {
			return tool, nil
		}
	}
	if compression == ErofsLZ4HC {
		return "", fmt.Errorf("%w: an erofs root needs %s: install erofs-utils (make deps), or build with --root initramfs", ErrNoErofsTool, name)
	}
	return "", fmt.Errorf("%w: a root compressed with %s needs an erofs-utils that has it (1.6 or later; Debian 12's 1.5 has lz4 only): make deps builds 1.8.6 from Debian's source into bin/%s, or put one in $%s, or build with --compression %s", ErrNoErofsTool, compression, ErofsUtilsDir, ErofsUtilsEnv, ErofsLZ4HC)
}

// knows reports whether mkfs lists compression among its compressors.
func knows(ctx context.Context, mkfs, compression string) bool {
	if compression == ErofsLZ4HC {
		_, err := os.Stat(mkfs)
		return err == nil
	}
	out, _ := exec.CommandContext(ctx, mkfs, "--help").CombinedOutput() // 1.5 exits 1 on --help
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 1 && f[0] == compression {
			return true // 1.8: one compressor per line
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Available compressors are:"); ok {
			for _, c := range strings.Split(rest, ",") {
				if strings.TrimSpace(c) == compression {
					return true // 1.5: "Available compressors are: lz4hc, lz4"
				}
			}
		}
	}
	return false
}

// The erofs superblock fields ErofsCompressionOf reads (the kernel's
// fs/erofs/erofs_fs.h): the superblock is at 1024; feature_incompat at
// 80 of it, whose COMPR_CFGS bit says that available_compr_algs, at 84,
// is a bitmask of the algorithms the image's files use (Z_EROFS_COMPRESSION_*:
// lz4, lzma, deflate, zstd); without it the files are lz4 or stored.
const (
	erofsSuperOffset = 1024
	erofsMagic       = 0xe0f5e1e2
	erofsComprCfgs   = 0x2
)

// erofsAlgorithms are the compressions of available_compr_algs's bits.
var erofsAlgorithms = []string{ErofsLZ4HC, ErofsLZMA, "deflate", "zstd"}

// ErofsCompressionOf returns the compression of the erofs image at
// path, from its superblock: of several, the one of the highest bit (an
// erofs-utils that has it has the lower ones too), and ErofsLZ4HC for an
// image of lz4 or stored files. bespoke picks the fsck.erofs that reads
// an image by it (ErofsTool).
func ErofsCompressionOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sb := make([]byte, 86)
	if _, err := f.ReadAt(sb, erofsSuperOffset); err != nil {
		return "", fmt.Errorf("reading %s: no erofs superblock: %w", path, err)
	}
	le16 := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 }
	le32 := func(b []byte) uint32 { return le16(b) | le16(b[2:])<<16 }
	if m := le32(sb); m != erofsMagic {
		return "", fmt.Errorf("reading %s: not an erofs image (magic %#x)", path, m)
	}
	if le32(sb[80:])&erofsComprCfgs == 0 {
		return ErofsLZ4HC, nil
	}
	algs := le16(sb[84:])
	for i := len(erofsAlgorithms) - 1; i >= 0; i-- {
		if algs&(1<<i) != 0 {
			return erofsAlgorithms[i], nil
		}
	}
	if algs != 0 {
		return "", fmt.Errorf("reading %s: compressions %#x that bespoke does not know", path, algs)
	}
	return ErofsLZ4HC, nil
}

// erofsReader returns the fsck.erofs that reads the erofs image at path.
func erofsReader(ctx context.Context, path string) (string, error) {
	c, err := ErofsCompressionOf(path)
	if err != nil {
		return "", err
	}
	return ErofsTool(ctx, "fsck.erofs", c)
}
