package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// keySchema changes when the layout of a build dir or the way bespoke
// drives make changes, so that old cache entries are not reused.
const keySchema = "bespoke-kbuild-1"

// Toolchain identifies the host tools whose version changes the binary.
type Toolchain struct {
	GCC  string `json:"gcc"`  // first line of `gcc --version`
	Make string `json:"make"` // first line of `make --version`
	LD   string `json:"ld"`   // first line of `ld --version`
}

// DetectToolchain runs the tools with --version.
func DetectToolchain(ctx context.Context) (Toolchain, error) {
	var tc Toolchain
	for _, t := range []struct {
		name string
		dst  *string
	}{{"gcc", &tc.GCC}, {"make", &tc.Make}, {"ld", &tc.LD}} {
		out, err := exec.CommandContext(ctx, t.name, "--version").Output()
		if err != nil {
			return tc, fmt.Errorf("running %s --version: %w (run 'bespoke doctor' to see what to install)", t.name, err)
		}
		line, _, _ := strings.Cut(string(out), "\n")
		*t.dst = strings.TrimSpace(line)
	}
	return tc, nil
}

// KeyInput is everything that decides what a kernel build produces.
// Anything else (job count, output dir, where the tree is unpacked) is
// left out on purpose: it does not change the kernel.
type KeyInput struct {
	SourceID  string    // ksrc.Tree.ID
	Config    []byte    // the .config given to the build
	Toolchain Toolchain // compiler, make and linker versions
	CC        string    // the CC make variable ("gcc", "ccache gcc", a wrapper)
	MakeVars  []string  // extra make arguments, in order (KCFLAGS=..., LLVM=1)
	Targets   []string  // make targets
	Extra     []string  // caller-defined inputs (e.g. a profile's hash)
	// RemoveSyscalls are syscall numbers removed from the table (none:
	// the key is as before there were any).
	RemoveSyscalls []int
	// LinkerScript names the way the build rewrites the generated linker
	// script (ldsRewrite; "": the key is as before there was a rewrite).
	// Like the config, it is not part of a lineage: a build dir continues
	// with a relink.
	LinkerScript string
}

// Key returns the cache key for in: 16 hex digits.
func Key(in KeyInput) string {
	h := sha256.New()
	field := func(name string, vals ...string) {
		fmt.Fprintf(h, "%s %d\n", name, len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, "%d:%s\n", len(v), v)
		}
	}
	field("schema", keySchema)
	field("source", in.SourceID)
	field("config", normalizeConfig(in.Config)...)
	field("toolchain", in.Toolchain.GCC, in.Toolchain.Make, in.Toolchain.LD)
	field("cc", in.CC)
	field("make", in.MakeVars...)
	field("targets", in.Targets...)
	field("extra", in.Extra...)
	if len(in.RemoveSyscalls) > 0 {
		nrs := []string{syscallRewrite}
		for _, nr := range in.RemoveSyscalls {
			nrs = append(nrs, strconv.Itoa(nr))
		}
		field("remove-syscalls", nrs...)
	}
	if in.LinkerScript != "" {
		field("linker-script", in.LinkerScript)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// normalizeConfig returns the settings of a .config, sorted: comments,
// blank lines, line order and trailing spaces do not change a kernel.
// "# CONFIG_X is not set" is kept, as it is a setting.
func normalizeConfig(cfg []byte) []string {
	set := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, val, ok := parseConfigLine(line); ok {
			set[name] = val
		}
	}
	out := make([]string, 0, len(set))
	for name, val := range set {
		out = append(out, name+"="+val)
	}
	sort.Strings(out)
	return out
}

// parseConfigLine parses "CONFIG_X=v" and "# CONFIG_X is not set" (value
// "n"). The last setting of a symbol wins, as in Kconfig.
func parseConfigLine(line string) (name, val string, ok bool) {
	if rest, found := strings.CutPrefix(line, "# CONFIG_"); found {
		if sym, found := strings.CutSuffix(rest, " is not set"); found && !strings.Contains(sym, " ") {
			return "CONFIG_" + sym, "n", true
		}
		return "", "", false
	}
	if !strings.HasPrefix(line, "CONFIG_") {
		return "", "", false
	}
	name, val, ok = strings.Cut(line, "=")
	return name, val, ok
}

// configDistance counts the symbols whose setting differs between a and b.
func configDistance(a, b []byte) int {
	return len(changedOptions(configMap(a), configMap(b)))
}

func configMap(cfg []byte) map[string]string {
	m := map[string]string{}
	for _, kv := range normalizeConfig(cfg) {
		k, v, _ := strings.Cut(kv, "=")
		if v == "n" {
			continue // unset and "is not set" mean the same
		}
		m[k] = v
	}
	return m
}

// CountEnabled counts the CONFIG_X=y lines of a .config.
func CountEnabled(cfg []byte) int {
	n := 0
	for _, kv := range normalizeConfig(cfg) {
		if strings.HasSuffix(kv, "=y") {
			n++
		}
	}
	return n
}
