package kconfig

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readConfig(t *testing.T, path string) *Config {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testTree(t *testing.T) *Kconfig {
	t.Helper()
	kc, err := ParseKconfig("testdata/tree", "x86")
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func TestConfigRoundTrip(t *testing.T) {
	// The first 400 lines of Debian's config.amd64_none_cloud-amd64
	// (linux-config-6.12 6.12.117-1~deb12u1).
	path := "testdata/debian-cloud-amd64.config"
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := readConfig(t, path)
	var out bytes.Buffer
	if err := c.Write(&out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(orig), out.String()); diff != "" {
		t.Errorf("Write(ParseConfig(f)) differs from f (-want +got):\n%s", diff)
	}

	var wantY, wantN int
	for _, l := range strings.Split(string(orig), "\n") {
		if strings.HasPrefix(l, "CONFIG_") && strings.HasSuffix(l, "=y") {
			wantY++
		}
		if strings.HasPrefix(l, "# CONFIG_") && strings.HasSuffix(l, " is not set") {
			wantN++
		}
	}
	if got := c.Count("y"); got != wantY {
		t.Errorf("Count(y) = %d, want %d", got, wantY)
	}
	if got := c.Count("n"); got != wantN {
		t.Errorf("Count(n) = %d, want %d", got, wantN)
	}
	for _, tt := range []struct{ sym, want string }{
		{"64BIT", "y"},
		{"CC_VERSION_TEXT", `"x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"`},
		{"LOG_BUF_SHIFT", "17"},
		{"KERNEL_GZIP", "n"},
		{"NOT_IN_FILE", "n"},
	} {
		if got := c.Value(tt.sym); got != tt.want {
			t.Errorf("Value(%s) = %s, want %s", tt.sym, got, tt.want)
		}
	}

	// Changes land in place; new symbols at the end.
	c.Set("KERNEL_GZIP", "y")
	c.Set("64BIT", "n")
	c.Set("BESPOKE_NEW", `"x"`)
	again, err := ParseConfig(strings.NewReader(c.String()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.Symbols(), again.Symbols()); diff != "" {
		t.Errorf("symbols after Set and a round trip (-want +got):\n%s", diff)
	}
	for sym, want := range map[string]string{"KERNEL_GZIP": "y", "64BIT": "n", "BESPOKE_NEW": `"x"`} {
		if got := again.Value(sym); got != want {
			t.Errorf("after Set: Value(%s) = %s, want %s", sym, got, want)
		}
	}
	if !strings.Contains(c.String(), "# CONFIG_64BIT is not set\n") {
		t.Errorf("Set(64BIT, n) did not write a not-set line")
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, in := range []string{"CONFIG_FOO\n", "FOO=y\n", "CONFIG_=y\n"} {
		if _, err := ParseConfig(strings.NewReader(in)); err == nil {
			t.Errorf("ParseConfig(%q): got no error, want one", in)
		}
	}
}

func TestParseKconfig(t *testing.T) {
	kc := testTree(t)
	tests := []struct {
		sym, typ, deps string
		prompt         bool
		selects        []string
	}{
		{sym: "IPV6", typ: "tristate", deps: "NET && INET", prompt: true, selects: []string{"CRYPTO_LIB_SHA1"}},
		{sym: "VIRTIO_NET", typ: "tristate", deps: "NET && VIRTIO", prompt: true, selects: []string{"NET_FAILOVER"}},
		{sym: "SERIAL_AMBA", typ: "bool", deps: "NET && ARM_AMBA && !X86_32", prompt: true},
		{sym: "EPOLL", typ: "bool", prompt: true},
		{sym: "FUTEX", typ: "bool", deps: "!(SPARC32 && SMP)", prompt: true},
		{sym: "CC_OPTIMIZE_FOR_SIZE", typ: "bool", prompt: true},
		{sym: "X86", typ: "bool", selects: []string{"HAVE_PCI"}},
		{sym: "NR_CPUS", typ: "int", prompt: true},
		{sym: "NLATTR", typ: "bool"},
	}
	for _, tt := range tests {
		s := kc.Symbols[tt.sym]
		if s == nil {
			t.Errorf("%s: not parsed", tt.sym)
			continue
		}
		d := s.Defs[0]
		deps := ""
		if e := d.Deps(); e != nil {
			deps = e.String()
		}
		var sels []string
		for _, sel := range d.Selects {
			sels = append(sels, sel.Symbol)
		}
		got := []any{s.Type, deps, d.Prompt, sels}
		want := []any{tt.typ, tt.deps, tt.prompt, tt.selects}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: type, deps, prompt, selects (-want +got):\n%s", tt.sym, diff)
		}
	}
	if _, ok := kc.Symbols["ARM64"]; ok {
		t.Errorf("ARM64 parsed for x86: only arch/x86 may be sourced")
	}
	if e := kc.Symbols["EPOLL"].Defs[0].PromptIf; e == nil || e.String() != "EXPERT" {
		t.Errorf("EPOLL prompt condition = %v, want EXPERT", e)
	}
}

func TestParseExpr(t *testing.T) {
	vals := map[string]string{"A": "y", "B": "n", "M": "m", "S": `"ttyS0"`, "N": "64"}
	v := func(s string) string {
		if x, ok := vals[s]; ok {
			return x
		}
		return "n"
	}
	tests := []struct {
		in   string
		want int
	}{
		{"A", 2}, {"B", 0}, {"!B", 2}, {"A && B", 0}, {"A || B", 2}, {"M", 1},
		{"A && !(B || C)", 2}, {"S = \"ttyS0\"", 2}, {"S != \"ttyS0\"", 0},
		{"N >= 32", 2}, {"N < 32", 0}, {"A=y", 2}, {"B!=n", 0}, {"$(cc-option,-mfoo)", 2},
	}
	for _, tt := range tests {
		e, err := parseExpr(tt.in)
		if err != nil {
			t.Errorf("parseExpr(%q): %v", tt.in, err)
			continue
		}
		if got := eval(e, v); got != tt.want {
			t.Errorf("eval(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"A &&", "(A", "A B", "= A"} {
		if _, err := parseExpr(bad); err == nil {
			t.Errorf("parseExpr(%q): got no error, want one", bad)
		}
	}
}

func TestPlanAddsDependencies(t *testing.T) {
	kc := testTree(t)
	reqs, err := plan(kc, []Request{
		{Symbol: "IPV6", Value: "y", Kind: KindManifest, Reason: "socket(AF_INET6) x1"},
		{Symbol: "VIRTIO_MMIO", Value: "y", Kind: KindUser, Reason: "--enable VIRTIO_MMIO"},
		{Symbol: "VIRTIO_NET", Value: "y", Kind: KindUser, Reason: "--enable VIRTIO_NET"},
		{Symbol: "CMDLINE", Value: "console=ttyS0", Kind: KindUser, Reason: "--enable CMDLINE=console=ttyS0"},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		got = append(got, r.Symbol+"="+r.Value+" "+r.Kind+" "+r.By)
	}
	want := []string{
		"IPV6=y manifest ",
		"VIRTIO_MMIO=y user ",
		"VIRTIO_NET=y user ",
		`CMDLINE="console=ttyS0" user `,
		"NET=y dependency IPV6",
		"INET=y dependency IPV6",
		// VIRTIO has no prompt: it cannot be requested, only selected.
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("planned requests (-want +got):\n%s", diff)
	}
}

func TestUnknownOption(t *testing.T) {
	kc := testTree(t)
	kc.scanOtherArchs("testdata/tree", "x86", []string{"IPV4", "ARM64"})
	tests := []struct {
		sym  string
		want string
	}{
		{"IPV4", "unknown kernel option IPV4 (not in Linux 6.12 Kconfig for x86_64); did you mean IPV6?"},
		{"ARM64", "unknown kernel option ARM64 (Linux 6.12 defines it only for arm64, not x86_64)"},
	}
	for _, tt := range tests {
		_, err := plan(kc, []Request{{Symbol: tt.sym, Value: "y", Kind: KindUser, Reason: "--enable " + tt.sym}}, "6.12")
		if !errors.Is(err, ErrUnknownOption) {
			t.Errorf("%s: got error %v, want ErrUnknownOption", tt.sym, err)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s: got error\n%s\nwant\n%s", tt.sym, err, tt.want)
		}
	}
}

func TestCheckUnmet(t *testing.T) {
	kc := testTree(t)
	// What kconfig would make of the requests below: NET and INET on,
	// VIRTIO_NET and SERIAL_AMBA left off, NLATTR selected by NET.
	cfg, err := ParseConfig(strings.NewReader(`CONFIG_64BIT=y
CONFIG_NET=y
CONFIG_INET=y
CONFIG_NLATTR=y
# CONFIG_VIRTIO_NET is not set
CONFIG_CC_OPTIMIZE_FOR_SIZE=y
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		req  Request
		want string // "" for no error
	}{
		{Request{Symbol: "INET", Value: "y", Kind: KindBase, Part: "net"}, ""},
		{Request{Symbol: "VIRTIO_NET", Value: "y", Kind: KindUser, Reason: "--enable VIRTIO_NET"},
			"CONFIG_VIRTIO_NET needs VIRTIO (depends on NET && VIRTIO; VIRTIO=n); VIRTIO has no prompt: it is on only when selected (by VIRTIO_MMIO); asked by --enable VIRTIO_NET"},
		{Request{Symbol: "SERIAL_AMBA", Value: "y", Kind: KindManifest, Reason: "open /dev/ttyAMA0 x1"},
			"CONFIG_SERIAL_AMBA needs ARM_AMBA (depends on NET && ARM_AMBA && !X86_32; ARM_AMBA=n); ARM_AMBA has no prompt and nothing selects it on x86_64; required by the manifest: open /dev/ttyAMA0 x1"},
		{Request{Symbol: "NLATTR", Value: "n", Kind: KindUser, Reason: "--disable NLATTR"},
			"CONFIG_NLATTR stays on: selected by NET (disable those too); asked by --disable NLATTR"},
		{Request{Symbol: "CC_OPTIMIZE_FOR_PERFORMANCE", Value: "y", Kind: KindOpt, Reason: "--opt o2 (-O2)"},
			"CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is in a choice with CONFIG_CC_OPTIMIZE_FOR_SIZE, which is on; asked by --opt o2 (-O2)"},
		{Request{Symbol: "EPOLL", Value: "y", Kind: KindDependency, By: "X"},
			"CONFIG_EPOLL can be set only if EXPERT (EXPERT=n); needed by CONFIG_X"},
		{Request{Symbol: "DEBUG_KERNEL", Value: "y", Kind: KindBase, Part: "common"},
			"CONFIG_DEBUG_KERNEL has no prompt: only a select or a default can set it (selected by EXPERT); from the common base fragment"},
	}
	for _, tt := range tests {
		err := check(kc, cfg, []Request{tt.req})
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrUnmet) {
				t.Errorf("%s: error %v does not wrap ErrUnmet", tt.req.Symbol, err)
			}
		}
		if got != tt.want {
			t.Errorf("%s: got error\n%s\nwant\n%s", tt.req.Symbol, got, tt.want)
		}
	}
}

func TestExplainGolden(t *testing.T) {
	kc := testTree(t)
	frag, err := os.ReadFile("testdata/explain.fragment")
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := ParseFragment("test", string(frag))
	if err != nil {
		t.Fatal(err)
	}
	reqs = append(reqs,
		Request{Symbol: "CC_OPTIMIZE_FOR_PERFORMANCE", Value: "y", Kind: KindOpt, Reason: "--opt o2 (-O2)"},
		Request{Symbol: "IPV6", Value: "y", Kind: KindManifest, Reason: "socket(AF_INET6, SOCK_STREAM, 0) x2; bind [::]:6379"},
		Request{Symbol: "EPOLL", Value: "y", Kind: KindManifest, Reason: "epoll_wait x24"},
		Request{Symbol: "NR_CPUS", Value: "8", Kind: KindUser, Reason: "--enable NR_CPUS=8"},
	)
	reqs, err = plan(kc, reqs, "test")
	if err != nil {
		t.Fatal(err)
	}
	// testdata/explain.config is what kconfig made of these requests.
	cfg := readConfig(t, "testdata/explain.config")
	if err := check(kc, cfg, reqs); err != nil {
		t.Fatalf("check: %v", err)
	}
	ex, defaults := explain(kc, cfg, reqs)
	var got bytes.Buffer
	if err := WriteExplanation(&got, ex, defaults); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/explain.golden"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestExplainGolden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("--explain output differs from %s (-want +got; rerun with -update if the change is right):\n%s", golden, diff)
	}
}

func TestBaseFragments(t *testing.T) {
	for _, target := range Targets {
		for _, root := range Roots {
			for _, net := range []bool{false, true} {
				parts, err := BaseParts(target, net, root)
				if err != nil {
					t.Fatal(err)
				}
				reqs, err := baseRequests(parts)
				if err != nil {
					t.Errorf("%s %s net=%v: %v", target, root, net, err)
					continue
				}
				seen := map[string]bool{}
				for _, r := range reqs {
					if r.Reason == "" {
						t.Errorf("%s: CONFIG_%s has no reason", r.Part, r.Symbol)
					}
					if seen[r.Symbol] {
						t.Errorf("%s %s net=%v: CONFIG_%s listed twice", target, root, net, r.Symbol)
					}
					seen[r.Symbol] = true
				}
				for _, sym := range []string{"SERIAL_8250_CONSOLE", "BINFMT_ELF", "DEVTMPFS", "TMPFS", "MULTIUSER"} {
					if !seen[sym] {
						t.Errorf("%s: base lacks CONFIG_%s", target, sym)
					}
				}
				erofs := root == "erofs"
				for sym, want := range map[string]bool{"VIRTIO_NET": net, "BLK_DEV_INITRD": !erofs, "RD_XZ": !erofs,
					"EROFS_FS": erofs, "VIRTIO_BLK": erofs, "OVERLAY_FS": erofs} {
					if seen[sym] != want {
						t.Errorf("%s %s net=%v: CONFIG_%s in base = %v, want %v", target, root, net, sym, seen[sym], want)
					}
				}
				transport := map[string]string{"qemu-pc": "VIRTIO_PCI", "qemu-microvm": "VIRTIO_MMIO_CMDLINE_DEVICES", "firecracker": "VIRTIO_MMIO_CMDLINE_DEVICES"}[target]
				if got := seen[transport]; got != (net || erofs) {
					t.Errorf("%s %s net=%v: %s in base = %v", target, root, net, transport, got)
				}
			}
		}
	}
	if _, err := BaseParts("bochs", false, ""); err == nil {
		t.Errorf("BaseParts(bochs): got no error, want one")
	}
	if _, err := BaseParts("qemu-pc", false, "ext4"); err == nil || !strings.Contains(err.Error(), `unknown root "ext4"`) {
		t.Errorf("BaseParts with root ext4: %v, want an error naming it", err)
	}
	if _, err := ParseFragment("x", "CONFIG_FOO=y\n"); err == nil {
		t.Errorf("ParseFragment of an option without a reason: got no error, want one")
	}
}

func TestUserRequest(t *testing.T) {
	tests := []struct {
		arg    string
		enable bool
		want   string // Symbol=Value, or "error"
	}{
		{"EPOLL", true, "EPOLL=y"},
		{"CONFIG_EPOLL", true, "EPOLL=y"},
		{"CMDLINE=quiet", true, "CMDLINE=quiet"},
		{"NR_CPUS=8", true, "NR_CPUS=8"},
		{"IPV6=n", true, "IPV6=n"},
		{"IPV6=m", true, "error"},
		{"CONFIG_IPV6", false, "IPV6=n"},
		{"IPV6=y", false, "error"},
		{"not a symbol", true, "error"},
	}
	for _, tt := range tests {
		r, err := userRequest(tt.arg, tt.enable)
		got := r.Symbol + "=" + r.Value
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("userRequest(%q, %v) = %s (%v), want %s", tt.arg, tt.enable, got, err, tt.want)
		}
	}
}

func TestManifestToFragment(t *testing.T) {
	m := &manifest.Manifest{
		Syscalls: []manifest.Syscall{{Name: "epoll_create1", Count: 1}, {Name: "epoll_wait", Count: 120}, {Name: "socket", Count: 2}},
		Sockets:  []manifest.Socket{{Domain: "AF_INET6", Type: "SOCK_STREAM", Count: 1, Result: "ok"}},
		Listen:   []manifest.Listen{{Family: "AF_INET6", Type: "SOCK_STREAM", Address: "::", Port: 6379, Listening: true}},
	}
	m.Normalize()
	if !NeedsNet(m) {
		t.Errorf("NeedsNet = false for a manifest with an AF_INET6 socket, want true")
	}
	parts, reqs, err := Requests(Options{Target: "qemu-microvm", Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	frag := string(Fragment(merge(reqs)))
	for _, want := range []string{"CONFIG_EPOLL=y\n", "CONFIG_IPV6=y\n", "CONFIG_VIRTIO_NET=y\n", "CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE=y\n"} {
		if !strings.Contains(frag, want) {
			t.Errorf("fragment lacks %q:\n%s", want, frag)
		}
	}
	if diff := cmp.Diff([]string{"common", "qemu-microvm", "net", "virtio-mmio", "initramfs"}, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	var ipv6 *Request
	for i := range reqs {
		if reqs[i].Symbol == "IPV6" {
			ipv6 = &reqs[i]
		}
	}
	if ipv6 == nil || ipv6.Kind != KindManifest || ipv6.Reason == "" {
		t.Errorf("IPV6 request = %+v, want one from the manifest with its facts", ipv6)
	}

	// Without an IP socket there is no net part; --disable wins over the base.
	_, reqs, err = Requests(Options{Target: "qemu-pc", Opt: OptSize, Disable: []string{"SMP"}})
	if err != nil {
		t.Fatal(err)
	}
	frag = string(Fragment(merge(reqs)))
	for _, want := range []string{"# CONFIG_SMP is not set\n", "CONFIG_CC_OPTIMIZE_FOR_SIZE=y\n"} {
		if !strings.Contains(frag, want) {
			t.Errorf("fragment lacks %q:\n%s", want, frag)
		}
	}
	for _, unwanted := range []string{"CONFIG_VIRTIO_NET", "CONFIG_SMP=y", "CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE"} {
		if strings.Contains(frag, unwanted) {
			t.Errorf("fragment has %q:\n%s", unwanted, frag)
		}
	}
}
