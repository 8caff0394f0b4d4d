package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/bench"
	"github.com/bespoke-os/bespoke/internal/breakdown"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kdce"
	"github.com/bespoke-os/bespoke/internal/verify"
)

// runReport prints a Markdown table of images from their report.json (and
// verify.json, when bespoke verify ran): the table of docs/apps.md. With
// --html it also writes a self-contained page with charts and where the
// bytes go; with --json the same figures as JSON. An image that cannot be
// read is named on stderr, the rest is reported, and the exit status is 1.
func runReport(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "report")
	htmlOut := fs.String("html", "", "also write a self-contained HTML page here: sizes, boot, memory, speed, and where the bytes go")
	jsonOut := fs.String("json", "", "also write the page's figures here as JSON")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(rest) > 0 {
		return usageErrorf("want one or more IMAGE_DIRs")
	}
	var rows []*reportRow
	var bad []error
	for _, dir := range pos {
		r, err := readRow(dir)
		if err != nil {
			fmt.Fprintf(env.Stderr, "bespoke report: %s: %v\n", dir, err)
			bad = append(bad, err)
			continue
		}
		rows = append(rows, r)
	}
	w := env.Stdout
	fmt.Fprintln(w, "| app | kernel | root | total | kernel options =y | files | boot to ready (host) | min memory | workload | stop | verify |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		cells := slices.Clone(r.Cells)
		for i, c := range cells {
			cells[i] = cell(c)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	for _, r := range rows {
		kernelReport(w, r)
		dataReport(w, r.Rep)
		shakeReport(w, r.Rep)
	}
	cross := crossMatrices(rows)
	crossReport(w, cross)
	for _, n := range notes(rows) {
		fmt.Fprintf(env.Stderr, "bespoke report: %s\n", n)
	}
	if *htmlOut != "" || *jsonOut != "" {
		page := newPage(rows)
		page.Cross = cross
		if *jsonOut != "" {
			if err := writePageJSON(*jsonOut, page); err != nil {
				return err
			}
		}
		if *htmlOut != "" {
			if err := writePageHTML(*htmlOut, page); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "bespoke report: wrote %s\n", *htmlOut)
		}
	}
	if len(bad) > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

// reportRow is one image of a report.
type reportRow struct {
	Dir    string
	Rep    *image.Report
	Verify *verify.Result // nil: bespoke verify did not run
	Bench  *bench.Result  // nil: bespoke bench did not run
	Cells  []string       // the Markdown row
}

// readRow reads an image's reports and makes its table row.
func readRow(dir string) (*reportRow, error) {
	rep, err := image.ReadReport(dir)
	if err != nil {
		return nil, err
	}
	if err := image.CheckFiles(dir, rep); err != nil {
		return nil, err
	}
	r := &reportRow{Dir: dir, Rep: rep}
	files, ready, wl, stop, ver, minMem := "-", "-", "not run", "-", "not run", "not measured"
	root := mb(rep.InitramfsBytes)
	if rep.Initramfs != nil {
		files = fmt.Sprint(len(rep.Initramfs.Files))
		format := rep.Initramfs.Format
		if format == "" {
			format = "initramfs"
		}
		if c := rep.Initramfs.Compression; c != "" {
			format += ", " + c
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
		r.Verify = &vr
		ver = "passed"
		if !vr.Passed {
			ver = "failed: " + vr.Reason
		}
		ver += fmt.Sprintf(" (%d round(s))", len(vr.Rounds))
	}
	if data, err := os.ReadFile(filepath.Join(dir, BenchFile)); err == nil {
		br := &bench.Result{}
		if json.Unmarshal(data, br) == nil && len(br.Kernels) > 0 {
			r.Bench = br
		}
	}
	r.Cells = []string{rep.Name, mb(rep.KernelBytes), root, mb(rep.TotalBytes), fmt.Sprint(rep.KernelSymbols), files, ready, minMem, wl, stop, ver}
	return r, nil
}

// notes are what a reader of the report should know about its rows: an
// image without a workload result, images of different programs (whose
// figures are not a comparison).
func notes(rows []*reportRow) []string {
	var out []string
	names := map[string]bool{}
	for _, r := range rows {
		names[r.Rep.Name] = true
		if r.Rep.Workload == nil {
			out = append(out, fmt.Sprintf("%s (%s) has no workload result (built with --no-boot, or its spec has no workload): its speed is not reported", r.Rep.Name, r.Dir))
		}
	}
	if len(names) > 1 && len(rows) > 1 {
		out = append(out, fmt.Sprintf("the images are of %d different programs (%s): each row stands alone, not as a comparison", len(names), strings.Join(slices.Sorted(maps.Keys(names)), ", ")))
	}
	return out
}

// dataReport prints the data trees an image holds whole, and what its
// programs' packages ship that it does not hold (issue: fidelity beyond
// the traced workload).
func dataReport(w io.Writer, rep *image.Report) {
	var left []string
	for _, p := range rep.NotInImage {
		if len(p.Missing) > 0 {
			left = append(left, fmt.Sprintf("%s: %d of its %d files under /etc and /usr/share (%s), in %s", p.Name, len(p.Missing), p.Shipped, kb(p.MissingBytes), strings.Join(topDirs(p.Missing, 4), ", ")))
		}
	}
	if len(rep.DataTrees) == 0 && len(left) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### %s: data beyond the trace\n\n", rep.Name)
	if len(rep.DataTrees) > 0 {
		fmt.Fprintln(w, "| data tree | files | bytes | why |")
		fmt.Fprintln(w, "| --- | --- | --- | --- |")
		for _, d := range rep.DataTrees {
			fmt.Fprintf(w, "| %s | %d | %s | %s |\n", cell(d.Name), d.Files, kb(d.Bytes), cell(d.Why))
		}
	}
	if len(left) > 0 {
		fmt.Fprintln(w, "\nNot in the image (a client or config that asks for them fails; --include adds them):")
		for _, l := range left {
			fmt.Fprintf(w, "- %s\n", l)
		}
	}
}

// shakeReport prints what --shake-libs removed from an image's programs
// and libraries.
func shakeReport(w io.Writer, rep *image.Report) {
	sh := rep.Shake
	if sh == nil {
		return
	}
	fmt.Fprintf(w, "\n### %s: programs and libraries shaken (%s)\n\n", rep.Name, sh.Mode)
	fmt.Fprintln(w, "| object | functions removed | code removed | ROP gadgets |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, o := range sh.Objects {
		if o.Whole != "" {
			fmt.Fprintf(w, "| %s | kept whole: %s | 0 of %s | %d |\n", cell(o.Path), cell(o.Whole), kb(o.TextBytes), o.GadgetsBefore)
			continue
		}
		fmt.Fprintf(w, "| %s | %d of %d | %s of %s | %d -> %d |\n", cell(o.Path), o.Removed, o.Functions, kb(o.RemovedBytes), kb(o.TextBytes), o.GadgetsBefore, o.GadgetsAfter)
	}
	fmt.Fprintf(w, "| all | %d | %s of %s | %d -> %d |\n", sh.Removed, kb(sh.RemovedBytes), kb(sh.TextBytes), sh.GadgetsBefore, sh.GadgetsAfter)
	if len(sh.Restored) > 0 {
		fmt.Fprintf(w, "\nKept beyond the %s analysis (verify --fix, the smoke boot): %s\n", sh.Mode, strings.Join(sh.Restored, ", "))
	}
	if rep.Initramfs != nil {
		for _, f := range rep.Initramfs.Files {
			if f.Kind == initramfs.KindInit {
				fmt.Fprintf(w, "\nThe guest init (%s, a static Go program, not shaken): %s\n", f.Path, kb(f.Bytes))
			}
		}
	}
}

// topDirs returns the n directories holding the most of paths, with
// their counts ("/usr/share/postgresql/15/extension (310)").
func topDirs(paths []string, n int) []string {
	count := map[string]int64{}
	for _, p := range paths {
		count[filepath.Dir(p)]++
	}
	var out []string
	for _, d := range breakdown.Top(count, n) { // Bytes holds the count
		out = append(out, fmt.Sprintf("%s (%d)", d.Name, d.Bytes))
	}
	if len(count) > n {
		out = append(out, fmt.Sprintf("%d more", len(count)-n))
	}
	return out
}

// kernelReport prints what a profile-guided build, a shaken syscall table
// or --kernel-dce did to an image's kernel, and bespoke bench's result, if
// any.
func kernelReport(w io.Writer, r *reportRow) {
	rep, br := r.Rep, r.Bench
	p, sh := rep.PGO, rep.Syscalls
	var gc *kdce.Removed
	if rep.Kernel != nil {
		gc = rep.Kernel.GCSections
	}
	if p == nil && sh == nil && br == nil && gc == nil {
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
	if gc != nil {
		fmt.Fprintf(w, "\nDead code (--kernel-dce): the link removed %d functions, %d data objects and %d other sections; vmlinux has %s of code. Syscall entry points removed: %d (%s).\n",
			gc.Functions, gc.Data, gc.Other, kb(int64(rep.Kernel.Vmlinux.Code)), len(gc.Syscalls), strings.Join(gc.Syscalls, ", "))
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
