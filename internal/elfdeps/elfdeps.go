// Package elfdeps computes the ELF closure of a program: its interpreter,
// the shared libraries it needs (resolved as ld.so resolves them), and for
// #! scripts the interpreter's closure, keeping symlink chains.
//
// It reads files with debug/elf and never runs the program or ldd. The
// library search follows glibc's ld.so: DT_RPATH of the loading object and
// its loaders (when the loading object has no DT_RUNPATH), LD_LIBRARY_PATH,
// DT_RUNPATH, /etc/ld.so.cache (or /etc/ld.so.conf when there is no cache),
// then the default directories; $ORIGIN, $LIB and $PLATFORM are expanded
// and candidates of the wrong ELF class or machine are skipped.
package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Errors that callers decide on; each is wrapped with the path.
var (
	ErrNotExecutable = errors.New("not executable")                    // no exec permission, or a directory
	ErrNotELF        = errors.New("not an ELF file or #! script")      // neither ELF magic nor #!
	ErrNoInterpreter = errors.New("interpreter not found")             // #! or PT_INTERP names a missing file
	ErrNoLibrary     = errors.New("shared library not found")          // a DT_NEEDED library is nowhere on the search path
	ErrBadLibrary    = errors.New("shared library is not usable")      // a DT_NEEDED candidate is not an ELF shared object
	ErrScriptDepth   = errors.New("#! interpreters nested too deeply") // more than MaxScriptDepth scripts in a row
	ErrWrongArch     = errors.New("not an x86-64 program")             // an ELF of another machine or class
	ErrTruncated     = errors.New("truncated ELF file")                // the headers point past the file's end
)

// MaxScriptDepth is how many #! scripts may run one another in a chain
// before the ELF interpreter at its end: Linux's exec allows 5 binfmt
// rewrites (measured: a chain of 5 scripts runs, 6 fail with ELOOP).
// A program run by "#!/usr/bin/env NAME" counts as one more link, though
// for the kernel it is a new exec.
const MaxScriptDepth = 5

// Kinds of executables, as in manifest.Program.Kind.
const (
	KindStatic    = "static"
	KindStaticPIE = "static-pie"
	KindDynamic   = "dynamic"
	KindScript    = "script"
)

// Kinds of closure files, as in manifest.File.Kind.
const (
	FileProgram           = "program"
	FileInterpreter       = "interpreter"
	FileLibrary           = "library"
	FileScriptInterpreter = "script-interpreter"
)

// Info describes one executable file.
type Info struct {
	Path string
	// Kind is "static", "static-pie", "dynamic" or "script".
	Kind string
	// Interp is the PT_INTERP path (dynamic) or the #! interpreter (script).
	Interp string
	// ScriptArgs are the optional arguments on the #! line. Linux passes
	// everything after the interpreter as one argument, so there is at most
	// one.
	ScriptArgs []string
	Needed     []string // DT_NEEDED
	RPath      []string // DT_RPATH, $ORIGIN not yet expanded
	RunPath    []string // DT_RUNPATH, $ORIGIN not yet expanded
	SOName     string   // DT_SONAME
	// Class and Machine are the ELF class and machine (zero for scripts).
	Class   elf.Class
	Machine elf.Machine
}

// Options changes how libraries are searched. The zero value searches as
// ld.so does on the host with an empty LD_LIBRARY_PATH.
type Options struct {
	// LDLibraryPath is searched as LD_LIBRARY_PATH is (after DT_RPATH,
	// before DT_RUNPATH).
	LDLibraryPath []string
	// Path is searched for NAME in "#!/usr/bin/env NAME"; nil means the
	// PATH environment variable (or a standard PATH when it is unset).
	Path []string
	// LDSOCache is the ld.so cache to read; "" means /etc/ld.so.cache.
	LDSOCache string
	// LDSOConf is read instead when the cache does not exist; "" means
	// /etc/ld.so.conf.
	LDSOConf string
	// DefaultDirs are searched last; nil means DefaultDirs.
	DefaultDirs []string
}

