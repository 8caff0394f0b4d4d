// Package kconfig writes a kernel .config specialized for one application
// on one VMM: a small documented base fragment per target (base/*.config),
// plus the options the manifest's facts require (internal/features), plus
// the user's --enable and --disable, resolved by the kernel's own kconfig
// (allnoconfig with the fragment as KCONFIG_ALLCONFIG, in a temporary
// O= directory; the source tree is never written).
//
// Every requested symbol is checked afterwards: one kconfig could not set
// is an error naming the unmet dependency, found by a small parser of the
// Kconfig files (ParseKconfig); an unknown symbol is an error of its own.
// The same parse explains each enabled symbol (base, manifest, user,
// dependency of X, selected by X).
//
// Config reads and writes .config files for other packages.
package kconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Opt values: the compiler optimisation the kernel is built with.
const (
	OptO2   = "o2"   // CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE (-O2), the default
	OptSize = "size" // CONFIG_CC_OPTIMIZE_FOR_SIZE (-Os)
)

// Options says what Generate configures.
type Options struct {
	Tree   *ksrc.Tree // the kernel source (from ksrc.Prepare)
	Target string     // one of Targets; "" means DefaultTarget
	Opt    string     // OptO2 or OptSize; "" means OptO2
	// Manifest supplies the application's options through the feature
	// knowledge. Nil means base only.
	Manifest *manifest.Manifest
	// Net adds the network part even when the manifest has no IP socket.
	Net bool
	// Root is the image's root filesystem, one of Roots: its base part
	// ("" is "initramfs").
	Root string
	// Enable and Disable are the user's symbols: SYM or CONFIG_SYM, and
	// SYM=value for string, int and hex options (Enable only).
	Enable, Disable []string
	// CacheDir holds the built kconfig tool (kconfig-<tree ID>); "" means
	// ksrc.CacheDir().
	CacheDir string
	Log      io.Writer // kconfig's output and progress; nil discards
	// Base, when set, is a whole .config the result starts from (an
	// image's, for bespoke verify --fix): it comes first in the fragment,
	// and only Enable and Disable are requested on top of it, not the
	// base parts, the optimisation or the manifest.
	Base []byte
	// MakeVars are make variables of the kconfig run that choose the
	// toolchain Kconfig sees (LLVM=-14: CC_IS_CLANG, and the LTO options
	// with it).
	MakeVars []string
}

// Result is a generated configuration.
type Result struct {
	Config   *Config
	Data     []byte // the .config as written by kconfig
	Yes      int    // number of =y symbols
	Fragment []byte // the KCONFIG_ALLCONFIG fragment given to kconfig
	Parts    []string
	// Requests are the symbols asked of kconfig, all verified.
	Requests []Request
	// Explanation says why each requested or selected symbol is on;
	// Defaults counts the =y symbols on only by a Kconfig default.
	Explanation []Explanation
	Defaults    int
}

// NeedsNet reports whether m uses IP networking: an AF_INET or AF_INET6
// socket, or an address bound in one of those families.
func NeedsNet(m *manifest.Manifest) bool {
	if m == nil {
		return false
	}
	for _, s := range m.Sockets {
		if s.Domain == "AF_INET" || s.Domain == "AF_INET6" {
			return true
		}
	}
	for _, l := range m.Listen {
		if l.Family == "AF_INET" || l.Family == "AF_INET6" {
			return true
		}
	}
	return false
}

