package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// Sockaddr is a decoded struct sockaddr.
type Sockaddr struct {
	Family string // "AF_INET", "AF_INET6", "AF_UNIX", ...
	// Address is the IP address, or the AF_UNIX path; an abstract AF_UNIX
	// name starts with "@".
	Address string
	Port    int
}

// DecodeSockaddr decodes the bytes of a struct sockaddr_in, sockaddr_in6
// or sockaddr_un as the kernel reads them (native byte order for the
// family, network order for port and address).
func DecodeSockaddr(b []byte) (Sockaddr, error) {
	if len(b) < 2 {
		return Sockaddr{}, fmt.Errorf("sockaddr of %d bytes is too short", len(b))
	}
	fam := uint64(binary.LittleEndian.Uint16(b))
	sa := Sockaddr{Family: DomainName(fam)}
	switch fam {
	case 2: // AF_INET
		if len(b) < 8 {
			return sa, fmt.Errorf("sockaddr_in of %d bytes is too short", len(b))
		}
		sa.Port = int(binary.BigEndian.Uint16(b[2:]))
		sa.Address = netip.AddrFrom4([4]byte(b[4:8])).String()
	case 10: // AF_INET6
		if len(b) < 24 {
			return sa, fmt.Errorf("sockaddr_in6 of %d bytes is too short", len(b))
		}
		sa.Port = int(binary.BigEndian.Uint16(b[2:]))
		sa.Address = netip.AddrFrom16([16]byte(b[8:24])).String()
	case 1: // AF_UNIX
		p := b[2:]
		switch {
		case len(p) == 0:
			sa.Address = "" // unnamed
		case p[0] == 0:
			sa.Address = "@" + strings.TrimRight(string(p[1:]), "\x00")
		default:
			if i := strings.IndexByte(string(p), 0); i >= 0 {
				p = p[:i]
			}
			sa.Address = string(p)
		}
	}
	return sa, nil
}
