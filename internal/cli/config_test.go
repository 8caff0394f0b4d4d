package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

const configTestManifest = "../kconfig/testdata/redis.manifest.json"

func runConfigCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "config")
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no -o", []string{"config", "--manifest", configTestManifest}, "missing -o FILE"},
		{"no manifest", []string{"config", "-o", out}, "missing --manifest"},
		{"bad opt", []string{"config", "--manifest", configTestManifest, "--opt", "o3", "-o", out}, `--opt "o3"`},
		{"bad target", []string{"config", "--manifest", configTestManifest, "--target", "bochs", "-o", out}, `unknown target "bochs"`},
		{"module", []string{"config", "--manifest", configTestManifest, "--enable", "IPV6=m", "-o", out}, "modules are not supported"},
		{"bad symbol", []string{"config", "--manifest", configTestManifest, "--enable", "ip v6", "-o", out}, "want a Kconfig symbol"},
		{"stray argument", []string{"config", configTestManifest, "-o", out}, "unexpected arguments"},
		{"bad compression", []string{"config", "--manifest", configTestManifest, "--compression", "xz", "-o", out}, `--compression "xz" of an erofs root: want lz4hc or lzma`},
	}
	for _, tt := range tests {
		code, _, stderr := runConfigCLI(t, tt.args...)
		if code != 2 {
			t.Errorf("%s: exit status %d, want 2 (stderr %q)", tt.name, code, stderr)
		}
		if !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: stderr %q lacks %q", tt.name, stderr, tt.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written although every call failed", out)
	}
}

func TestConfigExplain(t *testing.T) {
	testenv.File(t, ksrc.DefaultSource)
	out := filepath.Join(t.TempDir(), "config")
	code, stdout, stderr := runConfigCLI(t, "config", "--manifest", configTestManifest, "--target", "qemu-microvm",
		"--enable", "CONFIG_IPV6", "--compression", "lzma", "--explain", "-o", out)
	if code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := kconfig.ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, sym := range []string{"IPV6", "EPOLL", "VIRTIO_NET", "CC_OPTIMIZE_FOR_PERFORMANCE", "EROFS_FS", "VIRTIO_BLK", "EROFS_FS_ZIP_LZMA"} {
		if !cfg.Enabled(sym) {
			t.Errorf("%s: CONFIG_%s=%s, want y", out, sym, cfg.Value(sym))
		}
	}
	for _, want := range []string{
		"CONFIG_SERIAL_8250_CONSOLE=y",
		"base (common): console=ttyS0",
		"base (virtio-mmio):",
		"base (erofs):",
		"opt: --opt o2 (-O2)",
		"selected by VIRTIO_MMIO",
		"more symbols are on by Kconfig default",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--explain output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "options built in") {
		t.Errorf("stderr lacks the summary line:\n%s", stderr)
	}

	code, _, stderr = runConfigCLI(t, "config", "--manifest", configTestManifest, "--enable", "SERIAL_AMBA_PL011", "-o", out+".2")
	if code != 1 || !strings.Contains(stderr, "needs ARM_AMBA") {
		t.Errorf("impossible --enable: exit status %d, stderr %q; want 1 and the unmet dependency", code, stderr)
	}
	if _, err := os.Stat(out + ".2"); err == nil {
		t.Errorf("a failed config wrote %s", out+".2")
	}
}
