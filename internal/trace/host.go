package trace

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/bespoke-os/bespoke/internal/elfdeps"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

// host is what building a manifest asks of the machine the program ran
// on, at the end of the trace. Tests give a fake one.
type host interface {
	Lstat(p string) (fs.FileInfo, error)
	Readlink(p string) (string, error)
	// Head returns the first bytes of the file at p, or nil.
	Head(p string) []byte
	// Closure is elfdeps.Closure.
	Closure(p string) ([]manifest.File, error)
	// MountType returns the filesystem type of the mount p lives on, or "".
	MountType(p string) string
}

// realHost is the machine bespoke runs on.
type realHost struct {
	mounts []mountPoint // from /proc/PID/mountinfo of the program
}

type mountPoint struct {
	dir, fstype string
}

func (realHost) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }
func (realHost) Readlink(p string) (string, error)   { return os.Readlink(p) }
func (realHost) Closure(p string) ([]manifest.File, error) {
	return elfdeps.Closure(p, elfdeps.Options{})
}

func (realHost) Head(p string) []byte {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := io.ReadFull(f, b)
	return b[:n]
}

func (h realHost) MountType(p string) string {
	return mountTypeOf(h.mounts, p)
}

// mountTypeOf returns the fstype of the longest mount point containing p.
func mountTypeOf(mounts []mountPoint, p string) string {
	best, bestLen := "", -1
	for _, m := range mounts {
		if (p == m.dir || m.dir == "/" || strings.HasPrefix(p, m.dir+"/")) && len(m.dir) >= bestLen {
			best, bestLen = m.fstype, len(m.dir)
		}
	}
	return best
}

// readMountinfo parses a /proc/PID/mountinfo file. Later mounts on the same
// directory hide earlier ones, so they come last and win ties.
func readMountinfo(path string) []mountPoint {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseMountinfo(f)
}

func parseMountinfo(r io.Reader) []mountPoint {
	var ms []mountPoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		ms = append(ms, mountPoint{dir: unescapeMount(f[4]), fstype: g[0]})
	}
	return ms
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
