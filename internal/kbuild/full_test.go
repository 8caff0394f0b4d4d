package kbuild_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/testkernel"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// tLog writes progress into the test log.
type tLog struct{ t *testing.T }

func (w tLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// testConfig is the kernel of the full tier's kbuild test: the shared
// qemu-microvm test kernel (testkernel), so that under make test this
// test's first build is a cache hit after internal/image's tests, and
// every test of the run boots one kernel.
func testConfig(t *testing.T, ctx context.Context, tree *ksrc.Tree) []byte {
	t.Helper()
	cfg, err := testkernel.Config(ctx, tree, vm.TargetMicrovm)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newestObject returns the latest modification time of the .o files in dir.
func newestObject(t *testing.T, dir string) time.Time {
	t.Helper()
	var newest time.Time
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".o") {
			return err
		}
		n++
		info, err := d.Info()
		if err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("no objects in build dir %s (%v)", dir, err)
	}
	return newest
}

func TestBuildRealKernel(t *testing.T) {
	testenv.Command(t, "gcc")
	testenv.Command(t, "make")
	ctx := context.Background()
	cache, tree := testkernel.Tree(t)
	cfg := testConfig(t, ctx, tree)
	var makeRuns atomic.Int32
	counting := func(ctx context.Context, c kbuild.Command, out io.Writer) error {
		makeRuns.Add(1)
		return kbuild.ExecRunner(ctx, c, out)
	}
	opts := kbuild.Options{Tree: tree, Config: cfg, CacheDir: cache, Progress: tLog{t}, ProgressInterval: time.Minute, Runner: counting}

	// 1. A build (cold the first time the suite runs on a machine).
	out1 := filepath.Join(t.TempDir(), "kernel")
	opts.OutDir = out1
	start := time.Now()
	res, err := kbuild.Build(ctx, opts)
	if err != nil {
		t.Fatalf("building the small kernel: %v", err)
	}
	testkernel.Log(t, "shared qemu-microvm test kernel", res.Meta, time.Since(start))
	t.Logf("first build: bzImage %d bytes, %d =y", res.Meta.BzImageBytes, res.Meta.EnabledY)
	checkOutput(t, out1, tree, res)

	// 2. The same config again: a hit, make not run, no object touched.
	before := newestObject(t, res.BuildDir)
	makeRuns.Store(0)
	out2 := filepath.Join(t.TempDir(), "kernel")
	opts.OutDir = out2
	start = time.Now()
	res2, err := kbuild.Build(ctx, opts)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("building the same kernel again: %v", err)
	}
	t.Logf("cache hit: %s", took.Round(time.Millisecond))
	if !res2.Hit || !res2.Meta.Hit || res2.Meta.MakeRun {
		t.Errorf("second build: Hit=%v meta.cache_hit=%v meta.make_run=%v, want a hit without make", res2.Hit, res2.Meta.Hit, res2.Meta.MakeRun)
	}
	if n := makeRuns.Load(); n != 0 {
		t.Errorf("second build ran %d commands, want none", n)
	}
	if took > 30*time.Second {
		t.Errorf("cache hit took %s, want < 30s", took)
	}
	if after := newestObject(t, res.BuildDir); !after.Equal(before) {
		t.Errorf("newest object in the build dir changed from %s to %s on a cache hit", before, after)
	}
	if res2.Meta.Key != res.Meta.Key {
		t.Errorf("second build key %s, want %s", res2.Meta.Key, res.Meta.Key)
	}
	checkOutput(t, out2, tree, res2)

	// 3. A flag gcc rejects: a clear error, the good output intact, no
	// finished cache entry for the bad key.
	good, err := os.ReadFile(filepath.Join(out1, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	goodImage, err := os.ReadFile(filepath.Join(out1, "bzImage"))
	if err != nil {
		t.Fatal(err)
	}
	bad := opts
	bad.OutDir = out1
	bad.ExtraMake = []string{"KCFLAGS=-fno-such-flag"}
	bad.DryRun = true
	dry, err := kbuild.Build(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	bad.DryRun = false
	_, err = kbuild.Build(ctx, bad)
	var be *kbuild.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("build with KCFLAGS=-fno-such-flag: got %v, want a *kbuild.BuildError", err)
	}
	t.Logf("failed build error:\n%v", err)
	if be.Target == "" || !strings.Contains(err.Error(), be.Target) {
		t.Errorf("error names no failing target: %v", err)
	}
	if !strings.Contains(err.Error(), "-fno-such-flag") {
		t.Errorf("error does not quote the compiler's complaint about -fno-such-flag: %v", err)
	}
	if _, serr := os.Stat(be.Log); serr != nil || !strings.Contains(err.Error(), be.Log) {
		t.Errorf("error's log %q: %v (must exist and be named in the message)", be.Log, serr)
	}
	if got, _ := os.ReadFile(filepath.Join(out1, "build.json")); !bytes.Equal(got, good) {
		t.Errorf("build.json of the last good build changed after a failed build")
	}
	if got, _ := os.ReadFile(filepath.Join(out1, "bzImage")); !bytes.Equal(got, goodImage) {
		t.Errorf("bzImage of the last good build changed after a failed build")
	}
	if _, err := os.Stat(dry.Entry); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed build left a finished cache entry %s (stat: %v)", dry.Entry, err)
	}
	// And the good key is still a hit after it.
	opts.OutDir = out1
	if res3, err := kbuild.Build(ctx, opts); err != nil || !res3.Hit {
		t.Errorf("good config after a failed build: hit=%v err=%v, want a hit", res3 != nil && res3.Hit, err)
	}
}

