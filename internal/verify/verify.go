// Package verify checks a built image against its program's own workload:
// it boots the image with the program running under bespoke's tracer in
// the guest, runs the spec's workload against it from the host, and
// compares what the program did in the guest with what it did on the host
// at build time. What the guest lacked (a file, a syscall, a socket
// family, a /proc entry, a filesystem) is reported with the evidence and,
// with Fix, added to the image, which is then rebuilt and checked again.
package verify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// Options says what Run checks.
type Options struct {
	ImageDir string
	// Fix adds what a failed round found missing to the image and checks
	// again, up to MaxRounds rounds in all (default 3).
	Fix       bool
	MaxRounds int
	// NoTrace skips the diagnosis boot: a failure is then not classified.
	NoTrace  bool
	Accel    string
	CacheDir string // "" means ksrc.CacheDir()
	Jobs     int    // make -j for a kernel rebuild
	// Workload, when set, is run instead of the spec's workload.
	Workload string
	// Progress gets one line per step, the findings and the fixes.
	Progress io.Writer
	// MemoryMB boots the image with this much memory (0: the image's).
	MemoryMB int
	// console, when set, is where the untraced boot's console goes
	// (MinMemory's probes), instead of ConsoleFile; timeout, when set,
	// bounds the whole boot (MinMemory's probes: a guest short of memory
	// may stall before it is ready).
	console string
	timeout time.Duration
	// kernel, initramfs and params boot another kernel than the image's
	// (MinMemory's Kernel).
	kernel, initramfs string
	params            []string
}

// Result is what Run found, written as verify.json in the image directory.
type Result struct {
	Image  string  `json:"image"`
	Passed bool    `json:"passed"`
	Rounds []Round `json:"rounds"`
	// Reason says why verification failed.
	Reason string `json:"reason,omitempty"`
}

// Round is one check of the image: a boot that runs the workload as the
// image will run it, and when that fails, a diagnosis boot with the
// program under the guest tracer (slower: a workload may time out there,
// but the trace shows what the program missed).
type Round struct {
	N      int  `json:"n"`
	Passed bool `json:"passed"`
	// Ready: the program became ready in the guest; Workload is the
	// workload's result against it.
	Ready    bool            `json:"ready"`
	Workload *image.Workload `json:"workload,omitempty"`
	// ExitCode is the program's status: after the stop request when
	// StopRequested, else when it ended by itself (-1: never said).
	ExitCode      int  `json:"exit_code"`
	StopRequested bool `json:"stop_requested"`
	// Traced says a diagnosis boot ran; TraceConsole is its console and
	// TraceError what went wrong in it, if anything.
	Traced       bool      `json:"traced"`
	TraceConsole string    `json:"trace_console,omitempty"`
	TraceError   string    `json:"trace_error,omitempty"`
	Findings     []Finding `json:"findings,omitempty"`
	// Fixed are the fixes applied after this round.
	Fixed   []string `json:"fixed,omitempty"`
	Error   string   `json:"error,omitempty"` // a boot that went wrong
	Console string   `json:"console"`         // the console log
	Seconds float64  `json:"seconds"`
}

// File names Run writes in the image directory.
const (
	ResultFile   = "verify.json"
	ConsoleFile  = "verify-console.log"
	TraceConsole = "verify-trace-console.log"
	TraceFile    = "verify-trace.json" // the guest's manifest
)

// TracerPath is where the tracer is put in the guest.
const TracerPath = "/.bespoke/" + initramfs.TracerName

// ToolsDir is where the tracer's disk is mounted beside an erofs root.
const ToolsDir = "/.bespoke/tools"

// ErrFailed means the image did not pass: Result.Reason says why.
var ErrFailed = errors.New("verification failed")

