package features

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// kernelTree returns the unpacked default kernel source (full tier).
func kernelTree(t *testing.T) string {
	t.Helper()
	testenv.File(t, ksrc.DefaultSource)
	cache, err := ksrc.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := ksrc.Prepare(context.Background(), "", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return tree.Dir
}

var (
	configRe = regexp.MustCompile(`^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$`)
	// A line that ends a config entry.
	entryEndRe = regexp.MustCompile(`^\s*(?:(?:menu)?config|choice|endchoice|menu|endmenu|if|endif|source|comment)\b`)
	// A prompt: a type with a string, or a prompt line.
	promptRe = regexp.MustCompile(`^\s*(?:(?:bool|tristate|string|int|hex)\s+"|prompt\s+")`)
)

// kconfigSymbols returns every symbol the x86_64 Kconfig files define, and
// whether any of its definitions has a prompt (can be set by a user).
func kconfigSymbols(t *testing.T, dir string) map[string]bool {
	t.Helper()
	syms := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if strings.HasPrefix(rel, "arch/") && rel != "arch/x86" && !strings.HasPrefix(rel, "arch/x86/") ||
				rel == "Documentation" || rel == "tools" || rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		cur := ""
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if m := configRe.FindStringSubmatch(line); m != nil {
				cur = m[1]
				if _, ok := syms[cur]; !ok {
					syms[cur] = false
				}
				continue
			}
			if entryEndRe.MatchString(line) {
				cur = ""
				continue
			}
			if cur != "" && promptRe.MatchString(line) {
				syms[cur] = true
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return syms
}

// TestSymbolsInKconfig checks every symbol of the table against the real
// Kconfig files: it must exist, and have a prompt (a symbol without one
// can only be selected, and kconfig would drop a request for it).
func TestSymbolsInKconfig(t *testing.T) {
	dir := kernelTree(t)
	syms := kconfigSymbols(t, dir)
	if len(syms) < 5000 {
		t.Fatalf("read %d Kconfig symbols from %s, want thousands", len(syms), dir)
	}
	for _, r := range Table() {
		if r.Symbol == "" {
			continue
		}
		prompt, ok := syms[r.Symbol]
		switch {
		case !ok:
			t.Errorf("row %s %q: no 'config %s' in the x86_64 Kconfig files of %s", r.Kind, r.Key, r.Symbol, dir)
		case !prompt:
			t.Errorf("row %s %q: config %s has no prompt: name the option that selects it", r.Kind, r.Key, r.Symbol)
		}
	}
}

// syscallTable reads syscall_64.tbl: name -> entry point (common and 64 ABIs).
func syscallTable(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "arch/x86/entry/syscalls/syscall_64.tbl"))
	if err != nil {
		t.Fatal(err)
	}
	tbl := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || f[1] == "x32" {
			continue
		}
		entry := ""
		if len(f) > 3 {
			entry = f[3]
		}
		tbl[f[2]] = entry
	}
	return tbl
}

func TestSyscallRowsAgainstKernel(t *testing.T) {
	dir := kernelTree(t)
	tbl := syscallTable(t, dir)
	if len(tbl) < 300 {
		t.Fatalf("read %d x86_64 syscalls, want more than 300", len(tbl))
	}
	covered := map[string]bool{}
	for _, r := range syscallRows {
		entry, ok := tbl[r.Key]
		if !ok {
			t.Errorf("syscall row %q: not in x86_64 syscall_64.tbl", r.Key)
			continue
		}
		covered[r.Key] = true
		if unimplemented := entry == "" || entry == "sys_ni_syscall"; unimplemented != r.Missing {
			t.Errorf("syscall row %q: Missing is %v, but its syscall_64.tbl entry point is %q", r.Key, r.Missing, entry)
		}
	}
	// Every COND_SYSCALL that x86_64 calls must have a row: that is the
	// list of syscalls the kernel can configure out.
	data, err := os.ReadFile(filepath.Join(dir, "kernel/sys_ni.c"))
	if err != nil {
		t.Fatal(err)
	}
	byEntry := map[string]string{}
	for name, entry := range tbl {
		byEntry[strings.TrimPrefix(entry, "sys_")] = name
	}
	conds := regexp.MustCompile(`(?m)^COND_SYSCALL\((\w+)\);`).FindAllStringSubmatch(string(data), -1)
	if len(conds) < 200 {
		t.Fatalf("found %d COND_SYSCALL entries in kernel/sys_ni.c, want more than 200", len(conds))
	}
	for _, m := range conds {
		name, ok := byEntry[m[1]]
		if !ok {
			continue // not an x86_64 syscall
		}
		if !covered[name] {
			t.Errorf("kernel/sys_ni.c: COND_SYSCALL(%s) is x86_64 syscall %q, which has no row", m[1], name)
		}
	}
}
