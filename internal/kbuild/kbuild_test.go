package kbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/google/go-cmp/cmp"
)

const baseConfig = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.12.117 Kernel Configuration
#
CONFIG_64BIT=y
CONFIG_PRINTK=y
# CONFIG_SMP is not set
CONFIG_LOG_BUF_SHIFT=17
`

var testToolchain = Toolchain{GCC: "gcc (Debian 12.2.0-14+deb12u1) 12.2.0", Make: "GNU Make 4.3", LD: "GNU ld (GNU Binutils for Debian) 2.40"}

func baseKeyInput() KeyInput {
	return KeyInput{SourceID: "6.12.117-abcdef", Config: []byte(baseConfig), Toolchain: testToolchain,
		CC: "ccache gcc", MakeVars: []string{"KCFLAGS=-O2"}, Targets: []string{"bzImage"}}
}

func TestKey(t *testing.T) {
	base := Key(baseKeyInput())
	tests := []struct {
		name   string
		change func(*KeyInput)
		same   bool
	}{
		{"nothing", func(*KeyInput) {}, true},
		{"comments and blank lines", func(k *KeyInput) {
			k.Config = []byte(strings.ReplaceAll(baseConfig, "6.12.117 Kernel", "other Kernel") + "\n\n# a comment\n")
		}, true},
		{"line order and trailing spaces", func(k *KeyInput) {
			k.Config = []byte("CONFIG_LOG_BUF_SHIFT=17  \n# CONFIG_SMP is not set\nCONFIG_PRINTK=y\nCONFIG_64BIT=y\n")
		}, true},
		{"an option enabled", func(k *KeyInput) { k.Config = append(k.Config, "CONFIG_TTY=y\n"...) }, false},
		{"an option's value", func(k *KeyInput) {
			k.Config = []byte(strings.Replace(baseConfig, "SHIFT=17", "SHIFT=18", 1))
		}, false},
		{"is not set becomes set", func(k *KeyInput) {
			k.Config = []byte(strings.Replace(baseConfig, "# CONFIG_SMP is not set", "CONFIG_SMP=y", 1))
		}, false},
		{"source", func(k *KeyInput) { k.SourceID = "6.12.118-abcdef" }, false},
		{"gcc version", func(k *KeyInput) { k.Toolchain.GCC = "gcc (Debian 13.2.0) 13.2.0" }, false},
		{"make version", func(k *KeyInput) { k.Toolchain.Make = "GNU Make 4.4" }, false},
		{"ld version", func(k *KeyInput) { k.Toolchain.LD = "GNU ld 2.41" }, false},
		{"CC without ccache", func(k *KeyInput) { k.CC = "gcc" }, false},
		{"KCFLAGS", func(k *KeyInput) { k.MakeVars = []string{"KCFLAGS=-O3"} }, false},
		{"another make variable", func(k *KeyInput) { k.MakeVars = append(k.MakeVars, "LLVM=1") }, false},
		{"make vars split differently", func(k *KeyInput) { k.MakeVars = []string{"KCFLAGS=", "-O2"} }, false},
		{"targets", func(k *KeyInput) { k.Targets = []string{"vmlinux"} }, false},
		{"extra", func(k *KeyInput) { k.Extra = []string{"profile=1234"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseKeyInput()
			in.Config = append([]byte{}, in.Config...)
			tt.change(&in)
			got := Key(in)
			if (got == base) != tt.same {
				t.Errorf("key %s vs base %s: same=%v, want same=%v", got, base, got == base, tt.same)
			}
		})
	}
}

// TestKeyIgnoresJobsAndPlaces checks through Build that the job count,
// the output dir and the place of the tree do not change the key.
func TestKeyIgnoresJobsAndPlaces(t *testing.T) {
	cache := t.TempDir()
	build := func(jobs int, out, treeDir string) string {
		res, err := Build(context.Background(), Options{
			Tree: &ksrc.Tree{Dir: treeDir, Version: "6.12.117", ID: "6.12.117-abcdef"}, Config: []byte(baseConfig),
			OutDir: out, CacheDir: cache, Jobs: jobs, CC: "gcc", Toolchain: &testToolchain, DryRun: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res.Meta.Key
	}
	a := build(1, "/tmp/a", "/src/a")
	if b := build(8, "/tmp/b", "/src/b"); a != b {
		t.Errorf("key changed with jobs, output dir and tree dir: %s vs %s", a, b)
	}
}

func TestDryRunCommands(t *testing.T) {
	cache := t.TempDir()
	res, err := Build(context.Background(), Options{
		Tree: &ksrc.Tree{Dir: "/src/linux", Version: "6.12.117", ID: "x"}, Config: []byte(baseConfig),
		CacheDir: cache, Jobs: 3, CC: "ccache gcc", ExtraMake: []string{"KCFLAGS=-O2 -g"}, Toolchain: &testToolchain, DryRun: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := res.BuildDir
	if !strings.HasPrefix(dir, cache+"/kbuild/work-") {
		t.Errorf("work dir %s, want one under %s/kbuild", dir, cache)
	}
	env := "CCACHE_DIR=" + cache + "/ccache CCACHE_BASEDIR=" + cache + " CCACHE_NOHASHDIR=1 "
	common := "make -C /src/linux O=" + dir + " ARCH=x86_64 CC='ccache gcc' KBUILD_BUILD_TIMESTAMP='2024-01-01 00:00:00 UTC' KBUILD_BUILD_USER=bespoke KBUILD_BUILD_HOST=bespoke KBUILD_BUILD_VERSION=1 KCFLAGS='-O2 -g'"
	want := []string{env + common + " olddefconfig",
		"# bespoke: remove " + dir + "/arch/x86/kernel/vmlinux.lds",
		env + common + " arch/x86/kernel/vmlinux.lds",
		"# bespoke: page-align the entry text in " + dir + "/arch/x86/kernel/vmlinux.lds (without CPU_MITIGATIONS)",
		env + common + " -j3 bzImage"}
	if diff := cmp.Diff(want, res.Commands); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("dry run wrote %d entries into the cache", len(ents))
	}
}

func TestParseFailure(t *testing.T) {
	const src = "/root/.cache/bespoke/src/linux-source-6.12.tar-89f09e79e4a0925f/linux-source-6.12"
	// A tree that holds the source of the failing object of fail-flag.log.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "scripts/mod"), 0o755)
	os.WriteFile(filepath.Join(tree, "scripts/mod/empty.c"), nil, 0o644)
	tests := []struct {
		log        string
		srcDir     string
		wantTarget string
		wantFile   string
		wantLines  []string // substrings of the quoted lines, in order
	}{
		// Hand-written: -j2 output with a compile error in the middle.
		{"fail-compile.log", src, "init/main.o", "init/main.c", []string{
			"init/main.c:905:9: error: implicit declaration of function 'bogus_call'",
			"make[4]: *** [" + src + "/scripts/Makefile.build:229: init/main.o] Error 1",
		}},
		{"fail-link.log", src, "vmlinux", "", []string{
			"undefined reference to `bogus_call'",
			"make[2]: *** [scripts/Makefile.vmlinux:34: vmlinux] Error 1",
		}},
		// Real: bespoke's log of a build with KCFLAGS=-fno-such-flag.
		{"fail-flag.log", tree, "scripts/mod/empty.o", "scripts/mod/empty.c", []string{
			"gcc: error: unrecognized command-line option ‘-fno-such-flag’",
			"make[3]: *** [" + src + "/scripts/Makefile.build:234: scripts/mod/empty.o] Error 1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.log, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.log))
			if err != nil {
				t.Fatal(err)
			}
			e := parseFailure(b, tt.srcDir)
			if e.Target != tt.wantTarget || e.File != tt.wantFile {
				t.Errorf("got target %q file %q, want %q %q", e.Target, e.File, tt.wantTarget, tt.wantFile)
			}
			joined := strings.Join(e.Errors, "\n")
			for _, w := range tt.wantLines {
				i := strings.Index(joined, w)
				if i < 0 {
					t.Errorf("error lines %q lack %q", e.Errors, w)
					continue
				}
				joined = joined[i:]
			}
			for _, l := range e.Errors {
				if strings.Contains(l, "__sub-make") || strings.Contains(l, "prepare0") || strings.HasPrefix(l, "  CC") {
					t.Errorf("quoted a line that says nothing about the failure: %q", l)
				}
			}
			e.Log = "/x/build.log"
			if msg := e.Error(); !strings.Contains(msg, "full log: /x/build.log") || !strings.Contains(msg, tt.wantTarget) {
				t.Errorf("message lacks the target or the log path:\n%s", msg)
			}
		})
	}
}

