package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

// runFeatures prints the Kconfig symbols a manifest requires, one line per
// symbol with the facts behind it.
func runFeatures(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "features")
	var verbose, asJSON bool
	fs.BoolVar(&verbose, "v", false, "print the kernel source of each row under its symbol")
	fs.BoolVar(&verbose, "sources", false, "same as -v")
	fs.BoolVar(&asJSON, "json", false, "print the requirements and gaps as JSON")
	pos, _, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("want exactly one MANIFEST (the manifest.json written by bespoke trace), got %d arguments", len(pos))
	}
	m, err := manifest.ReadFile(pos[0])
	if err != nil {
		return err
	}
	a := features.Analyze(m)
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(a)
	}
	width := 0
	for _, r := range a.Required {
		width = max(width, len(r.Symbol))
	}
	for _, r := range a.Required {
		fmt.Fprintf(env.Stdout, "%-*s  %s\n", width, r.Symbol, strings.Join(r.Facts, ", "))
		if verbose {
			for _, s := range r.Sources {
				fmt.Fprintf(env.Stdout, "%-*s    source: %s\n", width, "", s)
			}
		}
	}
	if len(a.Gaps) > 0 {
		fmt.Fprintf(env.Stdout, "\nno kernel option provides:\n")
		for _, g := range a.Gaps {
			fmt.Fprintf(env.Stdout, "  %s: %s\n", g.Fact, g.Reason)
		}
	}
	return nil
}
