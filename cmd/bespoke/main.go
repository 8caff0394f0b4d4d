// Command bespoke builds an application-specific Linux VM image for one
// unmodified program: a kernel configured and compiled for that program and
// an initramfs holding only the files it needs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bespoke-os/bespoke/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
