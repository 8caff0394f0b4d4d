package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	fmt.Fprintln(w, "| app | kernel | initramfs | total | kernel options =y | files | boot to ready (host) | workload | stop | verify |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, dir := range pos {
		rep, err := image.ReadReport(dir)
		if err != nil {
			return err
		}
		files, ready, wl, stop, ver := "-", "-", "not run", "-", "not run"
		if rep.Initramfs != nil {
			files = fmt.Sprint(len(rep.Initramfs.Files))
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
				ver = "failed: " + strings.ReplaceAll(vr.Reason, "|", "/")
			}
			ver += fmt.Sprintf(" (%d round(s))", len(vr.Rounds))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", rep.Name,
			mb(rep.KernelBytes), mb(rep.InitramfsBytes), mb(rep.TotalBytes), rep.KernelSymbols, files, ready, wl, stop, ver)
	}
	return nil
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/(1<<20)) }
