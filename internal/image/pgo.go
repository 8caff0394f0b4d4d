package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/pgo"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// Files of a profile-guided image, beside the usual ones.
const (
	// The -O2 kernel of the same config, kept for comparison (bespoke bench).
	O2KernelFile  = "bzImage.o2"
	O2VmlinuxFile = "vmlinux.o2"
	O2MetaFile    = "kernel-build.o2.json"
	// The profile: every .gcda file at its object's path.
	ProfileFile    = "profile.tar"
	ProfileConsole = "profile-console.log"
	CCLogFile      = "pgo-cc.log"
)

// gcovSymbols are added to the image's config for the profiling kernel.
var gcovSymbols = []string{"DEBUG_FS", "GCOV_KERNEL", "GCOV_PROFILE_ALL"}

// PGO is what a profile-guided build did, in report.json.
type PGO struct {
	// Hot and Cold count the translation units the workload ran code of,
	// and those it did not (compiled for size); Functions and Executed
	// count the functions of the profile and those that ran.
	Hot       int `json:"hot"`
	Cold      int `json:"cold"`
	Functions int `json:"functions"`
	Executed  int `json:"executed"`
	// ProfileBytes is the size of the .gcda files.
	ProfileBytes int64 `json:"profile_bytes"`
	// Sizes of the -O2 kernel and the profile-guided one.
	O2        KernelSizes `json:"o2"`
	Optimized KernelSizes `json:"optimized"`
	// Seconds per phase: instrumented build, profiling boot, optimised build.
	Phases []Stage `json:"phases"`
	// Variants are the sizes of kernels of the same config built other
	// ways, for comparison (Options.SizeReport): -Os, the profile without
	// cold-for-size, the syscall table unshaken.
	Variants []Variant `json:"variants,omitempty"`
}

// Variant is one kernel of a size report.
type Variant struct {
	Name string `json:"name"`
	KernelSizes
	Seconds float64 `json:"seconds"`
}

// KernelSizes are a kernel's section sizes and its bzImage.
type KernelSizes struct {
	kbuild.Sizes
	BzImage int64 `json:"bzimage"`
}