// DefaultDirs are the directories searched after the cache (Debian's
// multiarch directories first, then the traditional ones).
var DefaultDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64",
	"/lib", "/usr/lib",
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Inspect reads path and says what kind of executable it is. Symlinks are
// followed. A missing file gives an error matching fs.ErrNotExist; a
// directory or a file with no exec bit, ErrNotExecutable; a file that is
// neither ELF nor #!, ErrNotELF.
func Inspect(path string) (*Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", path, unwrapPathError(err))
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("inspecting %s: %w: it is a directory (give the program inside it)", path, ErrNotExecutable)
	}
	if fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("inspecting %s: %w: no exec permission (chmod +x it if it is a program)", path, ErrNotExecutable)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	head := make([]byte, 256) // Linux's BINPRM_BUF_SIZE
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("inspecting %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		info, err := parseShebang(head)
		if err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", path, err)
		}
		info.Path = path
		return info, nil
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		obj, err := readELF(f)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("inspecting %s: %w: its headers point past its end (%d bytes): an incomplete copy or download?", path, ErrTruncated, fi.Size())
		}
		if err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", path, err)
		}
		if obj.machine != elf.EM_X86_64 || obj.class != elf.ELFCLASS64 {
			return nil, fmt.Errorf("inspecting %s: %w: it is %s; bespoke builds x86-64 images (install the program's amd64 package)", path, ErrWrongArch, archName(obj.class, obj.machine))
		}
		info := obj.info()
		info.Path = path
		return info, nil
	}
	return nil, fmt.Errorf("inspecting %s: %w (only ELF programs and #! scripts can run)", path, ErrNotELF)
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseShebang parses a #! line as Linux does: the interpreter ends at the
// first blank, and the rest of the line, trimmed, is one optional argument.
func parseShebang(head []byte) (*Info, error) {
	line := head[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	s := strings.Trim(string(line), " \t\r")
	if s == "" {
		return nil, fmt.Errorf("%w: empty #! line", ErrNotELF)
	}
	info := &Info{Kind: KindScript}
	interp, arg, _ := strings.Cut(strings.ReplaceAll(s, "\t", " "), " ")
	info.Interp = interp
	if arg = strings.Trim(arg, " \t\r"); arg != "" {
		info.ScriptArgs = []string{arg}
	}
	return info, nil
}

// elfObject is what the closure needs from an ELF file.
type elfObject struct {
	class   elf.Class
	data    elf.Data
	machine elf.Machine
	typ     elf.Type
	interp  string
	needed  []string
	rpath   []string
	runpath []string
	soname  string
	flags1  uint64
}

const df1PIE = 0x08000000 // DF_1_PIE

func readELF(r io.ReaderAt) (*elfObject, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("reading ELF: %w", err)
	}
	o := &elfObject{class: f.Class, data: f.Data, machine: f.Machine, typ: f.Type}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("reading PT_INTERP: %w", err)
			}
			o.interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	if f.Section(".dynamic") == nil && !hasDynamicSegment(f) {
		return o, nil
	}
	if o.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("reading DT_NEEDED: %w", err)
	}
	rpath, err := f.DynString(elf.DT_RPATH)
	if err != nil {
		return nil, fmt.Errorf("reading DT_RPATH: %w", err)
	}
	runpath, err := f.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, fmt.Errorf("reading DT_RUNPATH: %w", err)
	}
	o.rpath, o.runpath = splitPath(rpath), splitPath(runpath)
	if so, _ := f.DynString(elf.DT_SONAME); len(so) > 0 {
		o.soname = so[0]
	}
	if v, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(v) > 0 {
		o.flags1 = v[0]
	}
	return o, nil
}

