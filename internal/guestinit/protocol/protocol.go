// Package protocol is the contract between the host side of bespoke and the
// guest init (PID 1): the init's configuration file in the initramfs, the
// kernel command-line parameters it reads, and the marker lines it prints
// on the console. It imports only the standard library and package lite,
// and the guest init's part of it uses neither fmt nor encoding/json, so
// the init stays small.
package protocol

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
)

// ConfigPath is where the init's configuration lives in the initramfs.
const ConfigPath = "/etc/bespoke/init.json"

// Config says what the guest init sets up and which program it starts.
type Config struct {
	Name     string   `json:"name"` // image name, for messages
	Path     string   `json:"path"` // absolute path of the program in the guest
	Args     []string `json:"args"` // argv[1:]
	Env      []string `json:"env"`  // K=V, on top of PATH/HOME/TERM defaults
	Uid      int      `json:"uid"`  // user to run the program as
	Gid      int      `json:"gid"`  //
	Groups   []int    `json:"groups,omitempty"`
	Workdir  string   `json:"workdir"`  // "" means "/"
	Hostname string   `json:"hostname"` // "" means Name
	// Rlimits by name ("NOFILE", "NPROC", "CORE", ...): soft=hard=value.
	Rlimits map[string]uint64 `json:"rlimits,omitempty"`
	// Dirs are created before the program starts (e.g. /run/postgresql).
	Dirs []Dir `json:"dirs,omitempty"`
	// Mounts beyond the ones init always makes (/proc, /sys, /dev, /tmp, /run).
	Mounts []Mount `json:"mounts,omitempty"`
	// StopTimeoutSec is how long init waits after forwarding SIGTERM before SIGKILL.
	StopTimeoutSec int `json:"stop_timeout_sec,omitempty"`
	// StopSignal is the signal a StopRequest sends the program ("SIGTERM"
	// when empty). SIGTERM and SIGINT sent to init are forwarded as they are.
	StopSignal string `json:"stop_signal,omitempty"`
	// State is the program's state directory (the spec's {state}), whose
	// room the init reports at start (EventState) and watches
	// (EventStateFull); "" when the image has none.
	State string `json:"state,omitempty"`
}

// Dir is a directory the init creates with an owner and mode.
type Dir struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	Uid  int    `json:"uid"`
	Gid  int    `json:"gid"`
}

// Mount is one extra mount.
type Mount struct {
	Source  string `json:"source"`
	Target  string `json:"target"`
	Type    string `json:"type"`
	Options string `json:"options,omitempty"`
}

// Kernel command-line parameters read by the init.
const (
	// ParamNet configures eth0: "ADDR/PREFIX,GATEWAY", e.g. "10.0.2.15/24,10.0.2.2".
	ParamNet = "bespoke.net"
	// ParamOverride carries an Override as base64url (no padding) JSON.
	ParamOverride = "bespoke.override"
	// ParamTrace names a tracer binary in the initramfs (bespoke verify
	// appends one): the init starts the program under it, with the
	// TracerArgs, and the tracer prints the manifest as a BlobTrace blob
	// when the program has ended.
	ParamTrace = "bespoke.trace"
	// ParamGcov (any value) makes the init mount debugfs, zero the gcov
	// counters on a GcovResetRequest, and send every .gcda file as the
	// BlobGcov blob when the program has ended: a profiling boot of a
	// kernel built with GCOV_KERNEL (bespoke build --optimize pgo).
	ParamGcov = "bespoke.gcov"
	// ParamClock (any value): the host answers an EventClock with a
	// TimeReply, and the init sets the guest's clock from it before it
	// starts the program (the RTC gives the guest whole seconds: it was
	// 0.6-1.3 s behind the host).
	ParamClock = "bespoke.clock"
	// ParamProbeSyscalls lists syscall numbers ("425,39") the init makes
	// once, with every argument 0, before it starts the program, printing
	// a ProbeMarker line for each: a test that a syscall removed from the
	// table returns ENOSYS. Only for syscalls that are harmless so.
	ParamProbeSyscalls = "bespoke.probe-syscalls"
	// ParamVolumes lists the disks the init mounts, as base64url (no
	// padding) JSON of []Volume (EncodeVolumes).
	ParamVolumes = "bespoke.volumes"
	// ParamSeccomp is the seccomp filter the init puts on the program:
	// "MODE:ALLOW", where MODE is SeccompEnforce or SeccompLog and ALLOW
	// the syscalls the program may make (EncodeSeccomp), or SeccompOff.
	ParamSeccomp = "bespoke.seccomp"
)

