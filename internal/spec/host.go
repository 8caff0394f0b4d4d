package spec

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TracePorts chooses where each of sp's guest ports listens while the
// program is traced on the host, for Command and Expand: the port itself
// when it is free on the host, else, when cmd or env names it with a
// placeholder ({port}, {port:GUEST}), a free port the kernel picks. A busy
// port that cmd does not name is an error: the program would fail to bind.
func (sp *Spec) TracePorts() (map[int]int, error) {
	m := map[int]int{}
	for _, n := range sp.portNumbers() {
		var protos []string
		for _, p := range sp.Ports {
			if p.Port == n {
				protos = append(protos, p.Proto)
			}
		}
		if portFree(n, protos) {
			m[n] = n
			continue
		}
		movable := false
		for _, a := range sp.Cmd {
			movable = movable || sp.usesPort(a, n)
		}
		for _, v := range sp.Env {
			movable = movable || sp.usesPort(v, n)
		}
		if !movable {
			return nil, sp.errorf("ports", "port %d is in use on this host, and cmd names it literally: stop what listens on it, or write {port} (or {port:%d}) in cmd so bespoke can trace on another port", n, n)
		}
		free, err := freePort(protos)
		if err != nil {
			return nil, fmt.Errorf("finding a free port for guest port %d: %w", n, err)
		}
		m[n] = free
	}
	return m, nil
}

// portFree reports whether port can be bound on all addresses for each protocol.
func portFree(port int, protos []string) bool {
	addr := ":" + strconv.Itoa(port)
	for _, proto := range protos {
		if proto == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			c.Close()
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// freePort returns a port the kernel picks that is free for every protocol.
func freePort(protos []string) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if portFree(port, protos) {
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
}

// Account is a user resolved for an image: the /etc/passwd and /etc/group
// entries the image gets.
type Account struct {
	Name  string
	UID   int
	GID   int
	Group string // the primary group's name
	Home  string
	Shell string
}

// PasswdLine returns the account's /etc/passwd line, without newline.
func (a Account) PasswdLine() string {
	return fmt.Sprintf("%s:x:%d:%d::%s:%s", a.Name, a.UID, a.GID, a.Home, a.Shell)
}

// GroupLine returns the primary group's /etc/group line, without newline.
func (a Account) GroupLine() string {
	return fmt.Sprintf("%s:x:%d:", a.Group, a.GID)
}

// Root is the account used when a spec names no user.
var Root = Account{Name: "root", UID: 0, GID: 0, Group: "root", Home: "/root", Shell: "/bin/sh"}

// Account resolves sp's user against the host's etc directory (normally
// "/etc"): a uid or gid the spec gives wins; what it leaves out comes from
// etc/passwd and etc/group. A user missing on the host needs uid (gid then
// defaults to uid).
func (sp *Spec) Account(etc string) (Account, error) {
	u := sp.User
	if u == nil || u.Name == "root" && u.UID == nil {
		return Root, nil
	}
	pw, _ := readDB(filepath.Join(etc, "passwd"))
	gr, _ := readDB(filepath.Join(etc, "group"))
	a := Account{Name: u.Name, Home: u.Home, Shell: "/usr/sbin/nologin"}
	host, onHost := pw[u.Name]
	switch {
	case u.UID != nil:
		a.UID = *u.UID
	case onHost:
		a.UID, _ = strconv.Atoi(host[2])
	default:
		return Account{}, sp.errorf("user", "user %q does not exist on this host: install the package that creates it, or give uid and gid in the spec (user: {name: %s, uid: 999, gid: 999})", u.Name, u.Name)
	}
	switch {
	case u.GID != nil:
		a.GID = *u.GID
	case onHost && u.UID == nil:
		a.GID, _ = strconv.Atoi(host[3])
	case onHost && host[2] == strconv.Itoa(a.UID):
		a.GID, _ = strconv.Atoi(host[3])
	default:
		a.GID = a.UID
	}
	if a.Home == "" {
		if onHost && host[5] != "" {
			a.Home = host[5]
		} else {
			a.Home = "/"
		}
	}
	if onHost && host[6] != "" {
		a.Shell = host[6]
	}
	a.Group = a.Name
	for name, g := range gr {
		if g[2] == strconv.Itoa(a.GID) {
			a.Group = name
			break
		}
	}
	return a, nil
}

// LookupOwner resolves a Dir's owner ("USER", "USER:GROUP", "UID:GID" or
// "" for the program's account def) against the host's etc directory.
func LookupOwner(owner, etc string, def Account) (uid, gid int, err error) {
	if owner == "" {
		return def.UID, def.GID, nil
	}
	pw, _ := readDB(filepath.Join(etc, "passwd"))
	gr, _ := readDB(filepath.Join(etc, "group"))
	us, gs, hasGroup := strings.Cut(owner, ":")
	if us == def.Name {
		uid, gid = def.UID, def.GID
	} else if n, err := strconv.Atoi(us); err == nil {
		uid, gid = n, n
	} else if e, ok := pw[us]; ok {
		uid, _ = strconv.Atoi(e[2])
		gid, _ = strconv.Atoi(e[3])
	} else {
		return 0, 0, fmt.Errorf("owner %q: no user %s on this host or in the spec: give UID:GID", owner, us)
	}
	if hasGroup {
		if n, err := strconv.Atoi(gs); err == nil {
			gid = n
		} else if gs == def.Group {
			gid = def.GID
		} else if e, ok := gr[gs]; ok {
			gid, _ = strconv.Atoi(e[2])
		} else {
			return 0, 0, fmt.Errorf("owner %q: no group %s on this host: give UID:GID", owner, gs)
		}
	}
	return uid, gid, nil
}

// readDB reads a colon-separated file (passwd, group) by first field.
func readDB(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, ":")
		for len(fs) < 7 {
			fs = append(fs, "")
		}
		if _, dup := m[fs[0]]; !dup {
			m[fs[0]] = fs
		}
	}
	return m, sc.Err()
}

// CheckHost checks what sp needs from the host at build time: the user
// (or its uid/gid), the owners of dirs, the include paths and the kernel
// source exist. etc is the host's etc directory, normally "/etc".
func (sp *Spec) CheckHost(etc string) error {
	var errs []error
	acct, err := sp.Account(etc)
	if err != nil {
		errs = append(errs, err)
	}
	for i, d := range sp.Dirs {
		if _, _, err := LookupOwner(d.Owner, etc, acct); err != nil {
			errs = append(errs, sp.errorf(fmt.Sprintf("dirs.%d", i), "dirs %s: %v", d.Path, err))
		}
	}
	for i, p := range sp.Include {
		if _, err := os.Lstat(p); err != nil {
			errs = append(errs, sp.errorf(fmt.Sprintf("include.%d", i), "include %s: %v", p, errors.Unwrap(err)))
		}
	}
	if sp.Kernel.Source != "" {
		if _, err := os.Stat(sp.Kernel.Source); err != nil {
			errs = append(errs, sp.errorf("kernel.source", "kernel source %s: %v: install linux-source or fix the path", sp.Kernel.Source, errors.Unwrap(err)))
		}
	}
	return joinErrs(errs)
}
