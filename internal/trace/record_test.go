package trace

import (
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

// fakeHost is a filesystem of paths -> entries.
type fakeHost struct {
	files   map[string]fakeFile
	mounts  []mountPoint
	closure map[string][]manifest.File
}

type fakeFile struct {
	mode fs.FileMode
	link string
	size int64
	head string
}

type fakeInfo struct {
	name string
	f    fakeFile
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return i.f.size }
func (i fakeInfo) Mode() fs.FileMode  { return i.f.mode }
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.f.mode.IsDir() }
func (i fakeInfo) Sys() any           { return nil }

func (h *fakeHost) Lstat(p string) (fs.FileInfo, error) {
	if p == "/" {
		return fakeInfo{"/", fakeFile{mode: fs.ModeDir}}, nil
	}
	f, ok := h.files[p]
	if !ok {
		// Follow symlinks in the directories on the way, as lstat does.
		_, dir := resolveChain(h, path.Dir(p))
		if f, ok = h.files[path.Join(dir, path.Base(p))]; !ok {
			return nil, os.ErrNotExist
		}
	}
	return fakeInfo{p, f}, nil
}

func (h *fakeHost) Readlink(p string) (string, error) {
	if fi, err := h.Lstat(p); err == nil && fi.(fakeInfo).f.link != "" {
		return fi.(fakeInfo).f.link, nil
	}
	return "", os.ErrInvalid
}

func (h *fakeHost) Head(p string) []byte { return []byte(h.files[p].head) }

func (h *fakeHost) Closure(p string) ([]manifest.File, error) {
	if c, ok := h.closure[p]; ok {
		return c, nil
	}
	return nil, os.ErrNotExist
}

func (h *fakeHost) MountType(p string) string { return mountTypeOf(h.mounts, p) }

func ev(name string, ret int64, paths ...string) *Event {
	return &Event{Nr: mustNumber(name), Exited: true, Ret: ret, Paths: paths}
}

