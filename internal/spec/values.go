package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The parsers below read one value from its text form. They are shared by
// the YAML decoder and FromArgs; their errors carry no position.

// parsePort reads a port: "6379", "6379/tcp" or "53/udp".
func parsePort(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("bad port %q: protocol %q is not tcp or udp (write 8080 or \"53/udp\")", s, proto)
		}
		p.Proto = proto
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 || num != strconv.Itoa(n) {
		return p, fmt.Errorf("bad port %q: want a number in 1-65535, optionally followed by /tcp or /udp", s)
	}
	p.Port = n
	return p, nil
}

// parseReady reads "tcp:PORT", "tcp:{port}", "tcp:{port:GUEST}" or
// "log:REGEX". A tcp port written as a placeholder comes back as port 0
// with its placeholder text; Validate resolves it.
func parseReady(s string) (r Ready, placeholder string, err error) {
	kind, v, ok := strings.Cut(s, ":")
	switch {
	case s == "":
		return r, "", nil
	case ok && kind == ReadyTCP:
		r.Kind = ReadyTCP
		if strings.HasPrefix(v, "{") {
			if v == "{port}" || portArgRE.MatchString(v) {
				return r, v, nil
			}
			return r, "", fmt.Errorf("bad ready %q: the port must be a number, {port} or {port:GUEST}", s)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 || v != strconv.Itoa(n) {
			return r, "", fmt.Errorf("bad ready %q: want tcp:PORT with PORT in 1-65535", s)
		}
		r.Port = n
		return r, "", nil
	case ok && kind == ReadyLog:
		if v == "" {
			return r, "", fmt.Errorf("bad ready %q: want log:REGEX with a regular expression", s)
		}
		if _, err := regexp.Compile(v); err != nil {
			return r, "", fmt.Errorf("bad ready %q: %v", s, err)
		}
		return Ready{Kind: ReadyLog, Regex: v}, "", nil
	}
	return r, "", fmt.Errorf("bad ready %q: want tcp:PORT (a port accepts connections) or log:REGEX (an output line matches)", s)
}

var portArgRE = regexp.MustCompile(`^\{port:([0-9]+)\}$`)

// parseMemory reads a memory size with a unit: "256M", "1G", "512MiB".
// It returns mebibytes.
func parseMemory(s string) (int, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		if i < 0 && t != "" {
			return 0, fmt.Errorf("bad memory %q: give a unit, e.g. %sM", s, t)
		}
		return 0, fmt.Errorf("bad memory %q: want a size like 256M or 1G", s)
	}
	n, err := strconv.Atoi(t[:i])
	if err != nil {
		return 0, fmt.Errorf("bad memory %q: want a size like 256M or 1G", s)
	}
	var mb int
	switch strings.TrimSpace(t[i:]) {
	case "M", "MB", "MiB", "m":
		mb = n
	case "G", "GB", "GiB", "g":
		mb = n * 1024
	default:
		return 0, fmt.Errorf("bad memory %q: the unit must be M or G (e.g. 256M, 1G)", s)
	}
	if mb < 16 || mb > 1<<20 {
		return 0, fmt.Errorf("bad memory %q: want between 16M and 1024G", s)
	}
	return mb, nil
}

// parseDuration reads a Go duration with a unit: "30s", "2m", "1m30s".
func parseDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			return 0, fmt.Errorf("bad %s %q: give a unit, e.g. %ss", field, s, s)
		}
		return 0, fmt.Errorf("bad %s %q: want a duration like 30s or 2m", field, s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("bad %s %q: must be positive", field, s)
	}
	return d, nil
}

// signals are the signals stop_signal may name.
var signals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGPWR", "SIGKILL"}

// parseSignal reads a signal name, "TERM" or "SIGTERM"; it returns "SIGTERM".
func parseSignal(s string) (string, error) {
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	for _, sig := range signals {
		if n == sig {
			return n, nil
		}
	}
	return "", fmt.Errorf("bad stop_signal %q: want one of %s", s, strings.Join(signals, ", "))
}

// rlimits are the resource names rlimits may set (setrlimit(2)).
var rlimits = []string{"AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE", "NOFILE", "NPROC", "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK"}

// parseRlimitName reads "NOFILE", "nofile" or "RLIMIT_NOFILE"; it returns "NOFILE".
func parseRlimitName(s string) (string, error) {
	n := strings.TrimPrefix(strings.ToUpper(s), "RLIMIT_")
	for _, r := range rlimits {
		if n == r {
			return n, nil
		}
	}
	return "", fmt.Errorf("unknown rlimit %q: want one of %s", s, strings.Join(rlimits, ", "))
}

// parseRlimitValue reads a number or "unlimited".
func parseRlimitValue(name, s string) (uint64, error) {
	if s == "unlimited" || s == "infinity" {
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad rlimit %s %q: want a number or unlimited", name, s)
	}
	return v, nil
}

// parseMode reads permission bits in octal: "0755", "755", "0o755".
func parseMode(s string) (fs.FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("bad mode %q: want octal permission bits like 0755", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	symbolRE = regexp.MustCompile(`^[A-Z0-9_]+$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE   = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*\$?$`)
	ownerRE  = regexp.MustCompile(`^([a-z_][a-z0-9_.-]*|[0-9]+)(:([a-z_][a-z0-9_.-]*|[0-9]+))?$`)
)

// parseSymbol reads a Kconfig symbol, with or without CONFIG_.
func parseSymbol(s string) (string, error) {
	n := strings.TrimPrefix(s, "CONFIG_")
	if !symbolRE.MatchString(n) {
		return "", fmt.Errorf("bad kernel symbol %q: want a Kconfig name like EPOLL or CONFIG_EPOLL", s)
	}
	return n, nil
}

// errShell explains why a cmd string is refused.
var errShell = errors.New("not run by a shell: write it as a YAML list, or run the shell yourself: [sh, -c, \"...\"]")

// SplitCommand splits s into words the way a POSIX shell would, with
// single quotes, double quotes and backslashes, but runs nothing: it
// refuses shell syntax that would need a shell ($, `, |, &, ;, <, >,
// unquoted globs, parentheses).
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
						i++
						if s[i] != '\n' {
							cur.WriteByte(s[i])
						}
						continue
					}
				case '$', '`':
					return nil, fmt.Errorf("%w (found %q in %q)", errShell, s[i], s)
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing \\ in %q", s)
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				inWord = true
			}
		case strings.IndexByte("$`|&;<>()*?[", c) >= 0:
			return nil, fmt.Errorf("%w (found %q in %q)", errShell, c, s)
		case c == '#' && !inWord:
			return nil, fmt.Errorf("%w (found a # comment in %q)", errShell, s)
		case c == '~' && !inWord:
			return nil, fmt.Errorf("%w (found ~ in %q; write the full path)", errShell, s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
