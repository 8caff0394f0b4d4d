package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

func runTraceCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = Main(ctx, append([]string{"trace"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// children lists the processes whose parent is this test process.
func children(t *testing.T) []string {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	var kids []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == self {
			kids = append(kids, s[:i+1])
		}
	}
	return kids
}

func TestTraceBadInput(t *testing.T) {
	testenv.Full(t)
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noexec := write("noexec", "\x7fELF....", 0o644)
	text := write("text", "just some text\n", 0o755)
	noInterp := write("script", "#!/nonexistent/interp\necho hi\n", 0o755)
	tests := []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"missing program", []string{"--", "/nonexistent/prog"}, "no such file"},
		{"missing in PATH", []string{"--", "no-such-program-bespoke"}, "not found in $PATH"},
		{"directory", []string{"--", dir}, "directory"},
		{"no exec permission", []string{"--", noexec}, "not executable"},
		{"not ELF", []string{"--", text}, "not an ELF"},
		{"missing interpreter", []string{"--", noInterp}, "interpreter"},
		{"never ready", []string{"--ready", "tcp:{port}", "--timeout", "1s", "--workload", "true", "--", "sleep", "30"}, "did not become ready (tcp:"},
		{"exits before ready", []string{"--ready", "tcp:{port}", "--workload", "true", "--", "true"}, "exited before it became ready"},
		{"no program", nil, "no program"},
		{"workload without ready", []string{"--workload", "true", "--", "true"}, "needs --ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.json")
			code, _, stderr := runTraceCLI(t, append([]string{"-o", out}, tt.args...)...)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stderr:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "bespoke trace: ") || !strings.Contains(last, tt.want) {
				t.Errorf("error line %q, want one containing %q", last, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a manifest was written for a failed trace")
			}
			if kids := children(t); len(kids) > 0 {
				t.Errorf("processes left behind: %q", kids)
			}
		})
	}
}

func TestTraceCrash(t *testing.T) {
	gcc := testenv.Command(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "crash.c")
	os.WriteFile(src, []byte("#include <signal.h>\n#include <stdio.h>\nint main(void){ puts(\"about to crash\"); fflush(stdout); raise(SIGSEGV); return 0; }\n"), 0o644)
	bin := filepath.Join(dir, "crash")
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "m.json")
	code, stdout, stderr := runTraceCLI(t, "-o", out, "--", bin)
	if code != 0 {
		t.Fatalf("exit code %d, want 0 (a crash is recorded); stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "about to crash") {
		t.Errorf("program output %q not passed through", stdout)
	}
	m, err := manifest.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exit == nil || m.Exit.Signal != "SIGSEGV" || m.Exit.Stopped {
		t.Errorf("Exit = %+v, want Signal SIGSEGV", m.Exit)
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("processes left behind: %q", kids)
	}
}

func TestTraceRedis(t *testing.T) {
	server := testenv.Command(t, "redis-server")
	testenv.Command(t, "redis-benchmark")
	out := filepath.Join(t.TempDir(), "redis.json")
	code, _, stderr := runTraceCLI(t, "-o", out, "--ready", "tcp:{port}",
		"--workload", "redis-benchmark -p {port} -q -n 2000 -t set,get",
		"--", "redis-server", "--port", "{port}", "--save", "", "--appendonly", "no")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	m, err := manifest.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Workload == nil || m.Workload.ExitCode != 0 || !strings.Contains(m.Workload.Output, "GET") {
		t.Errorf("Workload = %+v, want exit 0 with GET results", m.Workload)
	}
	if m.Exit == nil || !m.Exit.Stopped {
		t.Errorf("Exit = %+v, want Stopped", m.Exit)
	}
	if m.Syscall("epoll_wait") == nil && m.Syscall("epoll_pwait") == nil {
		t.Errorf("no epoll_wait or epoll_pwait in the syscalls")
	}
	if s := m.Syscall("futex"); s == nil || s.Count == 0 {
		t.Errorf("no futex in the syscalls")
	}
	if s := m.Syscall("accept4"); s == nil && m.Syscall("accept") == nil {
		t.Errorf("no accept: the workload's connections were not seen")
	}
	hasSock := slices.ContainsFunc(m.Sockets, func(s manifest.Socket) bool {
		return s.Domain == "AF_INET" && s.Type == "SOCK_STREAM" && s.Result == "ok"
	})
	if !hasSock {
		t.Errorf("no AF_INET SOCK_STREAM socket in %+v", m.Sockets)
	}
	// The port bespoke picked is in the program's args.
	port, _ := strconv.Atoi(m.Program.Args[1])
	listening := slices.ContainsFunc(m.Listen, func(l manifest.Listen) bool {
		return l.Port == port && l.Listening && l.Type == "SOCK_STREAM"
	})
	if port == 0 || !listening {
		t.Errorf("port %d not listening in %+v", port, m.Listen)
	}

	// Every library ldd lists was mapped and is in the closure.
	ldd, err := exec.Command("ldd", server).Output()
	if err != nil {
		t.Fatalf("ldd: %v", err)
	}
	closure := map[string]bool{}
	for _, f := range m.Closure {
		closure[f.Path] = true
		if real, err := filepath.EvalSymlinks(f.Path); err == nil {
			closure[real] = true
		}
	}
	libs := map[string]bool{}
	for _, l := range m.Libraries {
		libs[l] = true
	}
	n := 0
	for _, line := range strings.Split(string(ldd), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "=>" {
			continue
		}
		real, err := filepath.EvalSymlinks(f[2])
		if err != nil {
			t.Errorf("ldd lists %s: %v", f[2], err)
			continue
		}
		n++
		if !libs[real] {
			t.Errorf("library %s (%s) from ldd was not seen mapped; libraries: %q", f[0], real, m.Libraries)
		}
		if !closure[real] {
			t.Errorf("library %s (%s) from ldd is not in the closure", f[0], real)
		}
		if strings.HasPrefix(f[0], "libc.so") && !libs[real] {
			t.Errorf("libc not mapped")
		}
	}
	if n < 3 {
		t.Errorf("ldd listed %d libraries, want at least 3 (is redis-server dynamic?)", n)
	}
}
