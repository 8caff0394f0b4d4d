// Command bespoke-ld is the linker of bespoke's kernels built with
// --kernel-dce: Kbuild runs it as LD (make LD=bespoke-ld), and it links
// vmlinux with --gc-sections, so that code and data no kept section refers
// to leave the kernel. Its settings are environment variables; see
// kdce.LDMain.
package main

import (
	"os"

	"github.com/bespoke-os/bespoke/internal/kdce"
)

func main() {
	os.Exit(kdce.LDMain(os.Getenv(kdce.EnvLD), os.Args[1:], os.Stdout, os.Stderr))
}
