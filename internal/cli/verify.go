package cli

import "context"

func runVerify(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
