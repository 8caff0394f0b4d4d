package verify

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// MemoryOptions says where MinMemory searches.
type MemoryOptions struct {
	ImageDir string
	Accel    string
	// Low and High bound the search in MiB: High must pass (default: the
	// image's memory), and the answer is no lower than Low (default 16).
	Low, High int
	// Step is the resolution in MiB (default 1).
	Step     int
	Progress io.Writer
	// Kernel, Initramfs and Params boot another kernel than the image's
	// (bespoke min-memory --baseline: Debian's cloud kernel); its result
	// is not recorded in the image.
	Kernel, Initramfs string
	Params            []string
}

// MemoryTry is one boot of the search.
type MemoryTry struct {
	MB     int    `json:"mb"`
	Passed bool   `json:"passed"`
	Why    string `json:"why,omitempty"` // why it failed
}

// MemoryResult is the smallest memory with which the image boots, passes
// its workload and stops cleanly, and the boots that found it.
type MemoryResult struct {
	MinMB int         `json:"min_mb"`
	Step  int         `json:"step"`
	Tries []MemoryTry `json:"tries"`
}

// MemoryConsole is the console log of MinMemory's last boot.
const MemoryConsole = "min-memory-console.log"

// MinMemory finds the smallest memory (-m) with which the image in
// opts.ImageDir boots, becomes ready, passes its spec's workload and stops
// cleanly, by bisection over boots (each one as bespoke verify's untraced
// boot), and records it in the image's report.json (min_memory_mb). A boot
// that runs out of memory panics the guest or stalls it; either fails.
func MinMemory(ctx context.Context, opts MemoryOptions) (*MemoryResult, error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	dir := opts.ImageDir
	sp, err := image.ReadSpec(dir)
	if err != nil {
		return nil, err
	}
	img, err := vm.LoadImage(dir)
	if err != nil {
		return nil, err
	}
	lo, hi, step := opts.Low, opts.High, opts.Step
	if lo <= 0 {
		lo = 16
	}
	if hi <= 0 {
		hi = img.MemoryMB
	}
	if hi <= 0 {
		hi = vm.DefaultMemoryMB
	}
	if step <= 0 {
		step = 1
	}
	if lo > hi {
		return nil, fmt.Errorf("finding the minimum memory: the low bound %d MiB is above the high one %d MiB", lo, hi)
	}
	res := &MemoryResult{Step: step}
	probe := *sp
	var timeout time.Duration
	try := func(mb int) (bool, error) {
		fmt.Fprintf(opts.Progress, "min-memory: booting %s with %d MiB\n", sp.Name, mb)
		r, err := boot(ctx, Options{ImageDir: dir, Accel: opts.Accel, MemoryMB: mb, Progress: io.Discard,
			console: filepath.Join(dir, MemoryConsole), timeout: timeout,
			kernel: opts.Kernel, initramfs: opts.Initramfs, params: opts.Params}, &probe, len(res.Tries)+1, false)
		if err != nil {
			return false, err
		}
		if r.Passed && len(res.Tries) == 0 {
			// Short of memory, a guest stalls rather than fails (the page
			// cache thrashes, before or after it is ready): the later boots
			// wait five times as long as the first took, not the spec's
			// timeouts (seen: 6m40s for one boot of redis at 23 MiB).
			timeout = max(time.Minute, 5*time.Duration(r.Seconds*float64(time.Second)))
			if r.Workload != nil {
				probe.WorkloadTimeout = min(sp.WorkloadTimeout, max(30*time.Second, 5*time.Duration(r.Workload.Seconds*float64(time.Second))))
			}
		}
		t := MemoryTry{MB: mb, Passed: r.Passed}
		if !r.Passed {
			t.Why = failure(r)
		}
		res.Tries = append(res.Tries, t)
		fmt.Fprintf(opts.Progress, "min-memory: %d MiB: %s\n", mb, map[bool]string{true: "passed", false: "failed: " + t.Why}[t.Passed])
		return r.Passed, nil
	}
	ok, err := try(hi)
	if err != nil {
		return nil, err
	}
	if !ok {
		return res, fmt.Errorf("%w: the image does not pass with %d MiB, the top of the search: %s (console: %s)",
			ErrFailed, hi, res.Tries[0].Why, filepath.Join(dir, MemoryConsole))
	}
	// hi passes; lo has not been tried, or failed.
	loFailed := false
	for hi-lo > step {
		mid := lo + (hi-lo)/2
		ok, err := try(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			hi = mid
		} else {
			lo, loFailed = mid, true
		}
	}
	if !loFailed && lo < hi {
		ok, err := try(lo)
		if err != nil {
			return nil, err
		}
		if ok {
			hi = lo
		}
	}
	res.MinMB = hi
	if opts.Kernel != "" {
		return res, nil
	}
	if err := image.SetMinMemory(dir, hi); err != nil {
		return nil, err
	}
	return res, nil
}
