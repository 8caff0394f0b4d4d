// Package testkernel is the kernel that the full tier's tests share, and
// the account of the kernels a test run built.
//
// Kernel builds dominate the full tier (6-11 minutes each from scratch on
// 2 cores), so tests whose subject is not one particular kernel boot one
// shared kernel per target: the base configuration of the target with the
// network, plus Enable, the options every test program needs (the redis,
// nginx and postgresql examples, Redis on a Unix socket, the shell and the
// static test programs). The first test that asks for it builds it and
// every other one gets a cache hit. Tests that build an image through the
// whole pipeline add Enable to their spec's kernel.enable, so that the
// pipeline's kernel is this one too (TestRedisImage checks that it is).
//
// Each test that needs a kernel logs which one ("kernel: shared
// qemu-microvm test kernel ..."), and Ledger lists what a run built (make
// test prints it and checks it against Budget: scripts/kernel-budget).
package testkernel

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// Enable are the options of the shared test kernel beyond its target's
// base with the network: the union of what the test programs' traces ask
// for (features.Required), so that --kernel-from accepts this kernel for
// each of them. A test program that needs one more fails with an error
// naming it ("the kernel of ... lacks CONFIG_X"): add it here.
var Enable = []string{
	// Both roots (initramfs.RootKconfig), as image.Build asks: the xz
	// initramfs, and the erofs disk with its overlay, compressed with
	// lz4hc or lzma.
	"BLK_DEV_INITRD", "RD_XZ", "XZ_DEC_X86",
	"BLOCK", "VIRTIO_BLK", "EROFS_FS", "EROFS_FS_ZIP", "EROFS_FS_ZIP_LZMA", "OVERLAY_FS", "DEVTMPFS_MOUNT",
	// The six examples, the Go server and Redis on a Unix socket, as
	// traced on a Debian 12 host with an ext4 root.
	"EXT4_FS", "FILE_LOCKING", "POSIX_TIMERS", "RSEQ", "TRANSPARENT_HUGEPAGE", "UNIX",
	"IPV6", "SIGNALFD", "SYSVIPC", "CGROUPS", "IO_URING", "NUMA", "ANON_VMA_NAME", "MPTCP", "MPTCP_IPV6",
	// qemu-pc's virtio transport, in the qemu-microvm kernel too (a
	// microvm guest has no PCI bus: the kernel says "PCI: Fatal: No
	// config space access function found" and goes on without it, at no
	// measurable cost): then the qemu-pc kernel, whose base
	// asks for them itself (EnableFor leaves them out), differs in
	// virtio-mmio alone and continues the qemu-microvm kernel's build dir
	// with a few objects; PCI is in 408 of its 880 objects' dependencies.
	"PCI", "VIRTIO_PCI",
	// The guest's seccomp filter (image.SeccompKconfig), on by default
	// for a program with ports.
	"SECCOMP", "SECCOMP_FILTER",
}

// pcTransport are the options of Enable that qemu-pc's base parts ask
// for themselves.
var pcTransport = []string{"PCI", "VIRTIO_PCI"}

// EnableFor returns the options of Enable a test adds for target: all of
// them, but for qemu-pc those its own base parts must provide, so that a
// test of the qemu-pc kernel tests its base.
func EnableFor(target string) []string {
	if target != vm.TargetPC {
		return slices.Clone(Enable)
	}
	return slices.DeleteFunc(slices.Clone(Enable), func(s string) bool { return slices.Contains(pcTransport, s) })
}

// Kernel is a built shared kernel.
type Kernel struct {
	Target string
	Dir    string // holds bzImage, vmlinux, .config, System.map, build.json
	Config []byte
	Meta   kbuild.Meta
}

// BzImage is the kernel image's path.
func (k *Kernel) BzImage() string { return filepath.Join(k.Dir, "bzImage") }

// Config returns the .config of the shared kernel for target, generated
// by the kernel's kconfig.
func Config(ctx context.Context, tree *ksrc.Tree, target string) ([]byte, error) {
	res, err := kconfig.Generate(ctx, kconfig.Options{Tree: tree, Target: target, Net: true, Enable: EnableFor(target)})
	if err != nil {
		return nil, fmt.Errorf("configuring the shared %s test kernel: %w", target, err)
	}
	return res.Data, nil
}

