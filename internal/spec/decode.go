package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// maxErrors bounds how many problems one parse reports.
const maxErrors = 10

// decoder walks the YAML node tree of one spec file, filling a Spec and
// collecting errors with their lines.
type decoder struct {
	file string
	sp   *Spec
	errs []error
	// readyRef is the placeholder in "ready: tcp:{port}", resolved by Validate.
	readyRef string
}

type field struct {
	key    string
	decode func(d *decoder, key string, n *yaml.Node)
}

// fields are the top-level keys, in the order docs/spec.md lists them.
var fields = []field{
	{"name", func(d *decoder, k string, n *yaml.Node) { d.sp.Name, _ = d.str(k, n) }},
	{"cmd", (*decoder).cmd},
	{"env", (*decoder).env},
	{"user", (*decoder).user},
	{"workdir", func(d *decoder, k string, n *yaml.Node) { d.sp.Workdir, _ = d.str(k, n) }},
	{"include", func(d *decoder, k string, n *yaml.Node) { d.sp.Include = d.paths(k, n) }},
	{"exclude", func(d *decoder, k string, n *yaml.Node) { d.sp.Exclude = d.strs(k, n) }},
	{"ports", (*decoder).ports},
	{"ready", (*decoder).ready},
	{"workload", func(d *decoder, k string, n *yaml.Node) { d.sp.Workload, _ = d.str(k, n) }},
	{"target", func(d *decoder, k string, n *yaml.Node) { d.sp.Target, _ = d.str(k, n) }},
	{"root", func(d *decoder, k string, n *yaml.Node) { d.sp.Root, _ = d.str(k, n) }},
	{"compression", func(d *decoder, k string, n *yaml.Node) { d.sp.Compression, _ = d.str(k, n) }},
	{"data", func(d *decoder, k string, n *yaml.Node) { d.sp.Data, _ = d.str(k, n) }},
	{"shake_libs", func(d *decoder, k string, n *yaml.Node) { d.sp.ShakeLibs, _ = d.str(k, n) }},
	{"shake_remove", func(d *decoder, k string, n *yaml.Node) { d.sp.ShakeRemove = d.strs(k, n) }},
	{"memory", (*decoder).memory},
	{"cpus", (*decoder).cpus},
	{"kernel", (*decoder).kernel},
	{"seccomp", func(d *decoder, k string, n *yaml.Node) { d.sp.Seccomp, _ = d.str(k, n) }},
	{"seccomp_allow", func(d *decoder, k string, n *yaml.Node) { d.sp.SeccompAllow = d.strs(k, n) }},
	{"setup", (*decoder).setup},
	{"dirs", (*decoder).dirs},
	{"rlimits", (*decoder).rlimits},
	{"stop_signal", (*decoder).stopSignal},
	{"stop_timeout", func(d *decoder, k string, n *yaml.Node) { d.duration(k, n, &d.sp.StopTimeout) }},
	{"ready_timeout", func(d *decoder, k string, n *yaml.Node) { d.duration(k, n, &d.sp.ReadyTimeout) }},
	{"workload_timeout", func(d *decoder, k string, n *yaml.Node) { d.duration(k, n, &d.sp.WorkloadTimeout) }},
	{"workload_requests", (*decoder).workloadRequests},
}

func fieldKeys(fs []field) []string {
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.key)
	}
	return keys
}

// yamlLineRE finds the line in the YAML library's syntax errors.
var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// decode parses data into a Spec with defaults applied, without Validate.
func decode(file, dir string, data []byte) (*Spec, error) {
	sp := &Spec{File: file, Dir: dir, lines: map[string]int{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		err = nil // an empty file: said below
	}
	if err == nil {
		// A second document would be dropped: one spec per file.
		var next yaml.Node
		if err2 := dec.Decode(&next); err2 == nil && len(next.Content) > 0 && !isNull(resolve(next.Content[0])) {
			return nil, fmt.Errorf("%s:%d: a second YAML document (after ---): a spec file holds one spec", file, next.Line)
		} else if err2 != nil && !errors.Is(err2, io.EOF) {
			err = err2
		}
	}
	if err != nil {
		msg := err.Error()
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", file, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(msg, "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the spec is empty: give at least cmd (see docs/spec.md)", file)
	}
	d := &decoder{file: file, sp: sp}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, fmt.Errorf("%s: the spec is empty: give at least cmd (see docs/spec.md)", file)
	}
	d.mapping("", root, fields)
	if len(d.errs) > 0 {
		return nil, joinErrs(d.errs)
	}
	sp.readyRef = d.readyRef
	sp.setDefaults()
	return sp, nil
}