func TestWorkDirSelection(t *testing.T) {
	root := t.TempDir()
	const lineage = "work-0123"
	want := "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n"
	for name, input := range map[string]string{
		lineage + ".0": "CONFIG_A=y\n",                         // 2 differ
		lineage + ".1": "CONFIG_A=y\nCONFIG_B=y\n",             // 1 differs
		lineage + ".2": "CONFIG_A=y\nCONFIG_B=y\nCONFIG_D=y\n", // 2 differ
		"work-9999.0":  want,                                   // another lineage
	} {
		os.MkdirAll(filepath.Join(root, name), 0o755)
		if err := os.WriteFile(filepath.Join(root, name, inputFile), []byte(input), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var locks []*os.File
	for range 5 {
		w, _, lock, err := acquireWorkDir(root, lineage, []byte(want), nil)
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, lock) // held: the next call must pick another
		got = append(got, fmt.Sprintf("%s %d", filepath.Base(w.dir), w.dist))
	}
	// Nearest first; equals in name order; then new dirs when all are busy.
	wantDirs := []string{lineage + ".1 1", lineage + ".0 2", lineage + ".2 2", lineage + ".3 -1", lineage + ".4 -1"}
	if diff := cmp.Diff(wantDirs, got); diff != "" {
		t.Errorf("work dirs (-want +got):\n%s", diff)
	}
	for _, l := range locks {
		l.Close()
	}
	if w, _, lock, _ := acquireWorkDir(root, lineage, []byte(want), nil); filepath.Base(w.dir) != lineage+".1" {
		t.Errorf("after unlocking: got %s, want the nearest again", w.dir)
	} else {
		lock.Close()
	}
}

// writeWorkDir makes a work dir whose last build had config input and
// whose objects depend on the options given per object, as fixdep writes
// them into .o.cmd files.
func writeWorkDir(t *testing.T, dir, input string, objects map[string][]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, inputFile), []byte(input), 0o644)
	for obj, deps := range objects {
		var b strings.Builder
		fmt.Fprintf(&b, "savedcmd_kernel/%s.o := gcc -c kernel/%s.c\n\ndeps_kernel/%s.o := \\\n", obj, obj, obj)
		for _, d := range deps {
			fmt.Fprintf(&b, "    $(wildcard include/config/%s) \\\n", d)
		}
		b.WriteString("  include/linux/kconfig.h \\\n")
		os.WriteFile(filepath.Join(dir, "kernel", "."+obj+".o.cmd"), []byte(b.String()), 0o644)
	}
}

