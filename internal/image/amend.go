package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// AmendOptions says what Amend adds to an image.
type AmendOptions struct {
	Dir   string
	Fixes Fixes
	// CacheDir is bespoke's cache ("" means ksrc.CacheDir()).
	CacheDir string
	// Progress gets the kernel build's progress; Log everything else
	// (the kernel build's log included).
	Progress, Log io.Writer
	Jobs          int
}

// Amend adds fixes to the image in opts.Dir, changing only what they
// touch: files are appended to its initramfs as a new archive segment; a
// kernel option, or a syscall to keep in a shaken table, rebuilds its
// kernel from its own config plus the option (through the build cache).
// The new image is assembled beside the old one and renamed into place,
// so a failure leaves the image as it was; fixes.json and report.json
// record what was added.
func Amend(ctx context.Context, opts AmendOptions) error {
	dir := opts.Dir
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = ksrc.CacheDir(); err != nil {
			return err
		}
	}
	rep, err := ReadReport(dir)
	if err != nil {
		return fmt.Errorf("amending image %s: %w", dir, err)
	}
	sp, err := ReadSpec(dir)
	if err != nil {
		return err
	}
	stage, err := atomicdir.Stage(dir)
	if err != nil {
		return fmt.Errorf("amending image %s: %w", dir, err)
	}
	defer atomicdir.Discard(stage)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("amending image %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := atomicdir.CopyFile(filepath.Join(dir, e.Name()), filepath.Join(stage, e.Name())); err != nil {
				return fmt.Errorf("amending image %s: %w", dir, err)
			}
		}
	}

	paths, replace, err := restoreFunctions(dir, stage, opts.Fixes.ShakeKeep, opts.Log)
	if err != nil {
		return fmt.Errorf("amending image %s: %w", dir, err)
	}
	defer os.RemoveAll(filepath.Join(stage, ".restored"))
	paths = append(whats(opts.Fixes.Include), paths...)
	if len(paths) > 0 {
		m, err := manifest.ReadFile(filepath.Join(dir, ManifestFile))
		if err != nil {
			return fmt.Errorf("amending image %s: %w", dir, err)
		}
		for _, f := range opts.Fixes.Include {
			if why := Exclusion(m, sp, f.What); why != "" {
				return fmt.Errorf("amending image %s: not adding %s: %s", dir, f.What, why)
			}
		}
		if rep.Initramfs == nil {
			return fmt.Errorf("amending image %s: its report lists no root", dir)
		}
		name, format := RootFileOf(spec.RootInitramfs), rep.Initramfs.Format
		var seg *initramfs.Report
		if format == initramfs.FormatErofs {
			name = RootFileOf(spec.RootErofs)
			seg, err = initramfs.AppendErofs(ctx, initramfs.AppendOptions{
				Archive:     filepath.Join(dir, name),
				Output:      filepath.Join(stage, name),
				Paths:       paths,
				Replace:     replace,
				Compression: rep.Initramfs.Compression,
			})
		} else {
			var existing map[string]bool
			if existing, err = initramfs.Paths(ctx, filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("amending image %s: %w", dir, err)
			}
			seg, err = initramfs.Append(ctx, initramfs.AppendOptions{
				Archive:     filepath.Join(dir, name),
				Output:      filepath.Join(stage, name),
				Paths:       paths,
				Replace:     replace,
				Existing:    existing,
				Compression: rep.Initramfs.Compression,
			})
		}
		if err != nil {
			return fmt.Errorf("amending image %s: %w", dir, err)
		}
		for _, f := range seg.Files {
			fmt.Fprintf(opts.Log, "amend: root: added %s (%s)\n", f.Path, f.Type)
		}
		rep.Initramfs.Files = append(rep.Initramfs.Files, seg.Files...)
		rep.Initramfs.FileBytes += seg.FileBytes
		fi, err := os.Stat(filepath.Join(stage, name))
		if err != nil {
			return err
		}
		rep.InitramfsBytes, rep.Initramfs.CompressedBytes = fi.Size(), fi.Size()
	}

	if len(opts.Fixes.Enable)+len(opts.Fixes.Keep) > 0 {
		tree, err := ksrc.Prepare(ctx, sp.Kernel.Source, cache, opts.Progress)
		if err != nil {
			return err
		}
		base, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			return fmt.Errorf("amending image %s: %w", dir, err)
		}
		tools, err := toolsFor(ctx, sp, cache)
		if err != nil {
			return fmt.Errorf("amending the kernel of %s: %w", dir, err)
		}
		res, err := kconfig.Generate(ctx, kconfig.Options{
			Tree: tree, Base: base, Enable: whats(opts.Fixes.Enable), CacheDir: cache, Log: opts.Log, MakeVars: tools.Kconfig,
		})
		if err != nil {
			return fmt.Errorf("amending the kernel config of %s: %w", dir, err)
		}
		// A shaken syscall table stays shaken, less the syscalls to keep.
		var remove []int
		if sh := rep.Syscalls; sh != nil {
			keep := whats(opts.Fixes.Keep)
			kept := &SyscallShake{Table: sh.Table, Kept: sh.Kept}
			for i, name := range sh.Removed {
				if slices.Contains(keep, name) {
					kept.Kept++
					continue
				}
				kept.Removed = append(kept.Removed, name)
				kept.RemovedNrs = append(kept.RemovedNrs, sh.RemovedNrs[i])
			}
			rep.Syscalls, remove = kept, kept.RemovedNrs
		}
		ko := kbuild.Options{
			Tree: tree, Config: res.Data, CacheDir: cache, Jobs: opts.Jobs, Progress: opts.Progress,
			RemoveSyscalls: remove,
		}
		tools.apply(&ko)
		kr, err := installKernel(ctx, ko, stage, opts.Log)
		if err != nil {
			return fmt.Errorf("amending the kernel of %s: %w", dir, err)
		}
		meta := kr.Meta
		rep.Kernel, rep.KernelBytes, rep.KernelSymbols = &meta, meta.BzImageBytes, res.Yes
		if rep.PGO != nil || sp.Kernel.Opt == spec.OptPGO {
			if err := dropPGO(stage, sp, rep); err != nil {
				return fmt.Errorf("amending image %s: %w", dir, err)
			}
			fmt.Fprintf(opts.Progress, "amend: the new kernel is built with -O2, without the profile: the image is no longer profile-guided (rebuild it with bespoke build --optimize pgo, and the fixed options in the spec's kernel.enable, to profile it again)\n")
		}
	}

	if len(opts.Fixes.Seccomp) > 0 {
		img, err := vm.LoadImage(stage)
		if err != nil {
			return fmt.Errorf("amending image %s: %w", dir, err)
		}
		if img.Seccomp == nil {
			return fmt.Errorf("amending image %s: it has no seccomp allowlist to add %s to", dir, strings.Join(whats(opts.Fixes.Seccomp), ", "))
		}
		allow := append(slices.Clone(img.Seccomp.Allow), whats(opts.Fixes.Seccomp)...)
		slices.Sort(allow)
		img.Seccomp.Allow = slices.Compact(allow)
		// Write checks the list: a name that is no syscall is refused.
		if err := img.Write(stage); err != nil {
			return fmt.Errorf("amending image %s: %w", dir, err)
		}
		rep.Seccomp = img.Seccomp
		fmt.Fprintf(opts.Log, "amend: seccomp allowlist: added %s\n", strings.Join(whats(opts.Fixes.Seccomp), ", "))
	}

	fixes, err := ReadFixes(dir)
	if err != nil {
		return err
	}
	fixes.Include = mergeFixes(fixes.Include, opts.Fixes.Include)
	fixes.Enable = mergeFixes(fixes.Enable, opts.Fixes.Enable)
	fixes.Keep = mergeFixes(fixes.Keep, opts.Fixes.Keep)
	fixes.Seccomp = mergeFixes(fixes.Seccomp, opts.Fixes.Seccomp)
	fixes.ShakeKeep = mergeFixes(fixes.ShakeKeep, opts.Fixes.ShakeKeep)
	if err := fixes.Write(stage); err != nil {
		return err
	}
	rep.Fixes = fixes
	rep.TotalBytes = rep.KernelBytes + rep.InitramfsBytes
	if err := writeJSON(filepath.Join(stage, ReportFile), rep); err != nil {
		return err
	}
	if err := atomicdir.Replace(stage, dir); err != nil {
		return fmt.Errorf("amending image %s: %w", dir, err)
	}
	return nil
}

