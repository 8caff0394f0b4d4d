package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/cpu"
)

const df1NoDefLib = 0x800 // DF_1_NODEFLIB

// loaded is one object in a process's link map.
type loaded struct {
	name   string // the path it was opened by; $ORIGIN is its directory
	real   string // the path with every symlink resolved
	obj    *elfObject
	loader *loaded // the object whose DT_NEEDED loaded it first
}

// libraries adds the shared libraries main needs, breadth first as ld.so
// loads them. interp is the PT_INTERP object (nil for none): ld.so is
// already loaded, so a DT_NEEDED naming its soname resolves to it.
func (c *closer) libraries(main, interp *loaded) error {
	byName := map[string]*loaded{}
	byReal := map[string]*loaded{main.real: main}
	if interp != nil {
		byName[interp.name] = interp
		byReal[interp.real] = interp
		if interp.obj != nil && interp.obj.soname != "" {
			byName[interp.obj.soname] = interp
		}
	}
	queue := []*loaded{main}
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		for _, name := range l.obj.needed {
			if byName[name] != nil {
				continue
			}
			found, obj, err := c.findLibrary(name, l, main)
			if err != nil {
				return err
			}
			real, err := c.walk(found, FileLibrary)
			if err != nil {
				return fmt.Errorf("following %s (needed by %s): %w", found, l.name, err)
			}
			if prev := byReal[real]; prev != nil {
				byName[name] = prev
				continue
			}
			nl := &loaded{name: found, real: real, obj: obj, loader: l}
			byName[name] = nl
			byReal[real] = nl
			if obj.soname != "" && byName[obj.soname] == nil {
				byName[obj.soname] = nl
			}
			queue = append(queue, nl)
		}
	}
	return nil
}

// searchStep is one part of the search path, for error messages.
type searchStep struct {
	what string
	dirs []string
}

// findLibrary finds the DT_NEEDED name of l as ld.so does and returns the
// path it opens.
func (c *closer) findLibrary(name string, l, main *loaded) (string, *elfObject, error) {
	var skipped []string
	try := func(p string) (string, *elfObject, error) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", nil, nil
		}
		obj, why, err := c.candidate(abs, main.obj)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s (needed by %s): %s: %v", ErrBadLibrary, name, l.name, abs, err)
		}
		if why != "" {
			skipped = append(skipped, abs+" ("+why+")")
		}
		if obj == nil {
			return "", nil, nil
		}
		return abs, obj, nil
	}

	if strings.Contains(name, "/") {
		p, ok := expandDST(name, filepath.Dir(l.name), l.obj)
		if ok {
			if found, obj, err := try(p); found != "" || err != nil {
				return found, obj, err
			}
		}
		return "", nil, fmt.Errorf("%w: %s (needed by %s) does not exist%s", ErrNoLibrary, name, l.name, skippedNote(skipped))
	}

	var steps []searchStep
	if len(l.obj.runpath) == 0 {
		for a := l; a != nil; a = a.loader {
			if len(a.obj.runpath) > 0 || len(a.obj.rpath) == 0 {
				continue // DT_RPATH is ignored in an object with DT_RUNPATH
			}
			steps = append(steps, searchStep{"DT_RPATH of " + a.name, expandDirs(a.obj.rpath, filepath.Dir(a.name), a.obj)})
		}
	}
	if len(c.opts.LDLibraryPath) > 0 {
		steps = append(steps, searchStep{"LD_LIBRARY_PATH", expandDirs(c.opts.LDLibraryPath, filepath.Dir(main.name), main.obj)})
	}
	if len(l.obj.runpath) > 0 {
		steps = append(steps, searchStep{"DT_RUNPATH of " + l.name, expandDirs(l.obj.runpath, filepath.Dir(l.name), l.obj)})
	}
	subdirs := searchSubdirs(main.obj)
	for _, s := range steps {
		for _, d := range s.dirs {
			for _, sub := range subdirs {
				if found, obj, err := try(filepath.Join(d, sub, name)); found != "" || err != nil {
					return found, obj, err
				}
			}
		}
	}

	if l.obj.flags1&df1NoDefLib == 0 {
		cache, err := c.ldCache()
		if err != nil {
			return "", nil, err
		}
		if cache != nil {
			for _, p := range cache.candidates(name, hwcapsLevels(main.obj)) {
				if found, obj, err := try(p); found != "" || err != nil {
					return found, obj, err
				}
			}
			steps = append(steps, searchStep{"ld.so cache " + cache.source, cache.confDirs})
		}
		for _, d := range c.opts.DefaultDirs {
			for _, sub := range subdirs {
				if found, obj, err := try(filepath.Join(d, sub, name)); found != "" || err != nil {
					return found, obj, err
				}
			}
		}
		steps = append(steps, searchStep{"default directories", c.opts.DefaultDirs})
	}

	var where []string
	for _, s := range steps {
		if len(s.dirs) == 0 {
			where = append(where, s.what)
			continue
		}
		where = append(where, s.what+" ["+strings.Join(s.dirs, ":")+"]")
	}
	return "", nil, fmt.Errorf("%w: %s (needed by %s) is not in %s%s (install the package that provides it, or add its directory to the library path)",
		ErrNoLibrary, name, l.name, strings.Join(where, ", "), skippedNote(skipped))
}

