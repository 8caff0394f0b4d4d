// Package breakdown says where an image's bytes go: the kernel's code by
// source directory (subsystem) and its largest functions, from vmlinux's
// symbol table and the build directory's object files; the root by kind
// of file and its largest files, from the root's report.
package breakdown

import (
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/initramfs"
)

// Item is one share of a whole.
type Item struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	Count int    `json:"count,omitempty"`
}

// Kernel is where vmlinux's code goes.
type Kernel struct {
	// Code is the sum of the sizes of vmlinux's functions.
	Code int64 `json:"code_bytes"`
	// Functions are the largest functions.
	Functions []Item `json:"functions"`
	// Subsystems are the functions' bytes by source directory ("mm",
	// "net/ipv4", "arch/x86"), largest first, when the build directory's
	// objects were there to map them; "(other)" holds functions no object
	// defines (the linker's, or objects of another config).
	Subsystems []Item `json:"subsystems,omitempty"`
	// Mapped is the share of Code that Subsystems attribute to a
	// directory.
	Mapped float64 `json:"mapped,omitempty"`
}

// TopFunctions is how many functions a Kernel lists.
const TopFunctions = 30

// Other is the subsystem of functions no object file defines.
const Other = "(other)"

// KernelOf reads vmlinux's function symbols, and, when buildDir is not
// "", maps them to source directories through the object files there.
func KernelOf(vmlinux, buildDir string) (*Kernel, error) {
	funcs, err := functions(vmlinux)
	if err != nil {
		return nil, err
	}
	k := &Kernel{}
	for _, f := range funcs {
		k.Code += f.size
	}
	byName := map[string]int64{}
	for _, f := range funcs {
		byName[f.name] += f.size
	}
	k.Functions = Top(byName, TopFunctions)
	if buildDir == "" {
		return k, nil
	}
	dirs, err := objectDirs(buildDir)
	if err != nil {
		return nil, err
	}
	sums := map[string]int64{}
	var mapped int64
	for _, f := range funcs {
		d, ok := dirs[symKey(f)]
		if !ok {
			d, ok = dirs[symKey{f.name, -1}]
		}
		if !ok || d == "" {
			d = Other
		} else {
			mapped += f.size
		}
		sums[d] += f.size
	}
	k.Subsystems = Top(sums, len(sums))
	if k.Code > 0 {
		k.Mapped = float64(mapped) / float64(k.Code)
	}
	return k, nil
}

type function struct {
	name string
	size int64
}

// functions returns the sized function symbols of an ELF file.
func functions(path string) ([]function, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []function
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 && s.Section != elf.SHN_UNDEF {
			out = append(out, function{s.Name, int64(s.Size)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no function symbols (stripped?)", path)
	}
	return out, nil
}

// symKey is a function by name and size; size -1: the name alone, when
// only one directory defines it.
type symKey function

// objectDirs maps the functions defined by the object files below
// buildDir to their subsystem (Subsystem of the object's directory).
func objectDirs(buildDir string) (map[symKey]string, error) {
	out := map[symKey]string{}
	byName := map[string]map[string]bool{}
	err := filepath.WalkDir(buildDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != buildDir && (n == "scripts" || n == "tools" || n == "usr" || n == "include" || n == "source") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".o") || d.Name() == "vmlinux.o" {
			return nil
		}
		rel, err := filepath.Rel(buildDir, filepath.Dir(p))
		if err != nil {
			return err
		}
		sub := Subsystem(rel)
		funcs, err := functions(p)
		if err != nil {
			return nil // an object without functions (data only), or not ELF
		}
		for _, f := range funcs {
			out[symKey(f)] = sub
			if byName[f.name] == nil {
				byName[f.name] = map[string]bool{}
			}
			byName[f.name][sub] = true
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("build directory %s: %w", buildDir, err)
	}
	for name, subs := range byName {
		if len(subs) == 1 {
			for s := range subs {
				out[symKey{name, -1}] = s
			}
		}
	}
	return out, err
}

// Subsystem names the source directory rel (relative to the kernel tree)
// as a subsystem: its first component, and its second under arch,
// drivers, fs, net and sound ("net/ipv4", "fs/ext4", "arch/x86").
func Subsystem(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) > 1 && slices.Contains([]string{"arch", "drivers", "fs", "net", "sound"}, parts[0]) {
		return parts[0] + "/" + parts[1]
	}
	if parts[0] == "." {
		return Other
	}
	return parts[0]
}

// Root is where the root's bytes go.
type Root struct {
	Bytes int64  `json:"bytes"` // the regular files' sizes
	Kinds []Item `json:"kinds"` // by kind of file: library, program, data, tree, init, ...
	Files []Item `json:"files"` // the largest files
}

// TopFiles is how many files a Root lists.
const TopFiles = 30

// RootOf sums the root's files by kind and lists its largest.
func RootOf(files []initramfs.FileReport) *Root {
	r := &Root{}
	kinds := map[string]int64{}
	counts := map[string]int{}
	sizes := map[string]int64{}
	for _, f := range files {
		if f.Type != "file" {
			continue
		}
		r.Bytes += f.Bytes
		kinds[f.Kind] += f.Bytes
		counts[f.Kind]++
		sizes[f.Path] = f.Bytes
	}
	r.Kinds = Top(kinds, len(kinds))
	for i := range r.Kinds {
		r.Kinds[i].Count = counts[r.Kinds[i].Name]
	}
	r.Files = Top(sizes, TopFiles)
	return r
}

// Top returns the n largest entries of m, largest first (ties by name).
func Top(m map[string]int64, n int) []Item {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	var out []Item
	for _, name := range names[:min(n, len(names))] {
		out = append(out, Item{Name: name, Bytes: m[name]})
	}
	return out
}

// BuildDir returns dir, the build directory a kernel of key was built
// in (kbuild.Meta.BuildDir), when it still exists, and whether its last
// build is still that kernel: a later build of another config may have
// continued it (Kbuild recompiles what the config change touches), so its
// objects are of a close config, not of this one. "" when it is gone.
func BuildDir(dir, key string) (string, bool) {
	if dir == "" {
		return "", false
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(dir, "bespoke-key"))
	return dir, err == nil && strings.TrimSpace(string(b)) == key
}
