package trace

import (
	"strings"
	"testing"
)

func TestParseReady(t *testing.T) {
	tests := []struct {
		in      string
		kind    string
		port    string
		wantErr string
	}{
		{"tcp:6379", "tcp", "6379", ""},
		{"tcp:{port}", "tcp", "{port}", ""},
		{"log:Ready to accept", "log", "", ""},
		{"tcp:0", "", "", "port must be"},
		{"tcp:http", "", "", "port must be"},
		{"log:(", "", "", "missing closing"},
		{"udp:53", "", "", "unknown kind"},
		{"6379", "", "", "want tcp:PORT"},
	}
	for _, tt := range tests {
		r, err := ParseReady(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseReady(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseReady(%q): %v", tt.in, err)
			continue
		}
		if r.Kind != tt.kind || r.Port != tt.port || r.String() != tt.in {
			t.Errorf("ParseReady(%q) = %+v (%s), want kind %q port %q", tt.in, r, r, tt.kind, tt.port)
		}
	}
}

func TestMatcher(t *testing.T) {
	hits := 0
	m := &matcher{re: mustReady(t, "log:Ready to accept").Regex, found: func() { hits++ }}
	m.Write([]byte("starting\nReady to "))
	if hits != 0 {
		t.Fatalf("matched before the line was whole")
	}
	m.Write([]byte("accept connections\nmore\n"))
	m.Write([]byte("Ready to accept again\n"))
	if hits != 1 {
		t.Errorf("found called %d times, want 1", hits)
	}
}

func mustReady(t *testing.T, s string) Ready {
	t.Helper()
	r, err := ParseReady(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFillPlaceholders(t *testing.T) {
	o := Options{Args: []string{"--port", "{port}", "--bind", "{host}"}, Ready: mustReady(t, "tcp:{port}"), Workload: "bench -h {host} -p {port}"}
	if err := fillPlaceholders(&o); err != nil {
		t.Fatal(err)
	}
	port := o.Args[1]
	if port == "{port}" || port == "" || o.Ready.Port != port || o.Workload != "bench -h 127.0.0.1 -p "+port || o.Args[3] != "127.0.0.1" {
		t.Errorf("got args %q ready %s workload %q: want one free port everywhere and 127.0.0.1 for {host}", o.Args, o.Ready, o.Workload)
	}
}
