package pgo

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A Summary splits the translation units of a profile into those that ran
// under the workload and those that did not.
type Summary struct {
	// Hot and Cold are object paths relative to the profile directory,
	// slash-separated and without extension (kernel/sched/core), sorted.
	Hot  []string
	Cold []string
	// Functions counts the function records of all files, Executed those
	// with a non-zero arc counter.
	Functions, Executed int
}

// Classify reads every .gcda file under dir (the kernel build directory's
// tree as copied out of /sys/kernel/debug/gcov/BUILDDIR) and sorts its
// translation unit into Hot (some arc counter is non-zero) or Cold (all
// counters are zero). Symbolic links (debugfs links each .gcno to the
// source tree) are not followed. A file that does not parse is an error
// naming the file.
func Classify(dir string) (*Summary, error) {
	s := &Summary{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(path, ".gcda") {
			return nil
		}
		p, err := readFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		unit := filepath.ToSlash(strings.TrimSuffix(rel, ".gcda"))
		for _, f := range p.Functions {
			s.Functions++
			if f.Executed() {
				s.Executed++
			}
		}
		if p.Executed() {
			s.Hot = append(s.Hot, unit)
		} else {
			s.Cold = append(s.Cold, unit)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("classifying profile %s: %w", dir, err)
	}
	sort.Strings(s.Hot)
	sort.Strings(s.Cold)
	return s, nil
}

// readFile reads and parses one .gcda file; errors name the file.
func readFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return p, nil
}
