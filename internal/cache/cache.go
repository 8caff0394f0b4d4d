// Package cache lists and prunes bespoke's cache directory: kernel build
// results and build dirs, unpacked kernel sources, kernel profiles, the
// prepared state of programs, the tools built for guests, ccache. Every
// profile-guided build adds a build dir and a profile, so without pruning
// the cache only grows.
package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/flock"
)

// Entry kinds.
const (
	KindKernel  = "kernel"        // kbuild/KEY: a finished build's artifacts
	KindWorkDir = "build dir"     // kbuild/work-LINEAGE.N: make's output dir
	KindSource  = "kernel source" // src/NAME: an unpacked tarball
	KindProfile = "profile"       // pgo/profile-HASH
	KindState   = "state"         // state/NAME: a program's prepared state
	KindTools   = "tools"         // init/*, kconfig-*: small binaries bespoke builds
	KindCcache  = "ccache"        // ccache: its own size limit (CCACHE_MAXSIZE)
	KindOther   = "other"         // anything else
)

// Entry is one thing in the cache that is removed whole.
type Entry struct {
	Kind  string
	Path  string
	Bytes int64     // disk use
	Used  time.Time // last use (Touch), else its modification time
	// Lock is the flock file a build holds while it uses the entry; prune
	// takes it before removing and skips the entry when it is held.
	Lock string
}

// Touch marks the entry at path as used now, for prune's order.
func Touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// List returns the entries of the cache in dir, largest first.
func List(dir string) ([]Entry, error) {
	top, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the cache: %w", err)
	}
	var out []Entry
	add := func(kind, p, lock string) {
		e := Entry{Kind: kind, Path: p, Bytes: diskUse(p), Lock: lock}
		if fi, err := os.Stat(p); err == nil {
			e.Used = fi.ModTime()
		}
		out = append(out, e)
	}
	for _, t := range top {
		p := filepath.Join(dir, t.Name())
		switch name := t.Name(); {
		case name == "kbuild" && t.IsDir():
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("reading the cache: %w", err)
			}
			for _, e := range ents {
				n := e.Name()
				switch {
				case !e.IsDir() || strings.HasPrefix(n, "."):
					// locks and logs go with their entry; staging dirs
					// belong to a build (atomicdir removes dead ones)
				case strings.HasPrefix(n, "work-"):
					add(KindWorkDir, filepath.Join(p, n), filepath.Join(p, n+".lock"))
				default:
					add(KindKernel, filepath.Join(p, n), filepath.Join(p, n+".lock"))
				}
			}
		case (name == "src" || name == "pgo" || name == "state" || name == "init") && t.IsDir():
			kind := map[string]string{"src": KindSource, "pgo": KindProfile, "state": KindState, "init": KindTools}[name]
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("reading the cache: %w", err)
			}
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), ".") {
					add(kind, filepath.Join(p, e.Name()), "")
				}
			}
		case name == "ccache":
			add(KindCcache, p, "")
		case strings.HasPrefix(name, "kconfig-"):
			add(KindTools, p, "")
		default:
			add(KindOther, p, "")
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// diskUse is the bytes of disk the files under p take.
func diskUse(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Total is the disk use of entries.
func Total(es []Entry) int64 {
	var n int64
	for _, e := range es {
		n += e.Bytes
	}
	return n
}

// PruneOptions says what Prune removes.
type PruneOptions struct {
	// MaxBytes: remove the least recently used entries until the cache
	// takes no more (0: no limit).
	MaxBytes int64
	// OlderThan: remove entries unused for longer (0: none for age).
	OlderThan time.Duration
	// DryRun: say what would go, remove nothing.
	DryRun bool
	// Now is the time ages are measured from (zero: time.Now()).
	Now time.Time
}

// MinAge is how recently used an entry may be and still be pruned: one
// used in the last minutes may belong to a build that is running (an
// unpacked source has no lock).
const MinAge = 10 * time.Minute

// Prune removes entries of the cache in dir, least recently used first:
// those unused for longer than OlderThan, then more until the total is
// at most MaxBytes. ccache is never removed (ccache keeps itself under
// CCACHE_MAXSIZE), nor an entry used in the last MinAge, nor one whose
// lock a build holds. It returns the entries removed (or, with DryRun,
// that would be) and the cache's total before.
func Prune(dir string, opts PruneOptions) (removed []Entry, total int64, err error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	es, err := List(dir)
	if err != nil {
		return nil, 0, err
	}
	total = Total(es)
	slices.SortStableFunc(es, func(a, b Entry) int { return a.Used.Compare(b.Used) })
	left := total
	for _, e := range es {
		old := opts.OlderThan > 0 && opts.Now.Sub(e.Used) > opts.OlderThan
		over := opts.MaxBytes > 0 && left > opts.MaxBytes
		if !old && !over || e.Kind == KindCcache || opts.Now.Sub(e.Used) < MinAge {
			continue
		}
		if !opts.DryRun {
			ok, err := remove(e)
			if err != nil {
				return removed, total, err
			}
			if !ok {
				continue // in use
			}
		}
		left -= e.Bytes
		removed = append(removed, e)
	}
	return removed, total, nil
}

// remove deletes an entry under its lock; false when a build holds it.
func remove(e Entry) (bool, error) {
	if e.Lock != "" {
		f, err := flock.TryLock(e.Lock)
		if err != nil {
			return false, fmt.Errorf("pruning the cache: %w", err)
		}
		if f == nil {
			return false, nil // a build holds it
		}
		defer f.Close()
	}
	if err := os.RemoveAll(e.Path); err != nil {
		return false, fmt.Errorf("pruning the cache: %w", err)
	}
	os.Remove(e.Path + ".log")
	if e.Lock != "" {
		os.Remove(e.Lock)
	}
	return true, nil
}

// ParseSize parses a size such as "20G", "500M", "1T" or a number of
// bytes (K, M, G, T are powers of 1024; "B", "iB" suffixes allowed).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q: want bytes or a size with K, M, G or T (e.g. 20G)", s)
	}
	return int64(f * float64(mult)), nil
}

// Human renders bytes as "1.3 GB" (powers of 1024).
func Human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// DefaultMax is the size the cache is pruned to after each image build,
// unless $BESPOKE_CACHE_MAX says otherwise ("0": no limit).
const DefaultMax = 20 << 30

// MaxFromEnv returns the cache's size cap: $BESPOKE_CACHE_MAX, else
// DefaultMax; 0 means none.
func MaxFromEnv() (int64, error) {
	v := os.Getenv("BESPOKE_CACHE_MAX")
	if v == "" {
		return DefaultMax, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("BESPOKE_CACHE_MAX: %w", err)
	}
	return n, nil
}
