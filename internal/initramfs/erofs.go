package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Formats of an image's root filesystem.
const (
	// FormatCpio is an initramfs: a newc cpio archive, compressed, that
	// the kernel unpacks into a tmpfs at boot. Every file lives in RAM.
	FormatCpio = "initramfs"
	// FormatErofs is a read-only erofs disk image the guest mounts as its
	// root from a virtio-blk device: file pages are read, and decompressed
	// (lz4), on demand, and can be dropped again under memory pressure.
	// The guest init puts a tmpfs overlay on it for writes.
	FormatErofs = "erofs"
)

// Formats lists the root formats.
var Formats = []string{FormatErofs, FormatCpio}

// Compressions of an erofs root (Options.Compression).
const (
	// ErofsLZ4HC, the default: lz4hc at its highest level, in physical
	// clusters of up to 64 KiB. Measured on the redis example's 19.5 MB
	// of files: 12.9 MB with lz4 in 4 KiB clusters, 11.7 MB with lz4hc,
	// 10.0 MB with lz4hc in 64 KiB clusters, 9.8 MB with 256 KiB ones.
	ErofsLZ4HC = "lz4hc"
	// ErofsLZMA: MicroLZMA (level 6) in the same clusters, a quarter
	// smaller than lz4hc (the redis profile image's root, both without
	// ztailpacking or fragments: 7.53 MiB -> 5.57 MiB; level 9 extreme
	// 5.56 MiB, zstd level 19 5.98 MiB but 40 times slower to make), slower to
	// read (docs/images.md). It needs
	// erofs-utils 1.6 or later (Debian 12 has 1.5, with lz4 and lz4hc
	// only: make deps builds 1.8.6 from Debian's source, ErofsTool) and
	// the kernel's EROFS_FS_ZIP_LZMA.
	ErofsLZMA = "lzma"
)

// ErofsCompressions lists the compressions of an erofs root, the default
// first.
var ErofsCompressions = []string{ErofsLZ4HC, ErofsLZMA}

// erofsMethods are, per compression, mkfs.erofs's arguments (ErofsArgs)
// and the kernel options it needs beyond erofsKconfig. ztailpacking
// stores the compressed tail of each file inline with its inode instead
// of in a block of its own (erofs-utils 1.5 has it), fragments packs the
// tails and the small files together into one compressed inode (1.6 and
// later; 1.5 ignores it). Measured on the redis profile image's root
// (1095 files, 1019 of them under 4 KiB): lz4hc 6.89 MiB, 6.47 MiB with
// ztailpacking, 5.89 MiB with fragments; lzma 5.14 MiB, 4.38 MiB with
// ztailpacking, 3.97 MiB with fragments (the same with both, or
// all-fragments).
var erofsMethods = map[string]struct{ args, kconfig []string }{
	ErofsLZ4HC: {args: []string{"-zlz4hc,12", "-C65536", "-Eztailpacking"}},
	ErofsLZMA: {
		args:    []string{"-zlzma,6", "-C65536", "-Efragments"}, // "level=6" is 1.8's only
		kconfig: []string{"EROFS_FS_ZIP_LZMA"},
	},
}

// ErofsArgs returns mkfs.erofs's compression arguments for compression
// ("" for the default), nil for an unknown one.
func ErofsArgs(compression string) []string {
	if compression == "" {
		compression = ErofsLZ4HC
	}
	return slices.Clone(erofsMethods[compression].args)
}

// erofsKconfig are the kernel options an erofs root needs: the virtio
// block device it is read from (the transport comes with the target's
// base), erofs with its lz4 decompression, the overlay and tmpfs the
// guest init writes into, and devtmpfs mounted on /dev before /init runs
// (the kernel opens /dev/console for it).
var erofsKconfig = []string{"BLOCK", "VIRTIO_BLK", "EROFS_FS", "EROFS_FS_ZIP", "OVERLAY_FS", "TMPFS", "DEVTMPFS", "DEVTMPFS_MOUNT"}

// RootKconfig returns the kernel options (without CONFIG_) a root of
// format needs; compression is its compression ("" for the default).
func RootKconfig(format, compression string) ([]string, error) {
	switch format {
	case "", FormatCpio:
		syms, err := KconfigFor(compression)
		return append([]string{"BLK_DEV_INITRD"}, syms...), err
	case FormatErofs:
		if compression == "" {
			compression = ErofsLZ4HC
		}
		m, ok := erofsMethods[compression]
		if !ok {
			return nil, fmt.Errorf("unknown erofs compression %q (want %s)", compression, strings.Join(ErofsCompressions, " or "))
		}
		return append(slices.Clone(erofsKconfig), m.kconfig...), nil
	}
	return nil, fmt.Errorf("unknown root format %q (want %s)", format, strings.Join(Formats, " or "))
}

