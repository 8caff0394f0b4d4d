package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample() *Manifest {
	return &Manifest{
		Program:   Program{Path: "redis-server", Resolved: "/usr/bin/redis-server", Args: []string{"--port", "6379"}, Kind: "dynamic"},
		Exit:      &Exit{Code: 0, Stopped: true},
		Workload:  &Workload{Command: "redis-benchmark", ExitCode: 0, Seconds: 1.5},
		Processes: 1, Threads: 4,
		Syscalls: []Syscall{{Name: "futex", Nr: 202, Count: 9}, {Name: "epoll_wait", Nr: 232, Count: 120, Errors: map[string]int{"EINTR": 1}}},
		Sockets:  []Socket{{Domain: "AF_INET6", Type: "SOCK_STREAM", Count: 1, Result: "ok"}, {Domain: "AF_INET", Type: "SOCK_STREAM", Count: 1, Result: "ok"}},
		Listen:   []Listen{{Family: "AF_INET", Type: "SOCK_STREAM", Address: "0.0.0.0", Port: 6379, Listening: true}},
		Paths: []Path{
			{Path: "/etc/localtime", Ops: []string{"stat", "open", "open"}, Result: "found", Type: "file"},
			{Path: "/etc/hosts", Ops: []string{"open"}, Result: "ENOENT"},
		},
		Execs:       []Exec{{Path: "/usr/bin/redis-server", Argv: []string{"redis-server"}, Result: "found"}, {Path: "/usr/bin/redis-server", Argv: []string{"redis-server"}, Result: "found"}},
		Libraries:   []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		Filesystems: []Filesystem{{Type: "proc", Via: []string{"path", "statfs", "path"}}, {Type: "ext4", Via: []string{"path"}}},
		Ioctls:      []Ioctl{{Request: 0x5413, Name: "TIOCGWINSZ", Count: 1}, {Request: 0x5401, Name: "TCGETS", Count: 2}},
		Prctls:      []Prctl{{Syscall: "prctl", Option: "PR_SET_NAME", Count: 3}, {Syscall: "arch_prctl", Option: "ARCH_SET_FS", Count: 1}},
		ProcSys:     []string{"/sys/kernel/mm/transparent_hugepage/enabled", "/proc/sys/net/core/somaxconn"},
		Closure:     []File{{Path: "/usr/bin/redis-server", Kind: "program", Size: 10}, {Path: "/lib64", Kind: "interpreter", Link: "usr/lib64"}},
		Files:       []File{{Path: "/etc/localtime", Kind: "data"}},
		Excluded:    []Excluded{{Path: "/etc/shadow", Reason: "password hashes"}},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	var buf bytes.Buffer
	if err := m.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Normalized: sorted and deduplicated.
	if got.Syscalls[0].Name != "epoll_wait" || len(got.Libraries) != 2 || len(got.Execs) != 1 {
		t.Errorf("not normalized: syscalls %v, libraries %v, execs %v", got.Syscalls, got.Libraries, got.Execs)
	}
	if diff := cmp.Diff([]string{"open", "stat"}, got.Paths[1].Ops); diff != "" {
		t.Errorf("ops of %s (-want +got):\n%s", got.Paths[1].Path, diff)
	}
	// Deterministic: encoding again gives the same bytes.
	var again bytes.Buffer
	if err := got.Encode(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("encoding a decoded manifest gave different bytes")
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Manifest{}).Encode(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"syscalls": []`, `"closure": []`, `"excluded": []`, `"schema": 1`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("encoding of an empty manifest lacks %s:\n%s", key, buf.String())
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"schema", `{"schema": 2}`, "schema 2 is not supported"},
		{"unknown field", `{"schema": 1, "sycalls": []}`, "unknown field"},
		{"not json", `redis`, "decoding manifest"},
	} {
		_, err := Decode(strings.NewReader(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.json")
	if err := sample().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Program.Resolved != "/usr/bin/redis-server" {
		t.Errorf("read back program %q", m.Program.Resolved)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the directory, want only the manifest", len(ents))
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}
