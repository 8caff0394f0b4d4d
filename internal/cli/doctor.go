package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/bespoke-os/bespoke/internal/kbuild"
)

// doctorHost is the machine doctor looks at; tests replace it.
var doctorHost = kbuild.DefaultHost

func runDoctor(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "doctor")
	pos, _, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("doctor takes no arguments")
	}
	res := kbuild.Doctor(doctorHost, kbuild.Checks)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSTATUS\tPACKAGE\tNEEDED FOR")
	for _, r := range res {
		status := "ok " + r.Found
		if r.Found == "" {
			status = "MISSING"
			if !r.Required {
				status = "missing (optional)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, status, r.Package, r.For)
	}
	tw.Flush()
	if cmd := kbuild.InstallCommand(res, false); cmd != "" {
		fmt.Fprintf(env.Stdout, "\noptional: %s\n", cmd)
	}
	if cmd := kbuild.InstallCommand(res, true); cmd != "" {
		fmt.Fprintf(env.Stdout, "\nto install the missing tools: %s\n", cmd)
		return &ExitError{Code: 1, Err: fmt.Errorf("required tools missing: run %s", cmd)}
	}
	fmt.Fprintln(env.Stdout, "\nall required tools found")
	return nil
}
