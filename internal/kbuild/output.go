package kbuild

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bespoke-os/bespoke/internal/atomicdir"
)

// artifacts are the files of a result dir and an output dir, and where
// they come from in a work dir ("" for the log).
var artifacts = []struct{ name, inWork string }{
	{"bzImage", "arch/x86/boot/bzImage"},
	{"vmlinux", "vmlinux"},
	{".config", ".config"},
	{"System.map", "System.map"},
	{"build.log", ""},
}

// install copies a result dir's artifacts and build.json into outDir. It
// fills a new dir beside outDir and swaps it in at the end, so outDir
// keeps its previous content when anything fails.
func install(outDir, resultDir string, meta *Meta, start time.Time) error {
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return err
	}
	if err := checkOutDir(outDir); err != nil {
		return err
	}
	tmp, err := atomicdir.Stage(outDir)
	if err != nil {
		return fmt.Errorf("writing kernel: %w", err)
	}
	defer atomicdir.Discard(tmp) // nothing left after the swap
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, a := range artifacts {
		if err := atomicdir.CopyFile(filepath.Join(resultDir, a.name), filepath.Join(tmp, a.name)); err != nil {
			return fmt.Errorf("writing kernel: %w", err)
		}
	}
	meta.TotalSeconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "build.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing kernel: %w", err)
	}
	if err := atomicdir.Replace(tmp, outDir); err != nil {
		return fmt.Errorf("writing kernel: %w", err)
	}
	return nil
}

// checkOutDir refuses to replace a dir that holds something other than
// an earlier kernel build.
func checkOutDir(outDir string) error {
	if ents, err := os.ReadDir(outDir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(outDir, "build.json")); err != nil {
			return fmt.Errorf("writing kernel: %s is not empty and holds no earlier kernel build (no build.json): choose another -o or empty it", outDir)
		}
	}
	return nil
}
