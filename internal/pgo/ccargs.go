package pgo

import "strings"

// A compileUnit is one compilation of a C file to an object, as found on
// a compiler command line.
type compileUnit struct {
	src, obj string // as written on the command line
	srcIndex int    // index of src in the arguments
}

// separateArg holds the GCC options whose value may be the next argument.
var separateArg = map[string]bool{
	"-o": true, "-x": true, "-I": true, "-D": true, "-U": true,
	"-include": true, "-imacros": true, "-iquote": true, "-isystem": true,
	"-idirafter": true, "-iprefix": true, "-iwithprefix": true,
	"-iwithprefixbefore": true, "-isysroot": true, "-imultilib": true,
	"-MF": true, "-MT": true, "-MQ": true, "-Xlinker": true,
	"-Xassembler": true, "-Xpreprocessor": true, "-T": true, "-L": true,
	"-l": true, "-u": true, "-e": true, "-z": true, "-A": true, "-B": true,
	"-aux-info": true, "--param": true, "-wrapper": true,
	"-dumpbase": true, "-dumpdir": true, "-dumpbase-ext": true,
}

// notCompile holds options that make an invocation something other than
// compiling to an object (or that print and exit).
var notCompile = map[string]bool{
	"-E": true, "-S": true, "-M": true, "-MM": true, "-fsyntax-only": true,
	"-###": true, "--version": true, "-dumpversion": true,
	"-dumpfullversion": true, "-dumpmachine": true, "-dumpspecs": true,
	"-shared": true, "-r": true,
}

// parseCompile finds the C source and the object of a "-c X.c -o X.o"
// invocation; ok is false for anything else: preprocessing, assembling,
// linking, probes reading /dev/null or stdin, several inputs, queries.
func parseCompile(args []string) (u compileUnit, ok bool) {
	hasC := false
	inputs := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c":
			hasC = true
		case notCompile[a], strings.HasPrefix(a, "-print-"), strings.HasPrefix(a, "--help"), strings.HasPrefix(a, "-Q"):
			return compileUnit{}, false
		case a == "-x" || a == "-o":
			if i+1 >= len(args) {
				return compileUnit{}, false
			}
			i++
			if a == "-x" && args[i] != "c" {
				return compileUnit{}, false
			}
			if a == "-o" {
				u.obj = args[i]
			}
		case strings.HasPrefix(a, "-x"):
			if a != "-xc" {
				return compileUnit{}, false
			}
		case strings.HasPrefix(a, "-o"):
			u.obj = a[2:]
		case separateArg[a]:
			i++
		case a == "-" || a == "":
			return compileUnit{}, false
		case strings.HasPrefix(a, "-"):
			// An option with its value joined (-O2, -Wp,-MMD,x, -DX=1).
		default:
			inputs++
			u.src, u.srcIndex = a, i
		}
	}
	if !hasC || inputs != 1 || !strings.HasSuffix(u.src, ".c") || !strings.HasSuffix(u.obj, ".o") || len(u.obj) <= 2 {
		return compileUnit{}, false
	}
	return u, true
}

// profileFlag reports whether a is an option that already asks for
// profile instrumentation or use, or moves GCC's auxiliary files: then
// bespoke-cc leaves the compilation alone.
func profileFlag(a string) bool {
	for _, p := range []string{"-fprofile-arcs", "-fprofile-generate", "-fprofile-use", "-fauto-profile", "-fbranch-probabilities", "-fprofile-dir", "-fprofile-prefix-path", "-dumpbase", "-dumpdir", "--coverage"} {
		if strings.HasPrefix(a, p) {
			return true
		}
	}
	return false
}
