package initramfs

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestErofsRoot builds the same nodes as an initramfs and as an erofs
// image and checks that the erofs image, extracted by fsck.erofs, holds
// every entry of the archive with its type, mode, owner, size, link
// target and contents; and that a second build is byte for byte the same.
func TestErofsRoot(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "fsck.erofs")
	testenv.Command(t, "mkfs.erofs")
	root := hostTree(t)
	// A setuid file owned by another user, as packages ship them.
	suid := filepath.Join(root, "usr/bin/app")
	if err := os.Chown(suid, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, root)
	opts.Compression = CompressNone
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	want, _ := readArchive(t, opts.Output, CompressNone)

	for _, c := range ErofsCompressions {
		t.Run(c, func(t *testing.T) {
			fsck, err := ErofsTool(context.Background(), "fsck.erofs", c)
			if err != nil {
				t.Fatal(err)
			}
			want, opts := maps.Clone(want), opts
			opts.Compression = c
			opts.Format, opts.Output = FormatErofs, filepath.Join(t.TempDir(), "root.erofs")
			rep, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Format != FormatErofs || rep.CompressedBytes == 0 || rep.CompressedBytes >= rep.FileBytes+1<<20 || len(rep.Kconfig) == 0 {
				t.Errorf("report: format %q, %d bytes for %d bytes of files, kconfig %v", rep.Format, rep.CompressedBytes, rep.FileBytes, rep.Kconfig)
			}
			dir := filepath.Join(t.TempDir(), "x")
			if out, err := exec.Command(fsck, "--extract="+dir, "--preserve", opts.Output).CombinedOutput(); err != nil {
				t.Fatalf("fsck.erofs --extract: %v\n%s", err, out)
			}
			for p, e := range want {
				host := filepath.Join(dir, filepath.FromSlash(p))
				if e.Type() == TypeChar {
					// devtmpfs is on /dev before /init runs from an erofs root.
					if _, err := os.Lstat(host); err == nil {
						t.Errorf("%s: a device node in the erofs root, want none", p)
					}
					delete(want, p)
					continue
				}
				fi, err := os.Lstat(host)
				if err != nil {
					t.Errorf("%s: not in the erofs image: %v", p, err)
					continue
				}
				st := fi.Sys().(*syscall.Stat_t)
				// The archive's inode numbers and link counts are its own.
				got := entry{Header: Header{Name: e.Name, Mode: st.Mode, Uid: int(st.Uid), Gid: int(st.Gid), Mtime: e.Mtime, Ino: e.Ino, Nlink: e.Nlink}}
				switch fi.Mode().Type() {
				case 0:
					got.Size = fi.Size()
					data, _ := os.ReadFile(host)
					got.Data = string(data)
				case fs.ModeSymlink:
					got.Linkname, _ = os.Readlink(host)
					got.Size = int64(len(got.Linkname))
				case fs.ModeDevice | fs.ModeCharDevice:
					got.RdevMajor, got.RdevMinor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
				}
				if diff := cmp.Diff(e, got); diff != "" {
					t.Errorf("%s in the erofs image (-initramfs +erofs):\n%s", p, diff)
				}
			}
			// And the directories of the init's overlay on the read-only root.
			if n := len(rep.Files); n != len(want)+3 {
				t.Errorf("report lists %d files, the initramfs holds %d, and the overlay adds 3", n, len(want))
			}
			for _, d := range []string{protocol.OverlayRW, protocol.OverlayRoot} {
				if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
					t.Errorf("%s: %v, want a directory for the init's overlay", d, err)
				}
			}

			// Reproducible: host mtimes and a new staging dir change nothing.
			a, _ := os.ReadFile(opts.Output)
			later := time.Now().Add(time.Hour)
			filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error {
				os.Chtimes(p, later, later)
				return nil
			})
			opts.Output = filepath.Join(t.TempDir(), "again.erofs")
			again, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(opts.Output)
			if !bytes.Equal(a, b) || rep.SHA256 != again.SHA256 {
				t.Errorf("two erofs builds differ: %d and %d bytes, sha256 %s and %s", len(a), len(b), rep.SHA256, again.SHA256)
			}
			if lzma := slices.Contains(rep.Kconfig, "EROFS_FS_ZIP_LZMA"); lzma != (c == ErofsLZMA) {
				t.Errorf("report kconfig %v: EROFS_FS_ZIP_LZMA %v for %s", rep.Kconfig, lzma, c)
			}
			if got, err := ErofsCompressionOf(opts.Output); err != nil || got != c {
				t.Errorf("the image's superblock says %q, %v; want %s", got, err, c)
			}
		})
	}
}

// TestAppendErofs adds a host directory to an erofs root: the new image
// holds what the old one held, owners and modes kept, and the new files.
func TestAppendErofs(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "fsck.erofs")
	testenv.Command(t, "mkfs.erofs")
	for _, c := range ErofsCompressions {
		t.Run(c, func(t *testing.T) { appendErofs(t, c) })
	}
}

// appendErofs appends to a root of compression c; the new root has it too.
func appendErofs(t *testing.T, c string) {
	fsck, err := ErofsTool(context.Background(), "fsck.erofs", c)
	if err != nil {
		t.Fatal(err)
	}
	root := hostTree(t)
	opts := testOptions(t, root)
	opts.Format, opts.Compression, opts.Output = FormatErofs, c, filepath.Join(t.TempDir(), "root.erofs")
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "root2.erofs")
	// Through the /lib -> usr/lib symlink the image holds already, as
	// verify --fix adds a library.
	rep, err := AppendErofs(context.Background(), AppendOptions{Archive: opts.Output, Output: out, Compression: c, Paths: []string{"/usr/share/locale", "/lib/libfoo.so.1.2"}, HostRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Files, func(f FileReport) bool { return f.Path == "/usr/share/locale/fr/x.mo" && f.Kind == KindFix }) {
		t.Errorf("report of the new files: %+v", rep.Files)
	}
	dir := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command(fsck, "--extract="+dir, "--preserve", out).CombinedOutput(); err != nil {
		t.Fatalf("fsck.erofs --extract: %v\n%s", err, out)
	}
	for p, want := range map[string]string{"/usr/share/locale/fr/x.mo": "mo", "/etc/app/app.conf": "port 1\n", "/lib/libfoo.so.1.2": "libfoo"} {
		if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	// The home directory the first build made for the program's user.
	if fi, err := os.Stat(filepath.Join(dir, "var/lib/app")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("/var/lib/app after the append: %v, want it kept, owned by 1000", err)
	}
	if got, err := ErofsCompressionOf(out); err != nil || got != c {
		t.Errorf("the new root's superblock says %q, %v; want %s", got, err, c)
	}
}

// TestErofsPaths lists roots of each compression, with the fsck.erofs
// that reads it (Debian 12's 1.5 cannot read lzma).
func TestErofsPaths(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "mkfs.erofs")
	root := hostTree(t)
	for _, c := range ErofsCompressions {
		opts := testOptions(t, root)
		opts.Format, opts.Compression, opts.Output = FormatErofs, c, filepath.Join(t.TempDir(), "root.erofs")
		rep, err := Build(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ErofsPaths(context.Background(), opts.Output)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		for _, f := range rep.Files {
			if !got[f.Path] {
				t.Errorf("%s: %s: in the report, not listed", c, f.Path)
			}
		}
		if len(got) != len(rep.Files) {
			t.Errorf("%s: listed %d paths, the report %d", c, len(got), len(rep.Files))
		}
	}
}
