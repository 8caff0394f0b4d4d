package pgo

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCompile(t *testing.T) {
	for _, tt := range []struct {
		name string
		args string
		want compileUnit
		ok   bool
	}{
		{"kbuild", "-Wp,-MMD,kernel/sched/.core.o.d -nostdinc -I ./arch/x86/include -include ./include/linux/kconfig.h -D__KERNEL__ -O2 -DKBUILD_BASENAME='core' -c -o kernel/sched/core.o kernel/sched/core.c",
			compileUnit{src: "kernel/sched/core.c", obj: "kernel/sched/core.o", srcIndex: 12}, true},
		{"joined -o", "-c -okernel/fork.o kernel/fork.c", compileUnit{src: "kernel/fork.c", obj: "kernel/fork.o", srcIndex: 2}, true},
		{"-x c", "-x c -c a.c -o a.o", compileUnit{src: "a.c", obj: "a.o", srcIndex: 3}, true},
		{"source first", "a.c -c -o a.o", compileUnit{src: "a.c", obj: "a.o", srcIndex: 0}, true},
		{"cc-option probe", "-Werror -fno-stack-protector -c -x c /dev/null -o .tmp_123.o", compileUnit{}, false},
		{"stdin", "-c -x c - -o x.o", compileUnit{}, false},
		{"preprocess", "-E -P -x c include/generated/x.h", compileUnit{}, false},
		{"-E with -c", "-E -c a.c -o a.o", compileUnit{}, false},
		{"assembly out", "-S -o kernel/bounds.s kernel/bounds.c", compileUnit{}, false},
		{"assembler file", "-D__ASSEMBLY__ -c -o arch/x86/entry/entry_64.o arch/x86/entry/entry_64.S", compileUnit{}, false},
		{"-x assembler", "-x assembler-with-cpp -c -o a.o a.c", compileUnit{}, false},
		{"link", "-o vmlinux a.o b.o", compileUnit{}, false},
		{"no -c", "-o a a.c", compileUnit{}, false},
		{"no object", "-c a.c", compileUnit{}, false},
		{"not .o", "-c a.c -o a.s", compileUnit{}, false},
		{"two sources", "-c a.c b.c -o a.o", compileUnit{}, false},
		{"version", "--version", compileUnit{}, false},
		{"print-file-name", "-print-file-name=include", compileUnit{}, false},
		{"query", "-O2 -Q --help=optimizers -c a.c -o a.o", compileUnit{}, false},
		{"-o missing", "-c a.c -o", compileUnit{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCompile(strings.Fields(tt.args))
			if ok != tt.ok {
				t.Fatalf("parseCompile(%q) ok = %v, want %v", tt.args, ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(compileUnit{})); diff != "" {
				t.Errorf("parseCompile(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseExclusions(t *testing.T) {
	in := `# misbuilds with -Os
file arch/x86/kernel/*.c

file drivers/
function memcpy
function __do_sys_read fs/read_write.c
`
	got, err := ParseExclusions(strings.NewReader(in), "x.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := &Exclusions{
		Files:     []string{"arch/x86/kernel/*.c", "drivers/"},
		Functions: []FunctionExclusion{{Name: "memcpy"}, {Name: "__do_sys_read", File: "fs/read_write.c"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseExclusions (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ src, obj string }{
		{"arch/x86/kernel/setup.c", "arch/x86/kernel/setup.o"},
		{"drivers/net/virtio_net.c", "drivers/net/virtio_net.o"},
	} {
		if !got.ExcludesFile(tt.src, tt.obj) {
			t.Errorf("ExcludesFile(%q, %q) = false, want true", tt.src, tt.obj)
		}
	}
	if got.ExcludesFile("arch/x86/kernel/cpu/common.c", "arch/x86/kernel/cpu/common.o") {
		t.Errorf("ExcludesFile(arch/x86/kernel/cpu/common.c) = true, want false (* does not cross /)")
	}
	text := []byte("void *memcpy (void *d, const void *s, size_t n)\n{\n")
	if diff := cmp.Diff([]string{"__do_sys_read"}, got.FunctionsIn("fs/read_write.c", "fs/read_write.o", nil)); diff != "" {
		t.Errorf("FunctionsIn(fs/read_write.c) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"memcpy"}, got.FunctionsIn("lib/string.c", "lib/string.o", text)); diff != "" {
		t.Errorf("FunctionsIn(lib/string.c) (-want +got):\n%s", diff)
	}
	if got := got.FunctionsIn("lib/x.c", "lib/x.o", []byte("__memcpy(a, b, c); /* memcpyx( */")); len(got) != 0 {
		t.Errorf("FunctionsIn(lib/x.c) = %q, want none", got)
	}

	for _, bad := range []string{"file", "file a b", "func x", "function 1x", "function a b c", "file [", "exclude x"} {
		if _, err := ParseExclusions(strings.NewReader("# c\n"+bad+"\n"), "x.txt"); err == nil || !strings.Contains(err.Error(), "x.txt line 2") {
			t.Errorf("ParseExclusions(%q) error = %v, want one naming x.txt line 2", bad, err)
		}
	}
}

// profileTree copies testdata/profile to a temporary directory and returns
// it: kernel/sched/core.gcda is hot, fs/unused.gcda cold.
func profileTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"kernel/sched/core.gcda", "fs/unused.gcda"} {
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, readTestdata(t, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlan(t *testing.T) {
	prof := profileTree(t)
	if err := os.MkdirAll(filepath.Join(prof, "mm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(prof, "mm/broken.gcda"), []byte("xxxx"), 0o644); err != nil {
		t.Fatal(err)
	}
	const wd = "/b"
	c := &ccConfig{
		compiler: []string{"gcc"},
		mode:     ModePGO,
		profile:  prof,
		wd:       wd,
		exclusions: &Exclusions{
			Files: []string{"lib/*.c", "arch/x86/boot/"},
		},
	}
	hot := func(dir, prefix string) []string {
		return []string{"-fprofile-use=" + dir, "-fprofile-prefix-path=" + prefix, "-fprofile-correction", "-Wno-coverage-mismatch"}
	}
	for _, tt := range []struct {
		name     string
		args     string
		decision string
		added    []string // appended to args
		log      string
	}{
		{"hot", "-O2 -c -o kernel/sched/core.o kernel/sched/core.c", decisionHot,
			hot(prof+"/kernel/sched", wd+"/kernel/sched"), "hot kernel/sched/core.o\n"},
		{"hot ./", "-O2 -c -o ./kernel/sched/core.o kernel/sched/core.c", decisionHot,
			hot(prof+"/kernel/sched", wd+"/./kernel/sched"), "hot kernel/sched/core.o\n"},
		{"cold", "-O2 -c -o fs/unused.o fs/unused.c", decisionCold, ColdFlags, "cold fs/unused.o\n"},
		{"no profile", "-O2 -c -o fs/ext4/inode.o fs/ext4/inode.c", decisionCold, ColdFlags, "cold fs/ext4/inode.o (no profile)\n"},
		{"excluded", "-O2 -c -o lib/sort.o lib/sort.c", decisionExcluded, nil, "excluded lib/sort.o\n"},
		{"excluded dir", "-O2 -c -o arch/x86/boot/a20.o arch/x86/boot/a20.c", decisionExcluded, nil, "excluded arch/x86/boot/a20.o\n"},
		{"absolute", "-O2 -c -o /b/kernel/sched/core.o kernel/sched/core.c", decisionPlain, nil, "plain /b/kernel/sched/core.o (absolute object path)\n"},
		{"outside", "-O2 -c -o ../x/y.o ../x/y.c", decisionPlain, nil, "plain ../x/y.o (object outside the working directory)\n"},
		{"instrumented", "-O2 -fprofile-arcs -ftest-coverage -c -o kernel/sched/core.o kernel/sched/core.c", decisionPlain, nil, "plain kernel/sched/core.o (has -fprofile-arcs)\n"},
		{"probe", "-Werror -c -x c /dev/null -o .tmp.o", "", nil, ""},
		{"asm", "-c -o arch/x86/lib/memcpy_64.o arch/x86/lib/memcpy_64.S", "", nil, ""},
		{"link", "-o vmlinux kernel/sched/core.o", "", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Fields(tt.args)
			p, err := c.plan(args)
			if err != nil {
				t.Fatal(err)
			}
			if p.decision != tt.decision {
				t.Errorf("decision = %q, want %q", p.decision, tt.decision)
			}
			want := append(append([]string(nil), args...), tt.added...)
			if diff := cmp.Diff(want, p.args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if got := p.logLine(); got != tt.log {
				t.Errorf("log line = %q, want %q", got, tt.log)
			}
		})
	}

	_, err := c.plan(strings.Fields("-c -o mm/broken.o mm/broken.c"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(prof, "mm/broken.gcda")) {
		t.Errorf("plan(mm/broken.o) error = %v, want one naming mm/broken.gcda", err)
	}

	// pgo-hot: the same profile use, cold units left alone.
	hotOnly := *c
	hotOnly.mode = ModePGOHot
	for _, a := range []struct{ args, decision string }{
		{"-O2 -c -o fs/unused.o fs/unused.c", decisionCold},
		{"-O2 -c -o kernel/sched/core.o kernel/sched/core.c", decisionHot},
	} {
		args := strings.Fields(a.args)
		p, err := hotOnly.plan(args)
		if err != nil {
			t.Fatal(err)
		}
		if p.decision != a.decision || (a.decision == decisionCold) != (len(p.args) == len(args)) {
			t.Errorf("pgo-hot %s: %s, args %v", a.args, p.decision, p.args)
		}
	}

	// kernel.pgo_hot_flags: after HotFlags, on hot units only.
	extra, err := loadConfig([]string{EnvMode + "=" + ModePGO, EnvProfile + "=" + prof, EnvHotFlags + "=-fno-unroll-loops  -fno-peel-loops", "PWD=" + wd})
	if err != nil {
		t.Fatal(err)
	}
	extra.wd = wd
	for _, a := range []struct {
		args string
		want []string
	}{
		{"-O2 -c -o kernel/sched/core.o kernel/sched/core.c", append(hot(prof+"/kernel/sched", wd+"/kernel/sched"), "-fno-unroll-loops", "-fno-peel-loops")},
		{"-O2 -c -o fs/unused.o fs/unused.c", ColdFlags},
	} {
		args := strings.Fields(a.args)
		p, err := extra.plan(args)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(append(args, a.want...), p.args); diff != "" {
			t.Errorf("hot flags, %s (-want +got):\n%s", a.args, diff)
		}
	}

	pass := *c
	pass.mode = ""
	args := strings.Fields("-O2 -c -o kernel/sched/core.o kernel/sched/core.c")
	p, err := pass.plan(args)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(args, p.args); p.decision != "" || diff != "" {
		t.Errorf("mode \"\": decision %q, args (-want +got):\n%s", p.decision, diff)
	}
}

// fakeCC writes a compiler that prints its arguments, one a line, says
// "to stderr" on stderr and exits with $FAKE_EXIT.
func fakeCC(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fakecc")
	script := "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done\necho 'to stderr' >&2\nexit ${FAKE_EXIT:-0}\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunCCFake(t *testing.T) {
	cc := fakeCC(t)
	prof := profileTree(t)
	wd := t.TempDir()
	t.Chdir(wd)
	log := filepath.Join(t.TempDir(), "cc.log")
	base := []string{"PATH=" + os.Getenv("PATH"), "PWD=" + wd, EnvCC + "=" + cc, EnvProfile + "=" + prof, EnvLog + "=" + log}
	pgo := append(base[:len(base):len(base)], EnvMode+"="+ModePGO)
	for _, tt := range []struct {
		name   string
		env    []string
		args   string
		stdout string
		status int
	}{
		{"pass-through", append(base, "FAKE_EXIT=3"), "--version", "--version\n", 3},
		{"pgo probe", pgo, "-c -x c /dev/null -o .tmp.o", "-c\n-x\nc\n/dev/null\n-o\n.tmp.o\n", 0},
		{"pgo hot", pgo, "-O2 -c -o kernel/sched/core.o kernel/sched/core.c",
			"-O2\n-c\n-o\nkernel/sched/core.o\nkernel/sched/core.c\n-fprofile-use=" + prof + "/kernel/sched\n-fprofile-prefix-path=" + wd + "/kernel/sched\n-fprofile-correction\n-Wno-coverage-mismatch\n", 0},
		{"pgo cold failing", append(pgo, "FAKE_EXIT=1"), "-O2 -c -o fs/unused.o fs/unused.c",
			"-O2\n-c\n-o\nfs/unused.o\nfs/unused.c\n-Os\n-falign-functions=1\n-falign-jumps=1\n-falign-loops=1\n", 1},
		{"bad mode", append(base, EnvMode+"=fast"), "--version", "", 2},
		{"no profile dir", []string{EnvCC + "=" + cc, EnvMode + "=pgo"}, "--version", "", 2},
		{"compiler missing", []string{EnvCC + "=/nonexistent/gcc"}, "--version", "", 127},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := runCC(strings.Fields(tt.args), tt.env, nil, &stdout, &stderr)
			if status != tt.status {
				t.Errorf("status = %d, want %d (stderr %q)", status, tt.status, stderr.String())
			}
			if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if tt.stdout != "" && stderr.String() != "to stderr\n" {
				t.Errorf("stderr = %q, want %q", stderr.String(), "to stderr\n")
			}
			if tt.stdout == "" && !strings.HasPrefix(stderr.String(), "bespoke-cc: ") {
				t.Errorf("stderr = %q, want a bespoke-cc error", stderr.String())
			}
		})
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("hot kernel/sched/core.o\ncold fs/unused.o\n", string(got)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}
