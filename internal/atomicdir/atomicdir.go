// Package atomicdir replaces a directory as a whole: the new content is
// assembled beside the destination and renamed into place, so a reader or
// a failure in between sees the old directory or the new one, never a mix.
// bespoke uses it so that a failed build leaves the last good output intact.
package atomicdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Stage creates a fresh directory beside dst, where a new version of dst is
// assembled before Replace.
func Stage(dst string) (string, error) {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	return os.MkdirTemp(parent, "."+filepath.Base(dst)+".new-")
}

// Replace replaces dst with src. When dst exists it is moved aside first
// and put back if the second rename fails.
func Replace(src, dst string) error {
	old := ""
	if _, err := os.Stat(dst); err == nil {
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