// Run verifies the image in opts.ImageDir. It returns ErrFailed (wrapped
// with the reason) when the image does not pass, and other errors when it
// could not verify at all.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = 3
	}
	if !opts.Fix {
		opts.MaxRounds = 1
	}
	if opts.CacheDir == "" {
		var err error
		if opts.CacheDir, err = ksrc.CacheDir(); err != nil {
			return nil, err
		}
	}
	dir := opts.ImageDir
	sp, err := image.ReadSpec(dir)
	if err != nil {
		return nil, err
	}
	rep, err := image.ReadReport(dir)
	if err != nil {
		return nil, err
	}
	if err := image.CheckFiles(dir, rep); err != nil {
		return nil, err
	}
	if opts.Workload != "" {
		sp.Workload = opts.Workload
	}
	if sp.Workload == "" && sp.Ready.Kind == spec.ReadyNone {
		fmt.Fprintf(opts.Progress, "verify: the spec has no ready condition and no workload: checking that %s runs and exits 0\n", sp.Name)
	}
	res := &Result{Image: dir}
	for n := 1; ; n++ {
		r, err := boot(ctx, opts, sp, n, false)
		if err != nil {
			return nil, err
		}
		// A removed function the program trapped in is named by the
		// kernel already: the diagnosis boot would add nothing.
		if !r.Passed && !opts.NoTrace && !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Kind == RemovedFunction }) {
			t, err := boot(ctx, opts, sp, n, true)
			if err != nil {
				return nil, err
			}
			r.Traced, r.TraceConsole, r.TraceError = true, t.Console, t.Error
			r.Findings = append(r.Findings, t.Findings...)
			if len(t.Findings) == 0 {
				fmt.Fprintf(opts.Progress, "verify: round %d: the guest trace shows nothing the image lacks\n", n)
			}
		}
		res.Rounds = append(res.Rounds, *r)
		last := &res.Rounds[len(res.Rounds)-1]
		fixes := fixesOf(r.Findings)
		res.Passed, res.Reason = r.Passed, ""
		if r.Passed && (!opts.Fix || fixes.Empty() || n >= opts.MaxRounds) {
			break
		}
		// Failed; or passed with syscalls the seccomp filter let through
		// (seccomp log), which --fix adds to the allowlist and checks again.
		if !r.Passed {
			res.Reason = failure(r)
		}
		switch {
		case !opts.Fix:
		case fixes.Empty():
			res.Reason += "; no fix known for what was found"
		case n >= opts.MaxRounds:
			res.Reason += fmt.Sprintf("; gave up after %d rounds (--max-rounds)", n)
		default:
			fixes.ShakeKeep = withNeighbours(dir, fixes.ShakeKeep, opts.Progress)
			for _, f := range fixes.All() {
				fmt.Fprintf(opts.Progress, "verify: fix: %s (%s)\n", f.What, f.Why)
				last.Fixed = append(last.Fixed, f.What)
			}
			fmt.Fprintf(opts.Progress, "verify: rebuilding the image with %d fixes\n", len(last.Fixed))
			if err := image.Amend(ctx, image.AmendOptions{
				Dir: dir, Fixes: fixes, CacheDir: opts.CacheDir, Progress: opts.Progress, Log: opts.Progress, Jobs: opts.Jobs,
			}); err != nil {
				return nil, fmt.Errorf("applying the fixes of round %d: %w", n, err)
			}
			continue
		}
		break
	}
	if err := writeJSON(filepath.Join(dir, ResultFile), res); err != nil {
		return nil, err
	}
	if !res.Passed {
		return res, fmt.Errorf("%w: %s (console: %s)", ErrFailed, res.Reason, filepath.Join(dir, ConsoleFile))
	}
	return res, nil
}

// failure says why a round did not pass.
func failure(r *Round) string {
	switch {
	case r.Error != "" && !r.Ready:
		return r.Error
	case !r.Ready:
		return fmt.Sprintf("the program exited with status %d before it was ready", r.ExitCode)
	case r.Workload != nil && r.Workload.ExitCode != 0:
		return fmt.Sprintf("the workload failed (exit %d)", r.Workload.ExitCode)
	case r.Error != "":
		return r.Error
	}
	return fmt.Sprintf("the program exited with status %d", r.ExitCode)
}

// withNeighbours adds to the removed functions to restore those the image
// in dir removed around each (image.Neighbours: what its callers and it
// call): the next rounds' traps, restored in this one.
func withNeighbours(dir string, keep []image.Fix, progress io.Writer) []image.Fix {
	out := slices.Clone(keep)
	seen := map[string]bool{}
	for _, k := range keep {
		seen[k.What] = true
	}
	for _, k := range keep {
		ns, err := image.Neighbours(dir, k.What)
		if err != nil {
			fmt.Fprintf(progress, "verify: the functions removed around %s: %v\n", k.What, err)
		}
		for _, n := range ns {
			if !seen[n] {
				seen[n] = true
				out = append(out, image.Fix{What: n, Why: "removed beside " + k.What + ", which ran"})
			}
		}
	}
	return out
}

