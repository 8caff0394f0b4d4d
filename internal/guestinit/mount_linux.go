package guestinit

import (
	"errors"
	"os"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

type baseMount struct {
	target, fstype string
	flags          uintptr
	data           string
	optional       bool // mounted only when the kernel has the filesystem, silently skipped otherwise
	// scratch marks a scratch directory (/tmp, /run): it is not mounted
	// over when the initramfs put files there (a program built into /tmp,
	// a state directory under /run), since the initramfs is writable anyway.
	scratch bool
}

var baseMounts = []baseMount{
	{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false, false},
	{"/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", false, false},
	{"/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", true, false},
	{"/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false, false},
	{"/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false, true},
	{"/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false, true},
}

// mountBase mounts /proc (an error when that fails) and the other basic
// filesystems (a warning on the console when one fails).
func mountBase() error {
	os.Mkdir("/proc", 0o555)
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return lite.Errorf("mounting /proc: %w (the kernel needs CONFIG_PROC_FS)", err)
	}
	have := kernelFilesystems()
	for _, m := range baseMounts {
		if !have[m.fstype] {
			if !m.optional {
				warnf("not mounting %s: the kernel has no %s filesystem", m.target, m.fstype)
				if m.fstype == "devtmpfs" {
					warnf("using the /dev nodes of the initramfs")
				}
			}
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			warnf("not mounting %s: %v", m.target, err)
			continue
		}
		if m.scratch && hasEntries(m.target) {
			continue // keep what the initramfs holds there
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			warnf("mounting %s (%s): %v", m.target, m.fstype, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if _, err := os.Lstat("/dev/" + name); errors.Is(err, os.ErrNotExist) {
			os.Symlink(target, "/dev/"+name)
		}
	}
	return nil
}

// hasEntries reports whether dir holds anything.
func hasEntries(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) > 0
}

// kernelFilesystems returns the filesystem types in /proc/filesystems.
func kernelFilesystems() map[string]bool {
	have := map[string]bool{}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return have
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			have[f[len(f)-1]] = true
		}
	}
	return have
}

var mountFlags = map[string]uintptr{
	"ro":          unix.MS_RDONLY,
	"rw":          0,
	"nosuid":      unix.MS_NOSUID,
	"nodev":       unix.MS_NODEV,
	"noexec":      unix.MS_NOEXEC,
	"noatime":     unix.MS_NOATIME,
	"nodiratime":  unix.MS_NODIRATIME,
	"relatime":    unix.MS_RELATIME,
	"strictatime": unix.MS_STRICTATIME,
	"sync":        unix.MS_SYNCHRONOUS,
	"dirsync":     unix.MS_DIRSYNC,
	"bind":        unix.MS_BIND,
	"rbind":       unix.MS_BIND | unix.MS_REC,
}

// MountOptions splits a mount(8)-style option string into mount flags
// and the filesystem-specific data.
func MountOptions(opts string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts, ",") {
		if o == "" {
			continue
		}
		if f, ok := mountFlags[o]; ok {
			flags |= f
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

func mountExtra(m protocol.Mount) error {
	if err := os.MkdirAll(m.Target, 0o755); err != nil {
		return lite.Errorf("mounting %s: %w", m.Target, err)
	}
	flags, data := MountOptions(m.Options)
	src := m.Source
	if src == "" {
		src = m.Type
	}
	if err := unix.Mount(src, m.Target, m.Type, flags, data); err != nil {
		return lite.Errorf("mounting %s on %s (%s): %w", src, m.Target, m.Type, err)
	}
	return nil
}
