// Package elfdeps computes the ELF closure of a program: its interpreter,
// the shared libraries it needs (resolved as ld.so resolves them), and for
// #! scripts the interpreter's closure, keeping symlink chains.
package elfdeps

import (
	"errors"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Errors that callers decide on; each is wrapped with the path.
var (
	ErrNotExecutable = errors.New("not executable")            // no exec permission, or a directory
	ErrNotELF        = errors.New("not an ELF file or #! script") // neither ELF magic nor #!
	ErrNoInterpreter = errors.New("interpreter not found")     // #! or PT_INTERP names a missing file
)

// Info describes one executable file.
type Info struct {
	Path string
	// Kind is "static", "static-pie", "dynamic" or "script".
	Kind string
	// Interp is the PT_INTERP path (dynamic) or the #! interpreter (script).
	Interp string
	// ScriptArgs are the optional arguments on the #! line.
	ScriptArgs []string
	Needed     []string // DT_NEEDED
	RPath      []string // DT_RPATH, $ORIGIN not yet expanded
	RunPath    []string // DT_RUNPATH, $ORIGIN not yet expanded
}

// Options changes how libraries are searched.
type Options struct {
	// LDLibraryPath is searched as LD_LIBRARY_PATH is (after DT_RPATH,
	// before DT_RUNPATH).
	LDLibraryPath []string
}

// Inspect reads path and says what kind of executable it is.
func Inspect(path string) (*Info, error) {
	// TODO(elfdeps helper)
	return nil, errors.New("not implemented")
}

// Closure returns every file needed to run path, path itself included,
// as manifest.Files (Kind "program", "interpreter", "library",
// "script-interpreter"); a symlink appears with Link set and its target
// appears too.
func Closure(path string, opts Options) ([]manifest.File, error) {
	// TODO(elfdeps helper)
	return nil, errors.New("not implemented")
}
