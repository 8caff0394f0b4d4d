package spec

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	one := map[int]int{6379: 41000}
	two := map[int]int{80: 8080, 443: 8443}
	for _, tc := range []struct {
		name    string
		s       string
		vars    Vars
		want    string
		wantErr string
	}{
		{name: "host and port", s: "redis-benchmark -h {host} -p {port} -q", vars: Vars{Host: "127.0.0.1", Ports: one}, want: "redis-benchmark -h 127.0.0.1 -p 41000 -q"},
		{name: "named port", s: "curl http://{host}:{port:443}/ {port:80}", vars: Vars{Host: "h", Ports: two}, want: "curl http://h:8443/ 8080"},
		{name: "default port among several", s: "{port}", vars: Vars{Ports: two, Port: 443}, want: "8443"},
		{name: "ambiguous port", s: "{port}", vars: Vars{Ports: two}, wantErr: "{port} is ambiguous with ports [80, 443]: name one, e.g. {port:80}"},
		{name: "no ports", s: "-p {port}", vars: Vars{}, wantErr: "{port}: the spec has no ports"},
		{name: "unknown guest port", s: "{port:81}", vars: Vars{Ports: two}, wantErr: "{port:81}: 81 is not one of the spec's ports [80, 443]"},
		{name: "bad port arg", s: "{port:http}", vars: Vars{Ports: two}, wantErr: "bad placeholder {port:http}"},
		{name: "unknown placeholder", s: "x {hots}", vars: Vars{Host: "h"}, wantErr: "unknown placeholder {hots}"},
		{name: "unknown with arg", s: "{env:HOME}", vars: Vars{}, wantErr: "unknown placeholder {env:HOME}"},
		{name: "host unknown", s: "{host}", vars: Vars{}, wantErr: "{host} is not known here"},
		{name: "host with arg", s: "{host:1}", vars: Vars{Host: "h"}, wantErr: "unknown placeholder {host:1}"},
		{name: "state", s: "initdb -D {state}/pgdata", vars: Vars{State: "/var/cache/s"}, want: "initdb -D /var/cache/s/pgdata"},
		{name: "state unknown", s: "{state}", vars: Vars{}, wantErr: "{state} is not known here"},
		{name: "literal", s: "echo {{port}} {{host}} {{port:80}}", vars: Vars{}, want: "echo {port} {host} {port:80}"},
		{name: "brace before placeholder", s: "{{port}", vars: Vars{Ports: one}, want: "{41000"},
		{name: "brace after placeholder", s: "{port}}", vars: Vars{Ports: one}, want: "41000}"},
		{name: "shell variable", s: "echo ${port} ${HOME} $((1+2))", vars: Vars{}, want: "echo ${port} ${HOME} $((1+2))"},
		{name: "other braces", s: "awk '{print $1}' {a,b} {1..3} {Port} f() { x; }", vars: Vars{}, want: "awk '{print $1}' {a,b} {1..3} {Port} f() { x; }"},
		{name: "nothing", s: "plain", vars: Vars{}, want: "plain"},
		{name: "adjacent", s: "{host}:{port}", vars: Vars{Host: "h", Ports: one}, want: "h:41000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.vars.Expand(tc.s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Expand(%q): got %q, %v; want error containing %q", tc.s, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand(%q): %v", tc.s, err)
			}
			if got != tc.want {
				t.Errorf("Expand(%q): got %q, want %q", tc.s, got, tc.want)
			}
		})
	}
}

func TestExpandFunc(t *testing.T) {
	got, err := Expand("-h {host} -p {port}", "127.0.0.1", map[int]int{6379: 6379})
	if err != nil || got != "-h 127.0.0.1 -p 6379" {
		t.Errorf("Expand: got %q, %v; want %q", got, err, "-h 127.0.0.1 -p 6379")
	}
	if _, err := Expand("{port}", "h", map[int]int{1: 1, 2: 2}); err == nil {
		t.Errorf("Expand({port}) with two ports succeeded, want an error")
	}
	// The Spec method knows the ready port.
	sp, err := Parse("x.yaml", []byte("cmd: [a]\nports: [80, 443]\nready: tcp:443\nworkload: curl {host}:{port}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err = sp.Expand(sp.Workload, "127.0.0.1", map[int]int{80: 10080, 443: 10443})
	if err != nil || got != "curl 127.0.0.1:10443" {
		t.Errorf("Spec.Expand: got %q, %v; want %q", got, err, "curl 127.0.0.1:10443")
	}
}

func TestCommand(t *testing.T) {
	sp, err := Parse("x.yaml", []byte(`
cmd: [postgres, -D, "{state}/data", -p, "{port}"]
env: {PGPORT: "{port}"}
ports: [5432]
setup: ["initdb -D {state}/data"]
`))
	if err != nil {
		t.Fatal(err)
	}
	argv, env, err := sp.Command(map[int]int{5432: 15432}, "/cache/state/postgres")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"postgres", "-D", "/cache/state/postgres/data", "-p", "15432"}, argv); diff != "" {
		t.Errorf("argv mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"PGPORT": "15432"}, env); diff != "" {
		t.Errorf("env mismatch (-want +got):\n%s", diff)
	}
}

func TestTracePorts(t *testing.T) {
	// Hold a port so that it is busy on the host.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	free, err := freePort([]string{"tcp"})
	if err != nil {
		t.Fatal(err)
	}
	b, f := strconv.Itoa(busy), strconv.Itoa(free)

	// cmd names the busy port with a placeholder: it moves.
	sp, err := Parse("x.yaml", []byte("cmd: [srv, --port, '{port:"+b+"}', --admin, '{port:"+f+"}']\nports: ["+b+", "+f+"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sp.TracePorts()
	if err != nil {
		t.Fatal(err)
	}
	if m[busy] == busy || m[busy] == 0 {
		t.Errorf("TracePorts: busy port %d mapped to %d, want another free port", busy, m[busy])
	}
	if m[free] != free {
		t.Errorf("TracePorts: free port %d mapped to %d, want itself", free, m[free])
	}

	// cmd names the busy port literally: it cannot move.
	sp, err = Parse("x.yaml", []byte("cmd: [srv, --port, '"+b+"']\nports: ["+b+"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := sp.TracePorts(); err == nil || !strings.Contains(err.Error(), "is in use on this host") {
		t.Errorf("TracePorts with a literal busy port: got %v, %v; want an 'in use' error", m, err)
	}
}

func TestReadyOnHost(t *testing.T) {
	for _, tc := range []struct {
		r    Ready
		want string
	}{
		{Ready{Kind: ReadyTCP, Port: 6379}, "tcp:41000"},
		{Ready{Kind: ReadyTCP, Port: 80}, "tcp:80"},
		{Ready{Kind: ReadyLog, Regex: "up"}, "log:up"},
		{Ready{}, ""},
	} {
		if got := tc.r.OnHost(map[int]int{6379: 41000}).String(); got != tc.want {
			t.Errorf("%+v.OnHost: got %q, want %q", tc.r, got, tc.want)
		}
	}
}