// Requests returns everything opts asks of kconfig, before dependencies
// are added: the base parts, the optimisation, the manifest's features and
// the user's symbols, later ones overriding earlier ones.
func Requests(opts Options) (parts []string, reqs []Request, err error) {
	if opts.Base != nil {
		reqs, err := userRequests(opts)
		return nil, reqs, err
	}
	target := opts.Target
	if target == "" {
		target = DefaultTarget
	}
	parts, err = BaseParts(target, opts.Net || NeedsNet(opts.Manifest), opts.Root)
	if err != nil {
		return nil, nil, err
	}
	reqs, err = baseRequests(parts)
	if err != nil {
		return nil, nil, err
	}
	switch opts.Opt {
	case "", OptO2:
		reqs = append(reqs, Request{Symbol: "CC_OPTIMIZE_FOR_PERFORMANCE", Value: "y", Kind: KindOpt, Reason: "--opt o2 (-O2)"})
	case OptSize:
		reqs = append(reqs, Request{Symbol: "CC_OPTIMIZE_FOR_SIZE", Value: "y", Kind: KindOpt, Reason: "--opt size (-Os)"})
	default:
		return nil, nil, fmt.Errorf("unknown optimisation %q (want o2 or size)", opts.Opt)
	}
	if opts.Manifest != nil {
		for _, r := range features.Required(opts.Manifest) {
			reqs = append(reqs, Request{Symbol: r.Symbol, Value: "y", Kind: KindManifest, Reason: strings.Join(r.Facts, "; ")})
		}
	}
	user, err := userRequests(opts)
	if err != nil {
		return nil, nil, err
	}
	return parts, append(reqs, user...), nil
}

// userRequests returns the requests of opts.Enable and opts.Disable.
func userRequests(opts Options) ([]Request, error) {
	var reqs []Request
	for _, a := range opts.Enable {
		r, err := userRequest(a, true)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	for _, a := range opts.Disable {
		r, err := userRequest(a, false)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// Fragment renders requests as a KCONFIG_ALLCONFIG fragment.
func Fragment(reqs []Request) []byte {
	var b bytes.Buffer
	for _, r := range reqs {
		if r.Value == "n" {
			fmt.Fprintf(&b, "# CONFIG_%s is not set\n", r.Symbol)
		} else {
			fmt.Fprintf(&b, "CONFIG_%s=%s\n", r.Symbol, r.Value)
		}
	}
	return b.Bytes()
}

// Generate writes the configuration opts describe, with the kernel's own
// kconfig, and verifies it. The error for a symbol kconfig could not set
// wraps ErrUnmet, for an unknown symbol ErrUnknownOption.
func Generate(ctx context.Context, opts Options) (*Result, error) {
	if opts.Tree == nil {
		return nil, errors.New("generating kernel config: no kernel source tree")
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	parts, reqs, err := Requests(opts)
	if err != nil {
		return nil, err
	}
	logOverrides(log, reqs)
	kc, err := ParseKconfig(opts.Tree.Dir, "x86")
	if err != nil {
		return nil, fmt.Errorf("reading the Kconfig files of %s: %w", opts.Tree.Dir, err)
	}
	var unknown []string
	for _, r := range reqs {
		if kc.Symbols[r.Symbol] == nil {
			unknown = append(unknown, r.Symbol)
		}
	}
	if len(unknown) > 0 {
		kc.scanOtherArchs(opts.Tree.Dir, "x86", unknown)
	}
	reqs, err = plan(kc, reqs, opts.Tree.Version)
	if err != nil {
		return nil, err
	}
	frag := append(slices.Clone(opts.Base), Fragment(reqs)...)
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		if cacheDir, err = ksrc.CacheDir(); err != nil {
			return nil, err
		}
	}
	data, err := runKconfig(ctx, opts.Tree, cacheDir, frag, opts.MakeVars, log)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	// An unknown symbol mentioned in an unmet dependency gets its
	// architectures too.
	var deps []string
	for _, r := range reqs {
		for _, d := range kc.Symbols[r.Symbol].Defs {
			_, needs := unmet(d.Deps(), cfg.Value)
			for _, n := range needs {
				if kc.Symbols[strings.TrimPrefix(n, "!")] == nil {
					deps = append(deps, strings.TrimPrefix(n, "!"))
				}
			}
		}
	}
	if len(deps) > 0 {
		kc.scanOtherArchs(opts.Tree.Dir, "x86", deps)
	}
	if err := check(kc, cfg, reqs); err != nil {
		return nil, err
	}
	ex, defaults := explain(kc, cfg, reqs)
	return &Result{
		Config: cfg, Data: data, Yes: cfg.Count("y"), Fragment: frag, Parts: parts,
		Requests: reqs, Explanation: ex, Defaults: defaults,
	}, nil
}

// logOverrides notes each request that changes the value an earlier one
// asked for, e.g. a --disable of a base option.
func logOverrides(log io.Writer, reqs []Request) {
	seen := map[string]Request{}
	for _, r := range reqs {
		if prev, ok := seen[r.Symbol]; ok && prev.Value != r.Value {
			fmt.Fprintf(log, "note: CONFIG_%s=%s (%s) overrides CONFIG_%s=%s (%s)\n",
				r.Symbol, r.Value, r.origin(), r.Symbol, prev.Value, prev.origin())
		}
		seen[r.Symbol] = r
	}
}

// runKconfig runs `make allnoconfig` with frag as KCONFIG_ALLCONFIG in a
// temporary O= directory seeded from the cached kconfig tool build, and
// returns the .config.
func runKconfig(ctx context.Context, tree *ksrc.Tree, cacheDir string, frag []byte, vars []string, log io.Writer) ([]byte, error) {
	tool, err := kconfigTool(ctx, tree, cacheDir, log)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "bespoke-kconfig-*")
	if err != nil {
		return nil, fmt.Errorf("running kconfig: %w", err)
	}
	defer os.RemoveAll(work)
	if out, err := exec.CommandContext(ctx, "cp", "-a", tool+"/.", work).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the kconfig tool from %s: %v: %s", tool, err, out)
	}
	os.Remove(filepath.Join(work, ".config"))
	fragPath := filepath.Join(work, "bespoke.fragment")
	if err := os.WriteFile(fragPath, frag, 0o644); err != nil {
		return nil, fmt.Errorf("running kconfig: %w", err)
	}
	if err := makeAllnoconfig(ctx, tree, work, fragPath, vars, log); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(work, ".config"))
	if err != nil {
		return nil, fmt.Errorf("reading the .config kconfig wrote: %w", err)
	}
	return data, nil
}