// Seccomp modes: what the init's filter does with a syscall outside the
// program's allowlist. Both report it (an EventSeccomp line).
const (
	SeccompEnforce = "enforce" // the syscall fails with ENOSYS
	SeccompLog     = "log"     // the syscall runs
	SeccompOff     = "off"     // no filter
)

// MaxSyscall bounds the x86-64 syscall numbers an allowlist holds (Linux
// 6.12's highest is 462).
const MaxSyscall = 511

// EncodeSeccomp returns the value of ParamSeccomp for mode and the
// syscall numbers allow: the mode, a colon, and a bitmap of allow
// (bit n of byte n/8 for syscall n) as base64url without padding, short
// enough for a kernel command line.
func EncodeSeccomp(mode string, allow []int) (string, error) {
	switch mode {
	case SeccompOff:
		return mode, nil
	case SeccompEnforce, SeccompLog:
	default:
		return "", lite.Errorf("seccomp mode %q: want %s, %s or %s", mode, SeccompEnforce, SeccompLog, SeccompOff)
	}
	bits := make([]byte, (MaxSyscall+1)/8)
	top := 0
	for _, nr := range allow {
		if nr < 0 || nr > MaxSyscall {
			return "", lite.Errorf("seccomp: syscall number %d out of range", nr)
		}
		bits[nr/8] |= 1 << (nr % 8)
		top = max(top, nr/8+1)
	}
	return mode + ":" + base64.RawURLEncoding.EncodeToString(bits[:top]), nil
}

// DecodeSeccomp parses the value of ParamSeccomp; allow is sorted.
func DecodeSeccomp(v string) (mode string, allow []int, err error) {
	mode, enc, hasList := strings.Cut(v, ":")
	switch {
	case mode == SeccompOff && !hasList:
		return mode, nil, nil
	case (mode == SeccompEnforce || mode == SeccompLog) && hasList:
	default:
		return "", nil, lite.Errorf("%s=%q: want %s:LIST, %s:LIST or %s", ParamSeccomp, v, SeccompEnforce, SeccompLog, SeccompOff)
	}
	bits, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(bits) > (MaxSyscall+1)/8 {
		return "", nil, lite.Errorf("%s=%q: bad syscall list", ParamSeccomp, v)
	}
	for i, b := range bits {
		for j := 0; j < 8; j++ {
			if b&(1<<j) != 0 {
				allow = append(allow, i*8+j)
			}
		}
	}
	return mode, allow, nil
}

// Volume is a disk the init mounts once the root is ready: a state volume
// (bespoke run -v HOSTFILE:/GUEST/PATH) or bespoke's own tools (verify's
// tracer). The init finds it by its virtio serial.
type Volume struct {
	// Serial is the serial QEMU gives the virtio-blk disk
	// (/sys/block/vdX/serial in the guest).
	Serial string `json:"serial"`
	Target string `json:"target"` // the mount point, absolute
	Type   string `json:"type"`   // "ext4" or "erofs"
	// ReadOnly mounts it read-only.
	ReadOnly bool `json:"ro,omitempty"`
	// Image, for a writable volume, is the image it belongs to: the init
	// fills a new, empty volume with what the image holds at Target and
	// marks it (VolumeMarker); a volume marked for another image is an
	// error, not data to run with.
	Image string `json:"image,omitempty"`
}

