package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Vars are the values placeholders stand for. This is the one place that
// knows the placeholder rules:
//
//   - {host} is Host: where the workload reaches the program (127.0.0.1
//     both while tracing and when the image runs under QEMU).
//   - {port:GUEST} is Ports[GUEST]: the port where the program's guest
//     port GUEST can be reached.
//   - {port} is Ports[Port]: the default port (Spec.DefaultPort, the ready
//     port). With Port 0 it is allowed only when Ports has one entry.
//   - {state} is State, the build's state directory.
//   - {{name}} and {{name:arg}} stand for the literal text {name} and
//     {name:arg}.
//
// Any other {word} or {word:arg} is an error. Other braces (${HOME},
// awk '{print $1}', {a,b}) are left alone.
type Vars struct {
	Host  string
	Ports map[int]int
	Port  int
	State string
}

// placeholderRE matches a placeholder, possibly doubled for a literal.
var placeholderRE = regexp.MustCompile(`\{?\{([a-z_]+)(?::([^{}\s]*))?\}\}?`)

// placeholders are the known names.
var placeholders = []string{"host", "port", "port:GUEST", "state"}

// Expand returns s with its placeholders filled in.
func (v Vars) Expand(s string) (string, error) {
	var b strings.Builder
	last := 0
	for _, ix := range placeholderRE.FindAllStringSubmatchIndex(s, -1) {
		start, end := ix[0], ix[1]
		m := s[start:end]
		b.WriteString(s[last:start])
		last = end
		open, close := strings.HasPrefix(m, "{{"), strings.HasSuffix(m, "}}")
		if open && close {
			b.WriteString(m[1 : len(m)-1])
			continue
		}
		if start > 0 && s[start-1] == '$' {
			b.WriteString(m) // ${name}: a shell variable
			continue
		}
		// A lone extra brace is not part of the placeholder: {{port} is
		// "{" then {port}.
		if open {
			b.WriteByte('{')
		}
		name, arg := s[ix[2]:ix[3]], ""
		if ix[4] >= 0 {
			arg = s[ix[4]:ix[5]]
		}
		r, err := v.value(name, arg, ix[4] >= 0)
		if err != nil {
			return "", fmt.Errorf("expanding %q: %w", s, err)
		}
		b.WriteString(r)
		if close {
			b.WriteByte('}')
		}
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

func (v Vars) value(name, arg string, hasArg bool) (string, error) {
	switch {
	case name == "host" && !hasArg:
		if v.Host == "" {
			return "", fmt.Errorf("{host} is not known here: it belongs in the workload")
		}
		return v.Host, nil
	case name == "state" && !hasArg:
		if v.State == "" {
			return "", fmt.Errorf("{state} is not known here: it is the directory setup commands fill, for setup, cmd and env of a spec with setup")
		}
		return v.State, nil
	case name == "port" && !hasArg:
		guest := v.Port
		if guest == 0 {
			switch len(v.Ports) {
			case 0:
				return "", fmt.Errorf("{port}: the spec has no ports: add ports: [PORT] or ready: tcp:PORT")
			case 1:
				for g := range v.Ports {
					guest = g
				}
			default:
				return "", fmt.Errorf("{port} is ambiguous with ports %s: name one, e.g. {port:%d}", guestList(v.Ports), slices.Sorted(mapKeys(v.Ports))[0])
			}
		}
		p, ok := v.Ports[guest]
		if !ok {
			return "", fmt.Errorf("{port}: no mapping for guest port %d", guest)
		}
		return strconv.Itoa(p), nil
	case name == "port":
		guest, err := strconv.Atoi(arg)
		if err != nil || guest < 1 || guest > 65535 || arg != strconv.Itoa(guest) {
			return "", fmt.Errorf("bad placeholder {port:%s}: want {port:GUEST} with a guest port number", arg)
		}
		p, ok := v.Ports[guest]
		if !ok {
			return "", fmt.Errorf("{port:%d}: %d is not one of the spec's ports %s: add it to ports", guest, guest, guestList(v.Ports))
		}
		return strconv.Itoa(p), nil
	}
	text := "{" + name + "}"
	if hasArg {
		text = "{" + name + ":" + arg + "}"
	}
	return "", fmt.Errorf("unknown placeholder %s: want one of {%s} (write {%s} for the literal text)", text, strings.Join(placeholders, "}, {"), text)
}

func mapKeys(m map[int]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func guestList(m map[int]int) string {
	if len(m) == 0 {
		return "[]"
	}
	var b []string
	for _, k := range slices.Sorted(mapKeys(m)) {
		b = append(b, strconv.Itoa(k))
	}
	return "[" + strings.Join(b, ", ") + "]"
}

// Expand fills in {host}, {port} and {port:GUEST} in s. ports maps each
// guest port to the port where it can be reached: while tracing, the port
// the program really listens on on the host (Spec.TracePorts); when the
// image runs, the forwarded host port. {port} needs ports to have exactly
// one entry; Spec.Expand also knows the ready port.
func Expand(s, host string, ports map[int]int) (string, error) {
	return Vars{Host: host, Ports: ports}.Expand(s)
}

// Expand fills in s like the package's Expand, with {port} standing for
// sp's default port (DefaultPort).
func (sp *Spec) Expand(s, host string, ports map[int]int) (string, error) {
	return sp.Vars(host, ports, "").Expand(s)
}

// Vars returns the placeholder values for sp: host and ports as for
// Expand, state the state directory ("" when there is none).
func (sp *Spec) Vars(host string, ports map[int]int, state string) Vars {
	return Vars{Host: host, Ports: ports, Port: sp.DefaultPort(), State: state}
}

// DefaultPort returns the guest port {port} stands for: the ready port
// when ready is tcp, else the only port, else 0 (none).
func (sp *Spec) DefaultPort() int {
	if sp.Ready.Kind == ReadyTCP && sp.Ready.Port != 0 {
		return sp.Ready.Port
	}
	nums := map[int]bool{}
	for _, p := range sp.Ports {
		nums[p.Port] = true
	}
	if len(nums) == 1 {
		return sp.Ports[0].Port
	}
	return 0
}

// GuestPorts returns the identity mapping of sp's ports: each guest port
// to itself, the values placeholders in Cmd and Env take inside the guest.
func (sp *Spec) GuestPorts() map[int]int {
	m := map[int]int{}
	for _, p := range sp.Ports {
		m[p.Port] = p.Port
	}
	return m
}

// Command returns Cmd and Env with placeholders filled in for a run where
// each guest port listens on ports[guest]: GuestPorts() in the image,
// TracePorts() on the host. {host} is an error there.
func (sp *Spec) Command(ports map[int]int, state string) (argv []string, env map[string]string, err error) {
	v := sp.Vars("", ports, state)
	for _, a := range sp.Cmd {
		e, err := v.Expand(a)
		if err != nil {
			return nil, nil, fmt.Errorf("cmd: %w", err)
		}
		argv = append(argv, e)
	}
	if sp.Env != nil {
		env = map[string]string{}
	}
	for k, val := range sp.Env {
		e, err := v.Expand(val)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", k, err)
		}
		env[k] = e
	}
	return argv, env, nil
}

// ref is one placeholder found in a string.
type ref struct {
	name, arg string
	hasArg    bool
}

// refs returns the placeholders in s, leaving out literals ({{name}}) and
// shell variables (${name}).
func refs(s string) []ref {
	var out []ref
	for _, ix := range placeholderRE.FindAllStringSubmatchIndex(s, -1) {
		m := s[ix[0]:ix[1]]
		if strings.HasPrefix(m, "{{") && strings.HasSuffix(m, "}}") || ix[0] > 0 && s[ix[0]-1] == '$' {
			continue
		}
		r := ref{name: s[ix[2]:ix[3]], hasArg: ix[4] >= 0}
		if r.hasArg {
			r.arg = s[ix[4]:ix[5]]
		}
		out = append(out, r)
	}
	return out
}

// usesPort reports whether s holds a placeholder for guest port p.
func (sp *Spec) usesPort(s string, p int) bool {
	for _, r := range refs(s) {
		if r.name != "port" {
			continue
		}
		if r.hasArg && r.arg == strconv.Itoa(p) || !r.hasArg && sp.DefaultPort() == p {
			return true
		}
	}
	return false
}