// dropPGO makes a staged image whose kernel was rebuilt without its
// profile say so: its report and spec no longer claim a profile-guided
// kernel, and the -O2 twin and profile files kept for bench and report go
// (bench would compare two -O2 kernels).
func dropPGO(stage string, sp *spec.Spec, rep *Report) error {
	rep.PGO = nil
	sp.Kernel.Opt = spec.OptO2
	for _, f := range []string{O2KernelFile, O2VmlinuxFile, O2MetaFile, ProfileFile, ProfileConsole, CCLogFile} {
		if err := os.Remove(filepath.Join(stage, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return writeJSON(filepath.Join(stage, SpecFile), sp)
}

// mergeFixes adds the fixes of b not already in a, by What.
func mergeFixes(a, b []Fix) []Fix {
	for _, f := range b {
		if !slices.ContainsFunc(a, func(g Fix) bool { return g.What == f.What }) {
			a = append(a, f)
		}
	}
	return a
}

// RootPaths returns the guest paths an image's root holds: an
// initramfs's entries, or an erofs root's files.
func RootPaths(ctx context.Context, dir string) (map[string]bool, error) {
	if _, err := os.Stat(filepath.Join(dir, RootFile)); err == nil {
		return initramfs.ErofsPaths(ctx, filepath.Join(dir, RootFile))
	}
	return initramfs.Paths(ctx, filepath.Join(dir, InitramfsFile))
}

// SetMinMemory records in an image's report.json the smallest memory, in
// MiB, with which it passes its workload.
func SetMinMemory(dir string, mb int) error {
	rep, err := ReadReport(dir)
	if err != nil {
		return err
	}
	rep.MinMemoryMB = mb
	if err := writeJSON(filepath.Join(dir, ReportFile), rep); err != nil {
		return err
	}
	img, err := vm.LoadImage(dir)
	if err != nil {
		return err
	}
	img.MinMemoryMB = mb
	return img.Write(dir)
}

// ReadReport reads an image's report.json.
func ReadReport(dir string) (*Report, error) {
	var rep Report
	data, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the report of %s: %w", dir, err)
	}
	return &rep, nil
}
