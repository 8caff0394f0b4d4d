package initramfs

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/spec"
)

// fakeErofsUtils writes mkfs.erofs and fsck.erofs scripts into a new
// directory; mkfs.erofs --help prints help.
func fakeErofsUtils(t *testing.T, help string) string {
	dir := t.TempDir()
	for _, name := range []string{"mkfs.erofs", "fsck.erofs"} {
		script := "#!/bin/sh\nprintf '%s\\n' '" + help + "'\nexit 1\n" // PATH has no cat
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	help15 = "usage: [options] FILE DIRECTORY\n\nAvailable compressors are: lz4hc, lz4"
	help18 = " -zX[,level=Y]         X=compressor\n    [:...]             supported compressors and their option ranges are:\n                         lz4\n                         lz4hc\n                           [,level=<0-12>]\t\t(default=9)\n                         lzma\n                           [,level=<0-9,100-109>]\n -C#   specify"
)

func TestErofsTool(t *testing.T) {
	ctx := context.Background()
	old, new := fakeErofsUtils(t, help15), fakeErofsUtils(t, help18)
	t.Setenv("PATH", old)
	t.Setenv(ErofsUtilsEnv, "")
	for _, tc := range []struct {
		env, compression, want string
	}{
		{"", ErofsLZ4HC, old},     // Debian's, on PATH
		{new, ErofsLZ4HC, old},    // PATH first for lz4hc
		{new, ErofsLZMA, new},     // the one that has lzma
		{old, ErofsLZMA, ""},      // none has it (bin/erofs-utils of the tree may: not here)
		{t.TempDir(), "zstd", ""}, // nothing knows it
	} {
		t.Setenv(ErofsUtilsEnv, tc.env)
		got, err := ErofsTool(ctx, "fsck.erofs", tc.compression)
		if tc.want == "" {
			if tree, ok := moduleRoot(ctx); ok && strings.HasPrefix(got, filepath.Join(tree, "bin", ErofsUtilsDir)) {
				continue // make deps built erofs-utils into this tree: it may have lzma
			}
			if !errors.Is(err, ErrNoErofsTool) || !strings.Contains(err.Error(), "make deps builds 1.8.6") {
				t.Errorf("ErofsTool(%s) with %s = %q, %v; want ErrNoErofsTool saying what to do", tc.compression, tc.env, got, err)
			}
			continue
		}
		if err != nil || got != filepath.Join(tc.want, "fsck.erofs") {
			t.Errorf("ErofsTool(%s) with %s = %q, %v; want %s's", tc.compression, tc.env, got, err, tc.want)
		}
	}
}

func TestRootKconfigCompression(t *testing.T) {
	lz4, err := RootKconfig(FormatErofs, "")
	if err != nil || slices.Contains(lz4, "EROFS_FS_ZIP_LZMA") {
		t.Errorf("RootKconfig(erofs, default) = %v, %v", lz4, err)
	}
	lzma, err := RootKconfig(FormatErofs, ErofsLZMA)
	if err != nil || !slices.Contains(lzma, "EROFS_FS_ZIP_LZMA") || !slices.Contains(lzma, "EROFS_FS_ZIP") {
		t.Errorf("RootKconfig(erofs, lzma) = %v, %v", lzma, err)
	}
	if _, err := RootKconfig(FormatErofs, "xz"); err == nil {
		t.Error("RootKconfig(erofs, xz) succeeded")
	}
	// The spec's list is this package's.
	if !slices.Equal(spec.Compressions[spec.RootErofs], ErofsCompressions) || spec.Compressions[spec.RootInitramfs][0] != DefaultCompression {
		t.Errorf("spec.Compressions %v, want erofs %v and initramfs %s first", spec.Compressions, ErofsCompressions, DefaultCompression)
	}
}

// TestErofsCompressionOf reads superblocks laid out as mkfs.erofs writes
// them: 1.5's lz4hc root with 64 KiB clusters (COMPR_CFGS, lz4), 1.8's
// lzma one, an old one without COMPR_CFGS, and bad ones.
func TestErofsCompressionOf(t *testing.T) {
	image := func(magic, incompat uint32, algs uint16) string {
		b := make([]byte, 4096)
		binary.LittleEndian.PutUint32(b[1024:], magic)
		binary.LittleEndian.PutUint32(b[1024+80:], incompat)
		binary.LittleEndian.PutUint16(b[1024+84:], algs)
		p := filepath.Join(t.TempDir(), "root.erofs")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		magic, incompat uint32
		algs            uint16
		want, err       string
	}{
		{erofsMagic, 0x3, 0b1, ErofsLZ4HC, ""},
		{erofsMagic, 0x3, 0b10, ErofsLZMA, ""},
		{erofsMagic, 0x3, 0b11, ErofsLZMA, ""},
		{erofsMagic, 0x3, 0b1001, "zstd", ""},
		{erofsMagic, 0x1, 0x1234, ErofsLZ4HC, ""}, // lz4_max_distance, not a bitmask
		{erofsMagic, 0x3, 0b10000, "", "compressions 0x10"},
		{0xef53, 0, 0, "", "not an erofs image (magic 0xef53)"},
	} {
		got, err := ErofsCompressionOf(image(tc.magic, tc.incompat, tc.algs))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%#x %#x %#b: %q, %v; want an error with %q", tc.magic, tc.incompat, tc.algs, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%#x %#x %#b: %q, %v; want %s", tc.magic, tc.incompat, tc.algs, got, err, tc.want)
		}
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ErofsCompressionOf(short); err == nil || !strings.Contains(err.Error(), "no erofs superblock") {
		t.Errorf("a 100-byte file: %v, want no superblock", err)
	}
}