// pgoKernel turns the -O2 kernel in the stage into a profile-guided one
// (the Tarax method with stock GCC 12): it builds the same config with
// gcov, boots it with the image's initramfs, zeroes the counters when the
// program is ready, runs the workload, takes the .gcda files over the
// console, and rebuilds the -O2 config with bespoke-cc as the compiler:
// profile-use for the translation units that ran, -Os for those that did
// not. The -O2 kernel stays in the image as bzImage.o2.
func (b *builder) pgoKernel(ctx context.Context, img *vm.Image) (string, error) {
	if b.sp.Workload == "" || b.sp.Ready.Kind == spec.ReadyNone {
		return "", errors.New("--optimize pgo profiles the kernel under the workload: the spec needs a ready condition and a workload")
	}
	rep := &PGO{}
	b.report.PGO = rep
	phase := func(name string, start time.Time, detail string) {
		rep.Phases = append(rep.Phases, Stage{Name: name, Seconds: time.Since(start).Seconds(), Detail: detail})
		fmt.Fprintf(b.opts.Progress, "      pgo: %s done in %s%s\n", name, time.Since(start).Round(100*time.Millisecond), detail)
	}
	tree, err := ksrc.Prepare(ctx, b.sp.Kernel.Source, b.cache, b.opts.Progress)
	if err != nil {
		return "", err
	}
	base, err := os.ReadFile(filepath.Join(b.stage, ConfigFile))
	if err != nil {
		return "", err
	}
	rep.O2 = metaSizes(*b.report.Kernel)
	tmp, err := os.MkdirTemp(b.stage, "pgo-")
	if err != nil {
		return "", err
	}
	// bespoke-cc runs where make runs (make -C SRC O=BUILD): the files it
	// is given must be absolute (seen: -o out/x made them relative, the
	// wrapper found no exclusion file, and Kconfig called it "unknown C
	// compiler").
	if tmp, err = filepath.Abs(tmp); err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	// 1. The profiling kernel: the same config with gcov.
	start := time.Now()
	fmt.Fprintf(b.opts.Progress, "      pgo: building the profiling kernel (%s)\n", strings.Join(gcovSymbols, ", "))
	gres, err := kconfig.Generate(ctx, kconfig.Options{Tree: tree, Base: base, Enable: gcovSymbols, CacheDir: b.cache, Log: b.log})
	if err != nil {
		return "", fmt.Errorf("configuring the profiling kernel: %w", err)
	}
	gdir := filepath.Join(tmp, "gcov")
	gopts := b.kbuildOptions(tree, gres.Data)
	gopts.OutDir, gopts.KeyExtra = gdir, []string{"gcov"}
	gk, err := kbuild.Build(ctx, gopts)
	if err != nil {
		return "", fmt.Errorf("building the profiling kernel: %w", err)
	}
	phase("profiling kernel", start, fmt.Sprintf(": %s, bzImage %s", hitOrBuilt(gk.Hit), humanBytes(gk.Meta.BzImageBytes)))

	// 2. The profile: the workload against the profiling kernel.
	start = time.Now()
	tarData, err := b.profile(ctx, img, filepath.Join(gdir, "bzImage"))
	if err != nil {
		return "", err
	}
	profDir, sum, err := unpackProfile(tarData, gk.Meta.BuildDir, b.cache)
	if err != nil {
		return "", fmt.Errorf("%w (console: %s)", err, b.failedLog(ProfileConsole))
	}
	if err := os.WriteFile(filepath.Join(b.stage, ProfileFile), tarData, 0o644); err != nil {
		return "", err
	}
	cls, err := pgo.Classify(profDir)
	if err != nil {
		return "", err
	}
	rep.Hot, rep.Cold, rep.Functions, rep.Executed = len(cls.Hot), len(cls.Cold), cls.Functions, cls.Executed
	rep.ProfileBytes = int64(len(tarData))
	if rep.Hot == 0 {
		return "", fmt.Errorf("the profile shows no kernel code run under the workload (%d .gcda files, all zero): see %s", rep.Cold, b.failedLog(ProfileConsole))
	}
	phase("profile", start, fmt.Sprintf(": %d translation units ran code, %d did not; %d of %d functions ran", rep.Hot, rep.Cold, rep.Executed, rep.Functions))

	// 3. The optimised kernel: the -O2 config through bespoke-cc.
	start = time.Now()
	cc, err := initramfs.CCBinary(ctx, b.cache)
	if err != nil {
		return "", err
	}
	ccSum, err := fileSum(cc)
	if err != nil {
		return "", err
	}
	excl := filepath.Join(tmp, "exclude")
	if err := os.WriteFile(excl, pgo.DefaultExclusions, 0o644); err != nil {
		return "", err
	}
	realCC := "gcc"
	if _, err := exec.LookPath("ccache"); err == nil {
		realCC = "ccache gcc"
	}
	ccLog, err := filepath.Abs(filepath.Join(b.stage, CCLogFile))
	if err != nil {
		return "", err
	}
	exclSum := sha256.Sum256(pgo.DefaultExclusions)
	// Keep the -O2 kernel beside the new one.
	for src, dst := range map[string]string{KernelFile: O2KernelFile, VmlinuxFile: O2VmlinuxFile, KernelMeta: O2MetaFile} {
		if err := os.Rename(filepath.Join(b.stage, src), filepath.Join(b.stage, dst)); err != nil {
			return "", err
		}
	}
	popts := b.kbuildOptions(tree, base)
	popts.CC = cc
	popts.Env = []string{pgo.EnvCC + "=" + realCC, pgo.EnvMode + "=" + pgo.ModePGO, pgo.EnvProfile + "=" + profDir,
		pgo.EnvExclude + "=" + excl, pgo.EnvLog + "=" + ccLog}
	popts.KeyExtra = []string{"pgo", "profile " + sum, "bespoke-cc " + ccSum, "exclusions " + hex.EncodeToString(exclSum[:8])}
	if hf := b.sp.Kernel.PGOHotFlags; len(hf) > 0 {
		popts.Env = append(popts.Env, pgo.EnvHotFlags+"="+strings.Join(hf, " "))
		popts.KeyExtra = append(popts.KeyExtra, "hot flags "+strings.Join(hf, " "))
	}
	kr, err := installKernel(ctx, popts, b.stage, b.log)
	if err != nil {
		return "", fmt.Errorf("building the profile-guided kernel: %w", err)
	}
	rep.Optimized = metaSizes(kr.Meta)
	meta := kr.Meta
	b.report.Kernel, b.report.KernelBytes = &meta, meta.BzImageBytes
	phase("profile-guided kernel", start, fmt.Sprintf(": %s, code %s (-O2: %s), bzImage %s (-O2: %s)", hitOrBuilt(kr.Hit),
		humanBytes(int64(rep.Optimized.Code)), humanBytes(int64(rep.O2.Code)), humanBytes(rep.Optimized.BzImage), humanBytes(rep.O2.BzImage)))
	if b.opts.SizeReport {
		hot := popts
		hot.Env = []string{pgo.EnvCC + "=" + realCC, pgo.EnvMode + "=" + pgo.ModePGOHot, pgo.EnvProfile + "=" + profDir, pgo.EnvExclude + "=" + excl}
		if hf := b.sp.Kernel.PGOHotFlags; len(hf) > 0 {
			hot.Env = append(hot.Env, pgo.EnvHotFlags+"="+strings.Join(hf, " "))
		}
		hot.KeyExtra = append([]string{"pgo-hot"}, popts.KeyExtra[1:]...)
		// Each variant's time is its own row of the report, not the phase's.
		if err := b.sizeVariants(ctx, tree, base, hot, tmp); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d hot and %d cold translation units; code %s -> %s", rep.Hot, rep.Cold,
		humanBytes(int64(rep.O2.Code)), humanBytes(int64(rep.Optimized.Code))), nil
}