// writeErofs writes the nodes as an erofs image at out: it lays them out
// in a directory next to out with their owners, modes and types (which
// takes root as soon as a file belongs to another user), then runs
// mkfs.erofs with a fixed timestamp and a UUID derived from the contents,
// so that the same nodes give the same image, byte for byte.
func (b *builder) writeErofs(ctx context.Context, out string) error {
	tree, err := b.layOutTree(ctx, out, "")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree.dir)
	return b.mkfs(ctx, tree, out)
}

// erofsTree is a directory laid out for mkfs.erofs.
type erofsTree struct {
	dir string
	sum []byte // a hash of what it holds, for the image's UUID
}

// layOutTree lays the nodes out in base (a new directory next to out when
// base is ""), skipping the directories base has already, and adds them
// to the report.
func (b *builder) layOutTree(ctx context.Context, out, base string) (*erofsTree, error) {
	paths := make([]string, 0, len(b.nodes))
	for p := range b.nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths) // every directory before its contents
	if os.Geteuid() != 0 {
		for _, p := range paths {
			h := b.nodes[p].hdr
			switch {
			case h.Type() == TypeChar || h.Type() == TypeBlock:
				return nil, fmt.Errorf("an erofs root holds the device node %s, and only root can make one: run bespoke as root, or build with --root initramfs", p)
			case h.Uid != 0 || h.Gid != 0:
				return nil, fmt.Errorf("an erofs root holds %s owned by %d:%d, and only root can lay it out so: run bespoke as root, or build with --root initramfs", p, h.Uid, h.Gid)
			}
		}
	}
	dir := base
	if dir == "" {
		parent := filepath.Dir(out)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", parent, err)
		}
		var err error
		if dir, err = os.MkdirTemp(parent, "."+filepath.Base(out)+".tree-"); err != nil {
			return nil, fmt.Errorf("writing %s: %w", out, err)
		}
		// The root directory itself: 0755 root, as in a cpio archive.
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("writing %s: %w", out, err)
		}
	}
	sum := sha256.New()
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := b.nodes[p]
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if fi, err := os.Lstat(dst); err == nil {
			if fi.IsDir() && n.hdr.Type() == TypeDir {
				continue // a directory of the image being extended keeps its owner and mode
			}
			// A file or symlink of the image being extended (the /lib ->
			// usr/lib on the way to a library): the new one replaces it,
			// as a later initramfs segment's entry does.
			if err := os.Remove(dst); err != nil {
				return nil, fmt.Errorf("writing %s: %s: %w", out, p, err)
			}
		}
		if err := b.layOut(dst, n); err != nil {
			if base == "" {
				os.RemoveAll(dir)
			}
			return nil, fmt.Errorf("writing %s: %s: %w", out, p, err)
		}
		h := n.hdr
		fmt.Fprintf(sum, "%s %o %d %d %d %s %d:%d\n", p, h.Mode, h.Uid, h.Gid, h.Size, h.Linkname, h.RdevMajor, h.RdevMinor)
		b.report.Files = append(b.report.Files, fileReport(p, n))
		if h.Type() == TypeReg {
			b.report.FileBytes += h.Size
		}
	}
	return &erofsTree{dir: dir, sum: sum.Sum(nil)}, nil
}

// mkfs runs mkfs.erofs on tree into out, atomically, and records its
// size and hash in the report.
func (b *builder) mkfs(ctx context.Context, tree *erofsTree, out string) error {
	mkfs, err := ErofsTool(ctx, "mkfs.erofs", b.report.Compression)
	if err != nil {
		return err
	}
	u := tree.sum
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	tmp := out + ".tmp"
	args := append(append([]string{"--quiet"}, ErofsArgs(b.report.Compression)...), fmt.Sprintf("-T%d", b.mtime), "-U"+uuid)
	if os.Geteuid() != 0 {
		// Laid out as this user, every file of which belongs to root
		// (layOutTree refuses others): mkfs.erofs says so.
		args = append(args, "--all-root")
	}
	args = append(args, tmp, tree.dir)
	cmd := exec.CommandContext(ctx, mkfs, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("running mkfs.erofs %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", out, err)
	}
	b.report.UncompressedBytes = b.report.FileBytes
	b.report.CompressedBytes = n
	b.report.SHA256 = hex.EncodeToString(h.Sum(nil))
	b.sortReport()
	return nil
}