// The directories of an erofs root the init uses to make it writable: a
// tmpfs for the overlay's upper layer, and the overlay's mount point.
// internal/initramfs puts them into every erofs root.
const (
	// Stage0File, in an initramfs that boots an image's erofs root on a
	// kernel whose drivers are modules (internal/baseline: Debian's cloud
	// kernel), lists the modules the init loads, one path per line; then
	// it mounts the first virtio disk at Stage0Root, makes it the root and
	// runs its /init.
	Stage0File = "/bespoke-stage0"
	Stage0Root = "/newroot"

	OverlayRW   = "/.bespoke/rw"
	OverlayRoot = "/.bespoke/root"
)

// VolumeMarker is the file at the top of a state volume that names the
// image it belongs to.
const VolumeMarker = ".bespoke-volume"

// EncodeVolumes returns the value for ParamVolumes.
func EncodeVolumes(vs []Volume) (string, error) {
	b := []byte{'['}
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"serial":`...)
		b = lite.AppendString(b, v.Serial)
		b = append(b, `,"target":`...)
		b = lite.AppendString(b, v.Target)
		b = append(b, `,"type":`...)
		b = lite.AppendString(b, v.Type)
		if v.ReadOnly {
			b = append(b, `,"ro":true`...)
		}
		if v.Image != "" {
			b = append(b, `,"image":`...)
			b = lite.AppendString(b, v.Image)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeVolumes parses the value of ParamVolumes.
func DecodeVolumes(s string) ([]Volume, error) {
	var vs []Volume
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		var v any
		if v, err = lite.ParseJSON(b); err == nil {
			vs, err = decodeList(v, (*Volume).decode)
		}
	}
	if err != nil {
		return nil, lite.Errorf("decoding %s: %w", ParamVolumes, err)
	}
	return vs, nil
}

// ProbeMarker starts the line of one probed syscall: "NR RESULT", where
// RESULT is "ok" or the errno's name (ENOSYS).
const ProbeMarker = MarkerPrefix + "probe-syscall "

// StopRequest is the line the host writes to the guest's serial console to
// ask the init to stop the program with Config.StopSignal, as a clean
// shutdown does. It starts with a control character that no program output
// the host could echo back would produce.
const StopRequest = "\x02bespoke-stop"

// TimeReply starts the line the host writes in answer to an EventClock:
// TimeReply, then the host's clock in Unix nanoseconds as 16 hex digits.
// It is short on purpose: the emulated UART hands the guest its input a
// FIFO's trigger level at a time, and every byte delays the answer.
const TimeReply = "\x02t"

// FormatTime returns the TimeReply line for t, without the newline.
func FormatTime(t time.Time) string { return lite.Sprintf("%s%016x", TimeReply, t.UnixNano()) }

// ParseTime reads the time of a TimeReply line.
func ParseTime(line string) (time.Time, bool) {
	_, v, ok := strings.Cut(line, TimeReply)
	if !ok || len(v) < 16 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(v[:16], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true
}

// ClockSet is the Msg of the EventAck with which the init says it set the
// clock.
const ClockSet = "clock"

// GcovResetRequest asks the init to zero the kernel's gcov counters
// (ParamGcov); it answers with an EventAck whose Msg is GcovReset.
const (
	GcovResetRequest = "\x02bespoke-gcov-reset"
	GcovReset        = "gcov-reset"
)

// BlobTrace is the name of the guest trace's blob: a manifest's JSON.
const BlobTrace = "trace.json"

// BlobGcov is the name of the kernel profile's blob: a tar archive of
// every .gcda file under GcovDir, at its path below GcovDir.
const BlobGcov = "gcov.tar"

// GcovDir is where debugfs shows the kernel's gcov data.
const GcovDir = "/sys/kernel/debug/gcov"

// TracerArgs returns the arguments the init gives the tracer (after argv[0])
// to run path with argv as uid:gid with groups, stopping it with stopSignal
// and killing it stopTimeoutSec seconds later.
func TracerArgs(uid, gid int, groups []int, stopSignal string, stopTimeoutSec int, path string, argv []string) []string {
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(g)
	}
	a := []string{
		"-uid", strconv.Itoa(uid), "-gid", strconv.Itoa(gid), "-groups", strings.Join(gs, ","),
		"-stop-signal", stopSignal, "-grace", strconv.Itoa(stopTimeoutSec) + "s",
		"--", path,
	}
	return append(a, argv[1:]...)
}

// Override changes the configured program for one boot (bespoke run -e, -- ARGS).
type Override struct {
	Args []string `json:"args,omitempty"` // replaces Config.Args when non-nil
	Env  []string `json:"env,omitempty"`  // appended to Config.Env (later wins)
}

// EncodeOverride returns the value for ParamOverride.
func EncodeOverride(o Override) (string, error) {
	b := []byte{'{'} // as json.Marshal with omitempty: no empty lists
	if len(o.Args) > 0 {
		b = append(b, `"args":`...)
		b = lite.AppendStrings(b, o.Args)
	}
	if len(o.Env) > 0 {
		if len(o.Args) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"env":`...)
		b = lite.AppendStrings(b, o.Env)
	}
	b = append(b, '}')
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeOverride parses the value of ParamOverride.
func DecodeOverride(s string) (Override, error) {
	var o Override
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		var v any
		if v, err = lite.ParseJSON(b); err == nil {
			err = o.decode(v)
		}
	}
	if err != nil {
		return Override{}, lite.Errorf("decoding %s: %w", ParamOverride, err)
	}
	return o, nil
}

