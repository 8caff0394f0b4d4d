package image_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/verify"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// TestRedisKernelDCE builds the redis example with --kernel-dce and a
// shaken syscall table: Clang ThinLTO, and bespoke-ld's --gc-sections at
// the link (a kernel build of its own from scratch, about 10 minutes on 2
// cores). The image passes its workload (the build's smoke boot) and a
// removed syscall returns ENOSYS; the link removed functions, among them
// the entry points of most removed syscalls, which are no longer in
// System.map; vmlinux holds less code than the shared GCC kernel of the
// same options with every syscall (the redis image's); and bespoke verify
// passes.
func TestRedisKernelDCE(t *testing.T) {
	testenv.Command(t, "clang-14")
	testenv.Command(t, "ld.lld-14")
	testenv.Command(t, "llvm-ar-14")
	_, gcc := redisImage(t)
	out, rep := redisVariant(t, vm.TargetMicrovm, "the redis kernel with --kernel-dce (Clang ThinLTO, linked with --gc-sections)",
		func(sp *spec.Spec) { sp.Kernel.ShakeSyscalls, sp.Kernel.DCE = true, true })
	if rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("the workload against the --kernel-dce kernel: %+v", rep.Workload)
	}
	checkShaken(t, out, rep)
	g := rep.Kernel.GCSections
	if g == nil {
		t.Fatalf("kernel build %+v: no gc_sections (was vmlinux linked by bespoke-ld?)", rep.Kernel)
	}
	t.Logf("--gc-sections removed %d functions, %d data objects, %d other sections, %d syscall entry points; vmlinux code %d bytes (the GCC kernel's: %d), bzImage %d (%d)",
		g.Functions, g.Data, g.Other, len(g.Syscalls), rep.Kernel.Vmlinux.Code, gcc.Kernel.Vmlinux.Code, rep.Kernel.BzImageBytes, gcc.Kernel.BzImageBytes)
	if g.Functions < 1000 {
		t.Errorf("--gc-sections removed %d functions; want over 1000 (3704 when measured)", g.Functions)
	}
	sysmap, err := os.ReadFile(filepath.Join(out, image.SystemMapFile))
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, name := range rep.Syscalls.Removed {
		if !slices.Contains(g.Syscalls, name) {
			continue
		}
		removed++
		if strings.Contains(string(sysmap), " __x64_sys_"+name+"\n") {
			t.Errorf("the link reports __x64_sys_%s removed, and System.map has it", name)
		}
	}
	t.Logf("%d of the %d removed syscalls lost their entry point", removed, len(rep.Syscalls.Removed))
	if removed < len(rep.Syscalls.Removed)/2 {
		t.Errorf("%d of the %d syscalls removed from the table lost their entry point at the link; want half or more", removed, len(rep.Syscalls.Removed))
	}
	if rep.Kernel.Vmlinux.Code >= gcc.Kernel.Vmlinux.Code {
		t.Errorf("vmlinux code: %d bytes with --kernel-dce, %d in the GCC kernel; want less", rep.Kernel.Vmlinux.Code, gcc.Kernel.Vmlinux.Code)
	}
	res, err := verify.Run(context.Background(), verify.Options{ImageDir: out, Progress: testWriter{t}})
	if err != nil || !res.Passed {
		t.Fatalf("verify of the --kernel-dce image: %v", err)
	}
	t.Logf("verify: %s", res.Summary())
}
