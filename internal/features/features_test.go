package features

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

var symbolRe = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_]*$`)

func TestTableRows(t *testing.T) {
	type key struct {
		kind        Kind
		key, symbol string
	}
	seen := map[key]bool{}
	known := map[string]bool{}
	for _, names := range []map[int]string{inetProtocols, netlinkProtocols} {
		for _, n := range names {
			known[n] = true
		}
	}
	for _, r := range Table() {
		k := key{r.Kind, r.Key, r.Symbol}
		if seen[k] {
			t.Errorf("duplicate row %s %q -> %q", r.Kind, r.Key, r.Symbol)
		}
		seen[k] = true
		if strings.TrimSpace(r.Source) == "" {
			t.Errorf("row %s %q has no source", r.Kind, r.Key)
		}
		if r.Symbol != "" && !symbolRe.MatchString(r.Symbol) {
			t.Errorf("row %s %q: symbol %q is not a Kconfig name (no CONFIG_ prefix)", r.Kind, r.Key, r.Symbol)
		}
		if r.Missing && r.Symbol != "" {
			t.Errorf("row %s %q is Missing but names symbol %s", r.Kind, r.Key, r.Symbol)
		}
		switch r.Kind {
		case Syscall:
			if !regexp.MustCompile(`^[a-z_][a-z0-9_]*$`).MatchString(r.Key) {
				t.Errorf("syscall key %q is not a syscall name", r.Key)
			}
		case Socket:
			parts := strings.Split(r.Key, "/")
			if !strings.HasPrefix(parts[0], "AF_") || len(parts) > 3 {
				t.Errorf("socket key %q: want AF_X, AF_X/SOCK_Y or AF_X/*/PROTO", r.Key)
			}
			if len(parts) == 2 && !strings.HasPrefix(parts[1], "SOCK_") {
				t.Errorf("socket key %q: type %q is not SOCK_*", r.Key, parts[1])
			}
			if len(parts) == 3 && (parts[1] != "*" || !known[parts[2]]) {
				t.Errorf("socket key %q: want AF_X/*/PROTO with a protocol name this package knows", r.Key)
			}
		case Filesystem:
			if r.Key == "" || strings.ContainsAny(r.Key, "/ ") {
				t.Errorf("filesystem key %q is not a type name", r.Key)
			}
		case Path:
			if !(r.Key == "/proc" || r.Key == "/sys" || strings.HasPrefix(r.Key, "/proc/") || strings.HasPrefix(r.Key, "/sys/")) || strings.HasSuffix(r.Key, "/") {
				t.Errorf("path key %q: want /proc/... or /sys/... without a trailing slash", r.Key)
			}
		case Ioctl:
			if _, err := parseIoctlKey(r.Key); err != nil {
				t.Error(err)
			}
		case Prctl:
			if !strings.HasPrefix(r.Key, "prctl PR_") && !strings.HasPrefix(r.Key, "arch_prctl ARCH_") {
				t.Errorf("prctl key %q: want \"prctl PR_X\" or \"arch_prctl ARCH_X\"", r.Key)
			}
		default:
			t.Errorf("row %q has unknown kind %q", r.Key, r.Kind)
		}
	}
}

// TestDesignExamples checks the examples DESIGN.md gives.
func TestDesignExamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    manifest.Manifest
		want string
	}{
		{"epoll", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "epoll_pwait", Count: 1}}}, "EPOLL"},
		{"eventfd2", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "eventfd2", Count: 1}}}, "EVENTFD"},
		{"io_setup", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "io_setup", Count: 1}}}, "AIO"},
		{"shmget", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "shmget", Count: 1}}}, "SYSVIPC"},
		{"flock", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "flock", Count: 1}}}, "FILE_LOCKING"},
		{"fcntl locks", manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "fcntl", Count: 1}}}, "FILE_LOCKING"},
		{"AF_UNIX", manifest.Manifest{Sockets: []manifest.Socket{{Domain: "AF_UNIX", Type: "SOCK_DGRAM", Count: 1, Result: "ok"}}}, "UNIX"},
		{"AF_LOCAL", manifest.Manifest{Sockets: []manifest.Socket{{Domain: "AF_LOCAL", Type: "SOCK_DGRAM", Count: 1, Result: "ok"}}}, "UNIX"},
		{"AF_INET6", manifest.Manifest{Sockets: []manifest.Socket{{Domain: "AF_INET6", Type: "SOCK_STREAM", Count: 1, Result: "ok"}}}, "IPV6"},
		{"sctp", manifest.Manifest{Sockets: []manifest.Socket{{Domain: "AF_INET", Type: "SOCK_STREAM", Protocol: 132, Count: 1, Result: "ok"}}}, "IP_SCTP"},
		{"sysctl", manifest.Manifest{ProcSys: []string{"/proc/sys/kernel/pid_max"}}, "PROC_SYSCTL"},
		{"smaps of a task", manifest.Manifest{ProcSys: []string{"/proc/1234/task/1235/smaps"}}, "PROC_PAGE_MONITOR"},
		{"net via self", manifest.Manifest{ProcSys: []string{"/proc/self/net/tcp6"}}, "IPV6"},
		{"tun", manifest.Manifest{Ioctls: []manifest.Ioctl{{Request: 0x400454ca, Count: 1}}}, "TUN"},
		{"seccomp prctl", manifest.Manifest{Prctls: []manifest.Prctl{{Syscall: "prctl", Option: "PR_SET_SECCOMP", Count: 1}}}, "SECCOMP"},
		{"mqueue fs", manifest.Manifest{Filesystems: []manifest.Filesystem{{Type: "mqueue", Via: []string{"mount"}}}}, "POSIX_MQUEUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Symbols(Required(&tc.m))
			if !slices.Contains(got, tc.want) {
				t.Errorf("got %v, want it to contain %s", got, tc.want)
			}
		})
	}
}

func TestNoRequirement(t *testing.T) {
	m := &manifest.Manifest{
		Syscalls: []manifest.Syscall{{Name: "read", Count: 9}, {Name: "mlock", Count: 1}, {Name: "sendfile", Count: 2}},
		Ioctls:   []manifest.Ioctl{{Request: 0x5421, Name: "FIONBIO", Count: 3}, {Request: 0x5451, Count: 1}},
		Prctls:   []manifest.Prctl{{Syscall: "prctl", Option: "PR_SET_NO_NEW_PRIVS", Count: 1}},
	}
	a := Analyze(m)
	if len(a.Required) != 0 || len(a.Gaps) != 0 {
		t.Errorf("got %+v, want no requirement and no gap for always-built facts", a)
	}
}

func TestFailedCallsCount(t *testing.T) {
	m := &manifest.Manifest{
		Syscalls: []manifest.Syscall{{Name: "io_uring_setup", Count: 2, Errors: map[string]int{"ENOSYS": 2}}},
		Sockets:  []manifest.Socket{{Domain: "AF_VSOCK", Type: "SOCK_STREAM", Count: 1, Result: "EAFNOSUPPORT"}},
	}
	got := Required(m)
	want := []Requirement{
		{Symbol: "IO_URING", Facts: []string{"io_uring_setup x2 (ENOSYS x2)"}},
		{Symbol: "VSOCKETS", Facts: []string{"socket(AF_VSOCK, SOCK_STREAM, 0) x1 (EAFNOSUPPORT)"}},
	}
	if diff := cmp.Diff(want, got, cmpIgnoreSources); diff != "" {
		t.Errorf("Required (-want +got):\n%s", diff)
	}
}

func TestGaps(t *testing.T) {
	m := &manifest.Manifest{
		Syscalls:    []manifest.Syscall{{Name: "uselib", Count: 1}, {Name: "_sysctl", Count: 1}},
		Sockets:     []manifest.Socket{{Domain: "AF_MADEUP", Type: "SOCK_STREAM", Count: 1, Result: "EAFNOSUPPORT"}},
		Filesystems: []manifest.Filesystem{{Type: "madeupfs", Via: []string{"statfs"}}},
		Ioctls:      []manifest.Ioctl{{Request: 0xdead01, Count: 1}},
	}
	var got []string
	for _, g := range Gaps(m) {
		got = append(got, g.Fact)
		if g.Reason == "" {
			t.Errorf("gap %q has no reason", g.Fact)
		}
	}
	want := []string{"_sysctl x1", "fs madeupfs (statfs)", "ioctl 0xdead01 x1", "socket(AF_MADEUP, SOCK_STREAM, 0) x1 (EAFNOSUPPORT)", "uselib x1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
	if r := Required(m); len(r) != 0 {
		t.Errorf("got requirements %v, want none", Symbols(r))
	}
}

// TestRedisLike checks the hand-written redis-like manifest against what
// its facts must require, fact by fact.
func TestRedisLike(t *testing.T) {
	m, err := manifest.ReadFile("testdata/redis-like.json")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range Required(m) {
		got[r.Symbol] = r.Facts
		if len(r.Sources) == 0 {
			t.Errorf("%s has no source", r.Symbol)
		}
	}
	want := map[string][]string{
		"ADVISE_SYSCALLS":      {"madvise x3"},
		"EPOLL":                {"epoll_wait x1234", "epoll_ctl x56", "epoll_create x1"},
		"EVENTFD":              {"eventfd2 x1"},
		"FUTEX":                {"futex x40", "set_robust_list x5"},
		"INET":                 {"socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) x1"},
		"IPV6":                 {"socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) x1 (EAFNOSUPPORT)"},
		"NET":                  {"accept x52", "setsockopt x10", "socket x3", "bind x2", "listen x2", "/proc/sys/net/core/somaxconn"},
		"PROC_FS":              {"/proc/self/oom_score_adj", "/proc/self/stat", "/proc/sys/net/core/somaxconn", "/proc/sys/vm/overcommit_memory", "fs proc (path)"},
		"PROC_SYSCTL":          {"/proc/sys/net/core/somaxconn", "/proc/sys/vm/overcommit_memory"},
		"RSEQ":                 {"rseq x5"},
		"SYSFS":                {"/sys/kernel/mm/transparent_hugepage/enabled", "fs sysfs (path)"},
		"TRANSPARENT_HUGEPAGE": {"/sys/kernel/mm/transparent_hugepage/enabled"},
		"TTY":                  {"ioctl TCGETS x2"},
		"UNIX":                 {"socket(AF_UNIX, SOCK_STREAM, 0) x1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Required (-want +got):\n%s", diff)
	}
}

var cmpIgnoreSources = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().String() == ".Sources"
}, cmp.Ignore())
