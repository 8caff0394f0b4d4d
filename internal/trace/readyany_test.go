package trace

import (
	"net"
	"strconv"
	"testing"
)

func TestAnyTCPAccepts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	open := l.Addr().(*net.TCPAddr).Port
	closed := freeTCPPort(t)
	if r := AnyTCP(closed, open); r.Kind != "tcp-any" || !r.accepts() {
		t.Errorf("%s: not ready with %d listening", r, open)
	}
	if r := AnyTCP(closed); r.String() != "tcp:"+strconv.Itoa(closed) || r.accepts() {
		t.Errorf("%s: ready with nothing listening", r)
	}
	if (Ready{}).accepts() {
		t.Error("the zero Ready accepts")
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
