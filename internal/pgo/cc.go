package pgo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// The environment variables that configure bespoke-cc (see CCMain).
const (
	// EnvCC is the real compiler command, split on spaces ("gcc",
	// "ccache gcc"). Default: gcc.
	EnvCC = "BESPOKE_CC"
	// EnvMode is "pgo" (profile-guided per translation unit) or empty
	// (every invocation passes through unchanged).
	EnvMode = "BESPOKE_CC_MODE"
	// EnvProfile is the directory holding the .gcda files at the objects'
	// paths relative to make's working directory (kernel/sched/core.gcda
	// for kernel/sched/core.o). Required in pgo mode.
	EnvProfile = "BESPOKE_CC_PROFILE"
	// EnvExclude is an optional exclusion file (see Exclusions).
	EnvExclude = "BESPOKE_CC_EXCLUDE"
	// EnvLog is an optional file to which one line per translation unit
	// is appended: "hot kernel/sched/core.o", "cold fs/xyz.o (no profile)",
	// "excluded lib/foo.o", "plain x.o (reason)".
	EnvLog = "BESPOKE_CC_LOG"
	// EnvHotFlags are more options for hot units, separated by spaces,
	// after HotFlags (the spec's kernel.pgo_hot_flags).
	EnvHotFlags = "BESPOKE_CC_HOT_FLAGS"
)

// ModePGO is the value of EnvMode for a profile-guided build: hot units
// with their profile, cold ones for size. ModePGOHot uses the profile the
// same way but leaves cold units as the plain build compiles them (the
// size report's "PGO without cold-for-size").
const (
	ModePGO    = "pgo"
	ModePGOHot = "pgo-hot"
)

// HotFlags are added, after -fprofile-use=DIR and -fprofile-prefix-path=DIR,
// to the compilation of a translation unit whose profile shows execution.
// -Wno-coverage-mismatch: the instrumented kernel's config differs (GCOV,
// DEBUG_FS), so some functions' control flow differs from the profile's;
// GCC 12 makes that an error ("number of counters in profile data for
// function ... does not match", -Werror=coverage-mismatch is the default)
// unless told not to, and then ignores that function's profile. Functions
// absent from the profile still warn (-Wmissing-profile).
var HotFlags = []string{"-fprofile-correction", "-Wno-coverage-mismatch"}

// ColdFlags are appended to the compilation of a translation unit with no
// profile or only zero counters; last, so that they win over Kbuild's -O2
// and -falign-functions=N.
var ColdFlags = []string{"-Os", "-falign-functions=1", "-falign-jumps=1", "-falign-loops=1"}

// The decisions bespoke-cc logs.
const (
	decisionHot      = "hot"
	decisionCold     = "cold"
	decisionExcluded = "excluded"
	decisionPlain    = "plain"
)

// CCMain is bespoke-cc, the compiler wrapper Kbuild runs as CC
// (make CC=bespoke-cc): args are its arguments without the program name,
// env its environment. It returns the exit status.
//
// Only "-c X.c -o X.o" compilations change, and only in pgo mode;
// everything else (Kbuild's cc-option probes, -E, -S, assembler files,
// links, --version, -print-file-name) runs the real compiler unchanged,
// with the same stdin, stdout, stderr and exit status.
//
// In pgo mode a translation unit is
//   - hot when EnvProfile/OBJDIR/OBJ.gcda has a non-zero arc counter: it is
//     compiled with -fprofile-use=EnvProfile/OBJDIR
//     -fprofile-prefix-path=CWD/OBJDIR and HotFlags. GCC 12 looks for the
//     profile of OBJDIR/OBJ.o at CWD/OBJDIR/OBJ.gcda with plain
//     -fprofile-use, and with -fprofile-use=P at P/ followed by the
//     object's absolute path minus .o with "/" turned into "#"
//     (P/#home#b#kernel#sched#core.gcda); -fprofile-prefix-path strips
//     the given prefix first, so with the object's own directory only
//     "core" is left and GCC reads EnvProfile/kernel/sched/core.gcda;
//   - cold when that file is missing or all its counters are zero: ColdFlags
//     are appended;
//   - excluded when a "file" line of EnvExclude matches: unchanged;
//   - plain (unchanged) when its object path is absolute or outside the
//     working directory, or the command line already has profile options.
//
// A "function NAME" exclusion compiles one function as the plain build
// would, with stock GCC 12 and no source edit: GCC accepts attributes on a
// redeclaration after the definition and applies them to it (with a
// -Wattributes warning, which a pragma silences). bespoke-cc compiles a
// generated file in the working directory,
// .bespoke-cc.kernel__sched__core.c for kernel/sched/core.o, that #includes the source by the path
// on the command line (so __FILE__ and the profile's function idents do
// not change) and then redeclares each function:
//
//	extern __typeof__(NAME) NAME __attribute__((no_profile_instrument_function, optimize(...)));
//
// In a hot unit, no_profile_instrument_function makes GCC skip the
// function when it reads the profile, and optimize(...) undoes, for it,
// the flags -fprofile-use turns on (-funroll-loops, -fpeel-loops, -ftracer,
// ...; the list is what "gcc -Q --help=optimizers" reports to differ with
// the unit's own flags). In a cold unit optimize("O2") and the plain
// build's -falign-* values undo ColdFlags. The generated file stays (Kbuild's
// dependency file names it).
func CCMain(args, env []string) int {
	return runCC(args, env, os.Stdin, os.Stdout, os.Stderr)
}

