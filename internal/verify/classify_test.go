package verify

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
	"github.com/google/go-cmp/cmp"
)

// fakeInfo is a host file for Lstat.
type fakeInfo struct{ mode fs.FileMode }

func (f fakeInfo) Name() string       { return "" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

func TestClassify(t *testing.T) {
	host := &manifest.Manifest{
		Paths: []manifest.Path{
			{Path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", Ops: []string{"open"}, Result: "found"},
			{Path: "/etc/app.conf", Ops: []string{"open"}, Result: "found"},
			{Path: "/proc/sys/net/core/somaxconn", Ops: []string{"open"}, Result: "found"},
			{Path: "/etc/hwcaps-probe", Ops: []string{"open"}, Result: "ENOENT"},
		},
		Syscalls: []manifest.Syscall{
			{Name: "epoll_create1", Count: 1},
			{Name: "io_uring_setup", Count: 1, Errors: map[string]int{"ENOSYS": 1}},
		},
		Sockets: []manifest.Socket{
			{Domain: "AF_INET6", Type: "SOCK_STREAM", Protocol: 0, Count: 1, Result: "ok"},
		},
	}
	guest := &manifest.Manifest{
		Program: manifest.Program{Path: "/usr/bin/app"},
		Paths: []manifest.Path{
			// Missing in the image, found on the host: the fix.
			{Path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", Ops: []string{"open"}, Result: "ENOENT"},
			// In the image: an ENOENT there is the program's own business.
			{Path: "/etc/app.conf", Ops: []string{"open"}, Result: "ENOENT"},
			// Missing on the host too: a probe.
			{Path: "/etc/hwcaps-probe", Ops: []string{"open"}, Result: "ENOENT"},
			// A directory on the host: reported, no automatic fix.
			{Path: "/var/lib/app", Ops: []string{"stat"}, Result: "ENOENT"},
			// A write into a missing directory is not a lookup.
			{Path: "/var/run/app.pid", Ops: []string{"open"}, Result: "ENOENT", Write: true},
			// A kernel path the host had.
			{Path: "/proc/sys/net/core/somaxconn", Ops: []string{"open"}, Result: "ENOENT"},
			// A kernel path the host lacked too.
			{Path: "/sys/kernel/mm/transparent_hugepage/enabled", Ops: []string{"open"}, Result: "ENOENT"},
		},
		Syscalls: []manifest.Syscall{
			{Name: "epoll_create1", Count: 2, Errors: map[string]int{"ENOSYS": 2}},
			{Name: "io_uring_setup", Count: 1, Errors: map[string]int{"ENOSYS": 1}}, // ENOSYS on the host too
			{Name: "openat", Count: 40, Errors: map[string]int{"ENOENT": 9}},
		},
		Sockets: []manifest.Socket{
			{Domain: "AF_INET6", Type: "SOCK_STREAM", Protocol: 0, Count: 1, Result: "EAFNOSUPPORT"},
			{Domain: "AF_PACKET", Type: "SOCK_RAW", Protocol: 0, Count: 1, Result: "EAFNOSUPPORT"}, // never on the host
		},
		Exit: &manifest.Exit{Code: 1},
	}
	hostFS := map[string]fs.FileMode{
		"/usr/lib/x86_64-linux-gnu/libssl.so.3": 0o644,
		"/etc/app.conf":                         0o644,
		"/var/lib/app":                          fs.ModeDir | 0o755,
		"/var/run/app.pid":                      0o644,
	}
	got := Classify(Facts{
		Host: host, Guest: guest,
		InImage: func(p string) bool { return p == "/etc/app.conf" },
		Enabled: func(sym string) bool { return sym == "INET" || sym == "NET" || sym == "PROC_FS" },
		Lstat: func(p string) (fs.FileInfo, error) {
			if m, ok := hostFS[p]; ok {
				return fakeInfo{m}, nil
			}
			return nil, os.ErrNotExist
		},
	})
	type brief struct {
		Kind, Subject, Include string
		Enable                 []string
		HasHint                bool
	}
	var gotBrief []brief
	for _, f := range got {
		gotBrief = append(gotBrief, brief{f.Kind, f.Subject, f.Include, f.Enable, f.Hint != ""})
		if f.Evidence == "" {
			t.Errorf("%s %s: no evidence", f.Kind, f.Subject)
		}
	}
	want := []brief{
		{MissingFile, "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3", nil, false},
		{MissingFile, "/var/lib/app", "", nil, true},
		{MissingKernelPath, "/proc/sys/net/core/somaxconn", "", []string{"PROC_SYSCTL"}, false},
		{MissingSocket, "socket(AF_INET6, SOCK_STREAM, 0)", "", []string{"IPV6"}, false},
		{MissingSyscall, "epoll_create1", "", []string{"EPOLL"}, false},
	}
	if diff := cmp.Diff(want, gotBrief); diff != "" {
		t.Errorf("Classify (-want +got):\n%s\nfindings:\n%v", diff, got)
	}
	for _, f := range got {
		if f.Subject == "/usr/lib/x86_64-linux-gnu/libssl.so.3" && !strings.Contains(f.Evidence, "found on the host") {
			t.Errorf("evidence %q does not say the host trace found it", f.Evidence)
		}
	}
}

func TestClassifySeccompAndFixes(t *testing.T) {
	got := Classify(Facts{
		Host:    &manifest.Manifest{},
		Guest:   &manifest.Manifest{Program: manifest.Program{Path: "/bin/app"}, Exit: &manifest.Exit{Code: 159, Signal: "SIGSYS"}},
		InImage: func(string) bool { return false },
		Enabled: func(string) bool { return false },
	})
	if len(got) != 1 || got[0].Kind != SeccompDenial {
		t.Fatalf("got %v, want one seccomp denial", got)
	}
	fx := fixesOf([]Finding{
		{Kind: MissingFile, Subject: "/a", Include: "/a"},
		{Kind: MissingFile, Subject: "/a", Include: "/a"},
		{Kind: MissingSyscall, Subject: "eventfd2", Enable: []string{"EVENTFD"}},
		{Kind: SeccompDenial, Subject: "/bin/app", Hint: "x"},
	})
	if len(fx.Include) != 1 || fx.Include[0].What != "/a" || len(fx.Enable) != 1 || fx.Enable[0].What != "EVENTFD" {
		t.Errorf("fixesOf = %+v, want /a once and EVENTFD", fx)
	}
}

// The guest's seccomp filter's reports: a fix each, but for another ABI.
func TestSeccompFindings(t *testing.T) {
	got := SeccompFindings([]vm.SeccompEvent{
		{Syscall: "epoll_wait", Nr: 232, Pid: 50, Action: "denied"},
		{Nr: -1, Pid: 50, Action: "denied"},
	})
	if len(got) != 2 || got[0].Kind != SeccompDenial || got[0].Allow != "epoll_wait" || !strings.Contains(got[0].Evidence, "epoll_wait (232)") {
		t.Fatalf("findings %+v, want epoll_wait with a fix first", got)
	}
	if got[1].Allow != "" || got[1].Hint == "" {
		t.Errorf("another ABI's syscall: %+v, want a hint and no fix", got[1])
	}
	fx := fixesOf(append(got, got[0]))
	if len(fx.Seccomp) != 1 || fx.Seccomp[0].What != "epoll_wait" || len(fx.Include)+len(fx.Enable)+len(fx.Keep) > 0 {
		t.Errorf("fixesOf = %+v, want epoll_wait once in the allowlist", fx)
	}
	if s := got[0].String(); !strings.Contains(s, "fix: add epoll_wait to the seccomp allowlist") {
		t.Errorf("String() = %q", s)
	}
}

// An ENOSYS from a syscall the image removed from its table is fixed by
// keeping it, not by a kernel option.
func TestClassifyRemovedSyscall(t *testing.T) {
	host := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "read", Count: 3}}}
	guest := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "epoll_create1", Count: 1, Errors: map[string]int{"ENOSYS": 1}}}}
	got := Classify(Facts{Host: host, Guest: guest, InImage: func(string) bool { return true },
		Enabled: func(string) bool { return true }, Removed: []string{"epoll_create1", "sysinfo"}})
	if len(got) != 1 || got[0].Keep != "epoll_create1" || len(got[0].Enable) != 0 {
		t.Fatalf("findings %+v, want one: keep epoll_create1", got)
	}
	fx := fixesOf(got)
	if len(fx.Keep) != 1 || fx.Keep[0].What != "epoll_create1" || fx.Empty() {
		t.Errorf("fixes %+v, want keep epoll_create1", fx)
	}
}

