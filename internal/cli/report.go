package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/bench"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/verify"
)

// runReport prints a Markdown table of images from their report.json (and
// verify.json, when bespoke verify ran): the table of docs/apps.md.
func runReport(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "report")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(rest) > 0 {
		return usageErrorf("want one or more IMAGE_DIRs")
	}
	w := env.Stdout
	fmt.Fprintln(w, "| app | kernel | root | total | kernel options =y | files | boot to ready (host) | min memory | workload | stop | verify |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, dir := range pos {
		rep, err := image.ReadReport(dir)
		if err != nil {
			return err
		}
		if err := image.CheckFiles(dir, rep); err != nil {
			return err
		}
		files, ready, wl, stop, ver, minMem := "-", "-", "not run", "-", "not run", "not measured"
		root := mb(rep.InitramfsBytes)
		if rep.Initramfs != nil {
			files = fmt.Sprint(len(rep.Initramfs.Files))
			format := rep.Initramfs.Format
			if format == "" {
				format = "initramfs"
			}
			root += " (" + format + ")"
		}
		if rep.MinMemoryMB > 0 {
			minMem = fmt.Sprintf("%d MiB", rep.MinMemoryMB)
		}
		if b := rep.Boot; b != nil {
			if b.ReadyHost > 0 {
				ready = fmt.Sprintf("%.2f s (%s)", b.ReadyHost, b.Accel)
			}
			if b.StopExitCode != nil {
				stop = fmt.Sprintf("exit %d", *b.StopExitCode)
			}
		}
		if rep.Workload != nil {
			wl = fmt.Sprintf("exit %d in %.1f s", rep.Workload.ExitCode, rep.Workload.Seconds)
		}
		var vr verify.Result
		if data, err := os.ReadFile(filepath.Join(dir, verify.ResultFile)); err == nil && json.Unmarshal(data, &vr) == nil && len(vr.Rounds) > 0 {
			ver = "passed"
			if !vr.Passed {
				ver = "failed: " + vr.Reason
			}
			ver += fmt.Sprintf(" (%d round(s))", len(vr.Rounds))
		}
		row := []string{rep.Name, mb(rep.KernelBytes), root, mb(rep.TotalBytes), fmt.Sprint(rep.KernelSymbols), files, ready, minMem, wl, stop, ver}
		for i, c := range row {
			row[i] = cell(c)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	for _, dir := range pos {
		rep, err := image.ReadReport(dir)
		if err != nil {
			return err
		}
		kernelReport(w, dir, rep)
	}
	return nil
}

// kernelReport prints what a profile-guided build or a shaken syscall
// table did to an image's kernel, and bespoke bench's result, if any.
func kernelReport(w io.Writer, dir string, rep *image.Report) {
	p, sh := rep.PGO, rep.Syscalls
	var br *bench.Result
	if data, err := os.ReadFile(filepath.Join(dir, BenchFile)); err == nil {
		br = &bench.Result{}
		if json.Unmarshal(data, br) != nil || len(br.Kernels) == 0 {
			br = nil
		}
	}
	if p == nil && sh == nil && br == nil {
		return
	}
	fmt.Fprintf(w, "\n### %s: the kernel\n\n", rep.Name)
	if p != nil {
		fmt.Fprintln(w, "| kernel | code (functions) | text (size(1)) | data | bss | bzImage |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
		row := func(name string, k image.KernelSizes) {
			code := "-" // a report from before Sizes had Code
			if k.Code > 0 {
				code = kb(int64(k.Code))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, code, kb(int64(k.Text)), kb(int64(k.Data)), kb(int64(k.BSS)), kb(k.BzImage))
		}
		row("-O2", p.O2)
		for _, v := range p.Variants {
			row(v.Name, v.KernelSizes)
		}
		row("PGO, cold units -Os (the image's)", p.Optimized)
		fmt.Fprintf(w, "\nTranslation units: %d ran code under the workload (profile-guided), %d did not (compiled for size); functions: %d of %d ran; profile %s.\n",
			p.Hot, p.Cold, p.Executed, p.Functions, kb(p.ProfileBytes))
		var phases []string
		for _, ph := range append(slices.Clone(p.Phases), variantPhases(p.Variants)...) {
			phases = append(phases, fmt.Sprintf("%s %.0f s", ph.Name, ph.Seconds))
		}
		fmt.Fprintf(w, "Time per phase: %s.\n", strings.Join(phases, ", "))
	}
	if sh != nil {
		fmt.Fprintf(w, "\nSyscalls: %d of the table's %d kept, %d removed (they return ENOSYS): %s.\n",
			sh.Kept, sh.Table, len(sh.Removed), strings.Join(sh.Removed, ", "))
	}
	if br != nil {
		fmt.Fprintf(w, "\nbespoke bench (%s): %s", br.Date, br.Table())
	}
}

func variantPhases(vs []image.Variant) []image.Stage {
	var out []image.Stage
	for _, v := range vs {
		out = append(out, image.Stage{Name: v.Name + " kernel", Seconds: v.Seconds})
	}
	return out
}

func kb(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/(1<<20)) }

// cell makes s one Markdown table cell: a "|" would end it and a newline
// the row.
func cell(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "|", "/")), " ")
}
