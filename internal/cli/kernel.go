package cli

import "context"

func runKernel(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