func hasDynamicSegment(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// splitPath splits DT_RPATH/DT_RUNPATH strings at colons, dropping empty
// elements.
func splitPath(ss []string) []string {
	var out []string
	for _, s := range ss {
		for _, d := range strings.Split(s, ":") {
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

func (o *elfObject) kind() string {
	switch {
	case o.interp != "":
		return KindDynamic
	case o.typ == elf.ET_DYN || o.flags1&df1PIE != 0:
		return KindStaticPIE
	}
	return KindStatic
}

func (o *elfObject) info() *Info {
	return &Info{
		Kind:    o.kind(),
		Interp:  o.interp,
		Needed:  o.needed,
		RPath:   o.rpath,
		RunPath: o.runpath,
		SOName:  o.soname,
		Class:   o.class,
		Machine: o.machine,
	}
}

// Closure returns every file needed to run path, path itself included,
// as manifest.Files (Kind "program", "interpreter", "library",
// "script-interpreter") sorted by path. A symlink appears with Link set to
// the target as stored, and its target appears too; a symlinked directory
// on the way to a file (/lib64 -> usr/lib64) appears as a symlink entry,
// so that every other entry's parent is a real directory and a file tree
// built from the list resolves the same paths. Size is set for regular
// files.
//
// Errors are those of Inspect, ErrNoInterpreter for a missing #! or
// PT_INTERP interpreter, ErrNoLibrary for a DT_NEEDED library that is
// nowhere on the search path, and ErrScriptDepth.
func Closure(path string, opts Options) ([]manifest.File, error) {
	c := &closer{opts: opts, files: map[string]manifest.File{}}
	if c.opts.Path == nil {
		p := os.Getenv("PATH")
		if p == "" {
			p = defaultPath
		}
		c.opts.Path = strings.Split(p, ":")
	}
	if c.opts.LDSOCache == "" {
		c.opts.LDSOCache = "/etc/ld.so.cache"
	}
	if c.opts.LDSOConf == "" {
		c.opts.LDSOConf = "/etc/ld.so.conf"
	}
	if c.opts.DefaultDirs == nil {
		c.opts.DefaultDirs = DefaultDirs
	}
	if err := c.program(path, FileProgram, 0); err != nil {
		return nil, err
	}
	out := make([]manifest.File, 0, len(c.files))
	for _, f := range c.files {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b manifest.File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// closer accumulates one closure.
type closer struct {
	opts  Options
	files map[string]manifest.File

	cache       *ldCache
	cacheLoaded bool
}

// kindRank orders kinds for a path reached for several reasons: the first
// in this list wins.
var kindRank = []string{FileProgram, FileInterpreter, FileScriptInterpreter, FileLibrary}

func (c *closer) add(f manifest.File) {
	if old, ok := c.files[f.Path]; ok {
		if slices.Index(kindRank, f.Kind) >= slices.Index(kindRank, old.Kind) {
			return
		}
	}
	c.files[f.Path] = f
}

// program adds the closure of the executable at path, reached as kind.
func (c *closer) program(path, kind string, depth int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("inspecting %s: %w", path, err)
	}
	info, err := Inspect(abs)
	if err != nil {
		return err
	}
	real, err := c.walk(abs, kind)
	if err != nil {
		return fmt.Errorf("following %s: %w", abs, err)
	}
	if info.Kind == KindScript {
		return c.script(abs, info, depth)
	}
	f, err := os.Open(real)
	if err != nil {
		return fmt.Errorf("reading %s: %w", abs, err)
	}
	defer f.Close()
	obj, err := readELF(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", abs, err)
	}
	var interp *loaded
	if obj.interp != "" {
		ip := obj.interp
		if _, err := os.Stat(ip); err != nil {
			return fmt.Errorf("%s: %w: PT_INTERP names %s, which %s (install the C library it was built for, or rebuild it statically)",
				abs, ErrNoInterpreter, ip, describeStatErr(err))
		}
		ipReal, err := c.walk(ip, FileInterpreter)
		if err != nil {
			return fmt.Errorf("following interpreter %s of %s: %w", ip, abs, err)
		}
		interp = &loaded{name: ip, real: ipReal}
		if f, err := os.Open(ipReal); err == nil {
			if iobj, err := readELF(f); err == nil {
				interp.obj = iobj
			}
			f.Close()
		}
	}
	// The kernel gives ld.so the resolved path of the program, so $ORIGIN
	// of the program is the directory of its real path.
	return c.libraries(&loaded{name: real, real: real, obj: obj}, interp)
}

func describeStatErr(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "does not exist"
	}
	return "cannot be read: " + unwrapPathError(err).Error()
}

// script adds the interpreter of a #! script (and for /usr/bin/env NAME,
// NAME looked up in PATH).
func (c *closer) script(path string, info *Info, depth int) error {
	if depth >= MaxScriptDepth {
		return fmt.Errorf("%s: %w (more than %d)", path, ErrScriptDepth, MaxScriptDepth)
	}
	if _, err := os.Stat(info.Interp); err != nil {
		return fmt.Errorf("%s: %w: #! names %s, which %s (fix the #! line or install the interpreter)",
			path, ErrNoInterpreter, info.Interp, describeStatErr(err))
	}
	if err := c.program(info.Interp, FileScriptInterpreter, depth+1); err != nil {
		return fmt.Errorf("%s: #! interpreter: %w", path, err)
	}
	if filepath.Base(info.Interp) != "env" {
		return nil
	}
	name := envCommand(info.ScriptArgs)
	if name == "" {
		return nil
	}
	found := c.lookPath(name)
	if found == "" {
		return fmt.Errorf("%s: %w: #!%s %s: %s is not in PATH %s (install it, or set the PATH to search)",
			path, ErrNoInterpreter, info.Interp, strings.Join(info.ScriptArgs, " "), name, strings.Join(c.opts.Path, ":"))
	}
	if err := c.program(found, FileScriptInterpreter, depth+1); err != nil {
		return fmt.Errorf("%s: #! interpreter via env: %w", path, err)
	}
	return nil
}

// envCommand returns the command env would run given the #! argument:
// the first word that is not an option or a NAME=VALUE assignment.
func envCommand(args []string) string {
	var words []string
	for _, a := range args {
		words = append(words, strings.Fields(a)...)
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			if i+1 < len(words) {
				return words[i+1]
			}
			return ""
		case w == "-u" || w == "-C" || w == "--unset" || w == "--chdir":
			i++ // takes an argument
		case strings.HasPrefix(w, "-S") && len(w) > 2:
			// -SCMD: the rest of the word starts the split string.
			words[i] = w[2:]
			i--
		case strings.HasPrefix(w, "-"):
		case strings.Contains(w, "="):
		default:
			return w
		}
	}
	return ""
}

// lookPath finds an executable regular file named name in the PATH.
func (c *closer) lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range c.opts.Path {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// archName names an ELF file's machine as a user knows it.
func archName(c elf.Class, m elf.Machine) string {
	switch {
	case m == elf.EM_386 || m == elf.EM_X86_64 && c == elf.ELFCLASS32:
		return "a 32-bit x86 binary"
	case m == elf.EM_AARCH64:
		return "an aarch64 (arm64) binary"
	case m == elf.EM_ARM:
		return "a 32-bit arm binary"
	case m == elf.EM_RISCV:
		return "a riscv binary"
	case m == elf.EM_PPC64:
		return "a ppc64 binary"
	case m == elf.EM_S390:
		return "an s390x binary"
	}
	return "a binary for " + strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}
