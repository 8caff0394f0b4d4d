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
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/cache"
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
	// ID identifies the source content for cache keys: the version plus,
	// for a tarball, a hash of its bytes, and for a directory a hash of
	// every file's path, size, mode and change times (what make itself
	// trusts to tell an edited file). Any change of the source changes it.
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
		t, err := treeAt(abs, abs)
		if err != nil {
			return nil, err
		}
		sum, err := dirSum(abs)
		if err != nil {
			return nil, fmt.Errorf("reading kernel source %s: %w", abs, err)
		}
		t.ID = t.Version + "-" + sum
		return t, nil
	}
	if !isTarball(abs) {
		return nil, fmt.Errorf("kernel source %s: want a directory or a .tar.xz, .tar.gz or .tar file", abs)
	}
	// The unpacked tree is found again by the tarball's identity on disk
	// (path, size, inode, modification and change times: a tarball
	// rewritten in place gets a new change time); its content's hash,
	// taken when it was unpacked, is the tree's ID.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano(), ctimeNano(st), inode(st))))
	key := hex.EncodeToString(sum[:8])
	dest := filepath.Join(cacheDir, "src", strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))+"-"+key)
	if t, err := unpacked(dest, abs); err == nil {
		cache.Touch(dest)
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
	content, err := FileSum(abs)
	if err != nil {
		return nil, fmt.Errorf("reading kernel source %s: %w", abs, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, sumFile), []byte(content+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("creating cache: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		// Another process may have unpacked the same source meanwhile.
		if t, err2 := unpacked(dest, abs); err2 == nil {
			return t, nil
		}
		return nil, fmt.Errorf("moving unpacked source into the cache: %w", err)
	}
	fmt.Fprintf(log, "unpacked kernel source in %s\n", time.Since(start).Round(time.Second))
	return unpacked(dest, abs)
}

// sumFile, in an unpacked tarball's cache dir, holds the hash of the
// tarball's bytes.
const sumFile = ".bespoke-source-sha256"

// unpacked returns the tree unpacked from the tarball src in dest, its ID
// from the content hash recorded beside it (an unpack from before the
// record is hashed now).
func unpacked(dest, src string) (*Tree, error) {
	t, err := findTree(dest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dest, sumFile))
	content := strings.TrimSpace(string(b))
	if err != nil || len(content) != 64 {
		if content, err = FileSum(src); err != nil {
			return nil, err
		}
		// Best effort: the next Prepare hashes again if this fails.
		_ = os.WriteFile(filepath.Join(dest, sumFile), []byte(content+"\n"), 0o644)
	}
	t.Source, t.ID = src, t.Version+"-"+content[:16]
	return t, nil
}

// FileSum returns the SHA-256 of a file's bytes, in hex.
func FileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dirSum hashes a source tree's file list: each path with its type, mode,
// size, modification and change times (an edit, a patch, a checkout or a
// copy over a file changes one of them; make itself trusts the
// modification time). .git is left out: it does not build.
func dirSum(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\x00%d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), ctimeNano(fi))
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ctimeNano is a file's change time, which no tool sets back.
func ctimeNano(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return 0
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
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
	return &Tree{Dir: dir, Version: version, Source: source}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