type ccConfig struct {
	compiler   []string
	mode       string
	profile    string
	exclusions *Exclusions
	logPath    string
	wd         string // the working directory as GCC's getpwd sees it
	hotFlags   []string
}

func getenv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

func loadConfig(env []string) (*ccConfig, error) {
	c := &ccConfig{
		compiler:   strings.Fields(getenv(env, EnvCC)),
		mode:       getenv(env, EnvMode),
		profile:    getenv(env, EnvProfile),
		logPath:    getenv(env, EnvLog),
		exclusions: &Exclusions{},
		hotFlags:   strings.Fields(getenv(env, EnvHotFlags)),
	}
	if len(c.compiler) == 0 {
		c.compiler = []string{"gcc"}
	}
	switch c.mode {
	case "":
		return c, nil
	case ModePGO, ModePGOHot:
	default:
		return nil, fmt.Errorf("%s=%q: want %q, %q or empty", EnvMode, c.mode, ModePGO, ModePGOHot)
	}
	if c.profile == "" {
		return nil, fmt.Errorf("%s is empty: %s=%s needs the profile directory", EnvProfile, EnvMode, c.mode)
	}
	p, err := filepath.Abs(c.profile)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", EnvProfile, err)
	}
	c.profile = p
	if f := getenv(env, EnvExclude); f != "" {
		r, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("reading exclusions: %w", err)
		}
		defer r.Close()
		if c.exclusions, err = ParseExclusions(r, f); err != nil {
			return nil, err
		}
	}
	if c.wd, err = getpwd(env); err != nil {
		return nil, fmt.Errorf("finding the working directory: %w", err)
	}
	return c, nil
}

// getpwd is libiberty's getpwd, which GCC uses to make the profile's path
// absolute: $PWD when it names the working directory, else getcwd.
func getpwd(env []string) (string, error) {
	if pwd := getenv(env, "PWD"); filepath.IsAbs(pwd) {
		a, err1 := os.Stat(pwd)
		b, err2 := os.Stat(".")
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			return pwd, nil
		}
	}
	return syscall.Getwd()
}

// A ccPlan is what bespoke-cc does with one invocation.
type ccPlan struct {
	decision  string   // "" for a pass-through
	object    string   // the object, relative to the working directory
	note      string   // why, for the log
	args      []string // the real compiler's arguments
	functions []string // excluded functions of the unit
	unit      compileUnit
}

