package spec

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// syscallName is the form of a syscall's name in the syscall table.
var syscallName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// marchName is the form of a GCC -march value.
var marchName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// ValidMarch reports whether m has the form of a GCC -march value
// (kernel.march, bespoke build --march).
func ValidMarch(m string) bool { return marchName.MatchString(m) }

// setDefaults fills in what a spec left out.
func (sp *Spec) setDefaults() {
	if sp.Name == "" && len(sp.Cmd) > 0 {
		sp.Name = defaultName(sp.Cmd[0])
	}
	if sp.Target == "" {
		sp.Target = DefaultTarget
	}
	if sp.ShakeLibs == "" {
		sp.ShakeLibs = DefaultShakeLibs
	}
	if sp.Data == "" {
		sp.Data = DefaultData
	}
	if sp.Root == "" {
		sp.Root = DefaultRoot
	}
	if sp.MemoryMB == 0 {
		sp.MemoryMB = DefaultMemoryMB
	}
	if sp.CPUs == 0 {
		sp.CPUs = DefaultCPUs
	}
	if sp.Kernel.Opt == "" {
		sp.Kernel.Opt = DefaultOpt
	}
	if sp.StopSignal == "" {
		sp.StopSignal = DefaultStopSignal
	}
	if sp.StopTimeout == 0 {
		sp.StopTimeout = DefaultStopTimeout
	}
	if sp.ReadyTimeout == 0 {
		sp.ReadyTimeout = DefaultReadyTimeout
	}
	if sp.WorkloadTimeout == 0 {
		sp.WorkloadTimeout = DefaultWorkloadTimeout
	}
	for i := range sp.Dirs {
		if sp.Dirs[i].Mode == 0 {
			sp.Dirs[i].Mode = DefaultDirMode
		}
	}
}

// defaultName derives an image name from the program: "redis-server" for
// "/usr/bin/redis-server".
func defaultName(prog string) string {
	n := strings.ToLower(filepath.Base(prog))
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, n)
	n = strings.TrimLeft(n, "._-")
	if n == "" {
		return "app"
	}
	return n
}