// An error other than ENOSYS is a finding only when the feature knowledge
// ties the syscall to an option the kernel lacks (mariadb's fcntl locks
// returned EACCES in a kernel without FILE_LOCKING).
func TestClassifyFailedSyscall(t *testing.T) {
	host := &manifest.Manifest{Syscalls: []manifest.Syscall{
		{Name: "fcntl", Count: 40},
		{Name: "kill", Count: 2, Errors: map[string]int{"ESRCH": 1}},
	}}
	guest := &manifest.Manifest{Syscalls: []manifest.Syscall{
		{Name: "fcntl", Count: 40, Errors: map[string]int{"EACCES": 2, "EAGAIN": 1}},
		{Name: "kill", Count: 2, Errors: map[string]int{"ESRCH": 1}},
		{Name: "read", Count: 9, Errors: map[string]int{"EINTR": 1}}, // no option to blame
	}}
	for _, tt := range []struct {
		name    string
		enabled bool
		want    []string
	}{
		{"FILE_LOCKING off", false, []string{"failed-syscall fcntl: EACCES 2 times, EAGAIN 1 times of 40 calls in the guest; not on the host; fix: enable CONFIG_FILE_LOCKING"}},
		{"FILE_LOCKING on", true, nil},
	} {
		got := Classify(Facts{Host: host, Guest: guest, InImage: func(string) bool { return true },
			Enabled: func(sym string) bool { return tt.enabled || sym != "FILE_LOCKING" }})
		var s []string
		for _, f := range got {
			s = append(s, f.String())
		}
		if diff := cmp.Diff(tt.want, s); diff != "" {
			t.Errorf("%s: findings (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestClassifyExcluded: a missing file the image must never hold gets no
// automatic fix, and the finding says why and what to do instead.
func TestClassifyExcluded(t *testing.T) {
	host := &manifest.Manifest{Excluded: []manifest.Excluded{{Path: "/etc/ssl/private", Reason: "TLS private keys"}}}
	sp := &spec.Spec{Exclude: []string{"/usr/share/doc"}}
	guest := &manifest.Manifest{Paths: []manifest.Path{
		{Path: "/etc/ssl/private/app.pem", Ops: []string{"open"}, Result: "ENOENT"},
		{Path: "/usr/share/doc/app/notice", Ops: []string{"open"}, Result: "ENOENT"},
		{Path: "/root/.ssh/id_rsa", Ops: []string{"open"}, Result: "ENOENT"},
		{Path: "/etc/app.conf", Ops: []string{"open"}, Result: "ENOENT"},
	}}
	got := Classify(Facts{
		Host: host, Guest: guest,
		InImage:  func(string) bool { return false },
		Enabled:  func(string) bool { return true },
		Lstat:    func(string) (fs.FileInfo, error) { return fakeInfo{0o600}, nil },
		Excluded: func(p string) string { return image.Exclusion(host, sp, p) },
	})
	want := map[string]string{
		"/etc/ssl/private/app.pem":  "TLS private keys",
		"/usr/share/doc/app/notice": "spec's exclude",
		"/root/.ssh/id_rsa":         "SSH keys",
		"/etc/app.conf":             "",
	}
	if len(got) != len(want) {
		t.Fatalf("findings: %v, want one for each of %v", got, want)
	}
	for _, f := range got {
		w := want[f.Subject]
		switch {
		case w == "" && f.Include != f.Subject:
			t.Errorf("%s: include %q, want it added", f.Subject, f.Include)
		case w != "" && (f.Include != "" || !strings.Contains(f.Hint, w) || !strings.Contains(f.Hint, "never copies") && !strings.Contains(f.Hint, "take the pattern out")):
			t.Errorf("%s: include %q hint %q, want no fix and a hint with %q", f.Subject, f.Include, f.Hint, w)
		}
	}
	if fx := fixesOf(got); len(fx.Include) != 1 || fx.Include[0].What != "/etc/app.conf" {
		t.Errorf("fixes: %+v, want /etc/app.conf only", fx.Include)
	}
}
