// Command bespoke-cc is the compiler wrapper of bespoke's profile-guided
// kernel build: Kbuild runs it as CC (make CC=bespoke-cc) and it compiles
// each translation unit for speed with its profile or, when the profile
// shows it never ran, for size. Its settings are environment variables;
// see pgo.CCMain.
package main

import (
	"os"

	"github.com/bespoke-os/bespoke/internal/pgo"
)

func main() {
	os.Exit(pgo.CCMain(os.Args[1:], os.Environ()))
}
