package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// ModulePath is the Go module bespoke's guest init is built from.
const ModulePath = "github.com/bespoke-os/bespoke"

// InitName is the file name of the guest init binary beside bespoke.
const InitName = "bespoke-init"

// TracerName is the file name of the guest tracer (cmd/bespoke-guest-trace)
// beside bespoke: bespoke verify adds it to an image to trace the program
// inside the guest.
const TracerName = "bespoke-guest-trace"

// ErrNoInit means no guest init binary could be found or built.
var ErrNoInit = errors.New("guest init binary (bespoke-init) not found: run 'make', which builds bin/bespoke and bin/bespoke-init side by side, or set BESPOKE_INIT")

// toolBinary is a static binary of bespoke's own beside bespoke: one it
// puts into images, or the compiler wrapper of profile-guided builds.
type toolBinary struct {
	name string   // file name beside bespoke, and in the cache
	env  string   // variable that overrides where it is
	dirs []string // its sources, relative to the module root; dirs[0] is its main package
	err  error    // when it can be neither found nor built
}

var (
	initBinary = toolBinary{InitName, "BESPOKE_INIT",
		[]string{"cmd/" + InitName, "internal/guestinit"}, ErrNoInit}
	tracerBinary = toolBinary{TracerName, "BESPOKE_GUEST_TRACE",
		[]string{"cmd/" + TracerName, "internal/trace", "internal/elfdeps", "internal/manifest", "internal/guestinit/protocol"},
		errors.New("guest tracer binary (bespoke-guest-trace) not found: run 'make', which builds it beside bin/bespoke, or set BESPOKE_GUEST_TRACE")}
)

// CCName is the file name of the compiler wrapper (cmd/bespoke-cc) beside
// bespoke: the CC of a profile-guided kernel build.
const CCName = "bespoke-cc"

var ccBinary = toolBinary{CCName, "BESPOKE_CC_WRAPPER",
	[]string{"cmd/" + CCName, "internal/pgo"},
	errors.New("compiler wrapper (bespoke-cc) not found: run 'make', which builds it beside bin/bespoke, or set BESPOKE_CC_WRAPPER")}

// LDName is the file name of the linker wrapper (cmd/bespoke-ld) beside
// bespoke: the LD of a --kernel-dce kernel build.
const LDName = "bespoke-ld"

var ldBinary = toolBinary{LDName, "BESPOKE_LD_WRAPPER",
	[]string{"cmd/" + LDName, "internal/kdce"},
	errors.New("linker wrapper (bespoke-ld) not found: run 'make', which builds it beside bin/bespoke, or set BESPOKE_LD_WRAPPER")}

// LDBinary returns the host path of the linker wrapper, found as
// InitBinary finds the init.
func LDBinary(ctx context.Context, cacheDir string) (string, error) {
	return ldBinary.find(ctx, cacheDir)
}

// CCBinary returns the host path of the compiler wrapper, found as
// InitBinary finds the init.
func CCBinary(ctx context.Context, cacheDir string) (string, error) {
	return ccBinary.find(ctx, cacheDir)
}

// InitBinary returns the host path of the guest init: $BESPOKE_INIT when
// set; else bespoke-init beside the running executable; else, when the go
// tool and this module's source are at hand (tests, go run), a build of
// cmd/bespoke-init cached in cacheDir under a hash of its sources.
func InitBinary(ctx context.Context, cacheDir string) (string, error) {
	return initBinary.find(ctx, cacheDir)
}

// TracerBinary returns the host path of the guest tracer, found as
// InitBinary finds the init ($BESPOKE_GUEST_TRACE, beside bespoke, or
// built from source).
func TracerBinary(ctx context.Context, cacheDir string) (string, error) {
	return tracerBinary.find(ctx, cacheDir)
}

func (g toolBinary) find(ctx context.Context, cacheDir string) (string, error) {
	if p := os.Getenv(g.env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("finding %s: %s: %w", g.name, g.env, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), g.name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	root, ok := moduleRoot(ctx)
	if !ok {
		return "", g.err
	}
	return g.build(ctx, root, cacheDir)
}

// moduleRoot finds bespoke's source tree: the module of the current
// directory, or the one this file was compiled from.
func moduleRoot(ctx context.Context) (string, bool) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", false
	}
	var candidates []string
	if out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			candidates = append(candidates, filepath.Dir(gomod))
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", ".."))
	}
	for _, dir := range candidates {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == ModulePath {
				if _, err := os.Stat(filepath.Join(dir, "cmd", InitName)); err == nil {
					return filepath.Clean(dir), true
				}
			}
		}
	}
	return "", false
}

// sourceHash hashes what g is built from: its packages' Go files, go.mod,
// go.sum and the Go version.
func (g toolBinary) sourceHash(ctx context.Context, root string) (string, error) {
	h := sha256.New()
	var files []string
	for _, dir := range g.dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	sort.Strings(files)
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(f, "go.sum")) {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("running go env: %w", err)
	}
	h.Write(out)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// InitBuildArgs are the go build arguments for the guest binaries (after
// "go build"): small, static, reproducible.
var InitBuildArgs = []string{"-trimpath", "-ldflags=-s -w"}

func (g toolBinary) build(ctx context.Context, root, cacheDir string) (string, error) {
	sum, err := g.sourceHash(ctx, root)
	if err != nil {
		return "", fmt.Errorf("hashing the sources of %s: %w", g.name, err)
	}
	dir := filepath.Join(cacheDir, "init")
	out := filepath.Join(dir, g.name+"-"+sum)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("building %s: %w", g.name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+g.name+"-*")
	if err != nil {
		return "", fmt.Errorf("building %s: %w", g.name, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"build"}, InitBuildArgs...)
	args = append(args, "-o", tmp.Name(), ModulePath+"/"+g.dirs[0])
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s (go %s): %w\n%s", g.name, strings.Join(args, " "), err, stderr.String())
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("building %s: %w", g.name, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("building %s: %w", g.name, err)
	}
	return out, nil
}