func TestRecorderBuild(t *testing.T) {
	const (
		enoent = -2
		eacces = -13
	)
	h := &fakeHost{
		files: map[string]fakeFile{
			"/usr":                    {mode: fs.ModeDir},
			"/usr/bin":                {mode: fs.ModeDir},
			"/usr/bin/app":            {mode: 0o755, size: 100},
			"/usr/bin/helper":         {mode: 0o755, size: 50},
			"/lib":                    {mode: fs.ModeSymlink, link: "usr/lib"},
			"/usr/lib":                {mode: fs.ModeDir},
			"/usr/lib/libc.so.6":      {mode: 0o644, size: 2000},
			"/usr/lib/libplug.so.1":   {mode: fs.ModeSymlink, link: "libplug.so.1.0"},
			"/usr/lib/libplug.so.1.0": {mode: 0o644, size: 300},
			"/etc":                    {mode: fs.ModeDir},
			"/etc/app.conf":           {mode: 0o644, size: 10},
			"/etc/localtime":          {mode: fs.ModeSymlink, link: "/usr/share/zoneinfo/UTC"},
			"/usr/share":              {mode: fs.ModeDir},
			"/usr/share/zoneinfo":     {mode: fs.ModeDir},
			"/usr/share/zoneinfo/UTC": {mode: 0o644, size: 114},
			"/etc/shadow":             {mode: 0o640, size: 900},
			"/srv":                    {mode: fs.ModeDir},
			"/srv/tls.pem":            {mode: 0o600, size: 1700, head: "-----BEGIN RSA PRIVATE KEY-----\n"},
			"/var":                    {mode: fs.ModeDir},
			"/var/lib":                {mode: fs.ModeDir},
			"/var/lib/app":            {mode: fs.ModeDir},
			"/var/lib/app/state.db":   {mode: 0o644, size: 5},
			"/proc":                   {mode: fs.ModeDir},
			"/proc/self":              {mode: fs.ModeSymlink, link: "42"},
			"/dev/null":               {mode: fs.ModeCharDevice | fs.ModeDevice},
		},
		mounts: []mountPoint{{"/", "ext4"}, {"/proc", "proc"}, {"/dev", "devtmpfs"}},
		closure: map[string][]manifest.File{
			"/usr/bin/app":    {{Path: "/usr/bin/app", Kind: "program"}, {Path: "/usr/lib/libc.so.6", Kind: "library"}},
			"/usr/bin/helper": {{Path: "/usr/bin/helper", Kind: "program"}, {Path: "/usr/lib/libc.so.6", Kind: "library"}},
		},
	}
	r := newRecorder()
	r.task(true)
	r.task(false)
	r.task(true)
	for i := 0; i < 5; i++ {
		r.count(mustNumber("futex"))
	}
	events := []*Event{
		{Nr: nrExecve, Exited: true, Paths: []string{"/usr/bin/app"}, Argv: []string{"app", "-v"}},
		{Nr: nrOpenat, Exited: true, Ret: 3, Paths: []string{"/etc/app.conf"}},
		{Nr: nrOpenat, Exited: true, Ret: enoent, Paths: []string{"/etc/app.d"}, OpenFlags: oDirectory},
		ev("newfstatat", 0, "/etc/localtime"),
		{Nr: nrOpenat, Exited: true, Ret: 4, Paths: []string{"/etc/localtime"}},
		ev("openat", 3, "/etc/shadow"),
		ev("openat", 3, "/srv/tls.pem"),
		ev("access", eacces, "/root/secret"),
		ev("openat", 5, "/lib/libplug.so.1"),
		{Nr: nrMmap, Args: [6]uint64{0, 4096, 5, 2, 5, 0}, Mapped: "/usr/lib/libplug.so.1.0"},
		{Nr: nrMmap, Args: [6]uint64{0, 4096, 5, 2, 3, 0}, Mapped: "/usr/lib/libc.so.6"},
		{Nr: nrOpenat, Exited: true, Ret: 6, Paths: []string{"/var/lib/app/state.db"}, OpenFlags: oCreat | 1},
		{Nr: nrOpenat, Exited: true, Ret: 7, Paths: []string{"/var/lib/app/tmp.1"}, OpenFlags: oCreat | 1},
		ev("unlink", 0, "/var/lib/app/tmp.1"),
		ev("openat", 8, "/proc/42/stat"),
		ev("openat", 8, "/dev/null"),
		{Nr: nrSocket, Exited: true, Ret: 9, Args: [6]uint64{2, 1 | 0x80000, 6}},
		{Nr: nrSocket, Exited: true, Ret: -97, Args: [6]uint64{10, 2, 0}},
		{Nr: nrBind, Exited: true, Addr: &Sockaddr{"AF_INET", "0.0.0.0", 6379}, Local: &Sockaddr{"AF_INET", "0.0.0.0", 6379}, SockType: "SOCK_STREAM"},
		{Nr: nrListen, Exited: true, Local: &Sockaddr{"AF_INET", "0.0.0.0", 6379}, SockType: "SOCK_STREAM"},
		{Nr: nrBind, Exited: true, Addr: &Sockaddr{"AF_UNIX", "/run/app.sock", 0}, Paths: []string{"/run/app.sock"}, SockType: "SOCK_STREAM"},
		{Nr: nrIoctl, Args: [6]uint64{1, 0x5401}},
		{Nr: nrIoctl, Args: [6]uint64{1, 0x5401}},
		{Nr: nrPrctl, Args: [6]uint64{15}},
		{Nr: nrArchPrctl, Args: [6]uint64{0x1002}},
		{Nr: nrStatfs, Exited: true, Paths: []string{"/sys/fs/cgroup"}, FSType: "cgroup2"},
		{Nr: nrMount, Exited: true, Ret: -1, Paths: []string{"/mnt"}, FSType: "tmpfs"},
		{Nr: nrExecve, Exited: true, Paths: []string{"/usr/bin/helper"}, Argv: []string{"helper"}},
		{Nr: nrExecve, Exited: true, Ret: enoent, Paths: []string{"/usr/local/bin/helper"}, Argv: []string{"helper"}},
	}
	for _, e := range events {
		r.add(e)
	}
	var warnings []string
	m := r.build(h, "/usr/bin/app", func(w string) { warnings = append(warnings, w) })
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if m.Processes != 2 || m.Threads != 3 {
		t.Errorf("Processes, Threads = %d, %d, want 2, 3", m.Processes, m.Threads)
	}
	if s := m.Syscall("futex"); s == nil || s.Count != 5 || s.Nr != 202 {
		t.Errorf("futex = %+v, want count 5 nr 202", s)
	}
	if s := m.Syscall("openat"); s == nil || s.Count != 10 || s.Errors["ENOENT"] != 1 {
		t.Errorf("openat = %+v, want count 10 with 1 ENOENT", s)
	}
	wantSockets := []manifest.Socket{
		{Domain: "AF_INET", Type: "SOCK_STREAM", Protocol: 6, Count: 1, Result: "ok"},
		{Domain: "AF_INET6", Type: "SOCK_DGRAM", Count: 1, Result: "EAFNOSUPPORT"},
	}
	if diff := cmp.Diff(wantSockets, m.Sockets); diff != "" {
		t.Errorf("Sockets (-want +got)\n%s", diff)
	}
	wantListen := []manifest.Listen{
		{Family: "AF_INET", Type: "SOCK_STREAM", Address: "0.0.0.0", Port: 6379, Listening: true},
		{Family: "AF_UNIX", Type: "SOCK_STREAM", Address: "/run/app.sock"},
	}
	if diff := cmp.Diff(wantListen, m.Listen); diff != "" {
		t.Errorf("Listen (-want +got)\n%s", diff)
	}
	wantExecs := []manifest.Exec{
		{Path: "/usr/bin/app", Argv: []string{"app", "-v"}, Result: "found"},
		{Path: "/usr/bin/helper", Argv: []string{"helper"}, Result: "found"},
		{Path: "/usr/local/bin/helper", Argv: []string{"helper"}, Result: "ENOENT"},
	}
	if diff := cmp.Diff(wantExecs, m.Execs); diff != "" {
		t.Errorf("Execs (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/usr/lib/libc.so.6", "/usr/lib/libplug.so.1.0"}, m.Libraries); diff != "" {
		t.Errorf("Libraries (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]manifest.Ioctl{{Request: 0x5401, Name: "TCGETS", Count: 2}}, m.Ioctls); diff != "" {
		t.Errorf("Ioctls (-want +got)\n%s", diff)
	}
	wantPrctls := []manifest.Prctl{{Syscall: "arch_prctl", Option: "ARCH_SET_FS", Count: 1}, {Syscall: "prctl", Option: "PR_SET_NAME", Count: 1}}
	if diff := cmp.Diff(wantPrctls, m.Prctls); diff != "" {
		t.Errorf("Prctls (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/proc/self/stat", "/sys/fs/cgroup"}, m.ProcSys); diff != "" {
		t.Errorf("ProcSys (-want +got)\n%s", diff)
	}
	wantFS := []manifest.Filesystem{
		{Type: "cgroup2", Via: []string{"statfs"}},
		{Type: "devtmpfs", Via: []string{"path"}},
		{Type: "ext4", Via: []string{"path"}},
		{Type: "proc", Via: []string{"path"}},
		{Type: "tmpfs", Via: []string{"mount"}},
	}
	if diff := cmp.Diff(wantFS, m.Filesystems); diff != "" {
		t.Errorf("Filesystems (-want +got)\n%s", diff)
	}
	wantClosure := []manifest.File{
		{Path: "/lib", Kind: "library", Link: "usr/lib"},
		{Path: "/usr/bin/app", Kind: "program"},
		{Path: "/usr/bin/helper", Kind: "exec"},
		{Path: "/usr/lib/libc.so.6", Kind: "library"},
		{Path: "/usr/lib/libplug.so.1", Kind: "library", Link: "libplug.so.1.0"},
		{Path: "/usr/lib/libplug.so.1.0", Kind: "library", Size: 300},
	}
	if diff := cmp.Diff(wantClosure, m.Closure); diff != "" {
		t.Errorf("Closure (-want +got)\n%s", diff)
	}
	wantFiles := []manifest.File{
		{Path: "/etc/app.conf", Kind: "config", Size: 10},
		{Path: "/etc/localtime", Kind: "config", Link: "/usr/share/zoneinfo/UTC"},
		{Path: "/usr/share/zoneinfo/UTC", Kind: "config", Size: 114},
		{Path: "/var/lib/app", Kind: "dir"},
	}
	if diff := cmp.Diff(wantFiles, m.Files); diff != "" {
		t.Errorf("Files (-want +got)\n%s", diff)
	}
	wantExcluded := []manifest.Excluded{
		{Path: "/etc/shadow", Reason: "password hashes"},
		{Path: "/srv/tls.pem", Reason: "private key (PEM)"},
	}
	if diff := cmp.Diff(wantExcluded, m.Excluded); diff != "" {
		t.Errorf("Excluded (-want +got)\n%s", diff)
	}
	paths := map[string]manifest.Path{}
	for _, p := range m.Paths {
		paths[p.Path] = p
	}
	wantPaths := map[string]manifest.Path{
		"/etc/app.d":         {Path: "/etc/app.d", Ops: []string{"opendir"}, Result: "ENOENT"},
		"/etc/localtime":     {Path: "/etc/localtime", Ops: []string{"open", "stat"}, Result: "found", Type: "symlink"},
		"/root/secret":       {Path: "/root/secret", Ops: []string{"access"}, Result: "EACCES"},
		"/var/lib/app/tmp.1": {Path: "/var/lib/app/tmp.1", Ops: []string{"open", "unlink"}, Result: "found", Write: true},
		"/run/app.sock":      {Path: "/run/app.sock", Ops: []string{"bind"}, Result: "found"},
	}
	for p, want := range wantPaths {
		if diff := cmp.Diff(want, paths[p]); diff != "" {
			t.Errorf("Paths[%s] (-want +got)\n%s", p, diff)
		}
	}
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "/proc") || strings.HasPrefix(f.Path, "/dev") || strings.HasPrefix(f.Path, "/run") {
			t.Errorf("Files has host-only %s", f.Path)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 0:22 / /mnt/my\040disk rw - vfat /dev/sdb1 rw
`
	ms := parseMountinfo(strings.NewReader(in))
	want := []mountPoint{{"/", "ext4"}, {"/proc", "proc"}, {"/mnt/my disk", "vfat"}}
	if diff := cmp.Diff(want, ms, cmp.AllowUnexported(mountPoint{})); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	for p, want := range map[string]string{"/proc/self/stat": "proc", "/processes": "ext4", "/mnt/my disk/a": "vfat", "/": "ext4"} {
		if got := mountTypeOf(ms, p); got != want {
			t.Errorf("mountTypeOf(%q) = %q, want %q", p, got, want)
		}
	}
}
