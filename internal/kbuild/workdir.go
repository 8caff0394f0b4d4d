package kbuild

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bespoke-os/bespoke/internal/flock"
)

// MaxWorkDirs is how many work dirs a lineage keeps before a build must
// reuse one that most of its objects would recompile in.
const MaxWorkDirs = 4

// farFraction: a work dir in which more than this share of the objects
// depend on an option that changed is not worth continuing while the
// lineage may have another (ccache still serves a new dir the objects
// the change does not touch).
const farFraction = 0.5

type workDir struct {
	dir  string
	dist int // options that differ from its last build's config
	// recompile estimates the objects Kbuild would rebuild there: those
	// whose dependencies (the .cmd files fixdep writes) name an option
	// that differs. objects counts the objects; 0 when unknown.
	recompile, objects int
}

// far reports whether most of w's objects would recompile.
func (w workDir) far() bool {
	return w.objects > 0 && float64(w.recompile) > farFraction*float64(w.objects)
}

// workDirs lists the work dirs of a lineage, cheapest to continue for cfg
// first: fewest objects to recompile, then fewest options that differ.
// flags are the options the kernel's Makefiles test (makefileOptions).
func workDirs(root, lineage string, cfg []byte, flags map[string]bool) []workDir {
	matches, _ := filepath.Glob(filepath.Join(root, lineage+".*"))
	want := configMap(cfg)
	var ws []workDir
	for _, m := range matches {
		if st, err := os.Stat(m); err != nil || !st.IsDir() || strings.Contains(filepath.Base(m)[len(lineage)+1:], ".") {
			continue
		}
		w := workDir{dir: m, dist: 1 << 30}
		if in, err := os.ReadFile(filepath.Join(m, inputFile)); err == nil {
			changed := changedOptions(configMap(in), want)
			w.dist = len(changed)
			w.recompile, w.objects = dependents(m, changed, flags)
		}
		ws = append(ws, w)
	}
	sort.SliceStable(ws, func(i, j int) bool {
		if ws[i].recompile != ws[j].recompile {
			return ws[i].recompile < ws[j].recompile
		}
		return ws[i].dist < ws[j].dist
	})
	return ws
}

// changedOptions returns the options (without CONFIG_) set differently
// in a and b.
func changedOptions(a, b map[string]string) map[string]bool {
	changed := map[string]bool{}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			changed[strings.TrimPrefix(k, "CONFIG_")] = true
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed[strings.TrimPrefix(k, "CONFIG_")] = true
		}
	}
	return changed
}

// dependents counts the objects in a build dir (their .o.cmd files) and
// those whose recorded dependencies name one of the options: Kbuild's
// fixdep lists each option a source file or its headers test as
// $(wildcard include/config/NAME). An option of flags (one the Makefiles
// test) that no source or header tests sets compiler flags
// (CC_OPTIMIZE_FOR_SIZE: -Os), so it changes every command line: then
// every object recompiles.
func dependents(dir string, options, flags map[string]bool) (recompile, objects int) {
	const marker = "include/config/"
	seen := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".o.cmd") {
			return nil
		}
		objects++
		if len(options) == 0 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		hit := false
		for rest := data; ; {
			i := bytes.Index(rest, []byte(marker))
			if i < 0 {
				break
			}
			rest = rest[i+len(marker):]
			end := bytes.IndexAny(rest, ") \\\n")
			if end < 0 {
				end = len(rest)
			}
			if name := string(rest[:end]); options[name] {
				seen[name], hit = true, true
			}
		}
		if hit {
			recompile++
		}
		return nil
	})
	for o := range options {
		if flags[o] && !seen[o] {
			return objects, objects
		}
	}
	return recompile, objects
}

// makefileOptions returns the options (without CONFIG_) that the kernel's
// top-level, x86 and build Makefiles test: those that can change the
// compiler's flags for every object.
func makefileOptions(srcDir string) map[string]bool {
	opts := map[string]bool{}
	for _, f := range []string{"Makefile", "arch/x86/Makefile", "scripts/Makefile.build", "scripts/Makefile.lib"} {
		data, err := os.ReadFile(filepath.Join(srcDir, f))
		if err != nil {
			continue
		}
		for _, m := range configRef.FindAllSubmatch(data, -1) {
			opts[string(m[1])] = true
		}
	}
	return opts
}

var configRef = regexp.MustCompile(`CONFIG_([A-Za-z0-9_]+)`)

// acquireWorkDir locks the work dir of a lineage that is cheapest to
// continue for cfg, skipping those other builds hold. It creates the next
// one (and returns it with dist -1) when all are busy or there is none,
// and when most objects would recompile in the cheapest while the lineage
// has fewer than MaxWorkDirs: that keeps each dir near the configs built
// in it, so that a small change to any of them (verify --fix) stays a
// small rebuild. near is the dir it passed over, if any. lock holds the
// work dir's flock: closing it unlocks, once no process that inherited
// it (make, see Command.ExtraFiles) still runs.
func acquireWorkDir(root, lineage string, cfg []byte, flags map[string]bool) (w workDir, near *workDir, lock *os.File, err error) {
	ws := workDirs(root, lineage, cfg, flags)
	for i := range ws {
		l, err := tryLock(ws[i].dir + ".lock")
		if err != nil {
			return workDir{}, nil, nil, err
		}
		if l == nil {
			continue
		}
		if ws[i].far() && len(ws) < MaxWorkDirs {
			l.Close()
			near = &ws[i]
			break
		}
		return ws[i], nil, l, nil
	}
	for n := 0; n < 1000; n++ {
		d := fmt.Sprintf("%s.%d", filepath.Join(root, lineage), n)
		if _, err := os.Stat(d); err == nil {
			continue
		}
		l, err := tryLock(d + ".lock")
		if err != nil {
			return workDir{}, nil, nil, err
		}
		if l == nil {
			continue
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			l.Close()
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return workDir{}, nil, nil, fmt.Errorf("creating build dir: %w", err)
		}
		return workDir{dir: d, dist: -1}, near, l, nil
	}
	return workDir{}, nil, nil, fmt.Errorf("no free build dir for %s in %s", lineage, root)
}

// tryLock takes an flock on path without waiting. It returns the locked
// file, or nil when another holds the lock. Closing the file unlocks:
// there is no LOCK_UN, which would unlock it for the processes that
// inherited it too.
func tryLock(path string) (*os.File, error) {
	f, err := flock.TryLock(path)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// saveResult copies the artifacts of a finished build from the work dir
// into a new result dir, with the log and the metadata, and swaps it into
// place (atomicdir, which writes it to disk first): from then on the key
// is a cache hit.
func saveResult(work, result, logPath string, meta *Meta) error {
	tmp, err := atomicdir.Stage(result)
	if err != nil {
		return err
	}
	defer atomicdir.Discard(tmp) // nothing left after the swap
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, a := range artifacts {
		from := filepath.Join(work, a.inWork)
		if a.inWork == "" {
			from = logPath
		}
		if err := atomicdir.CopyFile(from, filepath.Join(tmp, a.name)); err != nil {
			return err
		}
	}
	if err := writeJSON(filepath.Join(tmp, metaFile), meta); err != nil {
		return err
	}
	return atomicdir.Replace(tmp, result)
}