func joinErrs(errs []error) error {
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("(%d more problems not shown)", len(errs)-maxErrors))
	}
	return errors.Join(errs...)
}

// resolve follows aliases (*name) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, posErrorf(fmt.Sprintf("%s:%d", d.file, n.Line), format, args...))
}

// describe names a node's kind for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 2 && n.Style&yaml.FlowStyle != 0 && isNull(n.Content[1]) {
			// [a, {port}] reads as a mapping: the placeholder needs quotes.
			return fmt.Sprintf("the mapping {%s} (quote placeholders: \"{%s}\")", n.Content[0].Value, n.Content[0].Value)
		}
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		case "!!null":
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// mapping decodes a mapping node with the given fields; prefix names the
// enclosing key ("kernel") for line lookups and messages.
func (d *decoder) mapping(prefix string, n *yaml.Node, fs []field) {
	if n.Kind != yaml.MappingNode {
		what := "the spec"
		if prefix != "" {
			what = prefix
		}
		d.errorf(n, "%s: want a mapping of fields (key: value), got %s", what, describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolve(n.Content[i+1])
		key := kn.Value
		full := key
		if prefix != "" {
			full = prefix + "." + key
		}
		if l, dup := seen[key]; dup {
			d.errorf(kn, "%s is set twice (first on line %d)", full, l)
			continue
		}
		seen[key] = kn.Line
		if prefix == "" && strings.HasPrefix(key, "x-") {
			continue // an extension key, e.g. to hold YAML anchors
		}
		var f *field
		for j := range fs {
			if fs[j].key == key {
				f = &fs[j]
			}
		}
		if f == nil {
			msg := fmt.Sprintf("unknown field %q", key)
			if prefix != "" {
				msg = fmt.Sprintf("unknown field %q in %s", key, prefix)
			}
			if s := suggest(key, fieldKeys(fs)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(fieldKeys(fs), ", "))
			}
			d.errorf(kn, "%s", msg)
			continue
		}
		d.sp.lines[full] = kn.Line
		if isNull(vn) {
			continue // "key:" with no value: as if left out
		}
		f.decode(d, full, vn)
	}
}

// suggest returns the known key closest to key, or "".
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		for _, k := range known {
			if len(key) >= 3 && (strings.HasPrefix(k, key) || strings.HasPrefix(key, k)) {
				return k
			}
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (with adjacent swaps).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// str reads a scalar as text.
func (d *decoder) str(key string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want a string, got %s", key, describe(n))
		return "", false
	}
	return n.Value, true
}

// strs reads a list of scalars; a single scalar is a list of one.
func (d *decoder) strs(key string, n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list of strings, got %s", key, describe(n))
		return nil
	}
	var out []string
	for _, e := range n.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			d.errorf(e, "%s: want a string, got %s", key, describe(e))
			continue
		}
		out = append(out, e.Value)
	}
	return out
}

// paths reads a list of host paths, resolved against the spec's directory.
func (d *decoder) paths(key string, n *yaml.Node) []string {
	var out []string
	for i, p := range d.strs(key, n) {
		out = append(out, d.sp.abs(p))
		if n.Kind == yaml.SequenceNode {
			d.sp.lines[fmt.Sprintf("%s.%d", key, i)] = n.Content[i].Line
		}
	}
	return out
}

// abs resolves a host path against the spec's directory.
func (sp *Spec) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(sp.Dir, p)
}

func (d *decoder) boolean(key string, n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, "%s: want true or false, got %s", key, describe(n))
		return false, false
	}
	v, err := strconv.ParseBool(n.Value)
	if err != nil {
		d.errorf(n, "%s: want true or false, got %s", key, describe(n))
		return false, false
	}
	return v, true
}

func (d *decoder) integer(key string, n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "%s: want a whole number, got %s", key, describe(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		d.errorf(n, "%s: want a whole number, got %s", key, describe(n))
		return 0, false
	}
	return v, true
}

// workloadRequests reads a count, or a regular expression with one group
// around a number in the workload's output.
func (d *decoder) workloadRequests(key string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if v, ok := d.integer(key, n); ok {
			if v < 1 {
				d.errorf(n, "bad workload_requests %d: want the number of requests the workload makes, or a regular expression that finds it in the workload's output", v)
				return
			}
			d.sp.WorkloadRequests = v
		}
		return
	}
	s, ok := d.str(key, n)
	if !ok {
		return
	}
	if re, err := regexp.Compile(s); err != nil || re.NumSubexp() != 1 {
		d.errorf(n, "bad workload_requests %q: want a number, or a regular expression with one group around a number in the workload's output", s)
		return
	}
	d.sp.WorkloadRequestsFrom = s
}