// plan decides an invocation; it reads the unit's profile and source.
func (c *ccConfig) plan(args []string) (*ccPlan, error) {
	p := &ccPlan{args: args}
	u, ok := parseCompile(args)
	if c.mode == "" || !ok {
		return p, nil
	}
	p.unit = u
	obj := u.obj
	if !filepath.IsAbs(obj) {
		obj = filepath.Join(c.wd, obj)
	}
	rel, err := filepath.Rel(c.wd, obj)
	switch {
	case filepath.IsAbs(u.obj):
		// GCC would look for the profile at PROFILE/ABSPATH.gcda.
		p.decision, p.object, p.note = decisionPlain, u.obj, "absolute object path"
		return p, nil
	case err != nil || rel == ".." || strings.HasPrefix(rel, "../"):
		p.decision, p.object, p.note = decisionPlain, u.obj, "object outside the working directory"
		return p, nil
	}
	p.object = filepath.ToSlash(rel)
	for _, a := range args {
		if profileFlag(a) {
			p.decision, p.note = decisionPlain, "has "+a
			return p, nil
		}
	}
	src := filepath.ToSlash(filepath.Clean(u.src))
	if filepath.IsAbs(u.src) {
		if r, err := filepath.Rel(c.wd, u.src); err == nil {
			src = filepath.ToSlash(r)
		}
	}
	if c.exclusions.ExcludesFile(src, p.object) {
		p.decision = decisionExcluded
		return p, nil
	}
	gcda := filepath.Join(c.profile, strings.TrimSuffix(rel, ".o")+".gcda")
	prof, err := readFile(gcda)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.decision, p.note = decisionCold, "no profile"
	case err != nil:
		return nil, err
	case prof.Executed():
		p.decision = decisionHot
	default:
		p.decision = decisionCold
	}
	if len(c.exclusions.Functions) > 0 {
		text, err := os.ReadFile(u.src)
		if err != nil {
			return nil, fmt.Errorf("reading source: %w", err)
		}
		p.functions = c.exclusions.FunctionsIn(src, p.object, text)
	}
	p.args = append(append([]string(nil), args...), c.flags(p)...)
	return p, nil
}

// flags returns the options added for a hot or cold unit.
func (c *ccConfig) flags(p *ccPlan) []string {
	if p.decision == decisionCold {
		if c.mode == ModePGOHot {
			return nil
		}
		return ColdFlags
	}
	dir, prefix := ".", c.wd
	if i := strings.LastIndex(p.unit.obj, "/"); i >= 0 {
		dir = path.Dir(p.object)
		// GCC joins getpwd() and the object's name as written.
		prefix = c.wd + "/" + p.unit.obj[:i]
	}
	return slices.Concat([]string{
		"-fprofile-use=" + filepath.Join(c.profile, filepath.FromSlash(dir)),
		"-fprofile-prefix-path=" + prefix,
	}, HotFlags, c.hotFlags)
}

func (p *ccPlan) logLine() string {
	if p.decision == "" {
		return ""
	}
	s := p.decision + " " + p.object
	var notes []string
	if p.note != "" {
		notes = append(notes, p.note)
	}
	if len(p.functions) > 0 {
		notes = append(notes, "excluded functions: "+strings.Join(p.functions, ","))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s + "\n"
}

func runCC(args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bespoke-cc: %v\n", err)
		return 2
	}
	c, err := loadConfig(env)
	if err != nil {
		return fail(err)
	}
	p, err := c.plan(args)
	if err != nil {
		return fail(err)
	}
	if len(p.functions) > 0 {
		if p.args, err = c.excludeFunctions(p, env); err != nil {
			return fail(err)
		}
	}
	if line := p.logLine(); line != "" && c.logPath != "" {
		if err := appendLine(c.logPath, line); err != nil {
			return fail(err)
		}
	}
	return c.run(p.args, env, stdin, stdout, stderr)
}

// run runs the real compiler and returns its exit status (128+N when
// signal N killed it, as a shell reports it).
func (c *ccConfig) run(args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := exec.Command(c.compiler[0], append(c.compiler[1:len(c.compiler):len(c.compiler)], args...)...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, stdin, stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(stderr, "bespoke-cc: running %s: %v\n", c.compiler[0], err)
		return 127
	}
}

// appendLine appends line with one write: make runs compilers in
// parallel, and O_APPEND keeps whole lines apart.
func appendLine(name, line string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing log: %w", err)
	}
	return nil
}

// excludeFunctions writes the generated source that redeclares p's
// excluded functions and returns the arguments that compile it instead of
// the unit's source.
func (c *ccConfig) excludeFunctions(p *ccPlan, env []string) ([]string, error) {
	plain := p.args[:len(p.args)-len(c.flags(p))]
	opts, err := c.plainOptions(p, plain, env)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "/* Generated by bespoke-cc for %s (%s): see %s. */\n", p.object, p.decision, EnvExclude)
	fmt.Fprintf(&b, "#include \"%s\"\n", p.unit.src)
	b.WriteString("#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Wattributes\"\n")
	attrs := "optimize(" + quoteList(opts) + ")"
	if p.decision == decisionHot {
		attrs = "no_profile_instrument_function, " + attrs
	}
	for _, fn := range p.functions {
		fmt.Fprintf(&b, "extern __typeof__(%s) %s __attribute__((%s));\n", fn, fn, attrs)
	}
	b.WriteString("#pragma GCC diagnostic pop\n")
	gen := ".bespoke-cc." + strings.ReplaceAll(strings.TrimSuffix(p.object, ".o"), "/", "__") + ".c"
	if err := writeIfChanged(filepath.Join(c.wd, gen), b.Bytes()); err != nil {
		return nil, fmt.Errorf("writing %s: %w", gen, err)
	}
	args := append([]string(nil), p.args...)
	args[p.unit.srcIndex] = gen
	return args, nil
}

