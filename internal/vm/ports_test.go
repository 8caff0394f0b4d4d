package vm

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestPickFreePortsHeld: a host port another program holds is an error
// naming it, not a forward reported and then missing.
func TestPickFreePortsHeld(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := l.Addr().(*net.TCPAddr).Port
	ports := []PortMap{{Host: held, Guest: 6379, Proto: "tcp"}}
	err = pickFreePorts(ports)
	if err == nil || !strings.Contains(err.Error(), "is in use on 127.0.0.1") || !strings.Contains(err.Error(), "-p PORT:6379") {
		t.Errorf("a held host port: %v, want an error naming it", err)
	}
	l.Close()
	if err := pickFreePorts(ports); err != nil {
		t.Errorf("the port once free: %v", err)
	}
	free := []PortMap{{Guest: 80, Proto: "tcp"}, {Guest: 53, Proto: "udp"}}
	if err := pickFreePorts(free); err != nil || free[0].Host == 0 || free[1].Host == 0 {
		t.Errorf("free ports: %v %+v", err, free)
	}
}

// TestOpenLogTwoRuns: two runs of one image write two console logs; a
// later run takes console.log again once it is free.
func TestOpenLogTwoRuns(t *testing.T) {
	dir := t.TempDir()
	f1, p1, err := openLog(Config{ImageDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2, p2, err := openLog(Config{ImageDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != filepath.Join(dir, "console.log") || p2 != filepath.Join(dir, "console.1.log") {
		t.Errorf("two runs at once: %s and %s, want console.log and console.1.log", p1, p2)
	}
	f1.WriteString("first run\n")
	f1.Close()
	f3, p3, err := openLog(Config{ImageDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := f3.Stat(); p3 != p1 || st.Size() != 0 {
		t.Errorf("a third run: %s (%d bytes), want console.log, emptied", p3, st.Size())
	}
	f2.Close()
	f3.Close()
}
