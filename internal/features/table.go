package features

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Kind is the kind of fact a row matches.
type Kind string

const (
	Syscall    Kind = "syscall" // Key: syscall name as in syscall_64.tbl
	Socket     Kind = "socket"  // Key: "AF_X", "AF_X/SOCK_Y" or "AF_X/*/PROTO" ("*" matches any type)
	Filesystem Kind = "fs"      // Key: filesystem type as in /proc/filesystems
	Path       Kind = "path"    // Key: a /proc or /sys path; matches itself and everything under it
	Ioctl      Kind = "ioctl"   // Key: "0x5421" (exact request) or "type=0x54[,nr=0x00-0x7f]"
	Prctl      Kind = "prctl"   // Key: "prctl PR_X" or "arch_prctl ARCH_X"
)

// Row is one piece of feature knowledge: a fact and the Kconfig symbol that
// provides it on Linux 6.12 x86_64. A fact may have several rows, one per
// symbol it needs directly.
type Row struct {
	Kind Kind
	Key  string
	// Symbol is the Kconfig symbol without CONFIG_. It is "" when the fact
	// needs no option (always built on x86_64); Source says why.
	Symbol string
	// Missing is true when no Linux 6.12 x86_64 kernel provides the fact.
	Missing bool
	// Source is where the knowledge comes from in the kernel source:
	// Makefile line, #ifdef, Kconfig entry, syscall table.
	Source string
}

// Table returns every row, syscalls first.
func Table() []Row {
	var rows []Row
	for _, t := range [][]Row{syscallRows, socketRows, fsRows, pathRows, ioctlRows, prctlRows} {
		rows = append(rows, t...)
	}
	return rows
}

var (
	indexOnce sync.Once
	indexMap  map[Kind]map[string][]*Row
)

// index returns the table by kind and key.
func index() map[Kind]map[string][]*Row {
	indexOnce.Do(func() {
		indexMap = map[Kind]map[string][]*Row{}
		rows := Table()
		for i := range rows {
			r := &rows[i]
			if indexMap[r.Kind] == nil {
				indexMap[r.Kind] = map[string][]*Row{}
			}
			indexMap[r.Kind][r.Key] = append(indexMap[r.Kind][r.Key], r)
		}
	})
	return indexMap
}

// Protocol names by family, for socket keys and facts.
var (
	inetProtocols = map[int]string{
		0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 6: "IPPROTO_TCP", 17: "IPPROTO_UDP",
		33: "IPPROTO_DCCP", 58: "IPPROTO_ICMPV6", 132: "IPPROTO_SCTP",
		136: "IPPROTO_UDPLITE", 255: "IPPROTO_RAW", 262: "IPPROTO_MPTCP",
	}
	netlinkProtocols = map[int]string{
		0: "NETLINK_ROUTE", 2: "NETLINK_USERSOCK", 4: "NETLINK_SOCK_DIAG",
		5: "NETLINK_NFLOG", 6: "NETLINK_XFRM", 7: "NETLINK_SELINUX",
		9: "NETLINK_AUDIT", 10: "NETLINK_FIB_LOOKUP", 11: "NETLINK_CONNECTOR",
		12: "NETLINK_NETFILTER", 15: "NETLINK_KOBJECT_UEVENT",
		16: "NETLINK_GENERIC", 21: "NETLINK_CRYPTO",
	}
)

// protocolName names protocol p of family domain, or returns its number.
func protocolName(domain string, p int) string {
	var names map[int]string
	switch domain {
	case "AF_INET", "AF_INET6":
		names = inetProtocols
	case "AF_NETLINK":
		names = netlinkProtocols
	}
	if n, ok := names[p]; ok {
		return n
	}
	return strconv.Itoa(p)
}

func socketFact(s manifest.Socket) string {
	f := fmt.Sprintf("socket(%s, %s, %s) x%d", s.Domain, s.Type, protocolName(s.Domain, s.Protocol), s.Count)
	if s.Result != "" && s.Result != "ok" {
		f += " (" + s.Result + ")"
	}
	return f
}