// MarkerPrefix starts every line the init prints for the host to read.
const MarkerPrefix = "bespoke-init: "

// Event kinds.
const (
	EventStarted = "started" // init is running (guest uptime at /init)
	EventExec    = "exec"    // the program was started (Pid set)
	EventExit    = "exit"    // the program ended (Code, or Signal set)
	EventError   = "error"   // init could not do its job (Msg set); the VM powers off
	EventAck     = "ack"     // init carried out a console request (Msg: the request's name)
	EventClock   = "clock"   // init asks for the host's time (ParamClock; the host writes a TimeReply)
	// EventSeccomp: the program made a syscall outside its allowlist
	// (ParamSeccomp): Pid made syscall Nr, and Msg says what the filter
	// did, SeccompDenied or SeccompAllowed. Sent once per syscall number.
	EventSeccomp = "seccomp"
	// EventState: the room of the program's state directory (Config.State)
	// before the program starts; Msg is a StateInfo.
	EventState = "state"
	// EventStateFull: the state directory is full, or nearly
	// (StateInfo.Full; once, until it has room again); Msg is a StateInfo.
	EventStateFull = "state-full"
	// EventFault: the program died of a fault the kernel reported; Msg is
	// the kernel's line ("traps: NAME[PID] trap int3 ip:... in
	// FILE[OFFSET,START+SIZE]"). Sent before EventExit.
	EventFault = "fault"
)

// StateFullBytes is the room below which a state directory is full
// (StateInfo.Full), unless a quarter of it is less. A write that fails
// with ENOSPC often leaves room behind: postgres allocates its WAL 16 MiB
// at a time and deletes the segment it could not fill, so that a look at
// the room after the failure sees up to 16 MiB free. Measured: a 72 MiB
// state directory filled by postgres in under a second, then showed
// several MiB free again.
const StateFullBytes = 16 << 20

// Full reports whether s has less room than FullBelow.
func (s StateInfo) Full() bool { return s.Free < s.FullBelow() }

// FullBelow is the room below which s is full: StateFullBytes, or a
// quarter of its size when that is less.
func (s StateInfo) FullBelow() uint64 { return min(StateFullBytes, s.Total/4) }

// StateInfo is the room of the state directory.
type StateInfo struct {
	// Where the directory lives: StateMemory (the tmpfs under the root's
	// overlay, or the initramfs: half the VM's memory) or StateVolume (a
	// disk, bespoke run -v).
	Where string `json:"where"`
	Total uint64 `json:"total_bytes"`
	Free  uint64 `json:"free_bytes"`
	Path  string `json:"path"`
}

// Where a state directory lives (StateInfo.Where).
const (
	StateMemory = "memory"
	StateVolume = "volume"
)