// makeAllnoconfig runs the kernel's allnoconfig in dir.
func makeAllnoconfig(ctx context.Context, tree *ksrc.Tree, dir, frag string, vars []string, log io.Writer) error {
	args := append([]string{"-s", "-C", tree.Dir, "O=" + dir}, vars...)
	if frag != "" {
		args = append(args, "KCONFIG_ALLCONFIG="+frag)
	}
	args = append(args, "allnoconfig")
	fmt.Fprintf(log, "make %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "make", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// kconfig's warnings (overrides, selects of unmet dependencies) are
	// worth seeing: pass them on.
	for _, l := range strings.Split(out.String(), "\n") {
		if ll := strings.ToLower(l); strings.Contains(ll, "warning") || strings.Contains(ll, "override") || strings.Contains(ll, "error") ||
			strings.HasPrefix(ll, "  depends on") || strings.HasPrefix(ll, "  selected by") {
			fmt.Fprintln(log, l)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("running kconfig (make allnoconfig): %v: %s (is build-essential, flex and bison installed? run bespoke doctor)",
			err, strings.TrimSpace(lastLines(out.String(), 5)))
	}
	return nil
}

// kconfigTool returns the cached O= directory holding the built kconfig
// tool (scripts/kconfig/conf) for tree, building it on first use.
func kconfigTool(ctx context.Context, tree *ksrc.Tree, cacheDir string, log io.Writer) (string, error) {
	dir := filepath.Join(cacheDir, "kconfig-"+tree.ID)
	if _, err := os.Stat(filepath.Join(dir, "scripts", "kconfig", "conf")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".kconfig-*")
	if err != nil {
		return "", fmt.Errorf("creating cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "building the kconfig tool of Linux %s in %s ...\n", tree.Version, dir)
	start := time.Now()
	if err := makeAllnoconfig(ctx, tree, tmp, "", nil, log); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, "scripts", "kconfig", "conf")); err2 == nil {
			return dir, nil // built by another process meanwhile
		}
		return "", fmt.Errorf("moving the kconfig tool into the cache: %w", err)
	}
	fmt.Fprintf(log, "built the kconfig tool in %s\n", time.Since(start).Round(time.Second))
	return dir, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
