package cache

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fakeCache writes a cache with one entry of each kind, each file 64 KiB,
// each entry last used days ago (kernel the oldest).
func fakeCache(t *testing.T) (string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	for i, p := range []string{"kbuild/0123456789abcdef", "kbuild/work-aaaa.0", "src/linux-source-6.12.tar-1", "pgo/profile-1", "state/postgresql", "ccache", "init/bespoke-init-1"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(full, "f"), make([]byte, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-time.Duration(10-i) * 24 * time.Hour)
		os.Chtimes(full, at, at)
	}
	os.WriteFile(filepath.Join(dir, "kbuild/0123456789abcdef.lock"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "kbuild/.0123.new-1"), 0o755) // a build's staging dir: not an entry
	return dir, now
}

func kinds(es []Entry) map[string]string {
	m := map[string]string{}
	for _, e := range es {
		m[filepath.Base(e.Path)] = e.Kind
	}
	return m
}

func TestList(t *testing.T) {
	dir, _ := fakeCache(t)
	es, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"0123456789abcdef": KindKernel, "work-aaaa.0": KindWorkDir, "linux-source-6.12.tar-1": KindSource,
		"profile-1": KindProfile, "postgresql": KindState, "ccache": KindCcache, "bespoke-init-1": KindTools,
	}
	got := kinds(es)
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	for name, k := range want {
		if got[name] != k {
			t.Errorf("%s: kind %q, want %q", name, got[name], k)
		}
	}
	for _, e := range es {
		if e.Bytes < 64<<10 {
			t.Errorf("%s: %d bytes, want at least its 64 KiB file", e.Path, e.Bytes)
		}
	}
}

func TestPrune(t *testing.T) {
	dir, now := fakeCache(t)
	es, _ := List(dir)
	total := Total(es)
	per := total / int64(len(es))

	// A dry run removes nothing.
	removed, _, err := Prune(dir, PruneOptions{MaxBytes: 1, DryRun: true, Now: now})
	if err != nil || len(removed) != len(es)-1 { // all but ccache
		t.Errorf("dry run: %d entries, %v; want all but ccache", len(removed), err)
	}
	if after, _ := List(dir); len(after) != len(es) {
		t.Errorf("the dry run removed entries")
	}

	// A build holds the kernel's lock: it stays, and the next oldest go
	// until the cache is under the cap.
	lock, err := os.OpenFile(filepath.Join(dir, "kbuild/0123456789abcdef.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	removed, _, err = Prune(dir, PruneOptions{MaxBytes: total - 2*per, Now: now})
	lock.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(removed)
	if len(got) != 2 || got["work-aaaa.0"] == "" || got["linux-source-6.12.tar-1"] == "" {
		t.Errorf("removed %v, want the two least recently used that no build holds (the build dir, the source)", got)
	}
	for _, e := range removed {
		if _, err := os.Stat(e.Path); err == nil {
			t.Errorf("%s still there", e.Path)
		}
	}

	// By age; ccache never goes, nor what was used minutes ago.
	Touch(filepath.Join(dir, "state/postgresql"))
	removed, _, err = Prune(dir, PruneOptions{OlderThan: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got = kinds(removed)
	if got["ccache"] != "" || got["postgresql"] != "" || got["0123456789abcdef"] == "" {
		t.Errorf("by age: removed %v, want the kernel, not ccache, not the state just used", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"20G": 20 << 30, "500M": 500 << 20, "1.5GiB": 3 << 29, "4096": 4096, "1T": 1 << 40, "10k": 10 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "ten"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}
