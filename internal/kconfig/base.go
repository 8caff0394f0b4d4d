package kconfig

import (
	"embed"
	"fmt"
	"slices"
	"strings"
)

// The base fragments: what a guest needs to boot on each VMM and reach the
// guest init, one documented option per line.
//
//go:embed base/*.config
var baseFS embed.FS

// Targets are the VMMs bespoke writes configurations for.
var Targets = []string{"qemu-microvm", "qemu-pc", "firecracker"}

// DefaultTarget is the target when none is given.
const DefaultTarget = "qemu-microvm"

// transport is the virtio transport part per target, added for the
// network or a disk.
var transport = map[string]string{
	"qemu-microvm": "virtio-mmio",
	"qemu-pc":      "virtio-pci",
	"firecracker":  "virtio-mmio",
}

// Roots are the root filesystem formats, each a base part: the first is
// the default of Options.Root.
var Roots = []string{"initramfs", "erofs"}

// Request is one symbol value asked of kconfig, with why.
type Request struct {
	Symbol string // without CONFIG_
	Value  string // "y", "n", or a value for string/int/hex options
	Kind   string // KindBase, KindManifest, KindUser, KindOpt, KindDependency
	Part   string // for KindBase: the fragment ("common", "qemu-microvm", "net", ...)
	Reason string // the fragment's comment, the manifest facts, the flag
	By     string // for KindDependency: the symbol that needs it
	// Also lists the other origins that asked for the same value, e.g. a
	// manifest fact behind a base option.
	Also []string
}

// Why the explanation gives for a symbol.
const (
	KindBase       = "base"       // a base fragment of the target
	KindManifest   = "manifest"   // the feature knowledge, from manifest facts
	KindUser       = "user"       // --enable or --disable
	KindOpt        = "opt"        // --opt
	KindDependency = "dependency" // a requested symbol depends on it
	KindSelected   = "selected"   // a symbol that is on for a reason selects it
)

// BaseParts returns the names of the base fragments for target, in the
// order they are applied: common, the target's, the network part when net
// is set, the virtio transport when there is a virtio device (the network,
// or the disk of an erofs root), and root's part ("" is "initramfs").
func BaseParts(target string, net bool, root string) ([]string, error) {
	tr, ok := transport[target]
	if !ok {
		return nil, fmt.Errorf("unknown target %q (want one of %s)", target, strings.Join(Targets, ", "))
	}
	if root == "" {
		root = Roots[0]
	}
	if !slices.Contains(Roots, root) {
		return nil, fmt.Errorf("unknown root %q (want one of %s)", root, strings.Join(Roots, ", "))
	}
	parts := []string{"common", target}
	if net {
		parts = append(parts, "net")
	}
	if net || root == "erofs" {
		parts = append(parts, tr)
	}
	return append(parts, root), nil
}

// BaseFragment returns the text of one base fragment, e.g. "common".
func BaseFragment(part string) ([]byte, error) {
	return baseFS.ReadFile("base/" + part + ".config")
}

// baseRequests reads the requests of the given base parts.
func baseRequests(parts []string) ([]Request, error) {
	var reqs []Request
	for _, part := range parts {
		data, err := BaseFragment(part)
		if err != nil {
			return nil, fmt.Errorf("reading base fragment %s: %w", part, err)
		}
		rs, err := ParseFragment(part, string(data))
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, rs...)
	}
	return reqs, nil
}

// ParseFragment parses a base fragment: lines "CONFIG_SYM=value  # reason"
// (or "# CONFIG_SYM is not set  # reason"); other lines starting with #
// are comments. Every option needs its reason.
func ParseFragment(part, text string) ([]Request, error) {
	var reqs []Request
	for i, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		var assign, reason string
		if strings.HasPrefix(t, "# CONFIG_") && strings.Contains(t, " is not set") {
			assign, reason, _ = strings.Cut(strings.TrimPrefix(t, "# "), "#")
		} else if strings.HasPrefix(t, "#") {
			continue
		} else {
			assign, reason, _ = strings.Cut(t, "#")
		}
		assign, reason = strings.TrimSpace(assign), strings.TrimSpace(reason)
		sym, val, ok, err := parseConfigLine(assign)
		if !ok && err == nil && strings.HasSuffix(assign, " is not set") {
			sym, val, ok, err = parseConfigLine("# " + assign)
		}
		if err != nil || !ok {
			return nil, fmt.Errorf("base fragment %s line %d: want CONFIG_SYM=value  # reason, got %q", part, i+1, line)
		}
		if reason == "" {
			return nil, fmt.Errorf("base fragment %s line %d: CONFIG_%s has no reason (add \"# why\" after it)", part, i+1, sym)
		}
		reqs = append(reqs, Request{Symbol: sym, Value: val, Kind: KindBase, Part: part, Reason: reason})
	}
	return reqs, nil
}
