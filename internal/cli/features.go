package cli

import "context"

func runFeatures(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