// fixesOf collects the automatic fixes of the findings.
func fixesOf(fs []Finding) image.Fixes {
	var fx image.Fixes
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Include != "" && !seen[f.Include] {
			seen[f.Include] = true
			fx.Include = append(fx.Include, image.Fix{What: f.Include, Why: f.Kind + ": " + f.Evidence})
		}
		for _, s := range f.Enable {
			if !seen[s] {
				seen[s] = true
				fx.Enable = append(fx.Enable, image.Fix{What: s, Why: f.Kind + " " + f.Subject + ": " + f.Evidence})
			}
		}
		if f.Keep != "" && !seen["syscall "+f.Keep] {
			seen["syscall "+f.Keep] = true
			fx.Keep = append(fx.Keep, image.Fix{What: f.Keep, Why: f.Kind + ": " + f.Evidence})
		}
		if f.Restore != "" && !seen["restore "+f.Restore] {
			seen["restore "+f.Restore] = true
			fx.ShakeKeep = append(fx.ShakeKeep, image.Fix{What: f.Restore, Why: f.Kind + ": " + f.Evidence})
		}
		if f.Allow != "" && !seen["seccomp "+f.Allow] {
			seen["seccomp "+f.Allow] = true
			fx.Seccomp = append(fx.Seccomp, image.Fix{What: f.Allow, Why: f.Kind + ": " + f.Evidence})
		}
	}
	return fx
}

