package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/cache"
	"github.com/bespoke-os/bespoke/internal/ksrc"
)

// runCache lists the cache (bespoke cache [ls]) or prunes it (bespoke
// cache prune).
func runCache(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "cache")
	maxSize := fs.String("max-size", "", "prune: remove the least recently used entries until the cache takes at most this (e.g. 20G)")
	olderThan := fs.String("older-than", "", "prune: remove entries unused for longer than this (e.g. 30d, 12h)")
	dryRun := fs.Bool("n", false, "prune: print what would be removed, remove nothing")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || len(pos) > 1 {
		return usageErrorf("want ls or prune")
	}
	verb := "ls"
	if len(pos) == 1 {
		verb = pos[0]
	}
	set := visited(fs)
	dir, err := ksrc.CacheDir()
	if err != nil {
		return err
	}
	switch verb {
	case "ls":
		for _, f := range []string{"max-size", "older-than", "n"} {
			if set[f] {
				return usageErrorf("--%s is for bespoke cache prune", f)
			}
		}
		es, err := cache.List(dir)
		if err != nil {
			return err
		}
		w := env.Stdout
		fmt.Fprintf(w, "%-14s %10s  %-16s  %s\n", "KIND", "SIZE", "LAST USED", "PATH")
		for _, e := range es {
			fmt.Fprintf(w, "%-14s %10s  %-16s  %s\n", e.Kind, cache.Human(e.Bytes), e.Used.Format("2006-01-02 15:04"), e.Path)
		}
		fmt.Fprintf(w, "total %s in %s\n", cache.Human(cache.Total(es)), dir)
		return nil
	case "prune":
		var opts cache.PruneOptions
		if *maxSize != "" {
			if opts.MaxBytes, err = cache.ParseSize(*maxSize); err != nil {
				return usageErrorf("--max-size: %v", err)
			}
		}
		if *olderThan != "" {
			if opts.OlderThan, err = parseAge(*olderThan); err != nil {
				return usageErrorf("--older-than: %v", err)
			}
		}
		if opts.MaxBytes == 0 && opts.OlderThan == 0 {
			return usageErrorf("prune needs --max-size or --older-than")
		}
		opts.DryRun = *dryRun
		removed, total, err := cache.Prune(dir, opts)
		what := "removed"
		if opts.DryRun {
			what = "would remove"
		}
		for _, e := range removed {
			fmt.Fprintf(env.Stdout, "%s %s %s (%s, last used %s)\n", what, e.Kind, e.Path, cache.Human(e.Bytes), e.Used.Format("2006-01-02 15:04"))
		}
		fmt.Fprintf(env.Stdout, "%s %s of %s in %s\n", what, cache.Human(cache.Total(removed)), cache.Human(total), dir)
		return err
	}
	return usageErrorf("unknown cache command %q: want ls or prune", verb)
}

// parseAge parses a duration that may be in days ("30d") as well as Go's
// units ("12h", "90m").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad age %q: want e.g. 30d or 12h", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad age %q: want e.g. 30d or 12h", s)
	}
	return d, nil
}

// pruneAfterBuild keeps the cache under its cap ($BESPOKE_CACHE_MAX,
// cache.DefaultMax) after a build, saying what it removed.
func pruneAfterBuild(env *Env) {
	limit, err := cache.MaxFromEnv()
	if err != nil {
		fmt.Fprintf(env.Stderr, "bespoke: %v: the cache is not pruned\n", err)
		return
	}
	dir, err := ksrc.CacheDir()
	if limit == 0 || err != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(dir, "kbuild")); err != nil {
		return
	}
	removed, total, err := cache.Prune(dir, cache.PruneOptions{MaxBytes: limit})
	if len(removed) > 0 {
		fmt.Fprintf(env.Stderr, "bespoke: the cache took %s, over its cap of %s (BESPOKE_CACHE_MAX): removed %s, least recently used first (bespoke cache ls lists it)\n",
			cache.Human(total), cache.Human(limit), cache.Human(cache.Total(removed)))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "bespoke: %v\n", err)
	}
}
