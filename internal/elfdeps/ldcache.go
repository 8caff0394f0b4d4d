package elfdeps

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The glibc ld.so cache, as written by ldconfig (sysdeps/generic/dl-cache.h).
// glibc 2.32 and later write only the "new" format; an old-format header
// ("ld.so-1.7.0") may precede it in caches written by older ldconfigs.
const (
	ldCacheOldMagic = "ld.so-1.7.0"
	ldCacheNewMagic = "glibc-ld.so.cache1.1"

	ldCacheNewHeaderSize = 48 // magic[17] version[3] nlibs len_strings flags pad[3] extension_offset unused[3]
	ldCacheNewEntrySize  = 24 // flags key value osversion hwcap(u64)
	ldCacheOldHeaderSize = 16 // magic[11] pad nlibs
	ldCacheOldEntrySize  = 12 // flags key value

	ldCacheExtensionMagic   = 0xEAA42174 // (uint32_t) -358342284
	ldCacheExtGenerator     = 0
	ldCacheExtGlibcHwcaps   = 1
	ldCacheHwcapExtension   = 1 << 62
	ldCacheFlagTypeMask     = 0x00ff
	ldCacheFlagELFLibc6     = 0x0003
	ldCacheEndianLittle     = 2
	ldCacheEndianBig        = 3
	ldCacheEndianUnknownOld = 0
)

// ldCacheEntry is one library in the cache.
type ldCacheEntry struct {
	Name  string // the key: a soname such as "libc.so.6"
	Path  string // where ldconfig found it
	Flags int32  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64, ...
	// Hwcaps is the glibc-hwcaps subdirectory ("x86-64-v3") of an entry
	// with the hwcaps extension, "" for a baseline entry.
	Hwcaps string
	// Legacy is true for an entry with legacy hwcap bits, which glibc 2.37
	// and later ignore and which this package ignores too.
	Legacy bool
}

// ldCache is a parsed ld.so cache, or the directories of ld.so.conf when
// there is no cache.
type ldCache struct {
	Entries   []ldCacheEntry
	Generator string
	byName    map[string][]int
	// confDirs is set instead of Entries when the cache was absent and
	// ld.so.conf was read instead.
	confDirs []string
	source   string // the file the data came from
}

// readLDCache reads and parses an ld.so cache file.
func readLDCache(path string) (*ldCache, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseLDCache(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w (run ldconfig to rewrite it)", path, err)
	}
	c.source = path
	return c, nil
}

