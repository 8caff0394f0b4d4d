package kbuild

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// BuildError is a failed make run, with what the log says about it.
type BuildError struct {
	Target string   // the innermost target make names, e.g. "init/main.o"
	File   string   // the source file the first compiler error names, if any
	Errors []string // the compiler's and make's error lines, in log order
	Log    string   // path of the full log
	Err    error    // make's exit error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("building kernel failed")
	switch {
	case e.File != "" && e.Target != "":
		fmt.Fprintf(&b, " in %s (target %s)", e.File, e.Target)
	case e.Target != "":
		fmt.Fprintf(&b, " at %s", e.Target)
	case e.File != "":
		fmt.Fprintf(&b, " in %s", e.File)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	for _, l := range e.Errors {
		b.WriteString("\n    " + l)
	}
	fmt.Fprintf(&b, "\nfull log: %s", e.Log)
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

var (
	// make[3]: *** [scripts/Makefile.build:229: init/main.o] Error 1
	makeErrRe = regexp.MustCompile(`^make(?:\[\d+\])?: \*\*\* \[(?:[^\]]*?:\d+: )?([^\]]+)\] (?:Error \d+|Interrupt)`)
	// init/main.c:12:5: error: ... | gcc: error: unrecognized ...
	compilerErrRe = regexp.MustCompile(`(?:^|\s)(?:[^\s:]+:\d+:(?:\d+:)? )?(?:fatal )?[Ee]rror: `)
	fileErrRe     = regexp.MustCompile(`^([^\s:]+\.(?:c|h|S|s|lds|rs)):\d+(?::\d+)?: (?:fatal )?error: `)
	linkErrRe     = regexp.MustCompile(`undefined reference to|multiple definition of|ld: .*(?:error|cannot)`)
)

// maxErrorLines bounds the lines quoted from the log.
const maxErrorLines = 12

// parseFailure finds the failing target, file and error lines in a make log.
func parseFailure(log []byte, srcDir string) *BuildError {
	e := &BuildError{}
	var makeLines []string
	var targets []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if m := makeErrRe.FindStringSubmatch(line); m != nil {
			makeLines = append(makeLines, line)
			targets = append(targets, m[1])
			continue
		}
		if compilerErrRe.MatchString(line) || linkErrRe.MatchString(line) {
			if e.File == "" {
				if m := fileErrRe.FindStringSubmatch(line); m != nil {
					e.File = m[1]
					if srcDir != "" {
						e.File = strings.TrimPrefix(e.File, strings.TrimSuffix(srcDir, "/")+"/")
					}
				}
			}
			if !seen[line] && len(e.Errors) < maxErrorLines {
				seen[line] = true
				e.Errors = append(e.Errors, line)
			}
		}
	}
	// The innermost target is the first that names a file; directories
	// and phony targets (init, prepare0, __sub-make) come later.
	pick := -1
	for i, t := range targets {
		if strings.Contains(path.Base(t), ".") {
			pick = i
			break
		}
	}
	if pick < 0 && len(targets) > 0 {
		pick = 0
	}
	if pick >= 0 {
		e.Target = targets[pick]
		e.Errors = append(e.Errors, makeLines[pick])
	}
	if e.File == "" && e.Target != "" {
		e.File = sourceOf(e.Target, srcDir)
	}
	return e
}

// sourceOf finds the source of a Kbuild object target in srcDir:
// init/main.o -> init/main.c (or .S). It returns "" when there is none.
func sourceOf(target, srcDir string) string {
	for _, ext := range []string{".o", ".s", ".i", ".lst"} {
		stem, ok := strings.CutSuffix(target, ext)
		if !ok {
			continue
		}
		for _, src := range []string{".c", ".S"} {
			if _, err := os.Stat(filepath.Join(srcDir, stem+src)); err == nil {
				return stem + src
			}
		}
	}
	return ""
}
