package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultVolumeMB is the size of a state volume bespoke creates.
const DefaultVolumeMB = 1024

// VolumeFS is the filesystem of a state volume.
const VolumeFS = "ext4"

// ParseVolume parses -v HOSTFILE:/GUEST/PATH. A relative host file is
// relative to the working directory.
func ParseVolume(s string) (host, guest string, err error) {
	host, guest, ok := strings.Cut(s, ":")
	if !ok || host == "" || guest == "" {
		return "", "", fmt.Errorf("volume %q: want HOSTFILE:/GUEST/PATH", s)
	}
	if !strings.HasPrefix(guest, "/") || filepath.Clean(guest) == "/" {
		return "", "", fmt.Errorf("volume %q: the guest path must be an absolute directory other than /", s)
	}
	if host, err = filepath.Abs(host); err != nil {
		return "", "", err
	}
	return host, filepath.Clean(guest), nil
}

// OpenVolume readies the state volume at path for one VM: it creates it
// when it does not exist (an empty ext4 filesystem of sizeMB MiB, sparse;
// the guest fills it from the image on its first boot), checks that it is
// a writable file, locks it against a second VM (the lock holds until
// release), and checks its filesystem (e2fsck -n). Each problem is an
// error that names the file and what to do.
func OpenVolume(path string, sizeMB int) (release func(), err error) {
	if sizeMB <= 0 {
		sizeMB = DefaultVolumeMB
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := createVolume(path, sizeMB); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("volume %s: %w", path, err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("volume %s is not a regular file: give a file (bespoke creates it when it does not exist)", path)
	case st.Mode().Perm()&0o222 == 0:
		// Root could write it anyway; its mode says it is not to be written.
		return nil, fmt.Errorf("volume %s cannot be written (mode %04o): the program's state must be writable; chmod u+w it, or give another file", path, st.Mode().Perm())
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
			return nil, fmt.Errorf("volume %s cannot be written (%v): the program's state must be writable; make it writable, or give another file", path, err)
		}
		return nil, fmt.Errorf("volume %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("volume %s is in use by another VM: stop it first, or give this one another file", path)
		}
		return nil, fmt.Errorf("locking volume %s: %w", path, err)
	}
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("checking volume %s needs e2fsck: install e2fsprogs (make deps): %w", path, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(e2fsck, "-n", "-f", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		f.Close()
		return nil, fmt.Errorf("volume %s holds no sound %s filesystem (e2fsck -n: %v): repair it with 'e2fsck -f %s', or give a new file\n%s",
			path, VolumeFS, err, path, lastLines(out.String(), 5))
	}
	return func() { f.Close() }, nil
}

// createVolume makes an empty ext4 filesystem in a new sparse file.
func createVolume(path string, sizeMB int) error {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return fmt.Errorf("creating volume %s needs mkfs.ext4: install e2fsprogs (make deps): %w", path, err)
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating volume %s: %w", path, err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var out bytes.Buffer
		cmd := exec.Command(mkfs, "-q", "-F", "-L", "bespoke", tmp)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err = cmd.Run(); err != nil {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("creating volume %s: %w", path, err)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// erofs superblock (linux/fs/erofs/erofs_fs.h): at byte 1024, the magic,
// then blkszbits at +12 and the image's size in blocks at +36.
const (
	erofsSuperOffset = 1024
	erofsMagic       = 0xE0F5E1E2
)

// CheckRootDisk checks that the file at path is a whole erofs image: its
// superblock's magic, and a size no smaller than the blocks it declares.
// A truncated or foreign root would otherwise fail in the guest, as a
// kernel panic that seems to blame the program.
func CheckRootDisk(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading the root disk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading the root disk: %w", err)
	}
	sb := make([]byte, 64)
	if _, err := f.ReadAt(sb, erofsSuperOffset); err != nil {
		return fmt.Errorf("root disk %s is not an erofs image (%d bytes, no superblock): rebuild the image with bespoke build", path, st.Size())
	}
	if magic := le32(sb[0:]); magic != erofsMagic {
		return fmt.Errorf("root disk %s is not an erofs image (magic %#x): rebuild the image with bespoke build", path, magic)
	}
	bits := sb[12]
	if bits < 9 || bits > 16 {
		return fmt.Errorf("root disk %s has a damaged superblock (block size 2^%d): rebuild the image with bespoke build", path, bits)
	}
	if want := int64(le32(sb[36:])) << bits; st.Size() < want {
		return fmt.Errorf("root disk %s is truncated: %d bytes, its superblock says %d: rebuild the image with bespoke build, or copy it again", path, st.Size(), want)
	}
	return nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