// AppendErofs writes to opts.Output the erofs image opts.Archive with
// opts.Paths added (bespoke verify --fix): erofs cannot grow in place, so
// it extracts the image (fsck.erofs --extract, owners and modes kept),
// lays the new files out beside what it held, and makes the image again.
// The report describes the new files.
func AppendErofs(ctx context.Context, opts AppendOptions) (*Report, error) {
	method := opts.Compression
	if method == "" {
		// A report without it: the image's own.
		var err error
		if method, err = ErofsCompressionOf(opts.Archive); err != nil {
			return nil, err
		}
	}
	syms, err := RootKconfig(FormatErofs, method)
	if err != nil {
		return nil, err
	}
	fsck, err := erofsReader(ctx, opts.Archive)
	if err != nil {
		return nil, err
	}
	b := newBuilder(opts.HostRoot, method, syms)
	b.report.Format = FormatErofs
	if err := b.addFixes(opts.Paths, opts.Replace); err != nil {
		return nil, fmt.Errorf("adding to the erofs root: %w", err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(opts.Output), "."+filepath.Base(opts.Output)+".tree-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, fsck, "--extract="+dir, "--force", "--overwrite", "--preserve", opts.Archive)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("extracting %s: %w: %s", opts.Archive, err, strings.TrimSpace(out.String()))
	}
	tree, err := b.layOutTree(ctx, opts.Output, dir)
	if err != nil {
		return nil, err
	}
	old, err := os.ReadFile(opts.Archive)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(old)
	h.Write(tree.sum)
	tree.sum = h.Sum(nil)
	fileBytes := b.report.FileBytes
	if err := b.mkfs(ctx, tree, opts.Output); err != nil {
		return nil, err
	}
	b.report.FileBytes, b.report.UncompressedBytes = fileBytes, fileBytes
	return b.report, nil
}

// WriteErofsFile writes an erofs image to out holding the host file src
// at dst (mode 0755, owned by root), for a read-only volume: bespoke
// verify's tracer beside an erofs root.
func WriteErofsFile(ctx context.Context, out, src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	b := newBuilder("", ErofsLZ4HC, nil)
	b.put(path.Clean(dst), &node{hdr: Header{Mode: TypeReg | 0o755, Size: fi.Size(), Mtime: b.mtime}, source: src, kind: KindInclude}, true)
	if err := b.addParents(); err != nil {
		return err
	}
	return b.writeErofs(ctx, out)
}

// layOut creates node n at host path dst, with its owner and mode.
func (b *builder) layOut(dst string, n *node) error {
	h := n.hdr
	switch h.Type() {
	case TypeDir:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
	case TypeReg:
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		switch {
		case n.data != nil:
			_, err = f.Write(n.data)
		case n.source != "":
			err = copyFile(f, n.dataFile(), h.Size)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case TypeSymlink:
		if err := os.Symlink(h.Linkname, dst); err != nil {
			return err
		}
		if os.Geteuid() != 0 {
			return nil
		}
		return os.Lchown(dst, h.Uid, h.Gid)
	case TypeChar, TypeBlock, TypeFIFO:
		if err := unix.Mknod(dst, h.Mode, int(unix.Mkdev(h.RdevMajor, h.RdevMinor))); err != nil {
			return err
		}
	default:
		return errors.New("cannot store a " + typeName(h.Type()) + " in an erofs image")
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	// After chown, which clears the setuid and setgid bits.
	return os.Chmod(dst, h.FileMode())
}

// ErofsPaths returns the guest paths an erofs image holds, as
// fsck.erofs extracts them (what the image really holds, not what its
// report says), with a fsck.erofs that knows its compression.
func ErofsPaths(ctx context.Context, image string) (map[string]bool, error) {
	fsck, err := erofsReader(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("listing an erofs root: %w", err)
	}
	dir, err := os.MkdirTemp("", "bespoke-erofs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, fsck, "--extract="+dir, "--force", "--no-preserve", image)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("reading %s: %w: %s", image, err, strings.TrimSpace(out.String()))
	}
	paths := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			paths["/"+filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return paths, err
}
