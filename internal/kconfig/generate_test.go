package kconfig

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// realTree prepares the default kernel source (full tier).
func realTree(t *testing.T) (*ksrc.Tree, string) {
	t.Helper()
	testenv.File(t, ksrc.DefaultSource)
	testenv.Command(t, "make")
	cache, err := ksrc.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := ksrc.Prepare(context.Background(), "", cache, &testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	return tree, cache
}

type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestGenerateRedisMicrovm(t *testing.T) {
	tree, cache := realTree(t)
	m, err := manifest.ReadFile("testdata/redis.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(context.Background(), Options{
		Tree: tree, Target: "qemu-microvm", Opt: OptO2, Manifest: m, CacheDir: cache, Log: &testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read the .config back as bytes, independently of res.Config.
	cfg, err := ParseConfig(bytes.NewReader(res.Data))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Requests {
		if got := cfg.Value(r.Symbol); got != r.Value {
			t.Errorf("CONFIG_%s=%s, want %s (%s)", r.Symbol, got, r.Value, r.origin())
		}
	}
	for _, r := range features.Required(m) {
		if !cfg.Enabled(r.Symbol) {
			t.Errorf("CONFIG_%s (required by %s) is %s, want y", r.Symbol, strings.Join(r.Facts, "; "), cfg.Value(r.Symbol))
		}
	}
	for _, sym := range []string{"CC_OPTIMIZE_FOR_PERFORMANCE", "VIRTIO_NET", "VIRTIO_MMIO_CMDLINE_DEVICES", "INET", "SERIAL_8250_CONSOLE", "RD_XZ"} {
		if !cfg.Enabled(sym) {
			t.Errorf("CONFIG_%s=%s, want y", sym, cfg.Value(sym))
		}
	}
	for _, sym := range []string{"CC_OPTIMIZE_FOR_SIZE", "PCI", "ACPI", "MODULES"} {
		if cfg.Enabled(sym) {
			t.Errorf("CONFIG_%s=y, want it off on microvm", sym)
		}
	}
	if res.Yes != cfg.Count("y") {
		t.Errorf("Result.Yes = %d, the .config has %d =y", res.Yes, cfg.Count("y"))
	}
	t.Logf("qemu-microvm redis config: %d =y symbols, %d explained, %d by default", res.Yes, len(res.Explanation), res.Defaults)
	if res.Yes > 600 {
		t.Errorf("%d =y symbols, want at most 600", res.Yes)
	}
	explained := map[string]bool{}
	for _, e := range res.Explanation {
		explained[e.Symbol] = true
	}
	for _, sym := range []string{"VIRTIO", "SERIAL_CORE"} { // selected by the transport and the 8250 driver
		if !explained[sym] {
			t.Errorf("CONFIG_%s is not explained", sym)
		}
	}

	// The -Os variant of a built config (bespoke build --size-report):
	// the choice switches, as Kconfig sees it.
	sz, err := Generate(context.Background(), Options{Tree: tree, Base: res.Data, Enable: []string{"CC_OPTIMIZE_FOR_SIZE"}, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !sz.Config.Enabled("CC_OPTIMIZE_FOR_SIZE") || sz.Config.Enabled("CC_OPTIMIZE_FOR_PERFORMANCE") {
		t.Errorf("Base + CC_OPTIMIZE_FOR_SIZE: SIZE=%s PERFORMANCE=%s, want y and off",
			sz.Config.Value("CC_OPTIMIZE_FOR_SIZE"), sz.Config.Value("CC_OPTIMIZE_FOR_PERFORMANCE"))
	}
}

func TestGenerateTargets(t *testing.T) {
	tree, cache := realTree(t)
	for _, target := range Targets {
		res, err := Generate(context.Background(), Options{Tree: tree, Target: target, Net: true, Opt: OptSize, CacheDir: cache})
		if err != nil {
			t.Errorf("%s: %v", target, err)
			continue
		}
		if !res.Config.Enabled("CC_OPTIMIZE_FOR_SIZE") {
			t.Errorf("%s --opt size: CONFIG_CC_OPTIMIZE_FOR_SIZE=%s, want y", target, res.Config.Value("CC_OPTIMIZE_FOR_SIZE"))
		}
		wantPCI := target == "qemu-pc"
		if got := res.Config.Enabled("VIRTIO_PCI"); got != wantPCI {
			t.Errorf("%s: CONFIG_VIRTIO_PCI=%v, want %v", target, got, wantPCI)
		}
		t.Logf("%s with net: %d =y", target, res.Yes)
	}
}

func TestGenerateErrors(t *testing.T) {
	tree, cache := realTree(t)
	tests := []struct {
		name    string
		enable  []string
		disable []string
		is      error
		want    []string // substrings of the error
	}{
		// An AMBA PrimeCell UART: ARM only, its bus ARM_AMBA is never
		// selected on x86_64.
		{"arm-only driver", []string{"SERIAL_AMBA_PL011"}, nil, ErrUnmet,
			[]string{"CONFIG_SERIAL_AMBA_PL011 needs ARM_AMBA", "ARM_AMBA=n", "--enable SERIAL_AMBA_PL011"}},
		{"unknown", []string{"EPOL"}, nil, ErrUnknownOption,
			[]string{"unknown kernel option EPOL (not in Linux 6.12", "did you mean EPOLL"}},
		{"other arch", []string{"ARM64_SVE"}, nil, ErrUnknownOption,
			[]string{"defines it only for arm64"}},
		{"selected", nil, []string{"SERIAL_CORE"}, ErrUnmet,
			[]string{"CONFIG_SERIAL_CORE stays on: selected by", "SERIAL_8250"}},
	}
	for _, tt := range tests {
		_, err := Generate(context.Background(), Options{Tree: tree, Enable: tt.enable, Disable: tt.disable, CacheDir: cache})
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: got error %v, want %v", tt.name, err, tt.is)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tt.name, err, w)
			}
		}
	}
}
