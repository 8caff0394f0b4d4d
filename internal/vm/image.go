// Package vm boots bespoke images under QEMU: it builds the qemu-system
// command line for an image directory, starts QEMU (KVM when /dev/kvm is
// usable, else TCG), streams the serial console, reads the guest init's
// marker lines (internal/guestinit/protocol) to learn the program's exit
// status, probes forwarded ports for readiness, times the boot, and never
// leaves a QEMU process behind.
package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/trace"
)

// ImageFile is the name of the file in an image directory that describes
// how to boot it.
const ImageFile = "image.json"

// ImageSchema is the version of the image.json format written by Write.
const ImageSchema = 1

// Targets: the virtual machine an image's kernel is configured for.
const (
	TargetMicrovm     = "qemu-microvm" // QEMU -M microvm, virtio-mmio devices
	TargetPC          = "qemu-pc"      // QEMU -M pc (i440FX), virtio-pci devices
	TargetFirecracker = "firecracker"  // configuration only: bespoke does not boot it
)

// Image describes a bootable image directory. The build step writes it as
// image.json beside the kernel and the initramfs; bespoke run reads it.
// File names are relative to the image directory.
type Image struct {
	Schema int    `json:"schema"`
	Name   string `json:"name"`
	Target string `json:"target"` // TargetMicrovm, TargetPC or TargetFirecracker
	Kernel string `json:"kernel"` // e.g. "bzImage"
	// The root: an initramfs ("initramfs.cpio.xz") or a read-only erofs
	// disk image ("root.erofs"), one of the two.
	Initramfs string `json:"initramfs,omitempty"`
	Disk      string `json:"disk,omitempty"`
	// Cmdline holds extra kernel parameters, appended after bespoke's own.
	Cmdline  string `json:"cmdline,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"` // default memory; 0 means DefaultMemoryMB
	// MinMemoryMB is the least memory with which the image passed its
	// workload (bespoke min-memory); 0: not measured.
	MinMemoryMB int `json:"min_memory_mb,omitempty"`
	CPUs        int `json:"cpus,omitempty"` // default CPU count; 0 means 1
	// Ports the program listens on; bespoke run forwards each of them
	// (to a free host port unless -p names one).
	Ports []Port `json:"ports,omitempty"`
	// Ready says when the program is ready to serve: "tcp:PORT" (a guest
	// port accepts and keeps a connection), "log:REGEX" (a console line
	// matches), or "" (any forwarded TCP port is ready; with none, the
	// program's start).
	Ready string `json:"ready,omitempty"`
	// NoNet says the image has no network: no NIC and no bespoke.net.
	NoNet bool `json:"no_net,omitempty"`
	// StopTimeoutSec is how long the program may take to stop after its
	// stop signal (0: 10 s).
	StopTimeoutSec int `json:"stop_timeout_sec,omitempty"`
	// StateDir is the guest path of the program's state directory (the
	// spec's {state}, which its setup prepared), when it has one: where a
	// state volume goes (bespoke run -v FILE:{state}).
	StateDir string `json:"state_dir,omitempty"`
	// March is the -march the kernel was compiled for (kernel.march):
	// under TCG the guest then gets QEMU's "max" CPU model, which has the
	// instructions x86-64-v2/v3 add; under KVM it gets the host's.
	March string `json:"march,omitempty"`
	// Seccomp is the guest init's filter on the program (nil: none).
	Seccomp *Seccomp `json:"seccomp,omitempty"`
}

// Seccomp is an image's seccomp filter: the syscalls (x86-64 names) the
// program may make unreported, and what the guest does with any other
// (protocol.SeccompEnforce or protocol.SeccompLog).
type Seccomp struct {
	Mode  string   `json:"mode"`
	Allow []string `json:"allow"`
}

// Param returns the kernel parameter that sets the filter, in mode
// (protocol.SeccompOff for none).
func (s *Seccomp) Param(mode string) (string, error) {
	var nrs []int
	for _, name := range s.Allow {
		nr := trace.SyscallNumber(name)
		if nr < 0 {
			return "", fmt.Errorf("seccomp allowlist: %q is not an x86-64 syscall of Linux 6.12", name)
		}
		nrs = append(nrs, nr)
	}
	v, err := protocol.EncodeSeccomp(mode, nrs)
	if err != nil {
		return "", err
	}
	return protocol.ParamSeccomp + "=" + v, nil
}

