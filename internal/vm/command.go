package vm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
)

// Config says how to boot one image.
type Config struct {
	ImageDir string
	Image    *Image // nil: LoadImage(ImageDir)

	// Ports are forwarded from 127.0.0.1 on the host. The image's own
	// ports are always forwarded too; an entry here with the same guest
	// port and protocol chooses the host port.
	Ports    []PortMap
	MemoryMB int    // 0: the image's, else DefaultMemoryMB
	CPUs     int    // 0: the image's, else 1
	Accel    string // "auto" (or ""), "kvm" or "tcg"

	// Env (K=V) is added to the program's environment, Args replace its
	// arguments when not empty; both reach the init on the kernel command
	// line (protocol.ParamOverride).
	Env  []string
	Args []string
	// KernelLog drops "quiet" from the kernel command line, so that the
	// kernel's boot messages reach the console.
	KernelLog bool

	// Timeout stops the VM when it runs longer (0: no limit).
	Timeout time.Duration
	// Console receives the serial console as it arrives (nil: discarded).
	Console io.Writer
	// Status receives bespoke's own lines: forwarded ports, the console
	// log's path, the boot timing (nil: discarded).
	Status io.Writer
	// LogPath is where the console is saved: default ImageDir/console.log,
	// or a new temporary directory when the image directory is read-only.
	LogPath string
	// QEMU is the qemu-system-x86_64 binary (default: found on $PATH).
	QEMU string

	// Kernel and Initramfs, when set, are booted instead of the image's
	// (a profiling kernel; bespoke verify's initramfs with the tracer).
	Kernel, Initramfs string
	// Volumes are disks attached after the root and mounted by the guest
	// init (bespoke run -v; bespoke verify's tracer beside an erofs root).
	// They need an image whose root is a disk: its kernel has virtio-blk.
	Volumes []Volume
	// Plugin is the value of QEMU's -plugin option (a TCG plugin and its
	// arguments: the cost model's), "" for none. It needs TCG.
	Plugin string
	// Seccomp overrides the mode of the image's seccomp filter for this
	// boot (protocol.SeccompEnforce, SeccompLog or SeccompOff; "" keeps
	// the image's).
	Seccomp string
	// Params are kernel parameters appended to the command line
	// (protocol.ParamTrace, say).
	Params []string
	// StopGuest: when OnReady returns, bespoke asks the guest init to stop
	// the program (protocol.StopRequest on the serial console), as a clean
	// shutdown does, and waits for the VM to end: StopTimeout (default the
	// image's, else 10s) for the program, then StopWait (default 10s) for
	// the guest to power off, before it stops QEMU. Without it, bespoke
	// stops QEMU at once.
	StopGuest   bool
	StopTimeout time.Duration
	StopWait    time.Duration
	// ReadyRequests are written to the guest's console once it is ready,
	// one at a time, each waiting (up to 30 s) for the init's ack marker
	// whose message is Ack; OnReady runs after the last
	// (protocol.GcovResetRequest: the profile starts with the workload).
	ReadyRequests []Request

	// OnReady, when set, runs once the guest is ready (see Image.Ready),
	// with the host port of each forwarded guest TCP port. When it returns,
	// bespoke stops the VM (Result.Stopped); its ctx is cancelled if the VM
	// ends first.
	OnReady func(ctx context.Context, ports map[int]int) error
}

// Volume is a host file attached as a virtio-blk disk and mounted by the
// guest init at Guest.
type Volume struct {
	Host  string // the disk image on the host
	Guest string // the mount point in the guest
	Type  string // its filesystem: "ext4" or "erofs"
	// ReadOnly attaches it read-only.
	ReadOnly bool
	// Image, for a writable volume, names the image it belongs to (see
	// protocol.Volume).
	Image string
}

// Request is a line for the guest init and the ack it answers with.
type Request struct{ Line, Ack string }

// Accelerators.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// ErrNoKVM means --accel kvm was asked for but /dev/kvm cannot be opened.
var ErrNoKVM = errors.New("KVM is not usable")

// kvmUsable is KVMUsable; tests replace it.
var kvmUsable = KVMUsable

// KVMUsable reports whether /dev/kvm can be opened for reading and writing
// and QEMU can start a KVM guest with it. The second check matters under
// nested virtualisation: there /dev/kvm may open while QEMU aborts at once
// (seen: "failed to set MSR 0x10a"). The answer is kept for the process.
func KVMUsable() error {
	kvmOnce.Do(func() { kvmErr = probeKVM() })
	return kvmErr
}

var (
	kvmOnce sync.Once
	kvmErr  error
)

// kvmProbeWait is how long a QEMU that starts a stopped (-S) KVM guest
// must stay up to count as working; it fails within a tenth of a second.
const kvmProbeWait = 1500 * time.Millisecond

func probeKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.Close()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil // Run reports the missing QEMU itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvmProbeWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm,acpi=off", "-accel", "kvm", "-cpu", "host", "-m", "64",
		"-nodefaults", "-no-user-config", "-display", "none", "-S", "-monitor", "none", "-serial", "none")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil // still running when stopped: KVM works
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("/dev/kvm opens, but QEMU cannot start a KVM guest (%v: %s)", err, msg)
}

// Kernel command-line limits: x86's COMMAND_LINE_SIZE is 2048 bytes with
// the NUL. QEMU's microvm appends " virtio_mmio.device=512@0x...:N" for each
// virtio-mmio device; room is kept for it.
const (
	maxCmdline         = 2047
	microvmMMIOReserve = 48
)

// defaultStopTimeoutSec matches the guest init's default.
const defaultStopTimeoutSec = 10

// Guest network of QEMU's user-mode networking (slirp defaults).
const guestNet = "10.0.2.15/24,10.0.2.2"

// plan is one boot, fully resolved.
type plan struct {
	img       *Image
	args      []string // argv of QEMU, args[0] the binary
	ports     []PortMap
	accel     string
	cmdline   string
	ready     readiness
	kernel    string // path
	initrd    string // path
	memoryMB  int
	cpus      int
	accelNote string // why auto chose TCG
	// stopTimeout is how long the program may take to stop (StopGuest).
	stopTimeout time.Duration
}

// Command returns the QEMU command line (argv) that Run would start for
// cfg. Host ports left 0 are chosen now, and Accel "auto" is resolved on
// this machine.
func Command(cfg Config) ([]string, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	return p.args, nil
}