// Build returns the shared kernel for target in a directory of t's,
// building it when the cache has none, and logs which kernel t uses.
func Build(t testing.TB, target string) *Kernel {
	t.Helper()
	testenv.Command(t, "gcc")
	ctx := context.Background()
	cache, tree := Tree(t)
	cfg, err := Config(ctx, tree, target)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "kernel")
	start := time.Now()
	res, err := kbuild.Build(ctx, kbuild.Options{Tree: tree, Config: cfg, OutDir: dir, CacheDir: cache,
		Progress: logWriter{t}, ProgressInterval: time.Minute})
	if err != nil {
		t.Fatalf("building the shared %s test kernel: %v", target, err)
	}
	Log(t, "shared "+target+" test kernel", res.Meta, time.Since(start))
	return &Kernel{Target: target, Dir: dir, Config: cfg, Meta: res.Meta}
}

// Tree returns bespoke's cache dir and the default kernel source,
// unpacked there (once per cache).
func Tree(t testing.TB) (cache string, tree *ksrc.Tree) {
	t.Helper()
	testenv.File(t, ksrc.DefaultSource)
	cache, err := ksrc.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	tree, err = ksrc.Prepare(context.Background(), "", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cache, tree
}

// Log writes the line that says which kernel a test uses and what it
// cost: "kernel: NAME KEY: cache hit" or "built, N objects compiled in D".
func Log(t testing.TB, name string, m kbuild.Meta, took time.Duration) {
	t.Helper()
	how := "cache hit"
	if !m.Hit {
		how = fmt.Sprintf("built, %d objects compiled in %s (%s)", m.ObjectsCompiled, took.Round(time.Second), m.BuildDir)
	}
	t.Logf("kernel: %s %s: %s", name, m.Key, how)
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Built is one kernel a run built.
type Built struct {
	Key      string
	Extra    []string // the key's extra inputs: "gcov", "pgo", ...
	Objects  int      // objects compiled
	Seconds  float64  // make's wall time
	BuildDir string
	At       time.Time
}

// Ledger returns the kernels built into cache since start, oldest first:
// every finished build leaves a result dir whose metadata says when it
// was built and how many objects make compiled. Cache hits leave none.
func Ledger(cache string, since time.Time) ([]Built, error) {
	metas, err := kbuild.Builds(cache)
	if err != nil {
		return nil, err
	}
	var out []Built
	for _, m := range metas {
		if m.BuiltAt.Before(since) {
			continue
		}
		out = append(out, Built{Key: m.Key, Extra: m.KeyExtra, Objects: m.ObjectsCompiled, Seconds: m.MakeSeconds, BuildDir: m.BuildDir, At: m.BuiltAt})
	}
	slices.SortFunc(out, func(a, b Built) int { return a.At.Compare(b.At) })
	return out, nil
}

// Budget is how many kernel objects one run of make test may compile. A
// cold run (README, Testing) compiled 1248: the shared qemu-microvm
// kernel (1033, 6.7 min of make on 2 cores, about 0.4 s an object), its
// qemu-pc variant (3), its shaken syscall table (5) and verify's kernel
// without CONFIG_UNIX (207), all continuing the shared kernel's build dir;
// the whole run took 22 min. The budget leaves room for one more kernel
// from scratch (about 7 minutes): a change that needs more must move a
// kernel to make e2e-all or make it continue a build dir, rather than
// push make test past the 35 minutes it must fit in on a cold machine.
const Budget = 2400

// Summary writes the ledger as a table and returns an error when the run
// compiled more than budget objects.
func Summary(w io.Writer, built []Built, budget int) error {
	total, secs := 0, 0.0
	fmt.Fprintf(w, "kernels built by this run (%d):\n", len(built))
	for _, b := range built {
		extra := strings.Join(b.Extra, " ")
		if len(extra) > 40 {
			extra = extra[:40] + "..."
		}
		fmt.Fprintf(w, "  %s  %5d objects  %6.0f s  %s  %s\n", b.Key, b.Objects, b.Seconds, filepath.Base(b.BuildDir), extra)
		total += b.Objects
		secs += b.Seconds
	}
	fmt.Fprintf(w, "  total: %d objects compiled in %.1f min of make (budget: %d objects)\n", total, secs/60, budget)
	if total > budget {
		return fmt.Errorf("this run compiled %d kernel objects, over make test's budget of %d (testkernel.Budget): move a kernel build to make e2e-all, or let it continue the shared kernel's build dir", total, budget)
	}
	return nil
}