// String formats s for an event's Msg.
func (s StateInfo) String() string {
	return lite.Sprintf("%s %d %d %s", s.Where, s.Total, s.Free, s.Path)
}

// ParseStateInfo parses an EventState or EventStateFull Msg.
func ParseStateInfo(msg string) (StateInfo, error) {
	var s StateInfo
	f := strings.SplitN(msg, " ", 4)
	if len(f) != 4 || (f[0] != StateMemory && f[0] != StateVolume) {
		return s, lite.Errorf("bad state %q: want WHERE TOTAL FREE PATH", msg)
	}
	var err1, err2 error
	s.Where, s.Path = f[0], f[3]
	s.Total, err1 = strconv.ParseUint(f[1], 10, 64)
	s.Free, err2 = strconv.ParseUint(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, lite.Errorf("bad state %q: %w", msg, err)
	}
	return s, nil
}

// What the init's seccomp filter did with a syscall outside the
// allowlist (EventSeccomp's Msg).
const (
	SeccompDenied  = "denied"  // SeccompEnforce: it failed with ENOSYS
	SeccompAllowed = "allowed" // SeccompLog: it ran
)

// ExitCodeInitError is the status bespoke run returns when the init failed
// before or while starting the program.
const ExitCodeInitError = 125

// Event is one marker line.
type Event struct {
	Kind   string
	Uptime float64 // guest seconds since boot, from /proc/uptime
	Pid    int     // EventExec, EventSeccomp
	Nr     int     // EventSeccomp: the syscall number (x86-64; -1: another ABI's)
	Code   int     // EventExit
	Signal string  // EventExit, when killed by a signal (e.g. "SIGSEGV")
	Msg    string  // EventError
}

// Format returns the marker line for e, without a trailing newline.
func (e Event) Format() string {
	var b strings.Builder
	b.WriteString(MarkerPrefix)
	b.WriteString(e.Kind)
	switch e.Kind {
	case EventExec:
		b.WriteString(" pid=" + strconv.Itoa(e.Pid))
	case EventSeccomp:
		b.WriteString(" pid=" + strconv.Itoa(e.Pid) + " nr=" + strconv.Itoa(e.Nr))
	case EventExit:
		if e.Signal != "" {
			b.WriteString(" signal=" + e.Signal)
		}
		b.WriteString(" code=" + strconv.Itoa(e.Code))
	}
	b.WriteString(" uptime=" + strconv.FormatFloat(e.Uptime, 'f', 3, 64))
	if e.Kind == EventError || e.Kind == EventAck || e.Kind == EventSeccomp || e.Kind == EventState || e.Kind == EventStateFull || e.Kind == EventFault {
		b.WriteString(" msg=" + strconv.Quote(e.Msg))
	}
	return b.String()
}

// ParseEvent parses a console line. It finds the marker anywhere in the
// line (the kernel may interleave its own output), and reports false when
// the line holds none.
func ParseEvent(line string) (Event, bool) {
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		return Event{}, false
	}
	rest := strings.TrimRight(line[i+len(MarkerPrefix):], "\r\n")
	var e Event
	kind, rest, _ := strings.Cut(rest, " ")
	switch kind {
	case EventStarted, EventExec, EventExit, EventError, EventAck, EventClock, EventSeccomp, EventState, EventStateFull, EventFault:
		e.Kind = kind
	default:
		return Event{}, false
	}
	for rest != "" {
		var field string
		if strings.HasPrefix(rest, "msg=") {
			msg, err := strconv.Unquote(rest[len("msg="):])
			if err != nil {
				msg = rest[len("msg="):]
			}
			e.Msg = msg
			break
		}
		field, rest, _ = strings.Cut(rest, " ")
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "uptime":
			e.Uptime, _ = strconv.ParseFloat(v, 64)
		case "pid":
			e.Pid, _ = strconv.Atoi(v)
		case "nr":
			e.Nr, _ = strconv.Atoi(v)
		case "code":
			e.Code, _ = strconv.Atoi(v)
		case "signal":
			e.Signal = v
		}
	}
	return e, true
}