func newPlan(cfg Config) (*plan, error) {
	img := cfg.Image
	if img == nil {
		var err error
		if img, err = LoadImage(cfg.ImageDir); err != nil {
			return nil, err
		}
	} else if err := img.Check(); err != nil {
		return nil, fmt.Errorf("checking image: %w", err)
	}
	p := &plan{img: img}
	var machine, netdev, blkdev string
	switch img.Target {
	case TargetMicrovm:
		// acpi=off: QEMU appends virtio_mmio.device=... to the kernel
		// command line only without ACPI, and bespoke's microvm kernels
		// have no ACPI (they find CPUs in the MP table).
		machine, netdev, blkdev = "microvm,acpi=off", "virtio-net-device", "virtio-blk-device"
	case TargetPC:
		machine, netdev, blkdev = "pc", "virtio-net-pci", "virtio-blk-pci"
	case TargetFirecracker:
		return nil, fmt.Errorf("image %s targets firecracker, which bespoke does not boot: run its vmlinux and %s with firecracker, or rebuild it with --target qemu-microvm", cfg.ImageDir, img.Initramfs)
	}

	var err error
	if p.ready, err = parseReady(img.Ready); err != nil {
		return nil, err
	}
	if img.NoNet && len(cfg.Ports) > 0 {
		return nil, fmt.Errorf("image %s has no network: it cannot forward ports", cfg.ImageDir)
	}
	if !img.NoNet {
		if p.ports, err = mergePorts(cfg.Ports, img.Ports, p.ready); err != nil {
			return nil, err
		}
		if err := pickFreePorts(p.ports); err != nil {
			return nil, err
		}
	}

	p.memoryMB = firstPositive(cfg.MemoryMB, img.MemoryMB, DefaultMemoryMB)
	if p.memoryMB < minMemoryMB || p.memoryMB > maxMemoryMB {
		return nil, fmt.Errorf("memory %d MiB: want %d to %d", p.memoryMB, minMemoryMB, maxMemoryMB)
	}
	p.cpus = firstPositive(cfg.CPUs, img.CPUs, 1)
	p.stopTimeout = cfg.StopTimeout
	if p.stopTimeout <= 0 {
		p.stopTimeout = time.Duration(firstPositive(img.StopTimeoutSec, defaultStopTimeoutSec)) * time.Second
	}
	if p.cpus > 255 {
		return nil, fmt.Errorf("%d CPUs: want 1 to 255", p.cpus)
	}

	switch cfg.Accel {
	case "", AccelAuto:
		p.accel = AccelTCG
		if err := kvmUsable(); err == nil {
			p.accel = AccelKVM
		} else {
			p.accelNote = "KVM not used: " + err.Error()
		}
	case AccelKVM:
		if err := kvmUsable(); err != nil {
			return nil, fmt.Errorf("%w: %v: load the kvm module and join the kvm group, or use --accel tcg", ErrNoKVM, err)
		}
		p.accel = AccelKVM
	case AccelTCG:
		p.accel = AccelTCG
	default:
		return nil, fmt.Errorf("accelerator %q: want auto, kvm or tcg", cfg.Accel)
	}

	if len(cfg.Volumes) > 0 && img.Disk == "" {
		return nil, fmt.Errorf("image %s has an initramfs root: its kernel has no disk to mount volumes from (rebuild it with --root erofs)", cfg.ImageDir)
	}
	if p.cmdline, err = kernelCmdline(img, cfg, p.accel); err != nil {
		return nil, err
	}
	devices := len(cfg.Volumes)
	if !img.NoNet {
		devices++
	}
	if img.Disk != "" {
		devices++
	}
	if reserve := devices * microvmMMIOReserve; img.Target == TargetMicrovm && len(p.cmdline)+reserve > maxCmdline {
		return nil, fmt.Errorf("kernel command line too long: %d bytes, and QEMU's microvm adds about %d for its %d virtio devices; the limit is %d: pass fewer or shorter -e values and arguments", len(p.cmdline), reserve, devices, maxCmdline)
	}

	p.kernel = filepath.Join(cfg.ImageDir, img.Kernel)
	if img.Initramfs != "" {
		p.initrd = filepath.Join(cfg.ImageDir, img.Initramfs)
	}
	if cfg.Initramfs != "" {
		p.initrd = cfg.Initramfs
	}
	if cfg.Kernel != "" {
		p.kernel = cfg.Kernel
	}
	qemu := cfg.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	a := []string{qemu, "-M", machine}
	if cfg.Plugin != "" && p.accel == AccelKVM {
		return nil, errors.New("a TCG plugin (the cost model) counts what QEMU's translator runs, and KVM runs the guest on the CPU: use --accel tcg")
	}
	if p.accel == AccelKVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg", "-cpu", tcgCPU(img.March))
	}
	a = append(a,
		"-m", fmt.Sprint(p.memoryMB),
		"-smp", fmt.Sprint(p.cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=c0,signal=off", "-serial", "chardev:c0",
		"-kernel", p.kernel,
	)
	if p.initrd != "" {
		a = append(a, "-initrd", p.initrd)
	}
	a = append(a, "-append", p.cmdline)
	if cfg.Plugin != "" {
		a = append(a, "-plugin", cfg.Plugin)
	}
	// The root disk first: the guest names it vda. Volumes follow; the
	// init finds each by its serial.
	if img.Disk != "" {
		a = append(a, "-drive", "file="+qemuFile(filepath.Join(cfg.ImageDir, img.Disk))+",if=none,id=root,format=raw,readonly=on",
			"-device", blkdev+",drive=root")
	}
	for i, v := range cfg.Volumes {
		id := fmt.Sprintf("vol%d", i)
		drive := "file=" + qemuFile(v.Host) + ",if=none,id=" + id + ",format=raw"
		if v.ReadOnly {
			drive += ",readonly=on"
		}
		a = append(a, "-drive", drive, "-device", blkdev+",drive="+id+",serial="+volumeSerial(i))
	}
	if !img.NoNet {
		nd := "user,id=n0"
		for _, f := range p.ports {
			nd += fmt.Sprintf(",hostfwd=%s:127.0.0.1:%d-:%d", f.Proto, f.Host, f.Guest)
		}
		a = append(a, "-netdev", nd, "-device", netdev+",netdev=n0")
	}
	p.args = a
	return p, nil
}

// tcgCPU is the CPU model a guest gets under TCG: QEMU's "max" for a
// kernel compiled for an -march (it has the instructions x86-64-v2 and v3
// add), else qemu64 with RDRAND. The hardware KVM guests and cloud VMs run
// on has RDRAND, and the kernel seeds its random pool from it at boot;
// without it (QEMU's default qemu64) the pool is seeded by timing jitter
// when a program first asks for random bytes, which under TCG took 1.3 s:
// redis waited that long at its start, between the init's exec and its
// first line (a redis image on -M microvm: crng ready 2.19 s after boot
// instead of 0.04 s).
func tcgCPU(march string) string {
	if march != "" {
		return "max"
	}
	return "qemu64,+rdrand"
}

// hostTSCKHz returns the host's TSC frequency in kHz, 0 when unknown.
// Tests replace it so that command lines do not depend on the host.
var hostTSCKHz = func() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0
			}
			return int(mhz * 1000)
		}
	}
	return 0
}

