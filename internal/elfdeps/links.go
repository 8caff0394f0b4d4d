package elfdeps

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// maxSymlinks is how many symlinks one path may go through (Linux's
// MAXSYMLINKS).
const maxSymlinks = 40

// walk resolves the absolute path p component by component, as the kernel
// does, adding each symlink met on the way (a directory symlink included)
// as a File with Link set and the final file with its size. It returns the
// real path of the file.
func (c *closer) walk(p, kind string) (string, error) {
	if !filepath.IsAbs(p) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		p = abs
	}
	rest := splitComponents(p)
	cur := "/"
	links := 0
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			c.add(manifest.File{Path: next, Kind: kind, Link: target})
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(splitComponents(target), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return "", &fs.PathError{Op: "resolve", Path: next, Err: syscall.ENOTDIR}
		}
		cur = next
		if len(rest) == 0 {
			f := manifest.File{Path: cur, Kind: kind}
			if fi.Mode().IsRegular() {
				f.Size = fi.Size()
			} else if fi.IsDir() {
				return "", fmt.Errorf("%s is a directory", cur)
			}
			c.add(f)
		}
	}
	return cur, nil
}

func splitComponents(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
