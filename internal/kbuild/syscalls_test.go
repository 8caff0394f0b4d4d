package kbuild

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tbl = `# comment
0	common	read			sys_read
1	common	write			sys_write
60	common	exit			sys_exit			-	noreturn
134	64	uselib
425	common	io_uring_setup		sys_io_uring_setup
512	x32	rt_sigaction		compat_sys_rt_sigaction
`

func TestParseSyscallTable(t *testing.T) {
	got, err := ParseSyscallTable([]byte(tbl))
	if err != nil {
		t.Fatal(err)
	}
	want := []Syscall{{0, "read", "sys_read"}, {1, "write", "sys_write"}, {60, "exit", "sys_exit"}, {134, "uselib", ""}, {425, "io_uring_setup", "sys_io_uring_setup"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ParseSyscallTable([]byte("0 common\n")); err == nil {
		t.Error("a short line parsed")
	}
}

const header = `__SYSCALL(0, sys_read)
__SYSCALL(1, sys_write)
__SYSCALL_NORETURN(60, sys_exit)
__SYSCALL(134, sys_ni_syscall)
__SYSCALL(425, sys_io_uring_setup)
`

func TestRemoveSyscalls(t *testing.T) {
	out, n, err := RemoveSyscalls([]byte(header), []int{1, 134, 425})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("sys_write", "sys_ni_syscall", "sys_io_uring_setup", "sys_ni_syscall").Replace(header)
	if string(out) != want || n != 2 {
		t.Errorf("got %d changed:\n%s\nwant 2:\n%s", n, out, want)
	}
	if _, _, err := RemoveSyscalls([]byte(header), []int{60}); err == nil || !strings.Contains(err.Error(), "does not return") {
		t.Errorf("removing exit: %v, want an error", err)
	}
	if _, _, err := RemoveSyscalls([]byte(header), []int{999}); err == nil {
		t.Error("removing a syscall the header lacks: no error")
	}
}

// A build that removes syscalls runs archheaders, rewrites the header and
// leaves a marker; the next build in that dir without removals deletes
// the rewritten header first, so make writes it again.
func TestBuildRemovesSyscalls(t *testing.T) {
	f := &fakeMake{}
	var work string
	gen := func() error { // what make archheaders does when the header is missing
		p := filepath.Join(work, syscallHeader)
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		return os.WriteFile(p, []byte(header), 0o644)
	}
	run := func(ctx context.Context, c Command, out io.Writer) error {
		for _, a := range c.Args {
			if d, ok := strings.CutPrefix(a, "O="); ok {
				work = d
			}
		}
		switch c.Args[len(c.Args)-1] {
		case "archheaders":
			return gen()
		case "bzImage":
			if err := gen(); err != nil {
				return err
			}
		}
		return f.run(ctx, c, out)
	}
	opts := fakeOptions(t, f, t.TempDir(), filepath.Join(t.TempDir(), "a"), baseConfig)
	opts.Runner, opts.RemoveSyscalls = run, []int{425, 1, 425}
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(work, syscallHeader))
	if !strings.Contains(string(data), "__SYSCALL(425, sys_ni_syscall)") || strings.Contains(string(data), "sys_write") {
		t.Errorf("header after the build:\n%s", data)
	}
	if got := res.Meta.RemovedSyscalls; len(got) != 2 || got[0] != 1 || got[1] != 425 {
		t.Errorf("meta removed %v, want [1 425]", got)
	}
	opts.RemoveSyscalls, opts.OutDir = nil, filepath.Join(t.TempDir(), "b")
	res2, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Meta.Key == res.Meta.Key || res2.BuildDir != res.BuildDir {
		t.Errorf("keys %s %s, build dirs %s %s: want another key in the same build dir", res.Meta.Key, res2.Meta.Key, res.BuildDir, res2.BuildDir)
	}
	data, _ = os.ReadFile(filepath.Join(work, syscallHeader))
	if string(data) != header {
		t.Errorf("header after a build without removals:\n%s", data)
	}
}