// Port is a port the guest program listens on.
type Port struct {
	Guest int    `json:"guest"`
	Proto string `json:"proto,omitempty"` // "tcp" (default) or "udp"
}

// DefaultMemoryMB is the guest memory when neither the image nor the user
// sets one.
const DefaultMemoryMB = 256

// LoadImage reads and checks dir/image.json.
func LoadImage(dir string) (*Image, error) {
	path := filepath.Join(dir, ImageFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not an image directory (no %s): build one with 'bespoke build -o %s'", dir, ImageFile, dir)
		}
		return nil, fmt.Errorf("reading image: %w", err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if img.Schema > ImageSchema {
		return nil, fmt.Errorf("reading %s: schema %d is newer than this bespoke understands (%d): update bespoke", path, img.Schema, ImageSchema)
	}
	if err := img.Check(); err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return &img, nil
}

// Write writes img as dir/image.json, atomically.
func (img *Image) Write(dir string) error {
	if err := img.Check(); err != nil {
		return fmt.Errorf("writing %s: %w", ImageFile, err)
	}
	c := *img
	if c.Schema == 0 {
		c.Schema = ImageSchema
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", ImageFile, err)
	}
	f, err := os.CreateTemp(dir, "."+ImageFile+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", ImageFile, err)
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), filepath.Join(dir, ImageFile))
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", ImageFile, werr)
	}
	return nil
}

// Check reports the first field of img that bespoke cannot boot with.
func (img *Image) Check() error {
	switch img.Target {
	case TargetMicrovm, TargetPC, TargetFirecracker:
	case "":
		return errors.New("no target (want qemu-microvm, qemu-pc or firecracker)")
	default:
		return fmt.Errorf("unknown target %q (want qemu-microvm, qemu-pc or firecracker)", img.Target)
	}
	root := struct{ field, name string }{"initramfs", img.Initramfs}
	switch {
	case img.Initramfs != "" && img.Disk != "":
		return fmt.Errorf("both an initramfs (%s) and a root disk (%s): want one", img.Initramfs, img.Disk)
	case img.Disk != "":
		root = struct{ field, name string }{"disk", img.Disk}
	case img.Initramfs == "":
		return errors.New("no root: name an initramfs or a disk")
	}
	for _, f := range []struct{ field, name string }{{"kernel", img.Kernel}, root} {
		if f.name == "" {
			return fmt.Errorf("no %s file named", f.field)
		}
		if filepath.Base(f.name) != f.name || f.name == "." || f.name == ".." {
			return fmt.Errorf("%s %q: want a file name inside the image directory", f.field, f.name)
		}
	}
	if img.MemoryMB < 0 || img.CPUs < 0 {
		return fmt.Errorf("memory_mb %d, cpus %d: want positive numbers (or 0 for the default)", img.MemoryMB, img.CPUs)
	}
	for _, p := range img.Ports {
		if p.Guest < 1 || p.Guest > 65535 {
			return fmt.Errorf("port %d: want 1-65535", p.Guest)
		}
		if p.Proto != "" && p.Proto != "tcp" && p.Proto != "udp" {
			return fmt.Errorf("port %d/%s: want tcp or udp", p.Guest, p.Proto)
		}
	}
	if _, err := parseReady(img.Ready); err != nil {
		return err
	}
	if sc := img.Seccomp; sc != nil {
		if sc.Mode != protocol.SeccompEnforce && sc.Mode != protocol.SeccompLog {
			return fmt.Errorf("seccomp mode %q: want %s or %s", sc.Mode, protocol.SeccompEnforce, protocol.SeccompLog)
		}
		if _, err := sc.Param(sc.Mode); err != nil {
			return err
		}
	}
	return nil
}

// readiness is a parsed Image.Ready.
type readiness struct {
	tcpPort int            // "tcp:PORT"
	re      *regexp.Regexp // "log:REGEX"
}

func parseReady(s string) (readiness, error) {
	var r readiness
	kind, v, ok := strings.Cut(s, ":")
	switch {
	case s == "":
		return r, nil
	case ok && kind == "tcp":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("ready %q: want tcp:PORT with PORT in 1-65535", s)
		}
		r.tcpPort = n
	case ok && kind == "log":
		re, err := regexp.Compile(v)
		if err != nil {
			return r, fmt.Errorf("ready %q: %w", s, err)
		}
		r.re = re
	default:
		return r, fmt.Errorf("ready %q: want tcp:PORT, log:REGEX or nothing", s)
	}
	return r, nil
}
