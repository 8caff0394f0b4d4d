package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Flags are the command-line form of a spec (bespoke build and trace
// without -f): each field holds a flag's text, parsed as the YAML field of
// the same name would be. Empty fields are left at their defaults.
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
	Memory   string // "256M"
	CPUs     int
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
	dir := f.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("building spec from flags: %w", err)
		}
		dir = wd
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("building spec from flags: %w", err)
	}
	sp := &Spec{
		Dir:      dir,
		Name:     f.Name,
		Cmd:      append([]string{}, argv...),
		Workload: f.Workload,
		Workdir:  f.Workdir,
		Exclude:  f.Exclude,
		Target:   f.Target,
		CPUs:     f.CPUs,
		lines:    map[string]int{},
	}
	var errs []error
	for _, p := range f.Include {
		sp.Include = append(sp.Include, sp.abs(p))
	}
	for _, s := range f.Ports {
		p, err := parsePort(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--port: %w", err))
			continue
		}
		sp.Ports = append(sp.Ports, p)
	}
	if f.Ready != "" {
		r, ref, err := parseReady(f.Ready)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ready: %w", err))
		}
		sp.Ready, sp.readyRef = r, ref
	}
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
	if f.User != "" {
		sp.User = &User{Name: f.User}
	}
	if f.Memory != "" {
		mb, err := parseMemory(f.Memory)
		if err != nil {
			errs = append(errs, fmt.Errorf("--memory: %w", err))
		}
		sp.MemoryMB = mb
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}
