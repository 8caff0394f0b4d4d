package guestinit

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

// writableRoot makes a read-only root (an erofs disk) writable: it mounts
// an overlay of a tmpfs on it and moves into the overlay (chroot), so the
// program writes wherever it wrote in an initramfs, and what it writes
// lives in RAM, as it did there. On a writable root it does nothing.
func writableRoot() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return lite.Errorf("reading the root filesystem: %w", err)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		return nil
	}
	if err := unix.Mount("tmpfs", protocol.OverlayRW, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return lite.Errorf("mounting the tmpfs for writes over the read-only root: %w (the kernel needs CONFIG_TMPFS; %s must exist in the root)", err, protocol.OverlayRW)
	}
	upper, work := protocol.OverlayRW+"/upper", protocol.OverlayRW+"/work"
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return lite.Errorf("making the overlay on the root: %w", err)
		}
	}
	// uuid=null: tmpfs stores no trusted xattrs for the overlay's uuid
	// (the kernel would warn and fall back to this).
	opts := "lowerdir=/,upperdir=" + upper + ",workdir=" + work + ",uuid=null"
	if err := unix.Mount("overlay", protocol.OverlayRoot, "overlay", 0, opts); err != nil {
		return lite.Errorf("mounting the overlay on the read-only root: %w (the kernel needs CONFIG_OVERLAY_FS)", err)
	}
	if err := unix.Chroot(protocol.OverlayRoot); err != nil {
		return lite.Errorf("entering the overlay on the root: %w", err)
	}
	return unix.Chdir("/")
}

// mountVolumes mounts the disks of vs, found by their virtio serial. A
// writable volume of an image that is empty is filled first with what the
// image holds at its target (the state its build prepared) and marked as
// the image's; one marked for another image is refused.
func mountVolumes(vs []protocol.Volume) error {
	have := kernelFilesystems()
	for i, v := range vs {
		if !have[v.Type] {
			return lite.Errorf("volume for %s: the kernel has no %s filesystem: rebuild the image with kernel.enable: [%s_FS]", v.Target, v.Type, strings.ToUpper(v.Type))
		}
		dev, err := diskBySerial(v.Serial)
		if err != nil {
			return lite.Errorf("volume for %s: %w", v.Target, err)
		}
		var flags uintptr
		if v.ReadOnly {
			flags = unix.MS_RDONLY
		}
		if err := os.MkdirAll(v.Target, 0o755); err != nil {
			return lite.Errorf("volume for %s: %w", v.Target, err)
		}
		if v.ReadOnly || v.Image == "" {
			if err := unix.Mount(dev, v.Target, v.Type, flags, ""); err != nil {
				return lite.Errorf("mounting the volume %s (%s) on %s: %w", dev, v.Type, v.Target, err)
			}
			continue
		}
		tmp := lite.Sprintf("/run/bespoke-volume%d", i)
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return err
		}
		if err := unix.Mount(dev, tmp, v.Type, flags, ""); err != nil {
			return lite.Errorf("mounting the volume %s (%s) for %s: %w (is it an %s filesystem?)", dev, v.Type, v.Target, err, v.Type)
		}
		if err := prepareVolume(tmp, v); err != nil {
			unix.Unmount(tmp, 0)
			return err
		}
		if err := unix.Mount(tmp, v.Target, "", unix.MS_MOVE, ""); err != nil {
			return lite.Errorf("moving the volume onto %s: %w", v.Target, err)
		}
		os.Remove(tmp)
	}
	return nil
}