// TestWorkDirRecompile: the work dir chosen is the one where the fewest
// objects depend on an option that changed (fixdep's .cmd files), and a
// new one is made while all that exist would recompile most objects.
func TestWorkDirRecompile(t *testing.T) {
	root := t.TempDir()
	const lineage = "work-0123"
	objects := map[string][]string{"fork": {"SYSVIPC", "SMP", "PREEMPT"}, "exit": {"SYSVIPC", "PREEMPT"},
		"sys": {"SMP", "PREEMPT"}, "unix": {"UNIX", "PREEMPT"}}
	// .0 last built the same but SYSVIPC: 2 of 4 objects depend on it.
	// .1 differs in SMP and UNIX: 3 of 4.
	writeWorkDir(t, filepath.Join(root, lineage+".0"), "CONFIG_SMP=y\nCONFIG_UNIX=y\n", objects)
	writeWorkDir(t, filepath.Join(root, lineage+".1"), "CONFIG_SYSVIPC=y\n", objects)
	want := "CONFIG_SYSVIPC=y\nCONFIG_SMP=y\nCONFIG_UNIX=y\n"

	ws := workDirs(root, lineage, []byte(want), nil)
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%s dist=%d recompile=%d/%d far=%v", filepath.Base(w.dir), w.dist, w.recompile, w.objects, w.far()))
	}
	wantWs := []string{lineage + ".0 dist=1 recompile=2/4 far=false", lineage + ".1 dist=2 recompile=3/4 far=true"}
	if diff := cmp.Diff(wantWs, got); diff != "" {
		t.Errorf("work dirs (-want +got):\n%s", diff)
	}
	w, near, lock, err := acquireWorkDir(root, lineage, []byte(want), nil)
	if err != nil {
		t.Fatal(err)
	}
	lock.Close()
	if filepath.Base(w.dir) != lineage+".0" || near != nil {
		t.Errorf("acquired %s (passed over %v), want %s.0", w.dir, near, lineage)
	}

	// A config far from both (every object tests PREEMPT): a new dir,
	// naming the nearest it passed over.
	far := want + "CONFIG_PREEMPT=y\n"
	w, near, lock, err = acquireWorkDir(root, lineage, []byte(far), nil)
	if err != nil {
		t.Fatal(err)
	}
	lock.Close()
	if filepath.Base(w.dir) != lineage+".2" || w.dist != -1 || near == nil || filepath.Base(near.dir) != lineage+".0" {
		t.Errorf("acquired %s dist %d, passed over %+v; want a new %s.2 after a far one", w.dir, w.dist, near, lineage)
	}
	// With MaxWorkDirs dirs, the cheapest is reused however far.
	writeWorkDir(t, w.dir, "CONFIG_SMP=y\n", objects)
	for n := 3; n < MaxWorkDirs; n++ {
		writeWorkDir(t, filepath.Join(root, fmt.Sprintf("%s.%d", lineage, n)), "CONFIG_SMP=y\n", objects)
	}
	w, near, lock, err = acquireWorkDir(root, lineage, []byte(far), nil)
	if err != nil {
		t.Fatal(err)
	}
	lock.Close()
	if w.dist < 0 || near != nil || !w.far() {
		t.Errorf("with %d dirs: acquired %+v (passed over %v), want the cheapest existing one", MaxWorkDirs, w, near)
	}
}

