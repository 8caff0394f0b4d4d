package cli

import "context"

func runDoctor(ctx context.Context, env *Env, args []string) error {
	return errNotImplemented
}
