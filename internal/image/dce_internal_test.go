package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bespoke-os/bespoke/internal/spec"
)

// TestFindLLVM: a complete suffixed toolchain is found as LLVM=-NN; one
// with a tool missing is not; without one, --kernel-dce says what to
// install, and a spec without dce needs none.
func TestFindLLVM(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	for _, tool := range llvmTools {
		for _, suf := range []string{"-14", "-16"} {
			if tool == "llvm-strip" && suf == "-16" {
				continue // an incomplete LLVM 16
			}
			if err := os.WriteFile(filepath.Join(dir, tool+suf), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if suf, err := findLLVM(); err != nil || suf != "-14" {
		t.Errorf("findLLVM = %q, %v; want -14 (16 lacks llvm-strip)", suf, err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := findLLVM(); !errors.Is(err, errNoLLVM) {
		t.Errorf("findLLVM without clang: %v", err)
	}
	sp := &spec.Spec{Kernel: spec.Kernel{DCE: true, March: "x86-64-v3"}}
	if _, err := toolsFor(context.Background(), sp, t.TempDir()); !errors.Is(err, errNoLLVM) {
		t.Errorf("toolsFor with dce and no clang: %v, want %v", err, errNoLLVM)
	}
	sp.Kernel.DCE = false
	tools, err := toolsFor(context.Background(), sp, t.TempDir())
	if err != nil || tools.CC != "" || !slices.Equal(tools.Make, []string{"KCFLAGS=-march=x86-64-v3"}) || tools.Enable != nil {
		t.Errorf("toolsFor without dce: %+v, %v; want kbuild's defaults and the march", tools, err)
	}
}