// Validate checks sp as a whole: required fields, values, placeholders and
// settings that conflict. It resolves "ready: tcp:{port}" and adds a tcp
// ready port missing from Ports. Load, Parse and FromArgs call it; call it
// again after changing a Spec by hand. It reads nothing on the host (see
// CheckHost).
func (sp *Spec) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, sp.errorf(key, format, args...))
	}
	if sp.lines == nil {
		sp.lines = map[string]int{}
	}
	sp.setDefaults()

	switch {
	case len(sp.Cmd) == 0:
		bad("cmd", "missing cmd: give the program and its arguments, e.g. cmd: [redis-server, --port, \"{port}\"]")
	case sp.Cmd[0] == "":
		bad("cmd", "cmd: the program name is empty")
	}
	if !nameRE.MatchString(sp.Name) {
		bad("name", "bad name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", sp.Name)
	}
	if !slices.Contains(Targets, sp.Target) {
		bad("target", "unknown target %q: want one of %s", sp.Target, strings.Join(Targets, ", "))
	}
	if !slices.Contains(ShakeModes, sp.ShakeLibs) {
		bad("shake_libs", "unknown library shaking mode %q: want %s", sp.ShakeLibs, strings.Join(ShakeModes, ", "))
	}
	for i, r := range sp.ShakeRemove {
		if f, fn, ok := strings.Cut(r, ":"); !ok || !path.IsAbs(f) || fn == "" {
			bad(fmt.Sprintf("shake_remove.%d", i), "shake_remove: %q is not FILE:FUNCTION (a guest path and a symbol name, e.g. /usr/lib/x86_64-linux-gnu/libc.so.6:getpeername)", r)
		}
	}
	if len(sp.ShakeRemove) > 0 && sp.ShakeLibs == ShakeOff {
		bad("shake_remove", "shake_remove needs shake_libs: static or profile")
	}
	if !slices.Contains(DataModes, sp.Data) {
		bad("data", "unknown data mode %q: want %s", sp.Data, strings.Join(DataModes, " or "))
	}
	if !slices.Contains(Roots, sp.Root) {
		bad("root", "unknown root %q: want %s", sp.Root, strings.Join(Roots, " or "))
	} else if cs := Compressions[sp.Root]; sp.Compression == "" {
		sp.Compression = cs[0]
	} else if !slices.Contains(cs, sp.Compression) {
		bad("compression", "compression %q of an %s root: want %s", sp.Compression, sp.Root, strings.Join(cs, " or "))
	}
	if sp.Kernel.Opt != OptO2 && sp.Kernel.Opt != OptSize && sp.Kernel.Opt != OptPGO {
		bad("kernel.opt", "bad kernel opt %q: want %s (-O2), %s (-Os) or %s (profile-guided)", sp.Kernel.Opt, OptO2, OptSize, OptPGO)
	}
	for _, key := range []string{"enable", "disable"} {
		list := sp.Kernel.Enable
		if key == "disable" {
			list = sp.Kernel.Disable
		}
		seen := map[string]bool{}
		for _, s := range list {
			if seen[s] {
				bad("kernel."+key+"."+s, "kernel %s lists %s twice", key, s)
			}
			seen[s] = true
		}
	}
	if sp.Kernel.DCE && sp.Kernel.Opt == OptPGO {
		bad("kernel.dce", "kernel.dce builds the kernel with Clang, and a profile-guided kernel (kernel.opt: pgo) is GCC's: drop one of them")
	}
	if m := sp.Kernel.March; m != "" && !ValidMarch(m) {
		bad("kernel.march", "bad kernel march %q: want a GCC -march value, e.g. x86-64-v3 or native", m)
	}
	for i, f := range sp.Kernel.PGOHotFlags {
		if !strings.HasPrefix(f, "-f") && !strings.HasPrefix(f, "--param") || strings.ContainsAny(f, " \t") {
			bad(fmt.Sprintf("kernel.pgo_hot_flags.%d", i), "pgo_hot_flags: %q: want one GCC -f option or --param=NAME=VALUE, without spaces", f)
		}
	}
	for i, s := range sp.Kernel.KeepSyscalls {
		if !syscallName.MatchString(s) {
			bad(fmt.Sprintf("kernel.keep_syscalls.%d", i), "keep_syscalls: %q is not a syscall name (e.g. io_uring_setup)", s)
		}
	}
	if sp.Seccomp != "" && !slices.Contains(SeccompModes, sp.Seccomp) {
		bad("seccomp", "unknown seccomp mode %q: want %s", sp.Seccomp, strings.Join(SeccompModes, ", "))
	}
	for i, s := range sp.SeccompAllow {
		if !syscallName.MatchString(s) {
			bad(fmt.Sprintf("seccomp_allow.%d", i), "seccomp_allow: %q is not a syscall name (e.g. clone3)", s)
		}
	}
	if len(sp.SeccompAllow) > 0 && sp.Seccomp == SeccompOff {
		bad("seccomp_allow", "seccomp_allow has no effect with seccomp: off: drop one of them")
	}
	for _, s := range sp.Kernel.Disable {
		if slices.Contains(sp.Kernel.Enable, s) {
			bad("kernel.disable."+s, "kernel symbol %s is both enabled and disabled: keep one", s)
		}
	}

	// Ports, and the ready port among them.
	seen := map[Port]int{}
	for i, p := range sp.Ports {
		if _, dup := seen[p]; dup {
			bad(fmt.Sprintf("ports.%d", i), "port %s is listed twice", p)
		}
		seen[p] = i
	}
	if sp.readyRef != "" {
		switch m := portArgRE.FindStringSubmatch(sp.readyRef); {
		case m != nil:
			n, _ := strconv.Atoi(m[1])
			if !sp.hasPort(n) {
				bad("ready", "ready tcp:%s: %d is not one of the ports: add it to ports, or write tcp:%d", sp.readyRef, n, n)
			}
			sp.Ready.Port = n
		case len(sp.portNumbers()) == 1:
			sp.Ready.Port = sp.Ports[0].Port
		default:
			bad("ready", "ready tcp:{port} needs exactly one port in ports (found %d): write the guest port, e.g. tcp:6379", len(sp.portNumbers()))
		}
		sp.readyRef = ""
	}
	switch sp.Ready.Kind {
	case ReadyNone, ReadyLog:
	case ReadyTCP:
		if sp.Ready.Port < 1 || sp.Ready.Port > 65535 {
			if len(errs) == 0 {
				bad("ready", "bad ready port %d: want 1-65535", sp.Ready.Port)
			}
		} else if _, ok := seen[Port{sp.Ready.Port, "tcp"}]; !ok {
			sp.Ports = append(sp.Ports, Port{sp.Ready.Port, "tcp"})
		}
	default:
		bad("ready", "bad ready kind %q: want tcp or log", sp.Ready.Kind)
	}
	slices.SortStableFunc(sp.Ports, func(a, b Port) int {
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.Proto, b.Proto)
	})
	for _, p := range sp.Ports {
		if p.Port < 1 || p.Port > 65535 || p.Proto != "tcp" && p.Proto != "udp" {
			bad("ports", "bad port %s: want 1-65535, tcp or udp", p)
		}
	}

	// Placeholders, with the values each place can know.
	guest := sp.GuestPorts()
	check := func(key, s string, v Vars) {
		if _, err := v.Expand(s); err != nil {
			bad(key, "%s: %v", strings.SplitN(key, ".", 2)[0], errors.Unwrap(err))
		}
	}
	state := ""
	if len(sp.Setup) > 0 {
		state = "/state"
	}
	inGuest := sp.Vars("", guest, state)
	for _, a := range sp.Cmd {
		check("cmd", a, inGuest)
	}
	for _, k := range slices.Sorted(maps.Keys(sp.Env)) {
		check("env."+k, sp.Env[k], inGuest)
	}
	if sp.Workload != "" {
		check("workload", sp.Workload, sp.Vars("127.0.0.1", guest, ""))
		if sp.Ready.Kind == ReadyNone && !slices.ContainsFunc(sp.Ports, func(p Port) bool { return p.Proto == "tcp" }) {
			bad("workload", "a workload needs to know when the program is ready: add ready (tcp:PORT or log:REGEX), or a TCP port to ports (then any of them accepting is ready)")
		}
	}
	for i, s := range sp.Setup {
		check(fmt.Sprintf("setup.%d", i), s, Vars{State: "/state"})
	}
	if sp.Workload == "" && sp.lines["workload_timeout"] > 0 {
		bad("workload_timeout", "workload_timeout is set but there is no workload: add one or remove workload_timeout")
	}

	// The guest side: user, paths, directories.
	if u := sp.User; u != nil {
		switch {
		case u.Name == "":
			bad("user", "user: give a name (uid and gid alone cannot make an /etc/passwd entry)")
		case !userRE.MatchString(u.Name):
			bad("user", "bad user name %q", u.Name)
		case u.Name == "root" && (u.UID != nil && *u.UID != 0 || u.GID != nil && *u.GID != 0):
			bad("user", "user root must have uid and gid 0")
		}
		for _, id := range []*int{u.UID, u.GID} {
			if id != nil && (*id < 0 || *id > 1<<31-2) {
				bad("user", "bad uid/gid %d: want 0-%d", *id, 1<<31-2)
			}
		}
		if u.Home != "" && !path.IsAbs(u.Home) {
			bad("user.home", "user home %q must be an absolute path", u.Home)
		}
	}
	if sp.Workdir != "" && !path.IsAbs(sp.Workdir) {
		bad("workdir", "workdir %q must be an absolute path in the guest", sp.Workdir)
	}
	dirs := map[string]bool{}
	for i, d := range sp.Dirs {
		key := fmt.Sprintf("dirs.%d", i)
		switch {
		case d.Path == "":
			bad(key, "dirs: give a path")
		case !path.IsAbs(d.Path):
			bad(key, "dirs: path %q must be absolute", d.Path)
		case dirs[path.Clean(d.Path)]:
			bad(key, "dirs: %s is listed twice", d.Path)
		case path.Clean(d.Path) == "/":
			bad(key, "dirs: / always exists")
		}
		dirs[path.Clean(d.Path)] = true
		if d.Owner != "" && !ownerRE.MatchString(d.Owner) {
			bad(key, "bad owner %q: want USER, USER:GROUP or UID:GID", d.Owner)
		}
	}
	for i, p := range sp.Include {
		if !filepath.IsAbs(p) {
			bad(fmt.Sprintf("include.%d", i), "include %q must be absolute", p)
		}
	}
	for _, pat := range sp.Exclude {
		if _, err := filepath.Match(pat, ""); err != nil || pat == "" {
			bad("exclude", "bad exclude pattern %q: want a glob like /usr/share/doc or *.pyc", pat)
		}
	}
	for name := range sp.Rlimits {
		if _, err := parseRlimitName(name); err != nil || name != strings.ToUpper(name) {
			bad("rlimits", "unknown rlimit %q", name)
		}
	}
	if _, err := parseSignal(sp.StopSignal); err != nil {
		bad("stop_signal", "%v", err)
	}
	if sp.MemoryMB < 16 {
		bad("memory", "memory %dM is too small: want at least 16M", sp.MemoryMB)
	}
	if sp.CPUs < 1 || sp.CPUs > 64 {
		bad("cpus", "bad cpus %d: want 1-64", sp.CPUs)
	}
	if len(errs) > 0 {
		return joinErrs(errs)
	}
	return nil
}

func (sp *Spec) hasPort(n int) bool {
	for _, p := range sp.Ports {
		if p.Port == n {
			return true
		}
	}
	return false
}

// portNumbers returns the distinct port numbers.
func (sp *Spec) portNumbers() []int {
	var ns []int
	for _, p := range sp.Ports {
		if !slices.Contains(ns, p.Port) {
			ns = append(ns, p.Port)
		}
	}
	return ns
}
