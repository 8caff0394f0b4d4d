package pgo

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Exclusions is the content of the BESPOKE_CC_EXCLUDE file: translation
// units and functions that bespoke-cc compiles as the plain build would.
//
// One entry per line; blank lines and lines starting with # are ignored:
//
//	file PATH-GLOB          the translation unit whose source or object
//	                        matches is compiled unchanged: no profile, no -Os
//	function NAME           in every translation unit whose .c file contains
//	                        NAME followed by "(", that function alone is
//	                        compiled as in the plain build
//	function NAME PATH-GLOB the same, for the matching translation units only,
//	                        whether or not the text shows NAME (for
//	                        functions whose names macros build)
//
// PATH-GLOB is a path.Match pattern on the slash-separated path relative to
// the build directory (kernel/sched/core.c, kernel/sched/*.o); a pattern
// ending in "/" matches everything below that directory. See CCMain for how
// a single function is excluded.
type Exclusions struct {
	Files     []string
	Functions []FunctionExclusion
}

// A FunctionExclusion is one "function" line of an exclusion file.
type FunctionExclusion struct {
	Name string
	File string // a PATH-GLOB, or "" for any file whose text names Name
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseExclusions reads an exclusion file; name is used in errors.
func ParseExclusions(r io.Reader, name string) (*Exclusions, error) {
	e := &Exclusions{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		bad := func(format string, args ...any) error {
			return fmt.Errorf("parsing %s line %d: %s", name, n, fmt.Sprintf(format, args...))
		}
		switch {
		case f[0] == "file" && len(f) == 2:
			if err := checkGlob(f[1]); err != nil {
				return nil, bad("%v", err)
			}
			e.Files = append(e.Files, f[1])
		case f[0] == "function" && (len(f) == 2 || len(f) == 3):
			if !identRE.MatchString(f[1]) {
				return nil, bad("%q is not a C identifier", f[1])
			}
			fe := FunctionExclusion{Name: f[1]}
			if len(f) == 3 {
				if err := checkGlob(f[2]); err != nil {
					return nil, bad("%v", err)
				}
				fe.File = f[2]
			}
			e.Functions = append(e.Functions, fe)
		default:
			return nil, bad("want \"file PATH-GLOB\" or \"function NAME [PATH-GLOB]\", got %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return e, nil
}

func checkGlob(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// matchGlob matches a PATH-GLOB against a slash-separated relative path.
func matchGlob(pattern, p string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(p, pattern)
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

// ExcludesFile reports whether a "file" line matches the translation unit
// with source src and object obj (slash-separated, relative).
func (e *Exclusions) ExcludesFile(src, obj string) bool {
	for _, g := range e.Files {
		if matchGlob(g, src) || matchGlob(g, obj) {
			return true
		}
	}
	return false
}

// FunctionsIn returns the names of the excluded functions of the
// translation unit with source src and object obj, whose source text is
// text, sorted and without duplicates.
func (e *Exclusions) FunctionsIn(src, obj string, text []byte) []string {
	seen := map[string]bool{}
	var names []string
	for _, f := range e.Functions {
		if seen[f.Name] {
			continue
		}
		var ok bool
		if f.File != "" {
			ok = matchGlob(f.File, src) || matchGlob(f.File, obj)
		} else {
			ok = regexp.MustCompile(`\b` + f.Name + `\s*\(`).Match(text)
		}
		if ok {
			seen[f.Name] = true
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	return names
}
