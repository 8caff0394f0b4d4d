//go:build linux && amd64

package trace

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/libshake"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// TestRunCoverage traces a shell running date twice (a fork, an exec)
// with breakpoints at every function entry: the programs print what they
// print untraced, and the manifest lists libc's functions that ran
// (setlocale) and not those that did not (accept4).
func TestRunCoverage(t *testing.T) {
	testenv.Full(t)
	libc, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	offset := func(name string) uint64 {
		f, err := elf.Open(libc)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		syms, _ := f.DynamicSymbols()
		text := f.Section(".text")
		for _, s := range syms {
			if s.Name == name {
				return s.Value - text.Addr + text.Offset
			}
		}
		t.Fatalf("libc has no %s", name)
		return 0
	}
	script := "date -u -d @1700000000 '+%Y %j'; date -u -d @1700000000 '+%A'"
	for _, noSeccomp := range []bool{false, true} {
		var out, log bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		m, err := Run(ctx, Options{Program: "sh", Args: []string{"-c", script}, Stdout: &out, Log: &log, NoSeccomp: noSeccomp, Coverage: libshake.EntryOffsets})
		cancel()
		if err != nil {
			t.Fatalf("NoSeccomp %v: %v\n%s", noSeccomp, err, log.String())
		}
		if got, want := out.String(), "2023 318\nTuesday\n"; got != want {
			t.Errorf("NoSeccomp %v: output %q, want %q", noSeccomp, got, want)
		}
		ran := m.FunctionsRun[libc]
		if len(ran) < 20 || !slices.Contains(ran, offset("setlocale")) || slices.Contains(ran, offset("accept4")) {
			t.Errorf("NoSeccomp %v: libc: %d functions ran, setlocale %v, accept4 %v; want setlocale and not accept4", noSeccomp, len(ran), slices.Contains(ran, offset("setlocale")), slices.Contains(ran, offset("accept4")))
		}
		var files []string
		for f := range m.FunctionsRun {
			files = append(files, filepath.Base(f))
		}
		if !slices.Contains(files, "date") || !slices.Contains(files, "dash") {
			t.Errorf("NoSeccomp %v: coverage of %v, want date and dash", noSeccomp, files)
		}
		t.Logf("NoSeccomp %v: %d files, %d functions of libc ran", noSeccomp, len(m.FunctionsRun), len(ran))
	}
}

// TestRunCoverageReload: a library unloaded and loaded again (as apache
// does with its modules between its two configuration passes) is mapped
// afresh, here at the same address: the functions that run after the
// reload (cbrt; fdim ran before it) count too.
func TestRunCoverageReload(t *testing.T) {
	testenv.Full(t)
	testenv.Command(t, "gcc")
	libm, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libm.so.6")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "reload.c")
	prog := filepath.Join(dir, "reload")
	if err := os.WriteFile(src, []byte(`#include <dlfcn.h>
#include <stdio.h>
int main(void) {
	void *h = dlopen("libm.so.6", RTLD_NOW);
	double (*d)(double, double) = (double (*)(double, double))dlsym(h, "fdim");
	printf("%.1f\n", d(3, 1));
	dlclose(h);
	h = dlopen("libm.so.6", RTLD_NOW);
	double (*c)(double) = (double (*)(double))dlsym(h, "cbrt");
	printf("%.1f\n", c(8));
	return 0;
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-o", prog, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	f, err := elf.Open(libm)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.DynamicSymbols()
	text := f.Section(".text")
	offs := map[string]uint64{}
	for _, s := range syms {
		if s.Name == "fdim" || s.Name == "cbrt" {
			offs[s.Name] = s.Value - text.Addr + text.Offset
		}
	}
	f.Close()
	var out bytes.Buffer
	m, err := Run(context.Background(), Options{Program: prog, Stdout: &out, Coverage: libshake.EntryOffsets})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "2.0\n2.0\n" {
		t.Errorf("output %q", out.String())
	}
	ran := m.FunctionsRun[libm]
	for _, name := range []string{"fdim", "cbrt"} {
		if !slices.Contains(ran, offs[name]) {
			t.Errorf("%s (the entry at %#x) is not among the %d functions of libm that ran", name, offs[name], len(ran))
		}
	}
}