// TestWorkDirFlagOption: an option the Makefiles test and no source does
// (CC_OPTIMIZE_FOR_SIZE: -Os for every object) recompiles everything; one
// the Makefiles test that headers test too (SMP) counts by its dependents.
func TestWorkDirFlagOption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work-0123.0")
	writeWorkDir(t, dir, "", map[string][]string{"fork": {"SMP"}, "exit": nil, "sys": nil})
	flags := map[string]bool{"CC_OPTIMIZE_FOR_SIZE": true, "SMP": true}
	for _, tt := range []struct {
		changed   string
		recompile int
	}{
		{"CC_OPTIMIZE_FOR_SIZE", 3},
		{"SMP", 1},
		{"UNIX", 0},
	} {
		if r, n := dependents(dir, map[string]bool{tt.changed: true}, flags); r != tt.recompile || n != 3 {
			t.Errorf("%s changed: %d of %d objects recompile, want %d of 3", tt.changed, r, n, tt.recompile)
		}
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "arch/x86"), 0o755)
	os.WriteFile(filepath.Join(src, "Makefile"), []byte("ifdef CONFIG_CC_OPTIMIZE_FOR_SIZE\nKBUILD_CFLAGS += -Os\nendif\n"), 0o644)
	os.WriteFile(filepath.Join(src, "arch/x86/Makefile"), []byte("ifeq ($(CONFIG_X86_32),y)\n"), 0o644)
	if got := makefileOptions(src); !got["CC_OPTIMIZE_FOR_SIZE"] || !got["X86_32"] || len(got) != 2 {
		t.Errorf("makefileOptions = %v, want CC_OPTIMIZE_FOR_SIZE and X86_32", got)
	}
}

func TestConfigDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"CONFIG_A=y\n", "CONFIG_A=y\n", 0},
		{"CONFIG_A=y\n", "# CONFIG_A is not set\n", 1},
		{"# CONFIG_A is not set\n", "", 0},
		{"CONFIG_A=y\nCONFIG_B=m\n", "CONFIG_A=m\nCONFIG_C=y\n", 3},
	} {
		if got := configDistance([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("configDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := CountEnabled([]byte(baseConfig + "CONFIG_M=m\nCONFIG_S=\"y\"\n")); got != 2 {
		t.Errorf("CountEnabled = %d, want 2", got)
	}
}

// fakeMake imitates make in O= dirs: olddefconfig keeps .config (adding
// one line), the build writes the artifacts and one object per config
// line that is new. It records what it ran.
type fakeMake struct {
	mu      sync.Mutex
	runs    []string
	fail    []byte        // when set, the build prints this and fails
	block   chan struct{} // when set, the build waits for it or ctx
	started chan struct{} // closed when a build starts (with block)
	delay   time.Duration
}

func (f *fakeMake) run(ctx context.Context, c Command, out io.Writer) error {
	f.mu.Lock()
	f.runs = append(f.runs, c.Args[len(c.Args)-1])
	f.mu.Unlock()
	var dir string
	for _, a := range c.Args {
		if d, ok := strings.CutPrefix(a, "O="); ok {
			dir = d
		}
	}
	if c.Args[len(c.Args)-1] == "olddefconfig" {
		cfg, err := os.ReadFile(filepath.Join(dir, ".config"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, ".config"), append(cfg, "CONFIG_FROM_OLDDEFCONFIG=y\n"...), 0o644)
	}
	if c.Args[len(c.Args)-1] == ldsFile {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(ldsFile)), 0o755)
		return os.WriteFile(filepath.Join(dir, ldsFile), []byte(ldsText), 0o644)
	}
	if f.started != nil {
		close(f.started)
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(f.delay)
	if f.fail != nil {
		out.Write(f.fail)
		return errors.New("exit status 2")
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, ".config"))
	for _, l := range strings.Split(string(cfg), "\n") {
		name, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		obj := filepath.Join(dir, "obj", name+".o")
		if _, err := os.Stat(obj); err == nil {
			continue // up to date, as Kbuild would see it
		}
		os.MkdirAll(filepath.Dir(obj), 0o755)
		os.WriteFile(obj, nil, 0o644)
		fmt.Fprintf(out, "  CC      obj/%s.o\n", name)
	}
	exe, err := os.Executable() // an ELF file with sections
	if err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(dir, "arch/x86/boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "arch/x86/boot/bzImage"), bytes.Repeat([]byte("k"), 1234), 0o644)
	os.WriteFile(filepath.Join(dir, "System.map"), []byte("ffffffff81000000 T start_kernel\n"), 0o644)
	return atomicdir.CopyFile(exe, filepath.Join(dir, "vmlinux"))
}

func (f *fakeMake) builds() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.runs {
		if r == "bzImage" {
			n++
		}
	}
	return n
}

func fakeOptions(t *testing.T, f *fakeMake, cache, out, cfg string) Options {
	return Options{
		Tree: &ksrc.Tree{Dir: "/src/linux", Version: "6.12.117", ID: "6.12.117-abcdef"}, Config: []byte(cfg),
		OutDir: out, CacheDir: cache, Jobs: 2, CC: "gcc", Toolchain: &testToolchain, Runner: f.run,
	}
}