// sizeVariants builds the other kernels of the size report, each through
// the cache into a scratch directory: -Os, the profile without
// cold-for-size (hot as the PGO kernel), and, when the syscall table is
// shaken, the -O2 kernel with the whole table.
func (b *builder) sizeVariants(ctx context.Context, tree *ksrc.Tree, base []byte, hot kbuild.Options, tmp string) error {
	rep := b.report.PGO
	// The kernel's kconfig switches the choice (and verifies it): a text
	// edit of the .config leaves "# CONFIG_CC_OPTIMIZE_FOR_SIZE is not
	// set" behind it, which wins, and gave an -O2 kernel.
	sres, err := kconfig.Generate(ctx, kconfig.Options{Tree: tree, Base: base, Enable: []string{"CC_OPTIMIZE_FOR_SIZE"}, CacheDir: b.cache, Log: b.log})
	if err != nil {
		return fmt.Errorf("size report: configuring the -Os kernel: %w", err)
	}
	size := b.kbuildOptions(tree, sres.Data)
	type variant struct {
		name string
		opts kbuild.Options
	}
	variants := []variant{{"-Os", size}, {"PGO, cold units -O2", hot}}
	if len(b.removeSyscalls) > 0 {
		whole := b.kbuildOptions(tree, base)
		whole.RemoveSyscalls = nil
		variants = append(variants, variant{"-O2, whole syscall table", whole})
	}
	for i, v := range variants {
		start := time.Now()
		fmt.Fprintf(b.opts.Progress, "      pgo: size report: building the %s kernel\n", v.name)
		v.opts.OutDir = filepath.Join(tmp, fmt.Sprintf("variant-%d", i))
		res, err := kbuild.Build(ctx, v.opts)
		if err != nil {
			return fmt.Errorf("size report: building the %s kernel: %w", v.name, err)
		}
		rep.Variants = append(rep.Variants, Variant{Name: v.name, KernelSizes: metaSizes(res.Meta), Seconds: time.Since(start).Seconds()})
		os.RemoveAll(v.opts.OutDir)
	}
	return nil
}

