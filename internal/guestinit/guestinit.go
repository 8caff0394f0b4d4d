// Package guestinit is bespoke's PID 1 inside the guest: it mounts the
// basic filesystems, reads its configuration (protocol.Config) from the
// initramfs and the kernel command line, brings up the network, starts the
// one program the image exists for, reaps orphans, forwards SIGTERM and
// SIGINT, and when the program ends prints its exit status as a marker
// line on the console and reboots, which ends the VM.
//
// It is built into the static binary cmd/bespoke-init and imports only the
// standard library, golang.org/x/sys/unix, the protocol package and
// package lite: none of bespoke's host-side code, and not fmt,
// encoding/json, net/netip or archive/tar, which would double its size
// (package lite says why).
package guestinit

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH the program starts with.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultStopTimeoutSec is how long init waits between forwarding SIGTERM
// and sending SIGKILL when Config.StopTimeoutSec is 0.
const DefaultStopTimeoutSec = 10

// ParseCmdline splits a kernel command line into parameters, as the kernel
// does: separated by spaces, double quotes group (and are removed), a
// parameter without "=" has the value "". A later parameter wins.
func ParseCmdline(s string) map[string]string {
	params := map[string]string{}
	var cur strings.Builder
	inQuote, any := false, false
	flush := func() {
		if any {
			k, v, _ := strings.Cut(cur.String(), "=")
			params[k] = v
		}
		cur.Reset()
		any = false
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			any = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			cur.WriteRune(r)
			any = true
		}
	}
	flush()
	return params
}

// Net is the guest's eth0 configuration from protocol.ParamNet.
type Net struct {
	Addr       IPv4 // e.g. 10.0.2.15
	Bits       int  // the prefix length, e.g. 24
	Gateway    IPv4 // the default route, when HasGateway
	HasGateway bool
}

// IPv4 is an IPv4 address.
type IPv4 [4]byte

func (a IPv4) String() string {
	return strconv.Itoa(int(a[0])) + "." + strconv.Itoa(int(a[1])) + "." + strconv.Itoa(int(a[2])) + "." + strconv.Itoa(int(a[3]))
}

// ParseIPv4 parses a dotted-decimal IPv4 address, as net/netip does: four
// numbers of 0 to 255, without leading zeros.
func ParseIPv4(s string) (IPv4, bool) {
	var a IPv4
	f := strings.Split(s, ".")
	if len(f) != 4 {
		return a, false
	}
	for i, x := range f {
		n, err := strconv.ParseUint(x, 10, 8)
		if err != nil || x == "" || x[0] == '+' || len(x) > 1 && x[0] == '0' {
			return a, false
		}
		a[i] = byte(n)
	}
	return a, true
}

// ParseNet parses "ADDR/PREFIX[,GATEWAY]" (IPv4).
func ParseNet(v string) (Net, error) {
	a, gw, hasGW := strings.Cut(v, ",")
	var n Net
	addr, bits, _ := strings.Cut(a, "/")
	var ok bool
	n.Addr, ok = ParseIPv4(addr)
	b, err := strconv.ParseUint(bits, 10, 8)
	if !ok || err != nil || b > 32 || len(bits) > 1 && bits[0] == '0' {
		return Net{}, lite.Errorf("%s=%q: want ADDR/PREFIX,GATEWAY with IPv4 addresses, e.g. 10.0.2.15/24,10.0.2.2", protocol.ParamNet, v)
	}
	n.Bits = int(b)
	if hasGW {
		if n.Gateway, ok = ParseIPv4(gw); !ok {
			return Net{}, lite.Errorf("%s=%q: bad gateway %q", protocol.ParamNet, v, gw)
		}
		n.HasGateway = true
	}
	return n, nil
}

// MergeEnv joins K=V lists; a later value of a key replaces an earlier
// one in its place.
func MergeEnv(lists ...[]string) []string {
	var out []string
	idx := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// DecodeConfig reads the init's configuration and checks it.
func DecodeConfig(r io.Reader) (protocol.Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return protocol.Config{}, lite.Errorf("reading %s: %w", protocol.ConfigPath, err)
	}
	c, err := protocol.ParseConfig(b)
	if err != nil {
		return c, lite.Errorf("decoding %s: %w", protocol.ConfigPath, err)
	}
	if !strings.HasPrefix(c.Path, "/") {
		return c, lite.Errorf("%s: program path %q is not absolute", protocol.ConfigPath, c.Path)
	}
	for _, d := range c.Dirs {
		if !strings.HasPrefix(d.Path, "/") {
			return c, lite.Errorf("%s: dir %q is not absolute", protocol.ConfigPath, d.Path)
		}
	}
	for _, m := range c.Mounts {
		if !strings.HasPrefix(m.Target, "/") || m.Type == "" {
			return c, lite.Errorf("%s: mount of %q on %q: want an absolute target and a type", protocol.ConfigPath, m.Source, m.Target)
		}
	}
	return c, nil
}

// HomeOf returns the home directory of uid in an /etc/passwd file, or "/".
func HomeOf(passwd io.Reader, uid int) string {
	sc := bufio.NewScanner(passwd)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 6 && f[2] == strconv.Itoa(uid) && f[5] != "" {
			return f[5]
		}
	}
	return "/"
}

