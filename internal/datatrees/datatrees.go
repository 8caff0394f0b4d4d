// Package datatrees knows the data a program loads by a name that a
// client or a config chooses at run time (a time zone, a locale, a
// charset, a CA store), and which the traced workload is only a sample of:
// the workload asked for UTC, the next client asks for America/Los_Angeles.
//
// Each Tree of the table says what pulls it in: a program that opened a
// path under it, that imports a function of the library reading it, or
// that links that library. A tree pulled in goes into the image whole.
// The package also lists what the program's own Debian packages ship under
// /etc and /usr/share that an image left out (PackageFiles), so that a
// user sees that risk in the report.
package datatrees

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Tree is one on-demand data tree and what pulls it in.
type Tree struct {
	Name string
	// What the tree is for, for the report.
	What string
	// Paths are the host files and directories of the tree (directories
	// whole).
	Paths []string
	// Opened: a path the program touched (found or not) under one of
	// these pulls the tree in, unless it is under one of NotOpened.
	Opened    []string
	NotOpened []string
	// Imports: a dynamic symbol one of the program's ELF objects (its
	// executables and libraries) imports.
	Imports []string
	// ProgramImports: a dynamic symbol one of its executables imports
	// (the program, a program it exec'ed).
	ProgramImports []string
	// Links: a shared library of the closure whose name starts with one of
	// these ("libssl.so.").
	Links []string
	// Leave are host paths under Paths that no reader of the tree reads
	// (a file of another program's format beside it): left out, unless
	// the program opened them (then the trace holds them).
	Leave []string
	// Source is where the knowledge comes from.
	Source string
}

// Table returns every tree bespoke knows.
func Table() []Tree { return slices.Clone(rows) }

// Pulled is a tree pulled into an image, with why (report.json's
// data_trees).
type Pulled struct {
	Name string `json:"name"`
	What string `json:"what"`
	// Why is the first evidence found: "opened PATH", "PROGRAM imports
	// SYMBOL", "links LIBRARY".
	Why string `json:"why"`
	// Paths are the tree's host paths that exist (what the image gets).
	Paths []string `json:"paths"`
	// Left are the paths of the tree's Leave that exist: not copied.
	Left  []string `json:"left_out,omitempty"`
	Files int      `json:"files"`
	Bytes int64    `json:"bytes"` // the regular files' sizes
}

// Select returns the trees that m pulls in, in table order, with the paths
// of each found below root ("" is "/"; tests point it elsewhere). Trees
// with no path on the host are left out. ELF objects that cannot be read
// are skipped: the trace already holds the paths they opened.
func Select(m *manifest.Manifest, root string) ([]Pulled, error) {
	if root == "" {
		root = "/"
	}
	imports, programImports := importsOf(m, root)
	var out []Pulled
	for _, t := range rows {
		why := reason(t, m, imports, programImports)
		if why == "" {
			continue
		}
		p := Pulled{Name: t.Name, What: t.What, Why: why}
		for _, hp := range t.Leave {
			if _, err := os.Lstat(filepath.Join(root, hp)); err == nil {
				p.Left = append(p.Left, hp)
			}
		}
		for _, hp := range t.Paths {
			if _, err := os.Lstat(filepath.Join(root, hp)); err != nil {
				continue
			}
			p.Paths = append(p.Paths, hp)
			files, bytes, err := size(root, hp, p.Left)
			if err != nil {
				return nil, fmt.Errorf("data tree %s: %w", t.Name, err)
			}
			p.Files += files
			p.Bytes += bytes
		}
		if len(p.Paths) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// reason returns why t is pulled in by m, or "".
func reason(t Tree, m *manifest.Manifest, imports, programImports map[string]string) string {
	opened := func(p string) bool {
		for _, n := range t.NotOpened {
			if under(p, n) {
				return false
			}
		}
		for _, o := range t.Opened {
			if under(p, o) {
				return true
			}
		}
		return false
	}
	for _, p := range m.Paths {
		if opened(p.Path) {
			return "opened " + p.Path
		}
	}
	for _, f := range m.Files {
		if opened(f.Path) {
			return "opened " + f.Path
		}
	}
	for _, s := range t.ProgramImports {
		if obj, ok := programImports[s]; ok {
			return obj + " imports " + s
		}
	}
	for _, s := range t.Imports {
		if obj, ok := imports[s]; ok {
			return obj + " imports " + s
		}
	}
	var linked []string
	for _, f := range m.Closure {
		linked = append(linked, f.Path)
	}
	for _, p := range append(linked, m.Libraries...) {
		for _, l := range t.Links {
			if strings.HasPrefix(filepath.Base(p), l) {
				return "links " + p
			}
		}
	}
	return ""
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// importsOf maps each dynamic symbol imported by an ELF object of m's
// closure (the program, its libraries, the programs it exec'ed) to the
// first object importing it; and the same for the executables only.
func importsOf(m *manifest.Manifest, root string) (all, programs map[string]string) {
	all, programs = map[string]string{}, map[string]string{}
	seen := map[string]bool{}
	add := func(p string, program bool) {
		if p == "" || seen[p] {
			return
		}
		seen[p] = true
		syms, err := imported(filepath.Join(root, p))
		if err != nil {
			return
		}
		for _, s := range syms {
			if _, ok := all[s]; !ok {
				all[s] = p
			}
			if _, ok := programs[s]; !ok && program {
				programs[s] = p
			}
		}
	}
	add(m.Program.Resolved, true)
	for _, e := range m.Execs {
		if e.Result == "found" {
			add(e.Path, true)
		}
	}
	for _, f := range m.Closure {
		if f.Link == "" && f.Kind != "dir" {
			add(f.Path, f.Kind == "program" || f.Kind == "exec")
		}
	}
	for _, l := range m.Libraries {
		add(l, false)
	}
	return all, programs
}

// imported returns the names of the dynamic symbols the ELF file at p
// imports, without versions.
func imported(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.ImportedSymbols()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(syms))
	for i, s := range syms {
		names[i] = s.Name
	}
	return names, nil
}

// size returns the number and total size of the regular files at or below
// p, below root, but those under leave (symlinks are not followed).
func size(root, p string, leave []string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(filepath.Join(root, p), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, path); slices.ContainsFunc(leave, func(l string) bool { return under("/"+filepath.ToSlash(rel), l) }) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += info.Size()
		}
		return nil
	})
	return files, bytes, err
}
