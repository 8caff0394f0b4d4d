package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// KindFix marks files bespoke verify --fix appended to an image.
const KindFix = "fix"

// AppendOptions says what Append adds to an archive.
type AppendOptions struct {
	// Archive is the initramfs to extend; Output the file written
	// (atomically; it may be Archive).
	Archive, Output string
	// Paths are host paths added at the same guest path, with their
	// symlink chains and, for directories, their contents.
	Paths []string
	// Existing lists the guest paths the archive already holds. Their
	// directories are not written again: the kernel would reset the
	// owner and mode of a directory the image set (a state directory
	// owned by the program's user, say).
	Existing map[string]bool
	// Compression of the new segment ("" means DefaultCompression), or
	// the erofs root's (AppendErofs: "" means ErofsLZ4HC).
	Compression string
	// HostRoot is the directory host paths are read from; "" means "/".
	HostRoot string
	// Replace gives, by guest path, a file to store instead of the host
	// file of one of Paths (a library with a removed function restored).
	Replace map[string]string
}

// Append writes a new archive segment holding opts.Paths and stores
// Archive followed by it as Output. The kernel unpacks concatenated
// archives in order, each with its own compression, so the result holds
// everything Archive held plus the new files. The report describes the
// new segment only.
func Append(ctx context.Context, opts AppendOptions) (*Report, error) {
	method := opts.Compression
	if method == "" {
		method = DefaultCompression
	}
	syms, err := KconfigFor(method)
	if err != nil {
		return nil, fmt.Errorf("appending to initramfs: %w", err)
	}
	b := newBuilder(opts.HostRoot, method, syms)
	if err := b.addFixes(opts.Paths, opts.Replace); err != nil {
		return nil, fmt.Errorf("appending to initramfs: %w", err)
	}
	for p, n := range b.nodes {
		if opts.Existing[p] && n.hdr.Type() == TypeDir {
			delete(b.nodes, p)
		}
	}
	seg := opts.Output + ".segment"
	if err := b.write(ctx, seg, method); err != nil {
		return nil, fmt.Errorf("appending to initramfs: %w", err)
	}
	defer os.Remove(seg)
	if err := Concat(opts.Output, opts.Archive, seg); err != nil {
		return nil, fmt.Errorf("appending to initramfs: %w", err)
	}
	return b.report, nil
}

// addFixes adds the host paths bespoke verify --fix found missing, with
// their parent directories.
func (b *builder) addFixes(paths []string, replace map[string]string) error {
	for _, p := range paths {
		if err := b.addHost(p, KindFix, true, 0); err != nil {
			return err
		}
	}
	if len(b.nodes) == 0 {
		return errors.New("nothing to add")
	}
	if len(replace) > 0 {
		if err := b.rewrite(func([]HostFile) (map[string]string, error) { return replace, nil }); err != nil {
			return err
		}
	}
	return b.addParents()
}

// Concat writes the files parts one after the other to out, atomically,
// each padded with zeros to a multiple of 4 bytes: the kernel skips zeros
// between archives, and an uncompressed cpio archive must start at an
// offset divisible by 4.
func Concat(out string, parts ...string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		n, err := io.Copy(tmp, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if _, err := tmp.Write(make([]byte, pad4(n))); err != nil {
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// WriteFileSegment writes an uncompressed archive to out holding the host
// file src at the guest path dst (mode 0755, owned by root), with dst's
// parent directories.
func WriteFileSegment(out, src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := NewWriter(f)
	var dirs []string
	for d := path.Dir(dst); d != "/"; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	mtime := sourceDateEpoch()
	for _, d := range dirs {
		if err := w.WriteHeader(&Header{Name: d[1:], Mode: TypeDir | 0o755, Mtime: mtime}); err != nil {
			return err
		}
	}
	if err := w.WriteHeader(&Header{Name: dst[1:], Mode: TypeReg | 0o755, Size: fi.Size(), Mtime: mtime}); err != nil {
		return err
	}
	if err := copyFile(w, src, fi.Size()); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Walk calls fn for each entry of the initramfs file at path, through
// every archive it holds (xz- or gzip-compressed, or not), with a reader
// of the entry's data.
func Walk(ctx context.Context, path string, fn func(h *Header, data io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(6)
	var in io.Reader = br
	done := func() error { return nil } // after the last entry: the decompressor's verdict
	switch {
	case bytes.HasPrefix(magic, []byte("\xfd7zXZ\x00")):
		cmd := exec.CommandContext(ctx, "xz", "-dc")
		cmd.Stdin = br
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("reading %s: starting xz: %w", path, err)
		}
		waited := false
		defer func() {
			if !waited {
				out.Close()
				cmd.Wait()
			}
		}()
		done = func() error {
			io.Copy(io.Discard, out)
			waited = true
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("reading %s: xz: %v: %s (a damaged or truncated archive)", path, err, strings.TrimSpace(stderr.String()))
			}
			return nil
		}
		in = out
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		in = &gzipMembers{r: br}
	}
	r := NewReader(bufio.NewReaderSize(in, 1<<16))
	for {
		h, err := r.Next()
		if err == io.EOF {
			if r.NextArchive() {
				continue
			}
			return done()
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if err := fn(h, r); err != nil {
			return err
		}
	}
}

// gzipMembers reads concatenated gzip members with zero padding between
// them (gzip's own multistream reading stops at the padding).
type gzipMembers struct {
	r  *bufio.Reader
	zr *gzip.Reader
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for {
		if g.zr != nil {
			n, err := g.zr.Read(p)
			if err != io.EOF {
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			g.zr = nil
		}
		for {
			b, err := g.r.Peek(1)
			if err != nil {
				return 0, io.EOF
			}
			if b[0] != 0 {
				break
			}
			g.r.Discard(1)
		}
		zr, err := gzip.NewReader(g.r)
		if err != nil {
			return 0, err
		}
		zr.Multistream(false)
		g.zr = zr
	}
}

// Paths returns the guest paths ("/etc/passwd") the initramfs file at path
// holds, through every archive in it.
func Paths(ctx context.Context, path string) (map[string]bool, error) {
	paths := map[string]bool{}
	err := Walk(ctx, path, func(h *Header, _ io.Reader) error {
		paths["/"+h.Name] = true
		return nil
	})
	return paths, err
}
