package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kdce"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// kernelTools are what a spec's kernel builds run: the compiler, make's
// variables and environment, and what they add to the build cache's key.
// kernel.dce (--kernel-dce) makes them Clang ThinLTO with bespoke-ld as the
// linker (internal/kdce); otherwise they are kbuild's defaults (GCC).
type kernelTools struct {
	CC       string   // "" is kbuild's default
	Make     []string // make variables of the build
	Kconfig  []string // make variables of the kconfig runs
	Enable   []string // Kconfig symbols the toolchain asks for
	Env      []string
	KeyExtra []string
}

// llvmTools are the LLVM programs Kbuild runs with LLVM=1 (or LLVM=-NN,
// the suffixed names Debian installs).
var llvmTools = []string{"clang", "ld.lld", "llvm-ar", "llvm-nm", "llvm-objcopy", "llvm-objdump", "llvm-readelf", "llvm-strip"}

// llvmSuffixes are the LLVM versions looked for, newest first; "" is the
// unsuffixed names (Debian's clang and lld packages). Linux 6.12 needs
// LLVM 13.0.1 or later.
var llvmSuffixes = []string{"", "-19", "-18", "-17", "-16", "-15", "-14", "-13"}

// errNoLLVM says how to get the LLVM toolchain.
var errNoLLVM = errors.New("--kernel-dce (kernel.dce) compiles the kernel with Clang ThinLTO and links it with lld: install clang, lld and llvm (Debian 12: apt-get install clang-14 lld-14 llvm-14; make deps does)")

// findLLVM returns the suffix of a complete LLVM toolchain on PATH.
func findLLVM() (string, error) {
	for _, suf := range llvmSuffixes {
		ok := true
		for _, t := range llvmTools {
			if _, err := exec.LookPath(t + suf); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return suf, nil
		}
	}
	return "", errNoLLVM
}

// toolsFor returns the kernel tools of sp; cache holds bespoke-ld's copy.
func toolsFor(ctx context.Context, sp *spec.Spec, cache string) (kernelTools, error) {
	t := kernelTools{Make: MakeVars(sp)}
	if !sp.Kernel.DCE {
		return t, nil
	}
	suf, err := findLLVM()
	if err != nil {
		return t, err
	}
	llvm := "LLVM=1"
	if suf != "" {
		llvm = "LLVM=" + suf
	}
	out, err := exec.CommandContext(ctx, "clang"+suf, "--version").Output()
	if err != nil {
		return t, fmt.Errorf("running clang%s --version: %w", suf, err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	ld, sum, err := ldWrapper(ctx, cache)
	if err != nil {
		return t, err
	}
	t.CC = "clang" + suf
	if _, err := exec.LookPath("ccache"); err == nil {
		t.CC = "ccache " + t.CC
	}
	t.Make = append(t.Make, llvm, "LD="+ld)
	t.Kconfig = []string{llvm}
	t.Enable = []string{"LTO_CLANG_THIN"}
	t.Env = []string{kdce.EnvLD + "=ld.lld" + suf}
	t.KeyExtra = []string{"dce", "bespoke-ld " + sum, strings.TrimSpace(version)}
	return t, nil
}

// ldWrapper returns a copy of bespoke-ld in the cache, named by its
// contents (so that the kernel build's make command, and with it the
// cache key, is the same from any checkout), and its hash.
func ldWrapper(ctx context.Context, cache string) (string, string, error) {
	src, err := initramfs.LDBinary(ctx, cache)
	if err != nil {
		return "", "", err
	}
	sum, err := fileSum(src)
	if err != nil {
		return "", "", err
	}
	dst := filepath.Join(cache, "tools", initramfs.LDName+"-"+sum[:16])
	if _, err := os.Stat(dst); err == nil {
		return dst, sum, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", "", err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dst, os.Getpid())
	defer os.Remove(tmp)
	if err := atomicdir.CopyFile(src, tmp); err != nil {
		return "", "", fmt.Errorf("copying the linker wrapper into the cache: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", "", err
	}
	return dst, sum, os.Rename(tmp, dst)
}

// apply puts the tools into a kernel build's options.
func (t kernelTools) apply(o *kbuild.Options) {
	o.CC = t.CC
	o.ExtraMake = t.Make
	o.Env = append(o.Env, t.Env...)
	o.KeyExtra = append(o.KeyExtra, t.KeyExtra...)
}