// profile boots the profiling kernel with the image's initramfs, zeroes
// the gcov counters once the program is ready, runs the workload and
// returns the .gcda files the guest sent (a tar archive).
func (b *builder) profile(ctx context.Context, img *vm.Image, kernel string) ([]byte, error) {
	console := filepath.Join(b.stage, ProfileConsole)
	var wl *Workload
	cfg := vm.Config{
		ImageDir: b.stage, Image: img, Kernel: kernel, Accel: b.opts.Accel,
		Params:        []string{protocol.ParamGcov + "=1"},
		ReadyRequests: []vm.Request{{Line: protocol.GcovResetRequest, Ack: protocol.GcovReset}},
		StopGuest:     true,
		StopWait:      3 * time.Minute, // the .gcda files cross the serial console
		Timeout:       b.sp.ReadyTimeout + b.sp.WorkloadTimeout + b.sp.StopTimeout + 6*time.Minute,
		LogPath:       console,
		Status:        b.log,
		OnReady: func(ctx context.Context, ports map[int]int) error {
			w, err := b.sp.Expand(b.sp.Workload, "127.0.0.1", ports)
			if err != nil {
				return err
			}
			fmt.Fprintf(b.opts.Progress, "      pgo: profiling the kernel under the workload: %s\n", w)
			wl, err = RunWorkload(ctx, w, b.sp.WorkloadTimeout, b.log)
			return err
		},
	}
	res, err := vm.Run(ctx, cfg)
	logPath := b.failedLog(ProfileConsole)
	if err != nil {
		return nil, fmt.Errorf("profiling boot: %w", err)
	}
	if wl == nil || wl.ExitCode != 0 {
		return nil, fmt.Errorf("profiling boot: the workload failed against the profiling kernel: %+v (console: %s)", wl, logPath)
	}
	data, err := res.Blobs.Get(protocol.BlobGcov)
	if err != nil {
		return nil, fmt.Errorf("profiling boot: the .gcda files: %w (console: %s)", err, logPath)
	}
	return data, nil
}

// unpackProfile stores the .gcda files of a profile tar (paths as debugfs
// shows them: the instrumented build dir's absolute path, then the
// object's) at their objects' relative paths in the cache, under the
// profile's hash, and returns that directory and the hash.
func unpackProfile(data []byte, buildDir, cache string) (string, string, error) {
	// The files are stored with an object summary added (pgo.WithSummary),
	// which the first profiles in the cache lack: profileFormat names the
	// stored form in the directory and in the kernel's cache key.
	h := sha256.Sum256(append([]byte(profileFormat+"\n"), data...))
	sum := hex.EncodeToString(h[:8])
	dir := filepath.Join(cache, "pgo", "profile-"+sum)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, sum, nil
	}
	os.RemoveAll(dir)
	prefix := strings.TrimPrefix(filepath.Clean(buildDir), "/") + "/"
	tr := tar.NewReader(bytes.NewReader(data))
	files := map[string][]byte{}
	var sumMax uint64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("reading the profile: %w", err)
		}
		rel, ok := strings.CutPrefix(hdr.Name, prefix)
		if !ok || strings.Contains(rel, "..") || !strings.HasSuffix(rel, ".gcda") {
			continue // not a profile of an object of the kernel build
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return "", "", fmt.Errorf("reading the profile: %w", err)
		}
		p, err := pgo.Read(bytes.NewReader(body))
		if err != nil {
			return "", "", fmt.Errorf("reading the profile: %s: %w", rel, err)
		}
		sumMax = max(sumMax, p.MaxArc())
		files[rel] = body
	}
	if len(files) == 0 {
		return "", "", fmt.Errorf("the profile holds no .gcda file of the build dir %s", buildDir)
	}
	for rel, body := range files {
		body, err := pgo.WithSummary(body, sumMax)
		if err != nil {
			return "", "", fmt.Errorf("reading the profile: %s: %w", rel, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return "", "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		return "", "", err
	}
	return dir, sum, nil
}

// profileFormat names how unpackProfile stores a profile.
const profileFormat = "gcda with object summary"

// metaSizes are the sizes kbuild measured when it built the kernel.
func metaSizes(m kbuild.Meta) KernelSizes {
	return KernelSizes{Sizes: m.Vmlinux, BzImage: m.BzImageBytes}
}

func fileSum(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:8]), nil
}

func hitOrBuilt(hit bool) string {
	if hit {
		return "cache hit"
	}
	return "built"
}
