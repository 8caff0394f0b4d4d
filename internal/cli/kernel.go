package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/ksrc"
)

// kernelFlags are the flags of `bespoke kernel build`.
type kernelFlags struct {
	config    string
	kernelSrc string
	out       string
	jobs      int
	make      stringList
	dryRun    bool
}

func runKernel(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "build" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			newFlagSet(env, "kernel").Usage()
			return nil
		}
		return usageErrorf("want 'bespoke kernel build --config FILE -o DIR'")
	}
	var f kernelFlags
	fs := newFlagSet(env, "kernel build")
	fs.StringVar(&f.config, "config", "", "the kernel config `FILE` to build (a .config, from 'bespoke config')")
	fs.StringVar(&f.kernelSrc, "kernel-src", "", "kernel source: a tree or a .tar.xz (default "+ksrc.DefaultSource+")")
	fs.StringVar(&f.out, "o", "", "output `DIR`: bzImage, vmlinux, .config, System.map, build.log, build.json")
	fs.IntVar(&f.jobs, "j", 0, "make jobs (default: the number of CPUs)")
	fs.Var(&f.make, "make", "extra make argument `VAR=VALUE`, e.g. KCFLAGS=-g (repeatable; part of the cache key)")
	fs.BoolVar(&f.dryRun, "n", false, "print the make command lines without running them")
	pos, _, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments %q", pos)
	}
	if f.config == "" {
		return usageErrorf("--config is required (write one with 'bespoke config')")
	}
	if f.out == "" && !f.dryRun {
		return usageErrorf("-o DIR is required")
	}
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		return fmt.Errorf("reading kernel config: %w", err)
	}
	cache, err := ksrc.CacheDir()
	if err != nil {
		return err
	}
	tree, err := ksrc.Prepare(ctx, f.kernelSrc, cache, env.Stderr)
	if err != nil {
		return fmt.Errorf("preparing kernel source: %w", err)
	}
	res, err := kbuild.Build(ctx, kbuild.Options{
		Tree: tree, Config: cfg, OutDir: f.out, CacheDir: cache, Jobs: f.jobs, ExtraMake: f.make,
		Progress: env.Stderr, ProgressTerminal: isTerminal(env.Stderr), DryRun: f.dryRun,
	})
	if err != nil {
		return err
	}
	if f.dryRun {
		if res.Hit {
			fmt.Fprintf(env.Stdout, "# cache hit: %s is built; make would not run\n", res.BuildDir)
		}
		fmt.Fprintf(env.Stdout, "mkdir -p %s && cp %s %s/.config\n", res.BuildDir, f.config, res.BuildDir)
		for _, c := range res.Commands {
			fmt.Fprintln(env.Stdout, c)
		}
		return nil
	}
	m := res.Meta
	how := fmt.Sprintf("built in %s", time.Duration(m.MakeSeconds*float64(time.Second)).Round(time.Second))
	if res.Hit {
		how = fmt.Sprintf("cache hit, %s", time.Duration(m.TotalSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	fmt.Fprintf(env.Stdout, "%s: bzImage %d bytes, %d options =y, Linux %s (%s, key %s)\n",
		res.Dir, m.BzImageBytes, m.EnabledY, m.SourceVersion, how, m.Key)
	for _, d := range m.Dropped {
		fmt.Fprintf(env.Stderr, "warning: %s was not kept by make olddefconfig (unmet dependency?)\n", d)
	}
	return nil
}
