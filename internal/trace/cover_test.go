//go:build linux && amd64

package trace

import (
	"bytes"
	"context"
	"debug/elf"
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
