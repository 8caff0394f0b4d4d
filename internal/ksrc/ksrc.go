// Package ksrc finds and unpacks Linux kernel source. A source is a kernel
// tree, a .tar.xz (or .tar.gz, .tar) of one, or by default Debian's
// /usr/src/linux-source-6.12.tar.xz. Tarballs are unpacked once into the
// cache and never modified afterwards: builds are out of tree (O=).
package ksrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultSource is the kernel source used when none is given.
const DefaultSource = "/usr/src/linux-source-6.12.tar.xz"

// ErrNoSource means the kernel source does not exist.
var ErrNoSource = errors.New("kernel source not found")

// Tree is an unpacked kernel source tree, read-only for bespoke.
type Tree struct {
	Dir     string // top of the tree (holds Makefile, Kconfig, arch/)
	Version string // e.g. "6.12.117"
	Source  string // the tarball or directory it came from
	// ID identifies the source content for cache keys: the version plus a
	// hash of the tarball's path, size and modification time, or of the
	// tree's top Makefile for a directory.
	ID string
}

// CacheDir returns bespoke's cache directory: $BESPOKE_CACHE, else
// $XDG_CACHE_HOME/bespoke, else ~/.cache/bespoke.
func CacheDir() (string, error) {
	if d := os.Getenv("BESPOKE_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "bespoke"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w (set XDG_CACHE_HOME)", err)
	}
	return filepath.Join(home, ".cache", "bespoke"), nil
}

// Prepare returns the tree for src ("" means DefaultSource), unpacking a
// tarball into cacheDir/src/ on first use. Progress goes to log.
func Prepare(ctx context.Context, src, cacheDir string, log io.Writer) (*Tree, error) {
	if src == "" {
		src = DefaultSource
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		hint := ""
		if abs == DefaultSource {
			hint = " (install it: apt-get install linux-source-6.12, or pass --kernel-src)"
		}
		return nil, fmt.Errorf("%w: %s%s", ErrNoSource, abs, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("reading kernel source: %w", err)
	}
	if st.IsDir() {
		return treeAt(abs, abs)
	}
	if !isTarball(abs) {
		return nil, fmt.Errorf("kernel source %s: want a directory or a .tar.xz, .tar.gz or .tar file", abs)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano())))
	key := hex.EncodeToString(sum[:8])
	dest := filepath.Join(cacheDir, "src", strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))+"-"+key)
	if t, err := findTree(dest); err == nil {
		t.Source = abs
		return t, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, fmt.Errorf("creating cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".unpack-*")
	if err != nil {
		return nil, fmt.Errorf("creating cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "unpacking %s into %s ...\n", abs, dest)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "tar", "-xf", abs, "-C", tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("unpacking kernel source %s: %v: %s (is the tarball complete? reinstall linux-source-6.12 or pass another --kernel-src)",
			abs, err, strings.TrimSpace(lastLines(string(out), 3)))
	}
	if _, err := findTree(tmp); err != nil {
		return nil, fmt.Errorf("kernel source %s: %w", abs, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		// Another process may have unpacked the same source meanwhile.
		if t, err2 := findTree(dest); err2 == nil {
			t.Source = abs
			return t, nil
		}
		return nil, fmt.Errorf("moving unpacked source into the cache: %w", err)
	}
	fmt.Fprintf(log, "unpacked kernel source in %s\n", time.Since(start).Round(time.Second))
	t, err := findTree(dest)
	if err != nil {
		return nil, err
	}
	t.Source = abs
	return t, nil
}

func isTarball(p string) bool {
	for _, ext := range []string{".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar", ".tar.bz2"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// findTree finds the kernel tree in dir: dir itself, or its single top
// directory (as tarballs hold linux-source-6.12/).
func findTree(dir string) (*Tree, error) {
	if t, err := treeAt(dir, dir); err == nil {
		return t, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() {
			if t, err := treeAt(filepath.Join(dir, e.Name()), dir); err == nil {
				return t, nil
			}
		}
	}
	return nil, fmt.Errorf("no kernel tree (Makefile with VERSION, Kconfig, arch/x86) in %s", dir)
}

var versionRe = regexp.MustCompile(`(?m)^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d*)\s*$`)

// treeAt checks that dir is a kernel tree and reads its version.
func treeAt(dir, source string) (*Tree, error) {
	mk, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return nil, fmt.Errorf("%w: no Makefile in %s", ErrNoSource, dir)
	}
	for _, f := range []string{"Kconfig", "arch/x86/Kconfig"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%s is not a kernel tree: no %s", dir, f)
		}
	}
	v := map[string]string{}
	for _, m := range versionRe.FindAllStringSubmatch(string(mk), -1) {
		v[m[1]] = m[2]
	}
	if v["VERSION"] == "" {
		return nil, fmt.Errorf("%s is not a kernel tree: no VERSION in Makefile", dir)
	}
	version := v["VERSION"] + "." + v["PATCHLEVEL"]
	if v["SUBLEVEL"] != "" {
		version += "." + v["SUBLEVEL"]
	}
	sum := sha256.Sum256(mk)
	return &Tree{Dir: dir, Version: version, Source: source, ID: version + "-" + hex.EncodeToString(sum[:6])}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