func TestBuildCache(t *testing.T) {
	cache, tmp := t.TempDir(), t.TempDir()
	f := &fakeMake{}
	out := filepath.Join(tmp, "kernel")
	ctx := context.Background()

	res, err := Build(ctx, fakeOptions(t, f, cache, out, baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	if res.Hit || f.builds() != 1 || res.Meta.ObjectsCompiled != 4 {
		t.Errorf("first build: hit=%v, %d make runs, %d objects; want a miss, 1 run, 4 objects", res.Hit, f.builds(), res.Meta.ObjectsCompiled)
	}
	for _, name := range []string{"bzImage", "vmlinux", ".config", "System.map", "build.log", "build.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	got, err := readJSON[Meta](filepath.Join(out, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.BzImageBytes != 1234 || got.EnabledY != 3 || got.Vmlinux.Text == 0 || got.Key != res.Meta.Key || got.Hit {
		t.Errorf("build.json: bzimage_bytes %d enabled_y %d vmlinux %+v key %s hit %v; want 1234, 3, text > 0, %s, false",
			got.BzImageBytes, got.EnabledY, got.Vmlinux, got.Key, got.Hit, res.Meta.Key)
	}

	// Same key: a hit, make not run, into another dir.
	out2 := filepath.Join(tmp, "kernel2")
	res2, err := Build(ctx, fakeOptions(t, f, cache, out2, baseConfig+"\n# a comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Hit || f.builds() != 1 || len(f.runs) != 3 {
		t.Errorf("same config again: hit=%v after %v; want a hit and no new run", res2.Hit, f.runs)
	}
	if got, _ := readJSON[Meta](filepath.Join(out2, "build.json")); !got.Hit || got.MakeRun {
		t.Errorf("hit's build.json: cache_hit=%v make_run=%v, want true false", got.Hit, got.MakeRun)
	}

	// One more option: starts from the first build dir, compiles one object.
	res3, err := Build(ctx, fakeOptions(t, f, cache, out, baseConfig+"CONFIG_TTY=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res3.Hit || res3.Meta.BaseKey != res.Meta.Key || res3.Meta.ObjectsCompiled != 1 {
		t.Errorf("changed config: hit=%v base %q objects %d; want a build from %s compiling 1 object",
			res3.Hit, res3.Meta.BaseKey, res3.Meta.ObjectsCompiled, res.Meta.Key)
	}
	if res3.BuildDir != res.BuildDir {
		t.Errorf("changed config built in %s, want the work dir of the first build %s", res3.BuildDir, res.BuildDir)
	}
	if b, err := os.ReadFile(filepath.Join(res.Entry, ".config")); err != nil || bytes.Contains(b, []byte("CONFIG_TTY")) {
		t.Errorf("the first key's cache entry changed (or is gone: %v)", err)
	}
	if res4, err := Build(ctx, fakeOptions(t, f, cache, out2, baseConfig)); err != nil || !res4.Hit {
		t.Errorf("first config after the change: hit=%v err=%v, want a hit", res4 != nil && res4.Hit, err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 2 {
		t.Errorf("%d entries beside the output dirs, want 2 (no staging or old copy left): %v", len(ents), ents)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "kbuild", ".*")); len(left) > 0 {
		t.Errorf("staging dirs left in the cache: %q", left)
	}
}

// TestBuildDamagedEntry: a cache entry whose artifacts do not match its
// metadata (a truncated bzImage, as a power loss can leave one) is not a
// hit: it is removed and the kernel built again, with a line saying why.
func TestBuildDamagedEntry(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(entry string) error
		why    string
	}{
		{"truncated bzImage", func(e string) error { return os.Truncate(filepath.Join(e, "bzImage"), 100) }, "bzImage is 100 bytes"},
		{"empty vmlinux", func(e string) error { return os.Truncate(filepath.Join(e, "vmlinux"), 0) }, "vmlinux"},
		{"empty .config", func(e string) error { return os.Truncate(filepath.Join(e, ".config"), 0) }, ".config"},
		{"no System.map", func(e string) error { return os.Remove(filepath.Join(e, "System.map")) }, "System.map"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cache, tmp := t.TempDir(), t.TempDir()
			f := &fakeMake{}
			ctx := context.Background()
			res, err := Build(ctx, fakeOptions(t, f, cache, filepath.Join(tmp, "k1"), baseConfig))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(res.Entry); err != nil {
				t.Fatal(err)
			}
			var progress bytes.Buffer
			opts := fakeOptions(t, f, cache, filepath.Join(tmp, "k2"), baseConfig)
			opts.Progress = &progress
			res2, err := Build(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Hit || f.builds() != 2 {
				t.Errorf("damaged entry: hit=%v, %d builds; want a miss and a second build", res2.Hit, f.builds())
			}
			if !strings.Contains(progress.String(), "damaged") || !strings.Contains(progress.String(), tt.why) {
				t.Errorf("progress does not say why the entry is not used (want %q):\n%s", tt.why, progress.String())
			}
			if st, err := os.Stat(filepath.Join(tmp, "k2", "bzImage")); err != nil || st.Size() != 1234 {
				t.Errorf("installed bzImage: %v, want 1234 bytes", err)
			}
			if res3, err := Build(ctx, fakeOptions(t, f, cache, filepath.Join(tmp, "k3"), baseConfig)); err != nil || !res3.Hit {
				t.Errorf("after the rebuild: hit=%v err=%v, want a hit", res3 != nil && res3.Hit, err)
			}
		})
	}
}

func TestBuildFailureKeepsOutput(t *testing.T) {
	cache, tmp := t.TempDir(), t.TempDir()
	out := filepath.Join(tmp, "kernel")
	ctx := context.Background()
	if _, err := Build(ctx, fakeOptions(t, &fakeMake{}, cache, out, baseConfig)); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(out, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	failLog, err := os.ReadFile("testdata/fail-compile.log")
	if err != nil {
		t.Fatal(err)
	}
	badCfg := baseConfig + "CONFIG_BAD=y\n"
	_, err = Build(ctx, fakeOptions(t, &fakeMake{fail: failLog}, cache, out, badCfg))
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a *BuildError", err)
	}
	if be.Target != "init/main.o" || !strings.Contains(err.Error(), be.Log) {
		t.Errorf("error: target %q, log %q, message:\n%v", be.Target, be.Log, err)
	}
	if b, err := os.ReadFile(be.Log); err != nil || !bytes.Contains(b, []byte("bogus_call")) {
		t.Errorf("log %s does not hold make's output (%v)", be.Log, err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "build.json")); !bytes.Equal(after, before) {
		t.Errorf("output dir changed by a failed build")
	}
	dry := fakeOptions(t, &fakeMake{}, cache, out, badCfg)
	dry.DryRun = true
	d, err := Build(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Entry); !errors.Is(err, os.ErrNotExist) || d.Hit {
		t.Errorf("failed key has a finished cache entry: stat %v, hit %v", err, d.Hit)
	}
	// Building the same key again continues the unfinished dir, and works.
	f := &fakeMake{}
	res, err := Build(ctx, fakeOptions(t, f, cache, out, badCfg))
	if err != nil {
		t.Fatal(err)
	}
	if res.Hit || !res.Meta.Resumed || f.builds() != 1 {
		t.Errorf("retry: hit=%v resumed=%v builds=%d, want a resumed build", res.Hit, res.Meta.Resumed, f.builds())
	}
}

func TestBuildInterrupted(t *testing.T) {
	cache, tmp := t.TempDir(), t.TempDir()
	out := filepath.Join(tmp, "kernel")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "build.json"), []byte("{}"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeMake{block: make(chan struct{}), started: make(chan struct{})}
	go func() { <-f.started; cancel() }()
	_, err := Build(ctx, fakeOptions(t, f, cache, out, baseConfig))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("got %v, want an interrupted error wrapping context.Canceled", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "build.json")); string(b) != "{}" {
		t.Errorf("output dir changed by an interrupted build: build.json %q", b)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "kbuild", "*", metaFile)); len(m) != 0 {
		t.Errorf("interrupted build recorded as finished: %q", m)
	}
}

func TestBuildRefusesForeignOutDir(t *testing.T) {
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	f := &fakeMake{}
	_, err := Build(context.Background(), fakeOptions(t, f, t.TempDir(), out, baseConfig))
	if err == nil || !strings.Contains(err.Error(), "no build.json") {
		t.Errorf("got %v, want a refusal to replace a dir that is not a kernel build", err)
	}
	if f.builds() != 0 {
		t.Errorf("built before refusing the output dir")
	}
	if b, _ := os.ReadFile(filepath.Join(out, "notes.txt")); string(b) != "mine" {
		t.Errorf("user's file changed")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBuildSameKeyConcurrently(t *testing.T) {
	defer func(d time.Duration) { lockPoll = d }(lockPoll)
	lockPoll = 10 * time.Millisecond
	cache, tmp := t.TempDir(), t.TempDir()
	f := &fakeMake{delay: 300 * time.Millisecond}
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	logs := make([]*syncBuffer, 2)
	for i := range 2 {
		wg.Add(1)
		logs[i] = &syncBuffer{}
		go func() {
			defer wg.Done()
			o := fakeOptions(t, f, cache, filepath.Join(tmp, fmt.Sprint("k", i)), baseConfig)
			o.Progress = logs[i]
			results[i], errs[i] = Build(context.Background(), o)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if f.builds() != 1 {
		t.Errorf("make built %d times for one key, want 1", f.builds())
	}
	hits := 0
	waited := 0
	for i, r := range results {
		if r.Hit {
			hits++
			if strings.Contains(logs[i].String(), fmt.Sprintf("waiting for another build of the same kernel (pid %d)", os.Getpid())) {
				waited++
			}
		}
	}
	if hits != 1 || waited != 1 {
		t.Errorf("%d hits, %d waited with the holder's pid; want 1 and 1; logs:\n%s\n---\n%s", hits, waited, logs[0], logs[1])
	}
}

func TestExecRunnerKillsProcessGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	// The shell's child keeps the output pipe open: Run returns only when
	// the whole group is gone.
	err := ExecRunner(ctx, Command{Args: []string{"sh", "-c", "sleep 30 & sleep 30; wait"}}, &out)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's error", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %s to stop: the process group was not killed", d)
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, false, time.Hour)
	io.WriteString(p, "  CC      init/main.o\n  CC      init/ver")
	io.WriteString(p, "sion.o\n  LD      vmlinux.o\n  AS      arch/x86/entry/entry_64.o\n  HOSTCC  scripts/basic/fixdep.o\n")
	if got := p.Objects(); got != 4 {
		t.Errorf("objects = %d, want 4", got)
	}
	p.tick(true)
	if !strings.Contains(b.String(), "kernel build: 4 objects compiled") {
		t.Errorf("progress line %q", b.String())
	}
	var term bytes.Buffer
	p = newProgress(&term, true, time.Hour)
	p.tick(true)
	p.done()
	if !strings.HasPrefix(term.String(), "\r\033[K") || !strings.HasSuffix(term.String(), "\n") {
		t.Errorf("terminal progress %q, want a rewritten line ended at done", term.String())
	}
}

func TestDoctor(t *testing.T) {
	host := Host{
		LookPath: func(name string) (string, error) {
			if name == "flex" || name == "ccache" || name == "qemu-system-x86_64" {
				return "", errors.New("not found")
			}
			return "/usr/bin/" + name, nil
		},
		Stat: func(p string) error {
			if p == "/usr/include/gelf.h" || p == "/usr/src/linux-source-6.12.tar.xz" {
				return nil
			}
			return os.ErrNotExist
		},
	}
	res := Doctor(host, Checks)
	var missing []string
	for _, r := range res {
		if r.Found == "" {
			missing = append(missing, r.Name)
		}
	}
	if diff := cmp.Diff([]string{"flex", "libssl-dev", "qemu-system-x86_64", "ccache"}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if got, want := InstallCommand(res, true), "apt-get install -y flex libssl-dev qemu-system-x86"; got != want {
		t.Errorf("install command %q, want %q", got, want)
	}
	if got, want := InstallCommand(res, false), "apt-get install -y ccache"; got != want {
		t.Errorf("optional install command %q, want %q", got, want)
	}
}

// TestDryRunEnv: Env reaches make's environment (a wrapper's ccache gets
// the cache's ccache settings) and is not part of the key.
func TestDryRunEnv(t *testing.T) {
	cache := t.TempDir()
	opts := Options{
		Tree: &ksrc.Tree{Dir: "/src/linux", Version: "6.12.117", ID: "x"}, Config: []byte(baseConfig),
		CacheDir: cache, Jobs: 2, CC: "/opt/bespoke-cc", Env: []string{"BESPOKE_CC=ccache gcc", "BESPOKE_CC_LOG=/tmp/a"},
		Toolchain: &testToolchain, DryRun: true,
	}
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := "CCACHE_DIR=" + cache + "/ccache CCACHE_BASEDIR=" + cache + " CCACHE_NOHASHDIR=1 BESPOKE_CC='ccache gcc' BESPOKE_CC_LOG=/tmp/a make "
	if last := res.Commands[len(res.Commands)-1]; !strings.HasPrefix(last, want) {
		t.Errorf("command %q, want it to start with %q", last, want)
	}
	opts.Env = []string{"BESPOKE_CC=ccache gcc", "BESPOKE_CC_LOG=/tmp/b"}
	again, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Meta.Key != res.Meta.Key {
		t.Errorf("a different Env changed the key: %s, %s", res.Meta.Key, again.Meta.Key)
	}
}
