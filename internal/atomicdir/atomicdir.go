// Package atomicdir replaces a directory as a whole: the new content is
// assembled beside the destination and swapped into place, so a reader or
// a failure in between sees the old directory or the new one, never a mix
// and never none. bespoke uses it so that a failed build leaves the last
// good output intact.
//
// A staging dir is named .NAME.new-* beside NAME and flock'ed by the
// process that stages it until Replace or Discard: the next Stage of
// NAME removes those no live process holds (a killed build's).
package atomicdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Test hooks.
var (
	exchange = func(a, b string) error {
		return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	}
	fsync = func(f *os.File) error { return f.Sync() }
)

// held are the staging dirs this process holds, by path: an open fd of
// the dir with an flock on it.
var held struct {
	sync.Mutex
	m map[string]*os.File
}

func stagePrefix(dst string) string { return "." + filepath.Base(dst) + ".new-" }

// Stage creates a fresh directory beside dst, where a new version of dst is
// assembled before Replace; Discard removes it when the new version is
// abandoned. Stage first removes the staging dirs of dst whose process is
// gone.
func Stage(dst string) (string, error) {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	removeStale(dst)
	for {
		dir, err := os.MkdirTemp(parent, stagePrefix(dst))
		if err != nil {
			return "", err
		}
		f, err := lockDir(dir, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // another Stage took it for stale before we locked it
		}
		if err != nil {
			os.Remove(dir)
			return "", fmt.Errorf("locking %s: %w", dir, err)
		}
		held.Lock()
		if held.m == nil {
			held.m = map[string]*os.File{}
		}
		held.m[dir] = f
		held.Unlock()
		return dir, nil
	}
}

// lockDir opens dir and takes an flock on it (how adds LOCK_NB). Between
// the mkdir and the lock another process's removeStale may remove the
// dir: then, once locked, the path no longer leads to the locked inode,
// and lockDir reports fs.ErrNotExist.
func lockDir(dir string, how int) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|how); err != nil {
		f.Close()
		return nil, err
	}
	fst, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if pst, err := os.Lstat(dir); err != nil || !os.SameFile(fst, pst) {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}

// removeStale removes the staging dirs of dst that no process holds. A
// live one's flock makes the try fail; the lock is held while removing,
// so two Stages do not remove one dir at once.
func removeStale(dst string) {
	ents, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagePrefix(dst)) {
			continue
		}
		dir := filepath.Join(filepath.Dir(dst), e.Name())
		f, err := lockDir(dir, unix.LOCK_NB)
		if err != nil {
			continue // live, or gone
		}
		os.RemoveAll(dir)
		f.Close()
	}
}

// release closes the lock of a staging dir this process holds.
func release(stage string) {
	held.Lock()
	f := held.m[stage]
	delete(held.m, stage)
	held.Unlock()
	if f != nil {
		f.Close()
	}
}

// Discard removes a staging dir that will not replace its destination.
func Discard(stage string) error {
	err := os.RemoveAll(stage)
	release(stage)
	return err
}

// Replace replaces dst with src, a dir made by Stage. The files and dirs
// of src are written to disk first and the swap after, so that after a
// crash or power loss dst is the old dir or the complete new one. When
// dst exists the two are exchanged in one step (renameat2
// RENAME_EXCHANGE) and the old one, now at src, is removed.
func Replace(src, dst string) error {
	if err := syncTree(src); err != nil {
		return fmt.Errorf("replacing %s: writing %s to disk: %w", dst, src, err)
	}
	err := exchange(src, dst)
	switch {
	case err == nil:
		release(src)
		os.RemoveAll(src) // the old dst
	case errors.Is(err, unix.ENOENT):
		// No dst yet (or no src: then Rename fails too).
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("replacing %s: %w", dst, err)
		}
		release(src)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// The filesystem (or the kernel, before 3.15) cannot exchange:
		// move dst aside, then rename src into place. A crash between
		// the two renames leaves dst missing and the old dir at
		// .NAME.old-*.
		if err := replaceByRenames(src, dst); err != nil {
			return err
		}
		release(src)
	default:
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("replacing %s: writing %s to disk: %w", dst, filepath.Dir(dst), err)
	}
	return nil
}

// replaceByRenames replaces dst with src by two renames; it puts dst back
// when the second fails.
func replaceByRenames(src, dst string) error {
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		o, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".old-")
		if err != nil {
			return fmt.Errorf("replacing %s: %w", dst, err)
		}
		os.Remove(o)
		if err := os.Rename(dst, o); err != nil {
			return fmt.Errorf("replacing %s: moving it aside: %w", dst, err)
		}
		old = o
	}
	if err := os.Rename(src, dst); err != nil {
		if old != "" {
			os.Rename(old, dst)
		}
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// syncTree fsyncs every regular file and dir under root, root included,
// children before their dir.
func syncTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
			return nil
		case d.Type().IsRegular():
			return syncPath(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error { return syncPath(dir) }

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = fsync(f)
	return errors.Join(err, f.Close())
}

// CopyFile copies a regular file with its permission bits
// (copy_file_range underneath, which shares blocks on filesystems that can).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Close())
}
