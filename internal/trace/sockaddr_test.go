package trace

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeSockaddr(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Sockaddr
	}{
		{"inet", []byte{2, 0, 0x18, 0xeb, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, Sockaddr{"AF_INET", "127.0.0.1", 6379}},
		{"inet any", []byte{2, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Sockaddr{"AF_INET", "0.0.0.0", 80}},
		{"inet6 any", append([]byte{10, 0, 0x1f, 0x90, 0, 0, 0, 0}, make([]byte, 20)...), Sockaddr{"AF_INET6", "::", 8080}},
		{"inet6 loopback", append(append([]byte{10, 0, 0x1f, 0x90, 0, 0, 0, 0}, append(make([]byte, 15), 1)...), 0, 0, 0, 0), Sockaddr{"AF_INET6", "::1", 8080}},
		{"unix path", append([]byte{1, 0}, "/run/x.sock\x00\x00\x00"...), Sockaddr{"AF_UNIX", "/run/x.sock", 0}},
		{"unix abstract", append([]byte{1, 0, 0}, "abstract"...), Sockaddr{"AF_UNIX", "@abstract", 0}},
		{"unix unnamed", []byte{1, 0}, Sockaddr{"AF_UNIX", "", 0}},
		{"netlink", []byte{16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Sockaddr{"AF_NETLINK", "", 0}},
	}
	for _, tt := range tests {
		got, err := DecodeSockaddr(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
	for _, bad := range [][]byte{{2}, {2, 0, 0, 80}, {10, 0, 0, 80, 0, 0, 0, 0}} {
		if _, err := DecodeSockaddr(bad); err == nil {
			t.Errorf("DecodeSockaddr(%v): no error for a short sockaddr", bad)
		}
	}
}
