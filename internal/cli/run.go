package cli

import "context"

func runRun(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
