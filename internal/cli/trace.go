package cli

import "context"

func runTrace(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
