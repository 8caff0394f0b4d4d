package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/bespoke-os/bespoke/internal/pgo"
)

// kernelGCDA is a .gcda file as Linux writes it for GCC 12: a header, one
// function with the given arc counters, no object summary.
func kernelGCDA(arcs ...uint64) string {
	var b []byte
	for _, w := range []uint32{0x67636461, 'B'<<24 | '2'<<16 | '2'<<8 | '*', 1, 0, 0x01000000, 12, 1, 2, 3, 0x01a10000, uint32(8 * len(arcs))} {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	for _, a := range arcs {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	return string(b)
}

func TestUnpackProfile(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	core, open := kernelGCDA(3, 40), kernelGCDA(0, 0)
	for name, body := range map[string]string{
		"root/.cache/bespoke/kbuild/work-ab.0/kernel/sched/core.gcda": core,
		"root/.cache/bespoke/kbuild/work-ab.0/fs/open.gcda":           open,
		"root/.cache/bespoke/kbuild/work-ab.0/fs/open.gcno":           "not a profile",
		"usr/src/elsewhere/x.gcda":                                    "other build",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	cache := t.TempDir()
	dir, sum, err := unpackProfile(buf.Bytes(), "/root/.cache/bespoke/kbuild/work-ab.0", cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 16 || filepath.Dir(dir) != filepath.Join(cache, "pgo") {
		t.Errorf("profile dir %s, hash %q; want cache/pgo/profile-HASH", dir, sum)
	}
	// Each file gets an object summary whose sum_max is the largest arc
	// counter of the whole profile.
	for rel, arcs := range map[string][]uint64{"kernel/sched/core.gcda": {3, 40}, "fs/open.gcda": {0, 0}} {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		p, err := pgo.Read(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if p.Runs != 1 || p.SumMax != 40 || len(p.Functions) != 1 || p.Functions[0].Arcs[1] != arcs[1] {
			t.Errorf("%s: runs %d, sum_max %d, functions %+v; want 1, 40 and arcs %v", rel, p.Runs, p.SumMax, p.Functions, arcs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fs", "open.gcno")); err == nil {
		t.Error("a file that is not a .gcda was unpacked")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.gcda")); err == nil {
		t.Error("a file of another build dir was unpacked")
	}
	if _, _, err := unpackProfile(buf.Bytes(), "/nowhere", t.TempDir()); err == nil {
		t.Error("a profile with no file of the build dir: no error")
	}
}
