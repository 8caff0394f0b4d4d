//go:build linux && amd64

package trace

import (
	"context"
	"os/exec"
	"testing"
)

// BenchmarkOverhead runs the same syscall-heavy commands untraced, under
// bespoke's tracer (seccomp and PTRACE_SYSCALL) and under strace -f, side by
// side. The figures are in docs/trace.md:
//
//	go test -run '^$' -bench Overhead -benchtime 5x ./internal/trace/
func BenchmarkOverhead(b *testing.B) {
	commands := []struct {
		name string
		argv []string
	}{
		{"cat200", []string{"sh", "-c", "for i in $(seq 200); do cat /etc/hostname >/dev/null; done"}},
		{"find", []string{"find", "/usr/share/doc", "-name", "*.gz"}},
	}
	strace, strErr := exec.LookPath("strace")
	for _, c := range commands {
		b.Run(c.name+"/untraced", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := exec.Command(c.argv[0], c.argv[1:]...).Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, noSeccomp := range []bool{false, true} {
			name := c.name + "/bespoke-seccomp"
			if noSeccomp {
				name = c.name + "/bespoke-ptrace-syscall"
			}
			b.Run(name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					m, err := Run(context.Background(), Options{Program: c.argv[0], Args: c.argv[1:], NoSeccomp: noSeccomp})
					if err != nil {
						b.Fatal(err)
					}
					if m.Exit.Code != 0 {
						b.Fatalf("exit %+v", m.Exit)
					}
				}
			})
		}
		b.Run(c.name+"/strace", func(b *testing.B) {
			if strErr != nil {
				b.Skip("strace not installed")
			}
			for i := 0; i < b.N; i++ {
				args := append([]string{"-f", "-o", "/dev/null"}, c.argv...)
				if err := exec.Command(strace, args...).Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