func skippedNote(skipped []string) string {
	if len(skipped) == 0 {
		return ""
	}
	return "; skipped " + strings.Join(skipped, ", ")
}

// candidate checks a file ld.so would try. It returns a reason when ld.so
// passes over the file silently (missing, wrong class or machine), and an
// error when ld.so would stop with an error.
func (c *closer) candidate(p string, want *elfObject) (*elfObject, string, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, "", nil
		}
		return nil, "", unwrapPathError(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, "", nil
	}
	var ident [elf.EI_NIDENT]byte
	if _, err := f.ReadAt(ident[:], 0); err != nil || !bytes.HasPrefix(ident[:], []byte(elf.ELFMAG)) {
		return nil, "", errors.New("not an ELF file")
	}
	if elf.Class(ident[elf.EI_CLASS]) != want.class {
		return nil, "wrong ELF class " + elf.Class(ident[elf.EI_CLASS]).String(), nil
	}
	obj, err := readELF(f)
	if err != nil {
		return nil, "", err
	}
	if obj.data != want.data || obj.machine != want.machine {
		return nil, "wrong machine " + obj.machine.String(), nil
	}
	if obj.typ != elf.ET_DYN || obj.flags1&df1PIE != 0 {
		return nil, "", errors.New("not a shared object (an executable cannot be loaded as a library)")
	}
	return obj, "", nil
}

func (c *closer) ldCache() (*ldCache, error) {
	if !c.cacheLoaded {
		cache, err := loadLDCache(c.opts.LDSOCache, c.opts.LDSOConf)
		if err != nil {
			return nil, err
		}
		c.cache, c.cacheLoaded = cache, true
	}
	return c.cache, nil
}

// expandDirs expands dynamic string tokens in search directories, dropping
// those that cannot be expanded.
func expandDirs(dirs []string, origin string, o *elfObject) []string {
	var out []string
	for _, d := range dirs {
		if e, ok := expandDST(d, origin, o); ok {
			out = append(out, e)
		}
	}
	return out
}

// expandDST expands $ORIGIN, $LIB and $PLATFORM (also as ${...}) in s.
// Unknown $NAMEs are kept as they are, as ld.so does.
func expandDST(s, origin string, o *elfObject) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	lib, platform := libAndPlatform(o)
	vals := map[string]string{"ORIGIN": origin, "LIB": lib, "PLATFORM": platform}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		matched := false
		for name, val := range vals {
			var n int
			switch {
			case strings.HasPrefix(rest, "{"+name+"}"):
				n = len(name) + 2
			case strings.HasPrefix(rest, name) && (len(rest) == len(name) || !isNameByte(rest[len(name)])):
				n = len(name)
			default:
				continue
			}
			if val == "" {
				return "", false
			}
			b.WriteString(val)
			i += n
			matched = true
			break
		}
		if !matched {
			b.WriteByte('$')
		}
	}
	return b.String(), true
}

func isNameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// libAndPlatform returns what $LIB and $PLATFORM expand to for an object
// of o's machine, as Debian's glibc expands them.
func libAndPlatform(o *elfObject) (lib, platform string) {
	switch {
	case o.machine == elf.EM_X86_64 && o.class == elf.ELFCLASS64:
		return "lib/x86_64-linux-gnu", "x86_64"
	case o.machine == elf.EM_386:
		return "lib/i386-linux-gnu", "i686"
	case o.machine == elf.EM_AARCH64:
		return "lib/aarch64-linux-gnu", "aarch64"
	}
	return "lib", ""
}

// hwcapsLevels returns the glibc-hwcaps subdirectories ld.so tries on this
// CPU for an object like o, best first.
func hwcapsLevels(o *elfObject) []string {
	if o.machine != elf.EM_X86_64 || o.class != elf.ELFCLASS64 {
		return nil
	}
	x := cpu.X86
	v2 := x.HasSSE3 && x.HasSSSE3 && x.HasSSE41 && x.HasSSE42 && x.HasPOPCNT && x.HasCX16
	v3 := v2 && x.HasAVX && x.HasAVX2 && x.HasBMI1 && x.HasBMI2 && x.HasFMA && x.HasOSXSAVE
	v4 := v3 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512CD && x.HasAVX512DQ && x.HasAVX512VL
	var out []string
	if v4 {
		out = append(out, "x86-64-v4")
	}
	if v3 {
		out = append(out, "x86-64-v3")
	}
	if v2 {
		out = append(out, "x86-64-v2")
	}
	return out
}

// searchSubdirs returns the subdirectories glibc 2.36 tries in each
// directory of a search path, in order, ending with the directory itself.
func searchSubdirs(o *elfObject) []string {
	var out []string
	for _, h := range hwcapsLevels(o) {
		out = append(out, "glibc-hwcaps/"+h)
	}
	if _, platform := libAndPlatform(o); platform != "" && o.machine == elf.EM_X86_64 {
		// Legacy hwcap subdirectories (removed in glibc 2.37).
		out = append(out, "tls/"+platform+"/"+platform, "tls/"+platform, "tls", platform+"/"+platform, platform)
	}
	return append(out, "")
}