// qemuFile escapes a path for a -drive option list (a comma is doubled).
func qemuFile(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// volumeSerial is the virtio serial of the i-th volume.
func volumeSerial(i int) string { return fmt.Sprintf("bespoke-vol%d", i) }

// RootParams are the kernel parameters of an image whose root is an erofs
// disk: the first virtio-blk disk, mounted read-only, and the guest init
// in it (the kernel's default would look for /sbin/init).
const RootParams = "root=/dev/vda ro rootfstype=erofs init=/init"

// seccompParam returns the kernel parameter of the image's seccomp
// filter in mode ("": the image's).
func seccompParam(img *Image, mode string) (string, error) {
	switch {
	case img.Seccomp == nil && mode != "" && mode != protocol.SeccompOff:
		return "", fmt.Errorf("seccomp %s: image %s has no seccomp allowlist (it was built with seccomp off, and its kernel may lack CONFIG_SECCOMP_FILTER): rebuild it with --seccomp %s", mode, img.Name, mode)
	case img.Seccomp == nil:
		return protocol.ParamSeccomp + "=" + protocol.SeccompOff, nil
	}
	return img.Seccomp.Param(cmp.Or(mode, img.Seccomp.Mode))
}

// kernelCmdline returns the kernel command line for one boot.
func kernelCmdline(img *Image, cfg Config, accel string) (string, error) {
	// 115200 baud: QEMU's UART hands the guest its input a FIFO trigger
	// level at a time and the rest after four character times, 4 ms at
	// the default 9600 baud (the host's time reaches the init that way).
	parts := []string{"console=ttyS0,115200", "reboot=t", "panic=-1"}
	if img.Disk != "" && cfg.Initramfs == "" {
		parts = append(parts, RootParams)
	}
	if !cfg.KernelLog {
		parts = append(parts, "quiet")
	}
	// Under TCG the guest's TSC calibration against the PIT often fails
	// (measured: 7 of 12 boots), leaving a coarse clock; telling the guest
	// the TSC frequency avoids the calibration. KVM has kvmclock.
	//
	// tsc=reliable: under TCG the guest's TSC follows the host's clock,
	// while the jiffies its clocksource watchdog compares it with lag
	// whenever the emulated CPU is busy. Without it the watchdog marks the
	// TSC unstable under load and the guest falls back to the
	// refined-jiffies clocksource (seen on a gcov kernel under
	// redis-benchmark: "Marking clocksource 'tsc' as unstable because the
	// skew is too large").
	//
	// noapictimer: under TCG the local APIC timer fails the kernel's
	// verification anyway ("APIC timer disabled due to verification
	// failure"), after a calibration that takes 160 ms of a 0.95 s boot
	// to /init (measured); the PIT drives the tick either way.
	if accel == AccelTCG {
		if khz := hostTSCKHz(); khz > 0 {
			parts = append(parts, fmt.Sprintf("tsc_early_khz=%d", khz))
		}
		parts = append(parts, "tsc=reliable", "noapictimer")
	}
	parts = append(parts, protocol.ParamClock+"=1")
	if !img.NoNet {
		parts = append(parts, protocol.ParamNet+"="+guestNet)
	}
	if c := strings.TrimSpace(img.Cmdline); c != "" {
		parts = append(parts, c)
	}
	if img.Seccomp != nil || cfg.Seccomp != "" {
		p, err := seccompParam(img, cfg.Seccomp)
		if err != nil {
			return "", err
		}
		parts = append(parts, p)
	}
	parts = append(parts, cfg.Params...)
	if len(cfg.Volumes) > 0 {
		vs := make([]protocol.Volume, len(cfg.Volumes))
		for i, v := range cfg.Volumes {
			vs[i] = protocol.Volume{Serial: volumeSerial(i), Target: v.Guest, Type: v.Type, ReadOnly: v.ReadOnly, Image: v.Image}
		}
		enc, err := protocol.EncodeVolumes(vs)
		if err != nil {
			return "", err
		}
		parts = append(parts, protocol.ParamVolumes+"="+enc)
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return "", fmt.Errorf("environment %q: want K=V", kv)
		}
	}
	// An empty Args keeps the image's arguments: the override's JSON
	// cannot tell an empty list from none.
	if len(cfg.Env) > 0 || len(cfg.Args) > 0 {
		v, err := protocol.EncodeOverride(protocol.Override{Args: cfg.Args, Env: cfg.Env})
		if err != nil {
			return "", fmt.Errorf("encoding the program's arguments: %w", err)
		}
		parts = append(parts, protocol.ParamOverride+"="+v)
	}
	s := strings.Join(parts, " ")
	if len(s) > maxCmdline {
		return "", fmt.Errorf("kernel command line too long: %d bytes, the limit is %d: pass fewer or shorter -e values and arguments", len(s), maxCmdline)
	}
	return s, nil
}

func firstPositive(v ...int) int {
	for _, n := range v {
		if n > 0 {
			return n
		}
	}
	return 0
}

// ShellQuote joins argv into one line a POSIX shell reads back as argv.
func ShellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