// parseLDCache parses the bytes of an ld.so cache.
func parseLDCache(data []byte) (*ldCache, error) {
	d := data
	if bytes.HasPrefix(d, []byte(ldCacheOldMagic)) {
		if len(d) < ldCacheOldHeaderSize {
			return nil, errors.New("truncated old-format header")
		}
		n := binary.LittleEndian.Uint32(d[12:16])
		off := uint64(ldCacheOldHeaderSize) + uint64(n)*ldCacheOldEntrySize
		off = (off + 7) &^ 7 // aligned for struct cache_file_new
		if off > uint64(len(d)) || !bytes.HasPrefix(d[off:], []byte(ldCacheNewMagic)) {
			return nil, errors.New("old-format cache without the glibc 2.x section is not supported")
		}
		d = d[off:]
	}
	if !bytes.HasPrefix(d, []byte(ldCacheNewMagic)) {
		return nil, errors.New("no glibc-ld.so.cache1.1 magic")
	}
	if len(d) < ldCacheNewHeaderSize {
		return nil, errors.New("truncated header")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch d[28] {
	case ldCacheEndianLittle, ldCacheEndianUnknownOld:
	case ldCacheEndianBig:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("unknown byte order flag %d", d[28])
	}
	nlibs := uint64(bo.Uint32(d[20:24]))
	extOff := uint64(bo.Uint32(d[32:36]))
	if end := ldCacheNewHeaderSize + nlibs*ldCacheNewEntrySize; end > uint64(len(d)) {
		return nil, fmt.Errorf("%d entries do not fit in %d bytes", nlibs, len(d))
	}
	str := func(off uint32) (string, error) {
		if uint64(off) >= uint64(len(d)) {
			return "", fmt.Errorf("string offset %d out of range", off)
		}
		s := d[off:]
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			return "", fmt.Errorf("unterminated string at %d", off)
		}
		return string(s[:i]), nil
	}

	c := &ldCache{byName: map[string][]int{}}
	var hwcaps []string
	if extOff != 0 {
		if extOff+8 > uint64(len(d)) {
			return nil, fmt.Errorf("extension offset %d out of range", extOff)
		}
		if bo.Uint32(d[extOff:]) == ldCacheExtensionMagic {
			count := uint64(bo.Uint32(d[extOff+4:]))
			for i := uint64(0); i < count; i++ {
				s := extOff + 8 + i*16
				if s+16 > uint64(len(d)) {
					return nil, errors.New("truncated extension section table")
				}
				tag, off, size := bo.Uint32(d[s:]), uint64(bo.Uint32(d[s+8:])), uint64(bo.Uint32(d[s+12:]))
				if off+size > uint64(len(d)) {
					return nil, fmt.Errorf("extension section %d out of range", tag)
				}
				switch tag {
				case ldCacheExtGenerator:
					c.Generator = string(d[off : off+size])
				case ldCacheExtGlibcHwcaps:
					for j := uint64(0); j+4 <= size; j += 4 {
						name, err := str(bo.Uint32(d[off+j:]))
						if err != nil {
							return nil, fmt.Errorf("glibc-hwcaps extension: %w", err)
						}
						hwcaps = append(hwcaps, name)
					}
				}
			}
		}
	}

	for i := uint64(0); i < nlibs; i++ {
		e := d[ldCacheNewHeaderSize+i*ldCacheNewEntrySize:]
		key, err := str(bo.Uint32(e[4:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		val, err := str(bo.Uint32(e[8:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		ent := ldCacheEntry{Name: key, Path: val, Flags: int32(bo.Uint32(e[0:]))}
		hw := bo.Uint64(e[16:])
		switch {
		case hw>>32 == ldCacheHwcapExtension>>32:
			idx := uint32(hw)
			if int(idx) >= len(hwcaps) {
				return nil, fmt.Errorf("entry %d: glibc-hwcaps index %d out of range", i, idx)
			}
			ent.Hwcaps = hwcaps[idx]
		case hw != 0:
			ent.Legacy = true
		}
		c.byName[key] = append(c.byName[key], len(c.Entries))
		c.Entries = append(c.Entries, ent)
	}
	return c, nil
}

// candidates returns the paths the cache offers for name, best first:
// entries in glibc-hwcaps subdirectories this CPU supports (best level
// first), then baseline entries, in cache order. Wrong-class entries are
// left in; the caller checks each file.
func (c *ldCache) candidates(name string, hwcaps []string) []string {
	if c == nil {
		return nil
	}
	if c.confDirs != nil {
		var out []string
		for _, d := range c.confDirs {
			out = append(out, filepath.Join(d, name))
		}
		return out
	}
	var out []string
	idx := c.byName[name]
	for _, h := range hwcaps {
		for _, i := range idx {
			if e := c.Entries[i]; e.Hwcaps == h && e.Flags&ldCacheFlagTypeMask == ldCacheFlagELFLibc6 {
				out = append(out, e.Path)
			}
		}
	}
	for _, i := range idx {
		if e := c.Entries[i]; e.Hwcaps == "" && !e.Legacy && e.Flags&ldCacheFlagTypeMask == ldCacheFlagELFLibc6 {
			out = append(out, e.Path)
		}
	}
	return out
}

// readLDSOConf reads an ld.so.conf with its include lines (globs relative
// to the including file's directory) and returns its directories in order.
func readLDSOConf(path string) ([]string, error) {
	var dirs []string
	seen := map[string]bool{}
	var read func(path string, depth int) error
	read = func(path string, depth int) error {
		if depth > 10 {
			return fmt.Errorf("%s: includes nested too deeply", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.FieldsFunc(line, func(r rune) bool {
				return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == ':'
			})
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(path), pat)
					}
					matches, err := filepath.Glob(pat)
					if err != nil {
						return fmt.Errorf("%s: include %s: %w", path, pat, err)
					}
					for _, m := range matches { // Glob sorts
						if err := read(m, depth+1); err != nil {
							return err
						}
					}
				}
				continue
			case "hwcap":
				continue
			}
			for _, f := range fields {
				if i := strings.IndexByte(f, '='); i >= 0 { // "dir=TYPE" (libc5 era)
					f = f[:i]
				}
				f = filepath.Clean(f)
				if filepath.IsAbs(f) && !seen[f] {
					seen[f] = true
					dirs = append(dirs, f)
				}
			}
		}
		return nil
	}
	if err := read(path, 0); err != nil {
		return nil, fmt.Errorf("reading ld.so configuration: %w", err)
	}
	return dirs, nil
}

// loadLDCache reads the cache at cachePath, or the directories of confPath
// when the cache does not exist. Neither existing is not an error: ld.so
// then uses its default directories only.
func loadLDCache(cachePath, confPath string) (*ldCache, error) {
	c, err := readLDCache(cachePath)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dirs, err := readLDSOConf(confPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if dirs == nil {
		dirs = []string{}
	}
	return &ldCache{confDirs: dirs, source: confPath}, nil
}