func (d *decoder) cmd(key string, n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		words, err := SplitCommand(n.Value)
		if err != nil {
			d.errorf(n, "cmd: %v", err)
			return
		}
		d.sp.Cmd = words
	case yaml.SequenceNode:
		d.sp.Cmd = d.strs(key, n)
		if d.sp.Cmd == nil {
			d.sp.Cmd = []string{}
		}
	default:
		d.errorf(n, "cmd: want the program and its arguments, as a list or a string, got %s", describe(n))
	}
}

func (d *decoder) env(key string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "env: want a mapping of NAME: value, got %s", describe(n))
		return
	}
	d.sp.Env = map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolve(n.Content[i+1])
		if !envKeyRE.MatchString(kn.Value) {
			d.errorf(kn, "env: bad variable name %q: want letters, digits and _", kn.Value)
			continue
		}
		if _, dup := d.sp.Env[kn.Value]; dup {
			d.errorf(kn, "env: %s is set twice", kn.Value)
			continue
		}
		if vn.Kind != yaml.ScalarNode {
			d.errorf(vn, "env %s: want a string, got %s", kn.Value, describe(vn))
			continue
		}
		v := vn.Value
		if isNull(vn) {
			v = ""
		}
		d.sp.Env[kn.Value] = v
		d.sp.lines["env."+kn.Value] = kn.Line
	}
}

var userFields = []field{
	{"name", func(d *decoder, k string, n *yaml.Node) { d.sp.User.Name, _ = d.str(k, n) }},
	{"uid", func(d *decoder, k string, n *yaml.Node) {
		if v, ok := d.integer(k, n); ok {
			d.sp.User.UID = &v
		}
	}},
	{"gid", func(d *decoder, k string, n *yaml.Node) {
		if v, ok := d.integer(k, n); ok {
			d.sp.User.GID = &v
		}
	}},
	{"home", func(d *decoder, k string, n *yaml.Node) { d.sp.User.Home, _ = d.str(k, n) }},
}

func (d *decoder) user(key string, n *yaml.Node) {
	d.sp.User = &User{}
	if n.Kind == yaml.ScalarNode {
		d.sp.User.Name = n.Value
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "user: want a user name, or a mapping with name, uid, gid, got %s", describe(n))
		return
	}
	d.mapping(key, n, userFields)
}

func (d *decoder) ports(key string, n *yaml.Node) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, e := range items {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			d.errorf(e, "ports: want a port like 6379 or \"53/udp\", got %s", describe(e))
			continue
		}
		p, err := parsePort(e.Value)
		if err != nil {
			d.errorf(e, "%v", err)
			continue
		}
		d.sp.lines[fmt.Sprintf("ports.%d", i)] = e.Line
		d.sp.Ports = append(d.sp.Ports, p)
	}
}

func (d *decoder) ready(key string, n *yaml.Node) {
	s, ok := d.str(key, n)
	if !ok {
		return
	}
	r, ref, err := parseReady(s)
	if err != nil {
		d.errorf(n, "%v", err)
		return
	}
	d.sp.Ready, d.readyRef = r, ref
}

func (d *decoder) memory(key string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		d.errorf(n, "bad memory %s: give a unit, e.g. %sM", n.Value, n.Value)
		return
	}
	s, ok := d.str(key, n)
	if !ok {
		return
	}
	mb, err := parseMemory(s)
	if err != nil {
		d.errorf(n, "%v", err)
		return
	}
	d.sp.MemoryMB = mb
}

func (d *decoder) cpus(key string, n *yaml.Node) {
	v, ok := d.integer(key, n)
	if !ok {
		return
	}
	if v < 1 || v > 64 {
		d.errorf(n, "bad cpus %d: want 1-64", v)
		return
	}
	d.sp.CPUs = v
}

var kernelFields = []field{
	{"source", func(d *decoder, k string, n *yaml.Node) {
		if s, ok := d.str(k, n); ok {
			d.sp.Kernel.Source = d.sp.abs(s)
		}
	}},
	{"enable", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.Enable = d.symbols(k, n) }},
	{"disable", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.Disable = d.symbols(k, n) }},
	{"opt", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.Opt, _ = d.str(k, n) }},
	{"march", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.March, _ = d.str(k, n) }},
	{"pgo_hot_flags", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.PGOHotFlags = d.strs(k, n) }},
	{"dce", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.DCE, _ = d.boolean(k, n) }},
	{"shake_syscalls", func(d *decoder, k string, n *yaml.Node) { d.sp.Kernel.ShakeSyscalls, _ = d.boolean(k, n) }},
	{"keep_syscalls", func(d *decoder, k string, n *yaml.Node) {
		d.sp.Kernel.KeepSyscalls = d.strs(k, n)
		d.sp.Kernel.ShakeSyscalls = true
	}},
}