// Plan is what the init starts, after the command line is applied.
type Plan struct {
	Path     string
	Argv     []string // argv[0] is Path
	Env      []string
	Dir      string
	Uid, Gid int
	Groups   []int
	Hostname string
	Net      *Net // nil: only loopback
	// StopSignal is what a protocol.StopRequest sends the program.
	StopSignal syscall.Signal
	// Tracer, when set (protocol.ParamTrace), is started as root in the
	// program's place with TracerArgs: it runs the program under bespoke's
	// tracer, as Uid:Gid, and forwards the signals it gets.
	Tracer     string
	TracerArgv []string
	// Gcov (protocol.ParamGcov): a profiling boot of a gcov kernel.
	Gcov bool
	// Clock (protocol.ParamClock): set the clock from the host's.
	Clock bool
	// ProbeSyscalls are made once before the program starts
	// (protocol.ParamProbeSyscalls).
	ProbeSyscalls []int
	// Volumes are the disks to mount (protocol.ParamVolumes).
	Volumes []protocol.Volume
	// Seccomp is the filter's mode (protocol.ParamSeccomp: SeccompEnforce
	// or SeccompLog; "" for none) and SeccompAllow the syscall numbers it
	// lets through unreported. A traced boot runs without it.
	Seccomp      string
	SeccompAllow []int
}

// MakePlan applies the kernel command line to cfg. home is the program
// user's home directory.
func MakePlan(cfg protocol.Config, cmdline, home string) (Plan, error) {
	params := ParseCmdline(cmdline)
	p := Plan{
		Path:   cfg.Path,
		Dir:    cfg.Workdir,
		Uid:    cfg.Uid,
		Gid:    cfg.Gid,
		Groups: cfg.Groups,
	}
	if p.Dir == "" {
		p.Dir = "/"
	}
	p.Hostname = cfg.Hostname
	if p.Hostname == "" {
		p.Hostname = cfg.Name
	}
	args := cfg.Args
	var overrideEnv []string
	if v, ok := params[protocol.ParamOverride]; ok {
		o, err := protocol.DecodeOverride(v)
		if err != nil {
			return p, err
		}
		if o.Args != nil {
			args = o.Args
		}
		overrideEnv = o.Env
	}
	p.Argv = append([]string{cfg.Path}, args...)
	p.StopSignal = syscall.SIGTERM
	if cfg.StopSignal != "" {
		sig := unix.SignalNum(cfg.StopSignal)
		if sig == 0 {
			return p, lite.Errorf("%s: unknown stop signal %q", protocol.ConfigPath, cfg.StopSignal)
		}
		p.StopSignal = sig
	}
	_, p.Gcov = params[protocol.ParamGcov]
	_, p.Clock = params[protocol.ParamClock]
	if v, ok := params[protocol.ParamProbeSyscalls]; ok {
		for _, f := range strings.Split(v, ",") {
			nr, err := strconv.Atoi(f)
			if err != nil || nr < 0 {
				return p, lite.Errorf("%s=%q: want syscall numbers separated by commas", protocol.ParamProbeSyscalls, v)
			}
			p.ProbeSyscalls = append(p.ProbeSyscalls, nr)
		}
	}
	if t, ok := params[protocol.ParamTrace]; ok {
		if !strings.HasPrefix(t, "/") {
			return p, lite.Errorf("%s=%q: want an absolute path", protocol.ParamTrace, t)
		}
		stop := cfg.StopTimeoutSec
		if stop <= 0 {
			stop = DefaultStopTimeoutSec
		}
		p.Tracer = t
		p.TracerArgv = append([]string{t}, protocol.TracerArgs(p.Uid, p.Gid, p.Groups, unix.SignalName(p.StopSignal), stop, p.Path, p.Argv)...)
	}
	if v, ok := params[protocol.ParamSeccomp]; ok && p.Tracer == "" {
		mode, allow, err := protocol.DecodeSeccomp(v)
		if err != nil {
			return p, err
		}
		if mode != protocol.SeccompOff {
			p.Seccomp, p.SeccompAllow = mode, allow
		}
	}
	if v, ok := params[protocol.ParamVolumes]; ok {
		vs, err := protocol.DecodeVolumes(v)
		if err != nil {
			return p, err
		}
		for _, vol := range vs {
			if !strings.HasPrefix(vol.Target, "/") || vol.Serial == "" || vol.Type == "" {
				return p, lite.Errorf("%s: volume serial=%q target=%q type=%q: want a serial, a type and an absolute target", protocol.ParamVolumes, vol.Serial, vol.Target, vol.Type)
			}
		}
		p.Volumes = vs
	}
	if home == "" {
		home = "/"
	}
	p.Env = MergeEnv([]string{"PATH=" + DefaultPath, "HOME=" + home, "TERM=linux"}, cfg.Env, overrideEnv)
	if v, ok := params[protocol.ParamNet]; ok {
		n, err := ParseNet(v)
		if err != nil {
			return p, err
		}
		p.Net = &n
	}
	return p, nil
}

// ExitCode returns the exit code the init reports for a process that
// exited with status code, or was killed by signal number sig (then code
// is 128+sig, as a shell reports it).
func ExitCode(exited bool, code, sig int) int {
	if exited {
		return code
	}
	return 128 + sig
}

// errNotPID1 is returned when the init is run outside a guest.
var errNotPID1 = errors.New("bespoke-init is the init of a bespoke image: it runs only as PID 1 inside the guest")
