package trace

import (
	"context"
	"net"
	"strconv"
	"strings"
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

// TestRunReadyPortTaken: a ready port that already accepts before the
// program starts is an error, not an instant "ready" against another
// program.
func TestRunReadyPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_, err = Run(context.Background(), Options{Program: "/bin/true", Ready: Ready{Kind: "tcp", Port: port}, Workload: "true"})
	if err == nil || !strings.Contains(err.Error(), "the ready port is taken: tcp:"+port) {
		t.Errorf("Run with the ready port taken: %v, want an error naming it", err)
	}
}
