package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// configFlags are the flags of `bespoke config`.
type configFlags struct {
	manifest  string
	target    string
	kernelSrc string
	opt       string
	enable    stringList
	disable   stringList
	explain   bool
	net       bool
	root      string
	// compression is the root's, as bespoke build's --compression.
	compression string
	out         string
}

func runConfig(ctx context.Context, env *Env, args []string) error {
	var f configFlags
	fs := newFlagSet(env, "config")
	fs.StringVar(&f.manifest, "manifest", "", "the manifest (from bespoke trace) whose features the kernel needs")
	fs.StringVar(&f.target, "target", kconfig.DefaultTarget, "the VMM: "+strings.Join(kconfig.Targets, ", "))
	fs.StringVar(&f.kernelSrc, "kernel-src", "", "kernel source tree or tarball (default "+ksrc.DefaultSource+")")
	fs.StringVar(&f.opt, "opt", kconfig.OptO2, "compiler optimisation: o2 (-O2) or size (-Os)")
	fs.Var(&f.enable, "enable", "enable a Kconfig symbol, SYM or CONFIG_SYM; SYM=value for string/int options (repeatable)")
	fs.Var(&f.disable, "disable", "disable a Kconfig symbol (repeatable)")
	fs.BoolVar(&f.explain, "explain", false, "print why each enabled option is there")
	fs.BoolVar(&f.net, "net", false, "add networking (virtio-net) even if the manifest uses no IP socket")
	fs.StringVar(&f.root, "root", spec.DefaultRoot, "the image's root filesystem: "+strings.Join(spec.Roots, " or ")+" (its options: a virtio disk and erofs, or an xz initramfs)")
	fs.StringVar(&f.compression, "compression", "", "the root's compression, as bespoke build's: for erofs lz4hc (default) or lzma (adds EROFS_FS_ZIP_LZMA), for initramfs xz")
	fs.StringVar(&f.out, "o", "", "write the .config to this file (- for stdout)")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || len(rest) > 0 {
		return usageErrorf("unexpected arguments %q (the manifest goes after --manifest)", append(pos, rest...))
	}
	if f.out == "" {
		return usageErrorf("missing -o FILE (where to write the .config; - for stdout)")
	}
	if f.manifest == "" && len(f.enable) == 0 && !f.net {
		return usageErrorf("missing --manifest M (from bespoke trace); without one, only the base of the target is configured, so say so with --net or --enable")
	}
	if f.opt != kconfig.OptO2 && f.opt != kconfig.OptSize {
		return usageErrorf("--opt %q: want o2 or size", f.opt)
	}
	if _, err := kconfig.BaseParts(f.target, false, f.root); err != nil {
		return usageErrorf("%v", err)
	}
	if f.compression != "" {
		// The options this compression needs beyond the root's base part
		// (which holds the default compression's), as bespoke build asks.
		cs := spec.Compressions[f.root]
		if !slices.Contains(cs, f.compression) {
			return usageErrorf("--compression %q of an %s root: want %s", f.compression, f.root, strings.Join(cs, " or "))
		}
		syms, err := initramfs.RootKconfig(f.root, f.compression)
		if err != nil {
			return usageErrorf("%v", err)
		}
		base, err := initramfs.RootKconfig(f.root, "")
		if err != nil {
			return usageErrorf("%v", err)
		}
		for _, s := range syms {
			if !slices.Contains(base, s) {
				f.enable = append(f.enable, s)
			}
		}
	}

	opts := kconfig.Options{Target: f.target, Opt: f.opt, Net: f.net, Root: f.root, Enable: f.enable, Disable: f.disable, Log: env.Stderr}
	if f.manifest != "" {
		m, err := manifest.ReadFile(f.manifest)
		if err != nil {
			return err
		}
		opts.Manifest = m
	}
	// Check the user's symbols before touching the kernel source, so that
	// a typo fails at once.
	if _, _, err := kconfig.Requests(opts); err != nil {
		return usageErrorf("%v", err)
	}
	cache, err := ksrc.CacheDir()
	if err != nil {
		return err
	}
	tree, err := ksrc.Prepare(ctx, f.kernelSrc, cache, env.Stderr)
	if err != nil {
		return err
	}
	opts.Tree, opts.CacheDir = tree, cache
	res, err := kconfig.Generate(ctx, opts)
	if err != nil {
		return fmt.Errorf("configuring Linux %s for %s:\n%w", tree.Version, f.target, err)
	}
	if f.explain {
		if err := kconfig.WriteExplanation(env.Stdout, res.Explanation, res.Defaults); err != nil {
			return err
		}
	}
	if f.out == "-" {
		_, err := env.Stdout.Write(res.Data)
		return err
	}
	if err := writeConfigFile(f.out, res.Data); err != nil {
		return fmt.Errorf("writing the .config: %w", err)
	}
	fmt.Fprintf(env.Stderr, "wrote %s: Linux %s for %s, %d options built in (base: %s)\n",
		f.out, tree.Version, f.target, res.Yes, strings.Join(res.Parts, "+"))
	return nil
}

// writeConfigFile writes data to a temporary file beside path and renames
// it into place, so that a failure never leaves half a file.
func writeConfigFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