// prepareVolume checks the marker of the volume mounted at dir, and fills
// a new volume from v.Target.
func prepareVolume(dir string, v protocol.Volume) error {
	marker := filepath.Join(dir, protocol.VolumeMarker)
	data, err := os.ReadFile(marker)
	if err == nil {
		if owner := strings.TrimSpace(string(data)); owner != v.Image {
			return lite.Errorf("the volume for %s belongs to image %q, not %q: give this image a volume of its own (a new file is created empty and filled from the image)", v.Target, owner, v.Image)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return lite.Errorf("reading the volume's marker: %w", err)
	}
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n != "lost+found" {
			return lite.Errorf("the volume for %s holds files (%s) but is no bespoke volume (no %s): give a new file, which bespoke creates and the image fills", v.Target, n, protocol.VolumeMarker)
		}
	}
	// What the image holds at the target: its owner and mode, and its tree.
	if st, err := os.Lstat(v.Target); err == nil {
		if err := copyMeta(v.Target, dir, st); err != nil {
			return err
		}
	}
	if err := copyTree(v.Target, dir); err != nil {
		return lite.Errorf("filling the new volume for %s from the image: %w", v.Target, err)
	}
	if err := os.WriteFile(marker, []byte(v.Image+"\n"), 0o644); err != nil {
		return lite.Errorf("marking the volume for %s: %w", v.Target, err)
	}
	unix.Sync()
	warnf("volume for %s: new, filled from the image", v.Target)
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// diskBySerial returns /dev/vdX for the virtio disk whose serial is s.
func diskBySerial(s string) (string, error) {
	serials, _ := filepath.Glob("/sys/block/vd*/serial")
	for _, p := range serials {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == s {
			return "/dev/" + filepath.Base(filepath.Dir(p)), nil
		}
	}
	return "", lite.Errorf("no virtio disk with serial %s (the kernel needs CONFIG_VIRTIO_BLK)", s)
}

// copyTree copies the contents of src into dst (which exists): files,
// directories and symlinks, with their owners, modes and times.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == src && errors.Is(err, fs.ErrNotExist) {
				return nil // the image holds nothing there
			}
			return err
		}
		if p == src {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch t := st.Mode().Type(); {
		case t == fs.ModeDir:
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
		case t == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case t.IsRegular():
			if err := copyFileData(p, to); err != nil {
				return err
			}
		default:
			return nil // sockets, devices: made again by the program
		}
		return copyMeta(p, to, st)
	})
}

func copyFileData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyMeta gives dst the owner, mode and times of src (st).
func copyMeta(src, dst string, st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(dst, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	times := []unix.Timespec{unix.NsecToTimespec(sys.Atim.Nano()), unix.NsecToTimespec(sys.Mtim.Nano())}
	if st.Mode().Type() == fs.ModeSymlink {
		return unix.UtimesNanoAt(unix.AT_FDCWD, dst, times, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err := os.Chmod(dst, st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, times, 0)
}

// stage0 boots an image's erofs root from an initramfs of modules
// (protocol.Stage0File): it loads the modules, mounts the root from the
// first virtio disk, makes it the root (as switch_root does) and runs its
// /init in place of itself. It returns only on failure.
func stage0(list string) error {
	os.Mkdir("/dev", 0o755)
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return lite.Errorf("stage 0: mounting /dev: %w", err)
	}
	for _, m := range strings.Fields(list) {
		f, err := os.Open(m)
		if err != nil {
			return lite.Errorf("stage 0: %w", err)
		}
		err = unix.FinitModule(int(f.Fd()), "", unix.MODULE_INIT_COMPRESSED_FILE)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return lite.Errorf("stage 0: loading module %s: %w (the kernel needs MODULE_DECOMPRESS for .ko.xz)", m, err)
		}
	}
	const dev = "/dev/vda"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return lite.Errorf("stage 0: no %s 10 s after loading the modules: is the root a virtio disk?", dev)
		}
	}
	if err := os.MkdirAll(protocol.Stage0Root, 0o755); err != nil {
		return lite.Errorf("stage 0: %w", err)
	}
	if err := unix.Mount(dev, protocol.Stage0Root, "erofs", unix.MS_RDONLY, ""); err != nil {
		return lite.Errorf("stage 0: mounting the root %s (erofs) on %s: %w", dev, protocol.Stage0Root, err)
	}
	// The root's init mounts its own /dev. The initramfs's files would
	// hold memory for the whole run, as switch_root's deletion says: the
	// modules are loaded, and this binary runs from its mapping.
	if err := unix.Unmount("/dev", unix.MNT_DETACH); err != nil {
		return lite.Errorf("stage 0: %w", err)
	}
	for _, p := range append(strings.Fields(list), protocol.Stage0File, "/init") {
		os.Remove(p)
	}
	if err := unix.Chdir(protocol.Stage0Root); err != nil {
		return lite.Errorf("stage 0: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return lite.Errorf("stage 0: moving the root onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return lite.Errorf("stage 0: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return lite.Errorf("stage 0: %w", err)
	}
	return lite.Errorf("stage 0: running the root's /init: %w", unix.Exec("/init", os.Args, os.Environ()))
}