// boot boots the image once and runs the workload; traced, with the
// program under the guest tracer, and classifies what the program missed.
func boot(ctx context.Context, opts Options, sp *spec.Spec, n int, traced bool) (*Round, error) {
	dir := opts.ImageDir
	r := &Round{N: n, ExitCode: -1, Console: filepath.Join(dir, ConsoleFile)}
	if opts.console != "" {
		r.Console = opts.console
	}
	what := "boot"
	if traced {
		r.Console, what = filepath.Join(dir, TraceConsole), "diagnosis boot"
	}
	p := opts.Progress
	cfg := vm.Config{
		ImageDir:  dir,
		MemoryMB:  opts.MemoryMB,
		Accel:     opts.Accel,
		LogPath:   r.Console,
		StopGuest: true,
		// Under the tracer the program runs slower, and the trace takes
		// time to cross the console.
		StopWait: 2 * time.Minute,
		Timeout:  cmp.Or(opts.timeout, sp.ReadyTimeout+sp.WorkloadTimeout+sp.StopTimeout+5*time.Minute),
		Status:   p,
		Kernel:   opts.kernel, Initramfs: opts.initramfs, Params: opts.params,
	}
	if traced {
		tmp, err := os.MkdirTemp("", "bespoke-verify-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		tracer, err := initramfs.TracerBinary(ctx, opts.CacheDir)
		if err != nil {
			return nil, err
		}
		img, err := vm.LoadImage(dir)
		if err != nil {
			return nil, err
		}
		if img.Disk != "" {
			// A read-only root: the tracer comes on a disk of its own.
			tools := filepath.Join(tmp, "tools.erofs")
			if err := initramfs.WriteErofsFile(ctx, tools, tracer, "/"+initramfs.TracerName); err != nil {
				return nil, fmt.Errorf("adding the tracer to the image: %w", err)
			}
			cfg.Volumes = []vm.Volume{{Host: tools, Guest: ToolsDir, Type: "erofs", ReadOnly: true}}
			cfg.Params = []string{protocol.ParamTrace + "=" + ToolsDir + "/" + initramfs.TracerName}
		} else {
			seg := filepath.Join(tmp, "tracer.cpio")
			if err := initramfs.WriteFileSegment(seg, tracer, TracerPath); err != nil {
				return nil, fmt.Errorf("adding the tracer to the image: %w", err)
			}
			cfg.Initramfs = filepath.Join(tmp, "initramfs")
			if err := initramfs.Concat(cfg.Initramfs, filepath.Join(dir, image.InitramfsFile), seg); err != nil {
				return nil, fmt.Errorf("adding the tracer to the image: %w", err)
			}
			cfg.Params = []string{protocol.ParamTrace + "=" + TracerPath}
		}
	}
	if sp.Workload != "" || sp.Ready.Kind != spec.ReadyNone {
		cfg.OnReady = func(ctx context.Context, ports map[int]int) error {
			r.Ready = true
			if sp.Workload == "" {
				return nil
			}
			w, err := sp.Expand(sp.Workload, "127.0.0.1", ports)
			if err != nil {
				return err
			}
			fmt.Fprintf(p, "verify: round %d: %s: running the workload: %s\n", n, what, w)
			var out bytes.Buffer
			r.Workload, err = image.RunWorkload(ctx, w, sp.WorkloadTimeout, &out)
			return err
		}
	}
	fmt.Fprintf(p, "verify: round %d: booting %s%s\n", n, sp.Name, map[bool]string{true: " with the program under the guest tracer"}[traced])
	start := time.Now()
	res, err := vm.Run(ctx, cfg)
	r.Seconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("verify interrupted: %w", ctx.Err())
	}
	if err != nil {
		r.Error = err.Error()
	}
	if res != nil {
		r.Findings = append(SeccompFindings(res.Seccomp), RemovedFindings(res)...)
		r.ExitCode, r.StopRequested = res.ExitCode, res.StopRequested
		if cfg.OnReady == nil {
			r.Ready = res.ExitCode == 0
		}
	}
	r.Passed = err == nil && r.Ready && (r.Workload == nil || r.Workload.ExitCode == 0)
	if r.Workload != nil {
		fmt.Fprintf(p, "verify: round %d: workload exit %d in %.1fs\n", n, r.Workload.ExitCode, r.Workload.Seconds)
	}
	if res != nil && traced {
		if err := classify(r, res, dir); err != nil {
			fmt.Fprintf(p, "verify: round %d: no guest trace: %v\n", n, err)
			if r.Error == "" {
				r.Error = "no guest trace: " + err.Error()
			}
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintf(p, "verify: round %d: found %s\n", n, f)
	}
	status := "passed"
	if !r.Passed {
		status = "failed: " + failure(r)
	}
	fmt.Fprintf(p, "verify: round %d: %s %s (%.1fs; console: %s)\n", n, what, status, r.Seconds, r.Console)
	return r, nil
}

// classify reads the guest's trace from the console and compares it with
// the image's manifest.
func classify(r *Round, res *vm.Result, dir string) error {
	data, err := res.Blobs.Get(protocol.BlobTrace)
	if err != nil {
		return err
	}
	guest, err := manifest.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("decoding the guest trace: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, TraceFile), data, 0o644); err != nil {
		return err
	}
	host, err := manifest.ReadFile(filepath.Join(dir, image.ManifestFile))
	if err != nil {
		return err
	}
	inImage, err := image.RootPaths(context.Background(), dir)
	if err != nil {
		return fmt.Errorf("listing the image's root: %w", err)
	}
	cf, err := os.Open(filepath.Join(dir, image.ConfigFile))
	if err != nil {
		return err
	}
	cfg, err := kconfig.ParseConfig(cf)
	cf.Close()
	if err != nil {
		return err
	}
	rep, err := image.ReadReport(dir)
	if err != nil {
		return err
	}
	var removed []string
	if rep.Syscalls != nil {
		removed = rep.Syscalls.Removed
	}
	sp, err := image.ReadSpec(dir)
	if err != nil {
		return err
	}
	r.Findings = Classify(Facts{
		Host: host, Guest: guest,
		InImage:  func(p string) bool { return inImage[p] },
		Enabled:  cfg.Enabled,
		Removed:  removed,
		Excluded: func(p string) string { return image.Exclusion(host, sp, p) },
	})
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Summary is a one-line account of a result for the command line.
func (res *Result) Summary() string {
	last := res.Rounds[len(res.Rounds)-1]
	var fixed []string
	for _, r := range res.Rounds {
		fixed = append(fixed, r.Fixed...)
	}
	s := fmt.Sprintf("%s: passed", filepath.Base(res.Image))
	if !res.Passed {
		s = fmt.Sprintf("%s: FAILED: %s", filepath.Base(res.Image), res.Reason)
	}
	s += fmt.Sprintf(" after %d round(s)", len(res.Rounds))
	if len(fixed) > 0 {
		s += "; fixed: " + strings.Join(fixed, ", ")
	}
	if last.Workload != nil {
		s += fmt.Sprintf("; workload exit %d", last.Workload.ExitCode)
	}
	if last.StopRequested {
		s += fmt.Sprintf("; program stopped with status %d", last.ExitCode)
	}
	if res.Passed && len(last.Findings) > 0 {
		var subj []string
		for _, f := range last.Findings {
			subj = append(subj, f.Kind+" "+f.Subject)
		}
		s += "; found: " + strings.Join(subj, ", ")
		if fx := fixesOf(last.Findings); !fx.Empty() {
			s += " (bespoke verify --fix adds them)"
		}
	}
	return s
}
