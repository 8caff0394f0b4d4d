package cli

import "context"

func runBuild(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
