package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/kbuild"
)

func TestDoctor(t *testing.T) {
	defer func(h kbuild.Host) { doctorHost = h }(doctorHost)
	for _, tt := range []struct {
		name       string
		missing    map[string]bool // commands and files
		code       int
		wantStdout []string
	}{
		{"all found", nil, 0, []string{"all required tools found"}},
		{"ccache missing", map[string]bool{"ccache": true}, 0, []string{"missing (optional)", "optional: apt-get install -y ccache", "all required tools found"}},
		{"required missing", map[string]bool{"bison": true, "/usr/include/openssl/opensslv.h": true, "/usr/src/linux-source-6.12.tar.xz": true}, 1,
			[]string{"bison ", "MISSING", "to install the missing tools: apt-get install -y bison libssl-dev linux-source-6.12\n"}},
		{"libelf by either header", map[string]bool{"/usr/include/libelf.h": true}, 0, []string{"ok /usr/include/gelf.h"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doctorHost = kbuild.Host{
				LookPath: func(name string) (string, error) {
					if tt.missing[name] {
						return "", errors.New("not found")
					}
					return "/fake/bin/" + name, nil
				},
				Stat: func(p string) error {
					if tt.missing[p] {
						return os.ErrNotExist
					}
					return nil
				},
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"doctor"}, nil, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if lines := strings.Count(stdout.String(), "\n"); lines < len(kbuild.Checks)+1 {
				t.Errorf("table has %d lines, want a row per check (%d):\n%s", lines, len(kbuild.Checks), stdout.String())
			}
		})
	}
}
