package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Flags are the command-line form of a spec (bespoke build and trace
// without -f, and overrides with -f): each field holds a flag's text,
// parsed as the YAML field of the same name would be. Empty fields (and
// CPUs 0) are flags not given.
type Flags struct {
	Name     string
	Ready    string   // --ready tcp:PORT | log:REGEX
	Workload string   // --workload CMD
	Ports    []string // --port 6379, --port 53/udp (repeatable)
	Env      []string // --env K=V (repeatable)
	User     string   // --user NAME
	Workdir  string
	Include  []string // host paths, relative to Dir
	Exclude  []string
	Target   string
	Root     string // --root erofs|initramfs
	// Compression is --compression lz4hc|lzma (erofs) or xz (initramfs).
	Compression string
	Data        string // --data trees|traced
	ShakeLibs   string // --shake-libs static|off
	Memory      string // "256M"
	CPUs        int
	Seccomp     string // --seccomp enforce|log|off
	// Dir is the directory relative paths resolve against; "" is the
	// working directory.
	Dir string
}

// FromArgs builds and checks a Spec from flags and the program's argv
// (what follows --). Errors name the flag.
func FromArgs(f Flags, argv []string) (*Spec, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no program: give a spec with -f bespoke.yaml, or the program and its arguments after --")
	}
	dir, err := f.dir()
	if err != nil {
		return nil, fmt.Errorf("building spec from flags: %w", err)
	}
	sp := &Spec{Dir: dir, Cmd: slices.Clone(argv), lines: map[string]int{}}
	if _, err := f.apply(sp, dir); err != nil {
		return nil, err
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}

// Override applies the flags that were given to sp, a spec read from a
// file (bespoke build -f FILE --target qemu-pc), and checks the result, as
// Docker Compose and kraft treat a flag given beside a file. A flag with
// one value replaces the file's field. The lists add to the file's: a port
// (--port) already listed is not listed twice, -e K=V sets K (replacing
// the file's value of K, keeping its other variables), --include and
// --exclude append. Relative --include paths resolve against Flags.Dir
// (the working directory), not the file's directory. It returns the spec
// fields the flags set, in the order of Flags ("name", "ready", "ports",
// ...), for the build log.
func (f Flags) Override(sp *Spec) ([]string, error) {
	dir, err := f.dir()
	if err != nil {
		return nil, fmt.Errorf("applying flags to the spec: %w", err)
	}
	set, err := f.apply(sp, dir)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, nil
	}
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("with the flags (%s): %w", strings.Join(set, ", "), err)
	}
	return set, nil
}

func (f Flags) dir() (string, error) {
	dir := f.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		dir = wd
	}
	return filepath.Abs(dir)
}

// apply sets the fields of sp that f gives and returns their spec keys.
// Relative include paths resolve against dir.
func (f Flags) apply(sp *Spec, dir string) (set []string, err error) {
	var errs []error
	given := func(key string, ok bool) bool {
		if ok {
			set = append(set, key)
		}
		return ok
	}
	if given("name", f.Name != "") {
		sp.Name = f.Name
	}
	if given("ready", f.Ready != "") {
		r, ref, err := parseReady(f.Ready)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ready: %w", err))
		}
		sp.Ready, sp.readyRef = r, ref
	}
	if given("workload", f.Workload != "") {
		sp.Workload = f.Workload
	}
	if given("ports", len(f.Ports) > 0) {
		for _, s := range f.Ports {
			p, err := parsePort(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("--port: %w", err))
				continue
			}
			if !slices.Contains(sp.Ports, p) {
				sp.Ports = append(sp.Ports, p)
			}
		}
	}
	if given("env", len(f.Env) > 0) {
		for _, kv := range f.Env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !envKeyRE.MatchString(k) {
				errs = append(errs, fmt.Errorf("--env %q: want NAME=VALUE", kv))
				continue
			}
			if sp.Env == nil {
				sp.Env = map[string]string{}
			}
			sp.Env[k] = v
		}
	}
	if given("user", f.User != "") {
		sp.User = &User{Name: f.User}
	}
	if given("workdir", f.Workdir != "") {
		sp.Workdir = f.Workdir
	}
	if given("include", len(f.Include) > 0) {
		for _, p := range f.Include {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if p = filepath.Clean(p); !slices.Contains(sp.Include, p) {
				sp.Include = append(sp.Include, p)
			}
		}
	}
	if given("exclude", len(f.Exclude) > 0) {
		for _, p := range f.Exclude {
			if !slices.Contains(sp.Exclude, p) {
				sp.Exclude = append(sp.Exclude, p)
			}
		}
	}
	if given("target", f.Target != "") {
		sp.Target = f.Target
	}
	if given("root", f.Root != "") {
		sp.Root = f.Root
		if f.Compression == "" && sp.Compression != "" && !slices.Contains(Compressions[sp.Root], sp.Compression) {
			sp.Compression = "" // the spec's, for its own root
		}
	}
	if given("compression", f.Compression != "") {
		sp.Compression = f.Compression
	}
	if given("data", f.Data != "") {
		sp.Data = f.Data
	}
	if given("shake-libs", f.ShakeLibs != "") {
		sp.ShakeLibs = f.ShakeLibs
	}
	if given("memory", f.Memory != "") {
		mb, err := parseMemory(f.Memory)
		if err != nil {
			errs = append(errs, fmt.Errorf("--memory: %w", err))
		}
		sp.MemoryMB = mb
	}
	if given("cpus", f.CPUs != 0) {
		sp.CPUs = f.CPUs
	}
	if given("seccomp", f.Seccomp != "") {
		sp.Seccomp = f.Seccomp
	}
	return set, errors.Join(errs...)
}
