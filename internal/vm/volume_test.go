package vm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/testenv"
)

func TestParseVolume(t *testing.T) {
	host, guest, err := ParseVolume("pg.ext4:/var/lib/pg/")
	if wd, _ := os.Getwd(); err != nil || host != filepath.Join(wd, "pg.ext4") || guest != "/var/lib/pg" {
		t.Errorf("ParseVolume = %q, %q, %v", host, guest, err)
	}
	for _, bad := range []string{"pg.ext4", ":/x", "pg.ext4:", "pg.ext4:relative", "pg.ext4:/"} {
		if _, _, err := ParseVolume(bad); err == nil {
			t.Errorf("ParseVolume(%q): no error", bad)
		}
	}
}

// TestOpenVolume: a missing volume is created as an empty ext4 file
// system; a volume in use, not writable, not a file or damaged is an
// error that names the problem.
func TestOpenVolume(t *testing.T) {
	testenv.Command(t, "mkfs.ext4")
	testenv.Command(t, "e2fsck")
	dir := t.TempDir()
	vol := filepath.Join(dir, "state.ext4")
	release, err := OpenVolume(vol, 64)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(vol); err != nil || st.Size() != 64<<20 {
		t.Errorf("new volume: %v, %v; want a 64 MiB file", st, err)
	}
	if _, err := OpenVolume(vol, 64); err == nil || !strings.Contains(err.Error(), "in use by another VM") {
		t.Errorf("a second VM on the volume: %v, want 'in use by another VM'", err)
	}
	release()
	release, err = OpenVolume(vol, 64)
	if err != nil {
		t.Fatalf("the volume after its first VM ended: %v", err)
	}
	release()

	if _, err := OpenVolume(dir, 64); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as volume: %v", err)
	}
	bad := filepath.Join(dir, "bad.ext4")
	os.WriteFile(bad, make([]byte, 4<<20), 0o600)
	if _, err := OpenVolume(bad, 64); err == nil || !strings.Contains(err.Error(), "holds no sound ext4 filesystem") {
		t.Errorf("a volume of zeros: %v, want 'holds no sound ext4 filesystem'", err)
	}
	os.Chmod(vol, 0o400)
	if _, err := OpenVolume(vol, 64); err == nil || !strings.Contains(err.Error(), "cannot be written") {
		t.Errorf("a read-only volume: %v, want 'cannot be written'", err)
	}
}

func TestCheckRootDisk(t *testing.T) {
	dir := t.TempDir()
	image := func(name string, magic uint32, bits byte, blocks uint32, size int) string {
		b := make([]byte, size)
		if size >= 1024+64 {
			binary.LittleEndian.PutUint32(b[1024:], magic)
			b[1024+12] = bits
			binary.LittleEndian.PutUint32(b[1024+36:], blocks)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	if err := CheckRootDisk(image("good", erofsMagic, 12, 3, 3*4096)); err != nil {
		t.Errorf("a whole image: %v", err)
	}
	for _, tc := range []struct{ path, want string }{
		{image("truncated", erofsMagic, 12, 3, 2*4096), "is truncated: 8192 bytes, its superblock says 12288"},
		{image("ext4", 0xEF53, 12, 3, 3*4096), "is not an erofs image (magic 0xef53)"},
		{image("tiny", 0, 0, 0, 100), "is not an erofs image (100 bytes, no superblock)"},
		{image("badbits", erofsMagic, 40, 3, 3*4096), "damaged superblock"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		if err := CheckRootDisk(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}
