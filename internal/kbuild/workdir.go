package kbuild

import (
	"errors"
	"fmt"
	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

type workDir struct {
	dir  string
	dist int // options that differ from its last build's config
}

// workDirs lists the work dirs of a lineage, nearest to cfg first.
func workDirs(root, lineage string, cfg []byte) []workDir {
	matches, _ := filepath.Glob(filepath.Join(root, lineage+".*"))
	var ws []workDir
	for _, m := range matches {
		if st, err := os.Stat(m); err != nil || !st.IsDir() || strings.Contains(filepath.Base(m)[len(lineage)+1:], ".") {
			continue
		}
		dist := 1 << 30
		if in, err := os.ReadFile(filepath.Join(m, inputFile)); err == nil {
			dist = configDistance(in, cfg)
		}
		ws = append(ws, workDir{m, dist})
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].dist < ws[j].dist })
	return ws
}

// acquireWorkDir locks the work dir of a lineage whose last config is
// nearest to cfg, skipping those other builds hold; when all are busy (or
// there is none) it creates the next one, and returns dist -1.
func acquireWorkDir(root, lineage string, cfg []byte) (dir string, dist int, unlock func(), err error) {
	for _, w := range workDirs(root, lineage, cfg) {
		if u, ok, err := tryLock(w.dir + ".lock"); err != nil {
			return "", 0, nil, err
		} else if ok {
			return w.dir, w.dist, u, nil
		}
	}
	for n := 0; n < 1000; n++ {
		d := fmt.Sprintf("%s.%d", filepath.Join(root, lineage), n)
		if _, err := os.Stat(d); err == nil {
			continue
		}
		u, ok, err := tryLock(d + ".lock")
		if err != nil {
			return "", 0, nil, err
		}
		if !ok {
			continue
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			u()
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", 0, nil, fmt.Errorf("creating build dir: %w", err)
		}
		return d, -1, u, nil
	}
	return "", 0, nil, fmt.Errorf("no free build dir for %s in %s", lineage, root)
}

// tryLock takes an flock on path without waiting.
func tryLock(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, true, nil
}

// saveResult copies the artifacts of a finished build from the work dir
// into a new result dir, with the log and the metadata, and renames it
// into place: from then on the key is a cache hit.
func saveResult(work, result, logPath string, meta *Meta) error {
	tmp, err := os.MkdirTemp(filepath.Dir(result), filepath.Base(result)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
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
	os.RemoveAll(result) // a result dir without metadata is no result
	return os.Rename(tmp, result)
}
