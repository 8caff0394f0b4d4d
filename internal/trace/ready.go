package trace

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ready is how bespoke decides that a traced program is ready for its
// workload: a TCP port on 127.0.0.1 accepts connections, or a regular
// expression appears in the program's output. The zero Ready means none.
type Ready struct {
	// Kind is "tcp" or "log".
	Kind string
	// Port is the TCP port, possibly the placeholder "{port}".
	Port string
	// Regex matches the program's stdout or stderr.
	Regex *regexp.Regexp
	// Any, for Kind "tcp-any", are TCP ports of which one accepting is
	// enough (AnyTCP).
	Any []int
}

// AnyTCP is ready when one of ports accepts a connection on 127.0.0.1: a
// spec's default when it forwards TCP ports and names no ready condition.
func AnyTCP(ports ...int) Ready {
	if len(ports) == 1 {
		return Ready{Kind: "tcp", Port: strconv.Itoa(ports[0])}
	}
	return Ready{Kind: "tcp-any", Any: slices.Clone(ports)}
}

// accepts reports whether r's TCP port (one of them, for tcp-any) accepts
// a connection now; false for a log check.
func (r Ready) accepts() bool {
	ports := []string{r.Port}
	switch r.Kind {
	case "tcp":
	case "tcp-any":
		ports = ports[:0]
		for _, p := range r.Any {
			ports = append(ports, strconv.Itoa(p))
		}
	default:
		return false
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", p), 500*time.Millisecond); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// ParseReady parses "tcp:PORT" (PORT may be "{port}") or "log:REGEX".
func ParseReady(s string) (Ready, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return Ready{}, fmt.Errorf("readiness check %q: want tcp:PORT or log:REGEX", s)
	}
	switch kind {
	case "tcp":
		if arg != "{port}" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 65535 {
				return Ready{}, fmt.Errorf("readiness check %q: port must be 1-65535 or {port}", s)
			}
		}
		return Ready{Kind: "tcp", Port: arg}, nil
	case "log":
		re, err := regexp.Compile(arg)
		if err != nil {
			return Ready{}, fmt.Errorf("readiness check %q: %w", s, err)
		}
		return Ready{Kind: "log", Regex: re}, nil
	}
	return Ready{}, fmt.Errorf("readiness check %q: unknown kind %q (want tcp:PORT or log:REGEX)", s, kind)
}

// IsZero reports whether r is no readiness check.
func (r Ready) IsZero() bool { return r.Kind == "" }

// String returns r as ParseReady reads it (tcp-any: a description).
func (r Ready) String() string {
	switch r.Kind {
	case "tcp":
		return "tcp:" + r.Port
	case "log":
		return "log:" + r.Regex.String()
	case "tcp-any":
		var ps []string
		for _, p := range r.Any {
			ps = append(ps, "tcp:"+strconv.Itoa(p))
		}
		return "any of " + strings.Join(ps, ", ")
	}
	return ""
}

// matcher searches the program's output for the readiness regex. Writes
// from stdout and stderr are kept apart only by line.
type matcher struct {
	mu    sync.Mutex
	re    *regexp.Regexp
	line  []byte
	done  bool
	found func()
}

func (m *matcher) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return len(p), nil
	}
	m.line = append(m.line, p...)
	for {
		i := bytes.IndexByte(m.line, '\n')
		if i < 0 {
			break
		}
		if m.re.Match(m.line[:i]) {
			m.done = true
			m.found()
			return len(p), nil
		}
		m.line = m.line[i+1:]
	}
	if m.re.Match(m.line) { // a prompt without a newline
		m.done = true
		m.found()
	}
	if len(m.line) > 64<<10 {
		m.line = m.line[len(m.line)-(32<<10):]
	}
	return len(p), nil
}
