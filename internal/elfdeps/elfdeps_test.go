package elfdeps

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

// gcc compiles src (C) with args in dir, failing the test on error.
func gcc(t *testing.T, dir, src string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc not found: run 'make deps' (build-essential)")
	}
	c := filepath.Join(dir, "src-"+strings.ReplaceAll(args[len(args)-1], "/", "_")+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := args[len(args)-1]
	cmd := exec.Command("gcc", append(append([]string{c}, args[:len(args)-1]...), "-o", out)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

// tempDir returns a fresh temporary directory with symlinks resolved, so
// that closure paths (always real directories) compare with it.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const mainSrc = `#include <stdio.h>
#include <math.h>
int foo(void);
int main(int argc, char **argv) { printf("%d %.0f\n", foo(), sqrt(argc * 8.0)); return 0; }
`

// resolveIn resolves p through the closure as if the closure were the
// whole file tree (as in an initramfs built from it): every symlink on
// the way must be an entry, and the end a regular-file entry.
func resolveIn(files []manifest.File, p string) (manifest.File, bool) {
	f, _, ok := resolveInPath(files, p)
	return f, ok
}

// resolveInPath is resolveIn that also returns the path p resolves to.
func resolveInPath(files []manifest.File, p string) (manifest.File, string, bool) {
	m := map[string]manifest.File{}
	for _, f := range files {
		m[f.Path] = f
	}
	rest := splitComponents(p)
	cur := "/"
	for n := 0; len(rest) > 0; {
		comp := rest[0]
		rest = rest[1:]
		if comp == "." {
			continue
		}
		if comp == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		if f, ok := m[next]; ok && f.Link != "" {
			if n++; n > 40 {
				return manifest.File{}, "", false
			}
			if filepath.IsAbs(f.Link) {
				cur = "/"
			}
			rest = append(splitComponents(f.Link), rest...)
			continue
		}
		cur = next
	}
	f, ok := m[cur]
	return f, cur, ok && f.Link == ""
}

// checkClosure checks the invariants every closure keeps: sorted, unique,
// each symlink's target listed, sizes on regular files, each entry's
// parent directory a real directory on the host.
func checkClosure(t *testing.T, files []manifest.File) {
	t.Helper()
	if !slices.IsSortedFunc(files, func(a, b manifest.File) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("closure not sorted by path: %v", files)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.Path] {
			t.Errorf("%s listed twice", f.Path)
		}
		seen[f.Path] = true
		if !slices.Contains(kindRank, f.Kind) {
			t.Errorf("%s: kind %q, want one of %v", f.Path, f.Kind, kindRank)
		}
		parent := filepath.Dir(f.Path)
		if real, err := filepath.EvalSymlinks(parent); err != nil || real != parent {
			t.Errorf("%s: parent directory %s is not a real directory (resolves to %q, %v)", f.Path, parent, real, err)
		}
		fi, err := os.Lstat(f.Path)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if f.Link != "" {
			target, err := os.Readlink(f.Path)
			if err != nil || target != f.Link {
				t.Errorf("%s: Link %q, want %q (%v)", f.Path, f.Link, target, err)
			}
			_, to, ok := resolveInPath(files, f.Path)
			under := slices.ContainsFunc(files, func(g manifest.File) bool { return strings.HasPrefix(g.Path, to+"/") })
			if !ok && !under { // neither a file nor a directory of the closure
				t.Errorf("%s -> %s: the target %s is not in the closure", f.Path, f.Link, to)
			}
			continue
		}
		if !fi.Mode().IsRegular() || f.Size != fi.Size() {
			t.Errorf("%s: Size %d, want a regular file of %d bytes (mode %v)", f.Path, f.Size, fi.Size(), fi.Mode())
		}
	}
}

// realFiles returns the real paths of the closure's regular files.
func realFiles(files []manifest.File) []string {
	var out []string
	for _, f := range files {
		if f.Link == "" {
			out = append(out, f.Path)
		}
	}
	return out
}

func kindOf(files []manifest.File, p string) string {
	for _, f := range files {
		if f.Path == p {
			return f.Kind
		}
	}
	return ""
}

var lddLine = regexp.MustCompile(`^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$`)

// lddPaths runs ldd on prog and returns the paths it resolved.
func lddPaths(t *testing.T, prog string, env ...string) []string {
	t.Helper()
	cmd := exec.Command("ldd", prog)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", prog, err, out)
	}
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := lddLine.FindStringSubmatch(sc.Text()); m != nil {
			paths = append(paths, m[2])
		} else if strings.Contains(sc.Text(), "not found") {
			t.Fatalf("ldd %s: %s", prog, sc.Text())
		}
	}
	if len(paths) == 0 {
		t.Fatalf("ldd %s printed no paths:\n%s", prog, out)
	}
	return paths
}

// compareWithLdd checks that every path ldd prints resolves through the
// closure and that the closure's real files are exactly ldd's (real paths)
// plus the program.
func compareWithLdd(t *testing.T, prog string, files []manifest.File, env ...string) {
	t.Helper()
	checkClosure(t, files)
	realProg, err := filepath.EvalSymlinks(prog)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{realProg}
	for _, p := range lddPaths(t, prog, env...) {
		if _, ok := resolveIn(files, p); !ok {
			t.Errorf("ldd's %s does not resolve through the closure", p)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, real)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if diff := cmp.Diff(want, realFiles(files)); diff != "" {
		t.Errorf("real files of the closure of %s differ from ldd's (-ldd +closure):\n%s", prog, diff)
	}
}

// patchELF copies src to dst with one byte of the ELF header changed.
func patchELF(t *testing.T, src, dst string, off int, b byte) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data[off] = b
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, prog string, env ...string) string {
	t.Helper()
	cmd := exec.Command(prog, "1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running %s: %v\n%s", prog, err, out)
	}
	return string(out)
}

// TestClosureDynamic builds a program linked to libm and to a library found
// through DT_RUNPATH $ORIGIN/lib, past decoys of the wrong class and
// machine; the library has its own RUNPATH for its own dependency.
func TestClosureDynamic(t *testing.T) {
	dir := tempDir(t)
	for _, d := range []string{"lib", "barlib", "bin"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gcc(t, dir, "int bar(void) { return 40; }\n", "-shared", "-fPIC", "-Wl,-soname,libbar.so", "barlib/libbar.so")
	gcc(t, dir, "int bar(void); int foo(void) { return bar() + 2; }\n",
		"-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-Lbarlib", "-lbar", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../barlib", "lib/libfoo.so")
	gcc(t, dir, mainSrc, "-Llib", "-lfoo", "-lm", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/bad32:$ORIGIN/badmach:$ORIGIN/lib", "prog")
	// Decoys ld.so passes over: the same library claiming ELFCLASS32, and
	// claiming to be for AArch64.
	foo := filepath.Join(dir, "lib/libfoo.so")
	patchELF(t, foo, filepath.Join(dir, "bad32/libfoo.so"), elf.EI_CLASS, byte(elf.ELFCLASS32))
	patchELF(t, foo, filepath.Join(dir, "badmach/libfoo.so"), 18, byte(elf.EM_AARCH64))
	prog := filepath.Join(dir, "prog")
	if got, want := run(t, prog), "42 4\n"; got != want {
		t.Fatalf("%s printed %q, want %q", prog, got, want)
	}

	info, err := Inspect(prog)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindDynamic || info.Interp == "" {
		t.Errorf("Inspect: kind %q interp %q, want dynamic with an interpreter", info.Kind, info.Interp)
	}
	if want := []string{"$ORIGIN/bad32", "$ORIGIN/badmach", "$ORIGIN/lib"}; !slices.Equal(info.RunPath, want) {
		t.Errorf("Inspect: RunPath %q, want %q", info.RunPath, want)
	}
	if !slices.Contains(info.Needed, "libfoo.so") || !slices.Contains(info.Needed, "libm.so.6") {
		t.Errorf("Inspect: Needed %q, want libfoo.so and libm.so.6", info.Needed)
	}

	files, err := Closure(prog, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareWithLdd(t, prog, files)
	for p, want := range map[string]string{
		prog:                                    FileProgram,
		filepath.Join(dir, "lib/libfoo.so"):     FileLibrary,
		filepath.Join(dir, "barlib/libbar.so"):  FileLibrary,
		filepath.Join(dir, "bad32/libfoo.so"):   "",
		filepath.Join(dir, "badmach/libfoo.so"): "",
	} {
		if got := kindOf(files, p); got != want {
			t.Errorf("%s: kind %q, want %q", p, got, want)
		}
	}
	ld, ok := resolveIn(files, info.Interp)
	if !ok || ld.Kind != FileInterpreter {
		t.Errorf("PT_INTERP %s resolves to %+v (%v) in the closure, want an interpreter", info.Interp, ld, ok)
	}
	libm, ok := resolveIn(files, lddPaths(t, prog)[slices.IndexFunc(lddPaths(t, prog), func(p string) bool { return strings.Contains(p, "libm.so") })])
	if !ok || libm.Kind != FileLibrary {
		t.Errorf("libm resolves to %+v (%v), want a library", libm, ok)
	}
}

// TestClosureRPathInherited checks that DT_RPATH of the program applies to
// the dependencies of its libraries (which have no paths of their own), as
// ld.so does, and that LD_LIBRARY_PATH is searched.
func TestClosureRPathInherited(t *testing.T) {
	dir := tempDir(t)
	if err := os.Mkdir(filepath.Join(dir, "rp"), 0o755); err != nil {
		t.Fatal(err)
	}
	gcc(t, dir, "int bar(void) { return 40; }\n", "-shared", "-fPIC", "-Wl,-soname,libbar.so", "rp/libbar.so")
	gcc(t, dir, "int bar(void); int foo(void) { return bar() + 2; }\n", "-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-Lrp", "-lbar", "rp/libfoo.so")
	gcc(t, dir, mainSrc, "-Lrp", "-lfoo", "-lm", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/rp", "-Wl,--allow-shlib-undefined", "rpath-prog")
	gcc(t, dir, mainSrc, "-Lrp", "-lfoo", "-lm", "-Wl,--allow-shlib-undefined", "plain-prog")

	prog := filepath.Join(dir, "rpath-prog")
	if got, want := run(t, prog), "42 4\n"; got != want {
		t.Fatalf("%s printed %q, want %q", prog, got, want)
	}
	info, err := Inspect(prog)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"$ORIGIN/rp"}; !slices.Equal(info.RPath, want) || info.RunPath != nil {
		t.Errorf("Inspect: RPath %q RunPath %q, want RPath %q", info.RPath, info.RunPath, want)
	}
	files, err := Closure(prog, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareWithLdd(t, prog, files)
	if kindOf(files, filepath.Join(dir, "rp/libbar.so")) != FileLibrary {
		t.Errorf("libbar.so (found through the inherited DT_RPATH) missing from %v", files)
	}

	plain := filepath.Join(dir, "plain-prog")
	_, err = Closure(plain, Options{})
	if !errors.Is(err, ErrNoLibrary) {
		t.Fatalf("Closure without a library path: error %v, want ErrNoLibrary", err)
	}
	for _, s := range []string{"libfoo.so", "needed by " + plain, "default directories", "/usr/lib"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	env := "LD_LIBRARY_PATH=" + filepath.Join(dir, "rp")
	files, err = Closure(plain, Options{LDLibraryPath: []string{filepath.Join(dir, "rp")}})
	if err != nil {
		t.Fatal(err)
	}
	compareWithLdd(t, plain, files, env)
}

// TestClosureLDSOConf checks the fallback to ld.so.conf (with includes)
// when there is no cache.
func TestClosureLDSOConf(t *testing.T) {
	dir := tempDir(t)
	for _, d := range []string{"lib", "conf.d"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gcc(t, dir, "int foo(void) { return 42; }\n", "-shared", "-fPIC", "-Wl,-soname,libfoo.so", "lib/libfoo.so")
	gcc(t, dir, "int foo(void); int main(void) { return foo() - 42; }\n", "-Llib", "-lfoo", "prog")
	conf := filepath.Join(dir, "ld.so.conf")
	write(t, conf, "# comment\ninclude conf.d/*.conf\n/usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu\n")
	write(t, filepath.Join(dir, "conf.d/a.conf"), filepath.Join(dir, "lib")+" # ours\n")
	write(t, filepath.Join(dir, "conf.d/b.conf"), "/nonexistent\n")

	dirs, err := readLDSOConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "lib"), "/nonexistent", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"}
	if diff := cmp.Diff(want, dirs); diff != "" {
		t.Errorf("readLDSOConf (-want +got):\n%s", diff)
	}

	opts := Options{LDSOCache: filepath.Join(dir, "no-cache"), LDSOConf: conf, DefaultDirs: []string{}}
	files, err := Closure(filepath.Join(dir, "prog"), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkClosure(t, files)
	if kindOf(files, filepath.Join(dir, "lib/libfoo.so")) != FileLibrary {
		t.Errorf("libfoo.so (in a directory of ld.so.conf) missing from %v", files)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestInspectKinds(t *testing.T) {
	dir := tempDir(t)
	src := "int main(void) { return 0; }\n"
	gcc(t, dir, src, "-static", "static")
	gcc(t, dir, src, "-static-pie", "static-pie")
	gcc(t, dir, src, "-pie", "-fPIE", "pie")
	gcc(t, dir, src, "-no-pie", "nopie")
	write(t, filepath.Join(dir, "script"), "#!/bin/sh -e\necho hi\n")
	write(t, filepath.Join(dir, "script-env"), "#! \t/usr/bin/env  python3 -u \nprint(1)\n")

	for _, tc := range []struct {
		name string
		want Info
	}{
		{"static", Info{Kind: KindStatic}},
		{"static-pie", Info{Kind: KindStaticPIE}},
		{"pie", Info{Kind: KindDynamic}},
		{"nopie", Info{Kind: KindDynamic}},
		{"script", Info{Kind: KindScript, Interp: "/bin/sh", ScriptArgs: []string{"-e"}}},
		{"script-env", Info{Kind: KindScript, Interp: "/usr/bin/env", ScriptArgs: []string{"python3 -u"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			got, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tc.want.Kind || got.Kind == KindScript && (got.Interp != tc.want.Interp || !slices.Equal(got.ScriptArgs, tc.want.ScriptArgs)) {
				t.Errorf("Inspect(%s) = kind %q interp %q args %q, want %q %q %q",
					tc.name, got.Kind, got.Interp, got.ScriptArgs, tc.want.Kind, tc.want.Interp, tc.want.ScriptArgs)
			}
			if got.Kind == KindStatic || got.Kind == KindStaticPIE {
				if got.Interp != "" || len(got.Needed) != 0 {
					t.Errorf("static binary with interp %q needed %q", got.Interp, got.Needed)
				}
				files, err := Closure(p, Options{})
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := os.Stat(p)
				want := []manifest.File{{Path: p, Kind: FileProgram, Size: fi.Size()}}
				if diff := cmp.Diff(want, files); diff != "" {
					t.Errorf("Closure of a static binary (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestClosureScripts(t *testing.T) {
	dir := tempDir(t)
	sh := filepath.Join(dir, "sh-script")
	env := filepath.Join(dir, "env-script")
	nested := filepath.Join(dir, "nested-script")
	write(t, sh, "#!/bin/sh\necho hi\n")
	write(t, env, "#!/usr/bin/env sh\necho hi\n")
	write(t, nested, "#!"+env+"\n")
	path := []string{"/usr/local/bin", "/usr/bin", "/bin"}
	shInPath := (&closer{opts: Options{Path: path}}).lookPath("sh")
	if shInPath == "" {
		t.Fatal("no sh in /usr/local/bin:/usr/bin:/bin")
	}

	for _, tc := range []struct {
		script string
		interp []string // paths that must resolve to script interpreters
	}{
		{sh, []string{"/bin/sh"}},
		{env, []string{"/usr/bin/env", shInPath}},
		{nested, []string{env, "/usr/bin/env", shInPath}},
	} {
		t.Run(filepath.Base(tc.script), func(t *testing.T) {
			files, err := Closure(tc.script, Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			checkClosure(t, files)
			if got := kindOf(files, tc.script); got != FileProgram {
				t.Errorf("%s: kind %q, want program", tc.script, got)
			}
			for _, p := range tc.interp {
				if f, ok := resolveIn(files, p); !ok || f.Kind != FileScriptInterpreter {
					t.Errorf("%s resolves to %+v (%v) in the closure, want a script-interpreter", p, f, ok)
				}
			}
			// The interpreters' own closures: sh's libc and ld.so.
			for _, p := range lddPaths(t, "/bin/sh") {
				if _, ok := resolveIn(files, p); !ok {
					t.Errorf("%s (ldd /bin/sh) does not resolve through the closure", p)
				}
			}
		})
	}
}

func TestClosureErrors(t *testing.T) {
	dir := tempDir(t)
	noInterp := filepath.Join(dir, "no-interp")
	write(t, noInterp, "#!/nonexistent/sh\n")
	noEnvTarget := filepath.Join(dir, "no-env-target")
	write(t, noEnvTarget, "#!/usr/bin/env bespoke-no-such-interpreter\n")
	text := filepath.Join(dir, "text")
	write(t, text, "just text\n")
	noExec := filepath.Join(dir, "no-exec")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gcc(t, dir, "int main(void) { return 0; }\n", "-Wl,--dynamic-linker=/nonexistent/ld.so", "bad-ptinterp")
	deep := scriptChain(t, dir, MaxScriptDepth+1)

	for _, tc := range []struct {
		name    string
		path    string
		want    error
		inspect bool // Inspect fails too (not only Closure)
	}{
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist, true},
		{"directory", dir, ErrNotExecutable, true},
		{"no exec bit", noExec, ErrNotExecutable, true},
		{"text", text, ErrNotELF, true},
		{"missing #! interpreter", noInterp, ErrNoInterpreter, false},
		{"missing env target", noEnvTarget, ErrNoInterpreter, false},
		{"missing PT_INTERP", filepath.Join(dir, "bad-ptinterp"), ErrNoInterpreter, false},
		{"scripts too deep", deep, ErrScriptDepth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Closure(tc.path, Options{Path: []string{"/usr/bin", "/bin"}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Closure(%s): error %v, want %v", tc.path, err, tc.want)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
			_, err = Inspect(tc.path)
			if tc.inspect && !errors.Is(err, tc.want) {
				t.Errorf("Inspect(%s): error %v, want %v", tc.path, err, tc.want)
			}
			if !tc.inspect && err != nil {
				t.Errorf("Inspect(%s): %v, want no error", tc.path, err)
			}
		})
	}
}

// scriptChain writes n scripts in dir, each the #! interpreter of the
// next, the first run by /bin/sh, and returns the last.
func scriptChain(t *testing.T, dir string, n int) string {
	t.Helper()
	prev := "/bin/sh"
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("chain%d", i))
		write(t, p, "#!"+prev+"\necho ok\n")
		prev = p
	}
	return prev
}

// TestScriptDepthMatchesKernel checks that the longest chain of scripts
// Closure accepts is the longest the kernel runs.
func TestScriptDepthMatchesKernel(t *testing.T) {
	for _, n := range []int{MaxScriptDepth, MaxScriptDepth + 1} {
		p := scriptChain(t, tempDir(t), n)
		_, closureErr := Closure(p, Options{})
		out, runErr := exec.Command(p).CombinedOutput()
		if (closureErr == nil) != (runErr == nil) {
			t.Errorf("chain of %d scripts: Closure error %v, running it: %v (%s)", n, closureErr, runErr, out)
		}
		if n > MaxScriptDepth && !errors.Is(closureErr, ErrScriptDepth) {
			t.Errorf("chain of %d scripts: error %v, want ErrScriptDepth", n, closureErr)
		}
	}
}

// TestClosureSymlinks checks chains of links (relative and absolute
// targets) and symlinked directories on the way.
func TestClosureSymlinks(t *testing.T) {
	dir := tempDir(t)
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	gcc(t, dir, "int main(void) { return 0; }\n", "-static", "real/prog")
	realProg := filepath.Join(dir, "real/prog")
	for _, l := range [][2]string{
		{"a", "b"},                      // relative
		{"b", realProg},                 // absolute
		{"linkdir", "real"},             // a directory
		{"c", "linkdir/../real/./prog"}, // through the linked directory
	} {
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(realProg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want []manifest.File
	}{
		{"a", []manifest.File{
			{Path: filepath.Join(dir, "a"), Kind: FileProgram, Link: "b"},
			{Path: filepath.Join(dir, "b"), Kind: FileProgram, Link: realProg},
			{Path: realProg, Kind: FileProgram, Size: fi.Size()},
		}},
		{"linkdir/prog", []manifest.File{
			{Path: filepath.Join(dir, "linkdir"), Kind: FileProgram, Link: "real"},
			{Path: realProg, Kind: FileProgram, Size: fi.Size()},
		}},
		{"c", []manifest.File{
			{Path: filepath.Join(dir, "c"), Kind: FileProgram, Link: "linkdir/../real/./prog"},
			{Path: filepath.Join(dir, "linkdir"), Kind: FileProgram, Link: "real"},
			{Path: realProg, Kind: FileProgram, Size: fi.Size()},
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			files, err := Closure(filepath.Join(dir, tc.path), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, files); diff != "" {
				t.Errorf("Closure(%s) (-want +got):\n%s", tc.path, diff)
			}
			checkClosure(t, files)
		})
	}
}

// TestClosureLs compares the closure of /usr/bin/ls with ldd's answer and
// checks that symlinked directories on the host (/lib64 -> usr/lib64 on a
// merged-/usr system) appear as entries.
func TestClosureLs(t *testing.T) {
	const ls = "/usr/bin/ls"
	files, err := Closure(ls, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareWithLdd(t, ls, files)
	info, err := Inspect(ls)
	if err != nil {
		t.Fatal(err)
	}
	// Every symlink on the way to the interpreter is an entry.
	links := 0
	cur := "/"
	for _, comp := range splitComponents(info.Interp) {
		p := filepath.Join(cur, comp)
		target, err := os.Readlink(p)
		if err != nil {
			cur = p // not a symlink
			continue
		}
		links++
		want := manifest.File{Path: p, Kind: FileInterpreter, Link: target}
		i := slices.IndexFunc(files, func(f manifest.File) bool { return f.Path == p })
		if i < 0 || files[i] != want {
			t.Errorf("symlink %s -> %s on the way to %s: want %+v in the closure", p, target, info.Interp, want)
		}
		if cur, err = filepath.EvalSymlinks(p); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d symlinks on the way to %s", links, info.Interp)
}

func TestClosureRedis(t *testing.T) {
	prog := testenv.Command(t, "redis-server")
	files, err := Closure(prog, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareWithLdd(t, prog, files)
}

var ldconfigLine = regexp.MustCompile(`^\t(\S+) \(([^)]*)\) => (\S+)$`)

// TestLDCacheReal parses the host's /etc/ld.so.cache and compares it with
// what ldconfig -p prints.
func TestLDCacheReal(t *testing.T) {
	c, err := readLDCache("/etc/ld.so.cache")
	if err != nil {
		t.Fatal(err)
	}
	libc := c.candidates("libc.so.6", nil)
	if len(libc) == 0 {
		t.Fatal("libc.so.6 not in the cache")
	}
	if _, err := os.Stat(libc[0]); err != nil || filepath.Base(libc[0]) != "libc.so.6" {
		t.Errorf("cache says libc.so.6 is at %s: %v", libc[0], err)
	}

	ldconfig, err := exec.LookPath("ldconfig")
	if err != nil {
		ldconfig = "/sbin/ldconfig"
	}
	out, err := exec.Command(ldconfig, "-p").Output()
	if err != nil {
		t.Fatalf("ldconfig -p: %v", err)
	}
	type pair struct{ Name, Path string }
	var want, got []pair
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := ldconfigLine.FindStringSubmatch(sc.Text()); m != nil {
			want = append(want, pair{m[1], m[3]})
		}
	}
	for _, e := range c.Entries {
		got = append(got, pair{e.Name, e.Path})
	}
	if len(want) == 0 {
		t.Fatalf("no entries in ldconfig -p output:\n%s", out)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cache entries differ from ldconfig -p (-ldconfig +parsed):\n%s", diff)
	}
	if !strings.Contains(string(out), c.Generator) || c.Generator == "" {
		t.Errorf("generator %q not in ldconfig -p output", c.Generator)
	}
}

// TestInspectForeignAndTruncated: an ELF of another machine and a
// truncated ELF are named as such, not "exec format error" or "EOF".
func TestInspectForeignAndTruncated(t *testing.T) {
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true")
	}
	dir := t.TempDir()
	arm := append([]byte{}, data...)
	binary.LittleEndian.PutUint16(arm[18:], uint16(elf.EM_AARCH64))
	i386 := append([]byte{}, data...)
	binary.LittleEndian.PutUint16(i386[18:], uint16(elf.EM_386))
	for _, tc := range []struct {
		name string
		data []byte
		err  error
		msg  string
	}{
		{"arm", arm, ErrWrongArch, "an aarch64 (arm64) binary"},
		{"i386", i386, ErrWrongArch, "a 32-bit x86 binary"},
		{"truncated", data[:100], ErrTruncated, "(100 bytes)"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, tc.data, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Inspect(p)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.err, tc.msg)
		}
	}
}