func (d *decoder) kernel(key string, n *yaml.Node) { d.mapping(key, n, kernelFields) }

func (d *decoder) symbols(key string, n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list of Kconfig symbols, got %s", key, describe(n))
		return nil
	}
	var out []string
	for _, e := range n.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode {
			d.errorf(e, "%s: want a Kconfig symbol, got %s", key, describe(e))
			continue
		}
		s, err := parseSymbol(e.Value)
		if err != nil {
			d.errorf(e, "%v", err)
			continue
		}
		d.sp.lines[key+"."+s] = e.Line
		out = append(out, s)
	}
	return out
}

func (d *decoder) setup(key string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode && n.Kind != yaml.ScalarNode {
		d.errorf(n, "setup: want a list of shell commands, got %s", describe(n))
		return
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, e := range items {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			d.errorf(e, "setup: want a shell command, got %s", describe(e))
			continue
		}
		d.sp.lines[fmt.Sprintf("setup.%d", i)] = e.Line
		d.sp.Setup = append(d.sp.Setup, e.Value)
	}
}

func (d *decoder) dirs(key string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "dirs: want a list of {path, owner, mode}, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		k := fmt.Sprintf("dirs.%d", i)
		d.sp.lines[k] = e.Line
		dir := Dir{Mode: DefaultDirMode}
		if e.Kind == yaml.ScalarNode && !isNull(e) {
			dir.Path = e.Value
			d.sp.Dirs = append(d.sp.Dirs, dir)
			continue
		}
		if e.Kind != yaml.MappingNode {
			d.errorf(e, "dirs: want a path or {path, owner, mode}, got %s", describe(e))
			continue
		}
		d.mapping(k, e, []field{
			{"path", func(d *decoder, k string, n *yaml.Node) { dir.Path, _ = d.str(k, n) }},
			{"owner", func(d *decoder, k string, n *yaml.Node) {
				if s, ok := d.str(k, n); ok {
					if !ownerRE.MatchString(s) {
						d.errorf(n, "bad owner %q: want USER, USER:GROUP or UID:GID", s)
					}
					dir.Owner = s
				}
			}},
			{"mode", func(d *decoder, k string, n *yaml.Node) {
				if n.Kind != yaml.ScalarNode {
					d.errorf(n, "%s: want octal permission bits like 0755, got %s", k, describe(n))
					return
				}
				m, err := parseMode(n.Value)
				if err != nil {
					d.errorf(n, "%v", err)
					return
				}
				dir.Mode = m
			}},
		})
		d.sp.Dirs = append(d.sp.Dirs, dir)
	}
}

func (d *decoder) rlimits(key string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "rlimits: want a mapping like NOFILE: 65536, got %s", describe(n))
		return
	}
	d.sp.Rlimits = map[string]uint64{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolve(n.Content[i+1])
		name, err := parseRlimitName(kn.Value)
		if err != nil {
			d.errorf(kn, "%v", err)
			continue
		}
		if _, dup := d.sp.Rlimits[name]; dup {
			d.errorf(kn, "rlimits: %s is set twice", name)
			continue
		}
		if vn.Kind != yaml.ScalarNode {
			d.errorf(vn, "rlimits %s: want a number or unlimited, got %s", name, describe(vn))
			continue
		}
		v, err := parseRlimitValue(name, vn.Value)
		if err != nil {
			d.errorf(vn, "%v", err)
			continue
		}
		d.sp.Rlimits[name] = v
		d.sp.lines["rlimits."+name] = kn.Line
	}
}

func (d *decoder) stopSignal(key string, n *yaml.Node) {
	s, ok := d.str(key, n)
	if !ok {
		return
	}
	sig, err := parseSignal(s)
	if err != nil {
		d.errorf(n, "%v", err)
		return
	}
	d.sp.StopSignal = sig
}

func (d *decoder) duration(key string, n *yaml.Node, dst *time.Duration) {
	s, ok := d.str(key, n)
	if !ok {
		return
	}
	v, err := parseDuration(key, s)
	if err != nil {
		d.errorf(n, "%v", err)
		return
	}
	*dst = v
}
