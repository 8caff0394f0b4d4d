package guestinit

import (
	"unsafe"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"golang.org/x/sys/unix"
)

// rtentry is struct rtentry of <linux/route.h> (amd64 layout), for
// SIOCADDRT: a route with ioctls, no netlink needed.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uint64
	pad4    uintptr
	metric  int16
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
}

// setupNet brings up lo, and eth0 as n says. Without IPv4 in the kernel it
// does nothing, unless n asks for eth0.
func setupNet(n *Net) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if n == nil {
			return nil
		}
		return lite.Errorf("configuring eth0: opening an IPv4 socket: %w (the kernel needs CONFIG_INET)", err)
	}
	defer unix.Close(fd)
	if err := ifUp(fd, "lo", IPv4{127, 0, 0, 1}, 8); err != nil {
		warnf("%v", err)
	}
	if n == nil {
		return nil
	}
	if err := ifUp(fd, "eth0", n.Addr, n.Bits); err != nil {
		return err
	}
	if n.HasGateway {
		if err := addDefaultRoute(fd, n.Gateway); err != nil {
			return err
		}
	}
	return nil
}

func ifUp(fd int, name string, addr IPv4, bits int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return lite.Errorf("configuring %s: %w", name, err)
	}
	if err := ifr.SetInet4Addr(addr[:]); err != nil {
		return lite.Errorf("configuring %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return lite.Errorf("configuring %s: setting address %s: %w", name, addr, err)
	}
	mask := netmask(bits)
	ifr, _ = unix.NewIfreq(name)
	ifr.SetInet4Addr(mask[:])
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return lite.Errorf("configuring %s: setting netmask /%d: %w", name, bits, err)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return lite.Errorf("configuring %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return lite.Errorf("configuring %s: bringing it up: %w", name, err)
	}
	return nil
}

// netmask returns the IPv4 netmask of a prefix length.
func netmask(bits int) [4]byte {
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

func addDefaultRoute(fd int, gw IPv4) error {
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY}
	rt.dst.Family = unix.AF_INET
	rt.genmask.Family = unix.AF_INET
	rt.gateway.Family = unix.AF_INET
	rt.gateway.Addr = gw
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt))); errno != 0 {
		return lite.Errorf("adding the default route via %s: %w", gw, errno)
	}
	return nil
}