// checkOutput checks an output dir against its build result.
func checkOutput(t *testing.T, dir string, tree *ksrc.Tree, res *kbuild.Result) {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, "bzImage"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < 500_000 {
		t.Errorf("bzImage is %d bytes, want > 500 KB", st.Size())
	}
	smap, err := os.ReadFile(filepath.Join(dir, "System.map"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(smap, []byte(" T start_kernel\n")) {
		t.Errorf("System.map has no start_kernel")
	}
	f, err := elf.Open(filepath.Join(dir, "vmlinux"))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	f.Close()
	if err != nil {
		t.Fatalf("vmlinux symbols: %v", err)
	}
	found := false
	addr := map[string]uint64{}
	for _, s := range syms {
		found = found || s.Name == "start_kernel"
		addr[s.Name] = s.Value
	}
	if !found {
		t.Errorf("vmlinux (%d symbols) has no start_kernel: not debuggable", len(syms))
	}
	// Without CPU_MITIGATIONS the entry text is page aligned, not padded
	// to 2 MiB: .text ends within a page of it (entrytext.go).
	if end, etext := addr["__entry_text_end"], addr["_etext"]; end == 0 || etext < end || etext-end >= 4096 {
		t.Errorf("__entry_text_end %#x, _etext %#x: want .text to end within a page of the entry text", end, etext)
	}
	var meta kbuild.Meta
	b, err := os.ReadFile(filepath.Join(dir, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ".config"))
	if err != nil {
		t.Fatal(err)
	}
	wantY := bytes.Count(cfg, []byte("=y\n"))
	sizes, err := kbuild.ELFSizes(filepath.Join(dir, "vmlinux"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"key", meta.Key, res.Meta.Key},
		{"cache_hit", meta.Hit, res.Hit},
		{"bzimage_bytes", meta.BzImageBytes, st.Size()},
		{"enabled_y", meta.EnabledY, wantY},
		{"source_version", meta.SourceVersion, tree.Version},
		{"vmlinux", meta.Vmlinux, sizes},
	} {
		if c.got != c.want {
			t.Errorf("build.json %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if meta.Vmlinux.Text < 500_000 || meta.Vmlinux.Code < 100_000 || meta.Vmlinux.Code > meta.Vmlinux.Text || meta.Toolchain.GCC == "" || len(meta.Commands) != 5 || !strings.Contains(meta.Commands[4], "bzImage") {
		t.Errorf("build.json incomplete: vmlinux %+v, toolchain %+v, commands %q", meta.Vmlinux, meta.Toolchain, meta.Commands)
	}
	if size, err := exec.Command("size", filepath.Join(dir, "vmlinux")).Output(); err == nil {
		// size(1): "   text    data     bss     dec     hex filename"
		lines := strings.Split(strings.TrimSpace(string(size)), "\n")
		fields := strings.Fields(lines[len(lines)-1])
		if len(fields) >= 3 {
			got := []string{strconv.FormatUint(meta.Vmlinux.Text, 10), strconv.FormatUint(meta.Vmlinux.Data, 10), strconv.FormatUint(meta.Vmlinux.BSS, 10)}
			if strings.Join(got, " ") != strings.Join(fields[:3], " ") {
				t.Errorf("vmlinux text/data/bss %v, size(1) says %v", got, fields[:3])
			}
		}
	}
}
