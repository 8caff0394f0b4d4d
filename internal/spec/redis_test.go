package spec

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/testenv"
)

// TestRedisExampleOnHost runs examples/redis the way a trace does, on the
// host: Debian's redis-server with the spec's cmd on the ports TracePorts
// picks (with 6379 taken when it is free, so that the port must move), then
// the workload against it.
func TestRedisExampleOnHost(t *testing.T) {
	testenv.Command(t, "redis-server")
	testenv.Command(t, "redis-benchmark")
	sp, err := Load("../../examples/redis/bespoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := net.Listen("tcp", ":6379"); err == nil {
		defer l.Close() // make the guest port busy on the host
	}
	ports, err := sp.TracePorts()
	if err != nil {
		t.Fatal(err)
	}
	if ports[6379] == 6379 {
		t.Fatalf("TracePorts kept the busy port 6379")
	}
	argv, _, err := sp.Command(ports, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, argv[0], argv[1:]...)
	srv.Dir = t.TempDir()
	var out strings.Builder
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()

	ready := sp.Ready.OnHost(ports)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ready.Port))
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("redis not ready on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w, err := sp.Expand(sp.Workload, "127.0.0.1", ports)
	if err != nil {
		t.Fatal(err)
	}
	res, err := exec.CommandContext(ctx, "sh", "-c", w).CombinedOutput()
	if err != nil {
		t.Fatalf("workload %q: %v\n%s\nredis:\n%s", w, err, res, out.String())
	}
	for _, want := range []string{"SET: ", "GET: ", "requests per second"} {
		if !strings.Contains(string(res), want) {
			t.Errorf("workload output lacks %q:\n%s", want, res)
		}
	}
	t.Logf("workload %q:\n%s", w, res)
}