// matchSocket returns the rows for the family, family/type and
// family/*/protocol of s. AF_LOCAL is AF_UNIX.
func matchSocket(rows map[string][]*Row, s manifest.Socket) []*Row {
	dom := s.Domain
	if dom == "AF_LOCAL" {
		dom = "AF_UNIX"
	}
	var out []*Row
	out = append(out, rows[dom]...)
	out = append(out, rows[dom+"/"+s.Type]...)
	out = append(out, rows[dom+"/*/"+protocolName(dom, s.Protocol)]...)
	return out
}

var pidRe = regexp.MustCompile(`^/proc/(self|thread-self|[0-9]+)(/task/[0-9]+)?(/|$)`)

// normalizeProcPath writes /proc/PID/..., /proc/self/..., and their task
// directories as /proc/[pid]/..., and /proc/[pid]/net as /proc/net.
func normalizeProcPath(p string) string {
	p = pidRe.ReplaceAllString(p, "/proc/[pid]$3")
	if p == "/proc/[pid]/net" || strings.HasPrefix(p, "/proc/[pid]/net/") {
		p = "/proc/net" + strings.TrimPrefix(p, "/proc/[pid]/net")
	}
	return strings.TrimSuffix(p, "/")
}

// matchPath returns the rows of every key that is p or a parent of p.
func matchPath(rows map[string][]*Row, p string) []*Row {
	p = normalizeProcPath(p)
	var out []*Row
	for k := p; k != ""; {
		out = append(out, rows[k]...)
		i := strings.LastIndexByte(k, '/')
		if i <= 0 {
			break
		}
		k = k[:i]
	}
	return out
}

func ioctlType(req uint64) uint64 { return (req >> 8) & 0xff }

func ioctlFact(io manifest.Ioctl) string {
	name := io.Name
	if name == "" {
		name = fmt.Sprintf("0x%x", io.Request)
	}
	return fmt.Sprintf("ioctl %s x%d", name, io.Count)
}

// ioctlKey is a parsed ioctl row key.
type ioctlKey struct {
	exact bool
	req   uint64 // exact request
	typ   uint64
	nrLo  uint64
	nrHi  uint64
}

func parseIoctlKey(k string) (ioctlKey, error) {
	if strings.HasPrefix(k, "0x") {
		v, err := strconv.ParseUint(k, 0, 64)
		return ioctlKey{exact: true, req: v}, err
	}
	key := ioctlKey{nrHi: 0xff}
	for _, part := range strings.Split(k, ",") {
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return key, fmt.Errorf("ioctl key %q: want 0xNNNN or type=0xNN[,nr=0xLO-0xHI]", k)
		}
		var err error
		switch name {
		case "type":
			key.typ, err = strconv.ParseUint(val, 0, 8)
		case "nr":
			lo, hi, ok := strings.Cut(val, "-")
			if !ok {
				return key, fmt.Errorf("ioctl key %q: nr wants a range LO-HI", k)
			}
			if key.nrLo, err = strconv.ParseUint(lo, 0, 8); err == nil {
				key.nrHi, err = strconv.ParseUint(hi, 0, 8)
			}
		default:
			return key, fmt.Errorf("ioctl key %q: unknown field %q", k, name)
		}
		if err != nil {
			return key, fmt.Errorf("ioctl key %q: %w", k, err)
		}
	}
	return key, nil
}

// matchIoctl returns the rows whose key is req exactly or, when there are
// none, the rows whose type (and nr range) covers req.
func matchIoctl(rows map[string][]*Row, req uint64) []*Row {
	var exact, family []*Row
	for k, rs := range rows {
		key, err := parseIoctlKey(k)
		if err != nil {
			continue // TestTableKeys reports it
		}
		nr := req & 0xff
		switch {
		case key.exact && key.req == req:
			exact = append(exact, rs...)
		case !key.exact && key.typ == ioctlType(req) && nr >= key.nrLo && nr <= key.nrHi:
			family = append(family, rs...)
		}
	}
	if len(exact) > 0 {
		return exact
	}
	return family
}
