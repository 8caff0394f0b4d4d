package pgo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

// gccTree copies testdata/src files into a new directory at the given
// relative paths (dst -> testdata/src name) and returns it.
func gccTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for dst, src := range files {
		data, err := os.ReadFile(filepath.Join("testdata", "src", src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runIn(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// instrumented builds objs (relative .o paths whose .c sources are in dir)
// with -fprofile-arcs in dir, links them with extra plain objects, runs the
// program and copies the .gcda files to a new profile directory at the
// objects' relative paths, as bespoke copies them out of debugfs.
func instrumented(t *testing.T, gcc, dir string, objs, plain []string) string {
	t.Helper()
	link := []string{"-fprofile-arcs", "-o", "prog"}
	for _, o := range objs {
		runIn(t, dir, gcc, "-O2", "-fprofile-arcs", "-ftest-coverage", "-c", "-o", o, strings.TrimSuffix(o, ".o")+".c")
		link = append(link, o)
	}
	for _, o := range plain {
		runIn(t, dir, gcc, "-O2", "-c", "-o", o, strings.TrimSuffix(o, ".o")+".c")
		link = append(link, o)
	}
	runIn(t, dir, gcc, link...)
	runIn(t, dir, filepath.Join(dir, "prog"))
	prof := t.TempDir()
	for _, o := range objs {
		name := strings.TrimSuffix(o, ".o") + ".gcda"
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(prof, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(prof, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return prof
}

// ccEnv is the environment of a bespoke-cc run in dir.
func ccEnv(gcc, dir, prof, log string, extra ...string) []string {
	env := append(os.Environ(), "PWD="+dir, EnvCC+"="+gcc, EnvMode+"="+ModePGO, EnvProfile+"="+prof, EnvLog+"="+log)
	return append(env, extra...)
}

func compileCC(t *testing.T, env []string, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if st := runCC(args, env, nil, &stdout, &stderr); st != 0 {
		t.Fatalf("bespoke-cc %s: exit status %d\n%s%s", strings.Join(args, " "), st, stdout.String(), stderr.String())
	}
}

// symbol returns the section and the bytes of symbol name in an object.
func symbol(t *testing.T, obj, name string) (*elf.Section, []byte) {
	t.Helper()
	f, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		sec := f.Sections[s.Section]
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		return sec, data[s.Value : s.Value+s.Size]
	}
	t.Fatalf("%s: no function %s", obj, name)
	return nil, nil
}

// TestCCGCC builds a profile in one tree and uses it from another, as the
// PGO kernel build does: GCC must find EnvProfile/kernel/sched/core.gcda
// for kernel/sched/core.o built elsewhere.
func TestCCGCC(t *testing.T) {
	gcc := testenv.Command(t, "gcc")
	files := map[string]string{"kernel/sched/core.c": "core.c", "fs/unused.c": "unused.c"}
	prof := instrumented(t, gcc, gccTree(t, files), []string{"kernel/sched/core.o", "fs/unused.o"}, nil)

	s, err := Classify(prof)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Summary{Hot: []string{"kernel/sched/core"}, Cold: []string{"fs/unused"}, Functions: 4, Executed: 2}, s); diff != "" {
		t.Errorf("Classify (-want +got):\n%s", diff)
	}

	dir := gccTree(t, files)
	t.Chdir(dir)
	log := filepath.Join(t.TempDir(), "cc.log")
	env := ccEnv(gcc, dir, prof, log)
	// -Werror=missing-profile: GCC fails if it does not find the .gcda.
	compileCC(t, env, "-O2", "-Werror=missing-profile", "-c", "-o", "kernel/sched/core.o", "kernel/sched/core.c")
	compileCC(t, env, "-O2", "-c", "-o", "fs/unused.o", "fs/unused.c")
	runIn(t, dir, gcc, "-O2", "-c", "-o", "plain-core.o", "kernel/sched/core.c")
	runIn(t, dir, gcc, "-O2", "-c", "-o", "plain-unused.o", "fs/unused.c")

	// With the profile GCC knows that never_called never ran and step is
	// the hottest function; without, both stay in .text.
	for _, tt := range []struct{ obj, fn, section string }{
		{"kernel/sched/core.o", "never_called", ".text.unlikely"},
		{"kernel/sched/core.o", "step", ".text.hot"},
		{"plain-core.o", "never_called", ".text"},
		{"plain-core.o", "step", ".text"},
	} {
		if sec, _ := symbol(t, tt.obj, tt.fn); sec.Name != tt.section {
			t.Errorf("%s: %s in %s, want %s", tt.obj, tt.fn, sec.Name, tt.section)
		}
	}
	// The cold unit is aligned for size.
	for _, tt := range []struct {
		obj   string
		align uint64
	}{
		{"fs/unused.o", 1},
		{"plain-unused.o", 16},
	} {
		if sec, _ := symbol(t, tt.obj, "unused_entry"); sec.Addralign != tt.align {
			t.Errorf("%s: %s aligned to %d, want %d", tt.obj, sec.Name, sec.Addralign, tt.align)
		}
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("hot kernel/sched/core.o\ncold fs/unused.o\n", string(got)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// TestCCGCCKernelProfile: a profile as Linux writes it (no object
// summary) is ignored by GCC 12's -fprofile-use; WithSummary makes it count.
func TestCCGCCKernelProfile(t *testing.T) {
	gcc := testenv.Command(t, "gcc")
	files := map[string]string{"kernel/sched/core.c": "core.c", "fs/unused.c": "unused.c"}
	prof := instrumented(t, gcc, gccTree(t, files), []string{"kernel/sched/core.o"}, []string{"fs/unused.o"})
	name := filepath.Join(prof, "kernel", "sched", "core.gcda")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	kernel := kernelGCDA(binary.LittleEndian, p.Version, p.Stamp, p.Functions)
	summed, err := WithSummary(kernel, p.MaxArc())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name              string
		gcda              []byte
		neverCalled, step string
	}{
		{"kernel layout", kernel, ".text", ".text"},
		{"with summary", summed, ".text.unlikely", ".text.hot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(name, tt.gcda, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := gccTree(t, files)
			t.Chdir(dir)
			compileCC(t, ccEnv(gcc, dir, prof, filepath.Join(t.TempDir(), "cc.log")), "-O2", "-Werror=missing-profile", "-c", "-o", "kernel/sched/core.o", "kernel/sched/core.c")
			for fn, want := range map[string]string{"never_called": tt.neverCalled, "step": tt.step} {
				if sec, _ := symbol(t, "kernel/sched/core.o", fn); sec.Name != want {
					t.Errorf("%s in %s, want %s", fn, sec.Name, want)
				}
			}
		})
	}
}

// TestCCGCCExcludeFunction checks that "function work" compiles work as
// the plain -O2 build does, in a hot and in a cold unit, while other, the
// same loop, gets the profile or -Os.
func TestCCGCCExcludeFunction(t *testing.T) {
	gcc := testenv.Command(t, "gcc")
	files := map[string]string{"kernel/loops.c": "loops.c", "main.c": "loops_main.c"}
	prof := instrumented(t, gcc, gccTree(t, files), []string{"kernel/loops.o"}, []string{"main.o"})
	dir := gccTree(t, files)
	t.Chdir(dir)
	excl := filepath.Join(t.TempDir(), "exclude")
	if err := os.WriteFile(excl, []byte("# test\nfunction work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, dir, gcc, "-O2", "-c", "-o", "plain.o", "kernel/loops.c")
	_, plainWork := symbol(t, "plain.o", "work")
	_, plainOther := symbol(t, "plain.o", "other")

	for _, tt := range []struct {
		name, prof, log string
	}{
		{"hot", prof, "hot kernel/loops.o (excluded functions: work)\n"},
		{"cold", t.TempDir(), "cold kernel/loops.o (no profile; excluded functions: work)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "cc.log")
			// -Werror: the redeclaration's -Wattributes warning is silenced.
			compileCC(t, ccEnv(gcc, dir, tt.prof, log, EnvExclude+"="+excl), "-O2", "-Wall", "-Werror", "-c", "-o", "kernel/loops.o", "kernel/loops.c")
			_, work := symbol(t, "kernel/loops.o", "work")
			_, other := symbol(t, "kernel/loops.o", "other")
			if !bytes.Equal(work, plainWork) {
				t.Errorf("work: %d bytes differing from the plain build's %d, want the same code", len(work), len(plainWork))
			}
			if bytes.Equal(other, plainOther) {
				t.Errorf("other: the plain build's code, want it changed by the %s flags", tt.name)
			}
			got, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.log, string(got)); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			gen, err := os.ReadFile(".bespoke-cc.kernel__loops.c")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(gen), "#include \"kernel/loops.c\"\n") || !strings.Contains(string(gen), "extern __typeof__(work) work __attribute__((") {
				t.Errorf("generated source:\n%s\nwant it to include kernel/loops.c and redeclare work", gen)
			}
			t.Logf("generated source:\n%s", gen)
		})
	}
	// Without the exclusion, the profile changes work too.
	compileCC(t, ccEnv(gcc, dir, prof, filepath.Join(t.TempDir(), "log")), "-O2", "-c", "-o", "kernel/loops.o", "kernel/loops.c")
	if _, work := symbol(t, "kernel/loops.o", "work"); bytes.Equal(work, plainWork) {
		t.Errorf("work without exclusion: the plain build's code, want the profile's")
	}
}
