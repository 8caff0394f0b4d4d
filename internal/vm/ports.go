package vm

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// PortMap forwards a host port on 127.0.0.1 to a guest port.
type PortMap struct {
	Host  int    // 0: pick a free host port
	Guest int    //
	Proto string // "tcp" or "udp"
}

func (p PortMap) String() string {
	return fmt.Sprintf("127.0.0.1:%d -> guest %d/%s", p.Host, p.Guest, p.Proto)
}

// ParsePort parses a -p value: "HOST:GUEST", "GUEST" (a free host port),
// "0:GUEST" (the same), each optionally followed by "/tcp" or "/udp".
func ParsePort(s string) (PortMap, error) {
	bad := func(why string) (PortMap, error) {
		return PortMap{}, fmt.Errorf("bad port %q: %s (want HOST:GUEST, GUEST or HOST:GUEST/udp, e.g. 8080:80)", s, why)
	}
	p := PortMap{Proto: "tcp"}
	spec, proto, ok := strings.Cut(s, "/")
	if ok {
		if proto != "tcp" && proto != "udp" {
			return bad("protocol " + strconv.Quote(proto) + " is not tcp or udp")
		}
		p.Proto = proto
	}
	parts := strings.Split(spec, ":")
	if len(parts) > 2 {
		return bad("bespoke forwards from 127.0.0.1 only; give no address")
	}
	num := func(v string, min int) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= min && n <= 65535 && v == strconv.Itoa(n)
	}
	var good bool
	if p.Guest, good = num(parts[len(parts)-1], 1); !good {
		return bad("guest port must be a number in 1-65535")
	}
	if len(parts) == 2 {
		if p.Host, good = num(parts[0], 0); !good {
			return bad("host port must be a number in 0-65535")
		}
	}
	return p, nil
}

// mergePorts returns the forwards for one boot: the user's, then each of
// the image's ports the user did not name (on a free host port), then the
// ready port if still missing. It rejects two forwards of one host port or
// of one guest port.
func mergePorts(user []PortMap, img []Port, ready readiness) ([]PortMap, error) {
	var out []PortMap
	type key struct {
		port  int
		proto string
	}
	guests := map[key]bool{}
	hosts := map[key]bool{}
	add := func(p PortMap) error {
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		if guests[key{p.Guest, p.Proto}] {
			return fmt.Errorf("guest port %d/%s forwarded twice", p.Guest, p.Proto)
		}
		if p.Host != 0 && hosts[key{p.Host, p.Proto}] {
			return fmt.Errorf("host port %d/%s forwarded twice", p.Host, p.Proto)
		}
		guests[key{p.Guest, p.Proto}] = true
		hosts[key{p.Host, p.Proto}] = true
		out = append(out, p)
		return nil
	}
	for _, p := range user {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	for _, p := range img {
		proto := p.Proto
		if proto == "" {
			proto = "tcp"
		}
		if !guests[key{p.Guest, proto}] {
			add(PortMap{Guest: p.Guest, Proto: proto})
		}
	}
	if ready.tcpPort != 0 && !guests[key{ready.tcpPort, "tcp"}] {
		add(PortMap{Guest: ready.tcpPort, Proto: "tcp"})
	}
	return out, nil
}

// pickFreePorts replaces each host port 0 in ports with a port that is
// free on 127.0.0.1 now. (QEMU binds it a moment later; another program
// could take it in between, and QEMU then fails with a clear message.)
//
// A host port the user chose is checked the same way: one that another
// program holds is an error naming it, before QEMU starts (which would
// fail on it, or forward nothing).
func pickFreePorts(ports []PortMap) error {
	for i := range ports {
		if ports[i].Host != 0 {
			if err := checkHostPort(ports[i]); err != nil {
				return err
			}
			continue
		}
		var addr net.Addr
		if ports[i].Proto == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("finding a free udp port: %w", err)
			}
			addr = c.LocalAddr()
			c.Close()
		} else {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("finding a free tcp port: %w", err)
			}
			addr = l.Addr()
			l.Close()
		}
		_, port, _ := net.SplitHostPort(addr.String())
		ports[i].Host, _ = strconv.Atoi(port)
	}
	return nil
}

// checkHostPort is portFree; tests whose host listener stands in for
// QEMU's forward replace it.
var checkHostPort = portFree

// portFree checks that p's host port can be bound on 127.0.0.1 now.
func portFree(p PortMap) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Host))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("host port %d/%s is in use on 127.0.0.1 (%v): stop what holds it, or forward another host port (-p PORT:%d)",
			p.Host, p.Proto, errors.Unwrap(err), p.Guest)
	}
	return nil
}