func quoteList(opts []string) string {
	q := make([]string, len(opts))
	for i, o := range opts {
		q[i] = `"` + o + `"`
	}
	return strings.Join(q, ",")
}

// plainOptions returns the optimize attribute options that give a function
// of unit p the optimisation of the plain build (arguments plain).
func (c *ccConfig) plainOptions(p *ccPlan, plain, env []string) ([]string, error) {
	before, err := c.optimizers(plain, env)
	if err != nil {
		return nil, err
	}
	if p.decision == decisionCold {
		level := "O0"
		for _, a := range plain {
			if strings.HasPrefix(a, "-O") {
				level = a[1:]
			}
		}
		if level == "O" {
			level = "O1"
		}
		opts := []string{level}
		for _, f := range []string{"-falign-functions", "-falign-jumps", "-falign-loops"} {
			if before[f] == "[enabled]" && before[f+"="] != "" {
				opts = append(opts, f[2:]+"="+before[f+"="])
			} else {
				opts = append(opts, "no-"+f[2:])
			}
		}
		return opts, nil
	}
	after, err := c.optimizers(append(append([]string(nil), plain...), c.flags(p)...), env)
	if err != nil {
		return nil, err
	}
	var opts []string
	for k, v := range before {
		if after[k] == v || profileOnly[k] {
			continue
		}
		name := k[2:]
		switch {
		case v == "[enabled]":
			opts = append(opts, name)
		case v == "[disabled]":
			opts = append(opts, "no-"+name)
		case strings.HasSuffix(name, "=") && v != "":
			opts = append(opts, name+v)
		}
	}
	sort.Strings(opts)
	return opts, nil
}

// profileOnly holds the optimizers that only act with a profile, which
// no_profile_instrument_function already takes away from a function, that
// are not per function, or that the optimize attribute rejects for C
// (-funroll-completely-grow-size: "not valid for C", even with -Wno-attributes).
var profileOnly = map[string]bool{
	"-funroll-completely-grow-size": true,
	"-fbranch-probabilities":        true,
	"-fprofile-values":              true,
	"-fvpt":                         true,
	"-fprofile-reorder-functions":   true,
}

// optimizers runs "CC FLAGS -Q --help=optimizers" with the optimisation and
// target flags of args and returns option -> state ("[enabled]",
// "[disabled]", or the value of an "-fX=" option, keyed with the "=";
// an option with a value list is keyed by "-fX=").
func (c *ccConfig) optimizers(args, env []string) (map[string]string, error) {
	var q []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--param" && i+1 < len(args):
			q = append(q, a, args[i+1])
			i++
		case strings.HasPrefix(a, "-O"), strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-m"), strings.HasPrefix(a, "--param="):
			q = append(q, a)
		}
	}
	q = append(q, "-Q", "--help=optimizers")
	var out, errb bytes.Buffer
	if st := c.run(q, env, nil, &out, &errb); st != 0 {
		return nil, fmt.Errorf("querying %s -Q --help=optimizers: exit status %d: %s", c.compiler[0], st, strings.TrimSpace(errb.String()))
	}
	m := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "-f") {
			continue
		}
		k, v := f[0], ""
		if len(f) > 1 {
			v = f[len(f)-1]
		}
		if i := strings.Index(k, "="); i >= 0 {
			k = k[:i+1] // -fvect-cost-model=[unlimited|...] -> -fvect-cost-model=
		}
		if strings.HasSuffix(k, "=") && len(f) == 1 {
			v = ""
		}
		m[k] = v
	}
	return m, nil
}

// writeIfChanged writes data to name unless it already holds it, so that
// make does not see a new file each time; it renames a temporary file into
// place, since make may compile the same unit twice at once.
func writeIfChanged(name string, data []byte) error {
	if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), name)
}
