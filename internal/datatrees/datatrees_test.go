package datatrees

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// write creates each file below root with content.
func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(ps []Pulled) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// TestSelectOpened: a path the program touched under a tree, found or not,
// pulls the whole tree in, with its files and bytes; a tree nothing
// touched stays out, and so does a tree missing on the host.
func TestSelectOpened(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"usr/share/zoneinfo/UTC":                 "TZif-utc",
		"usr/share/zoneinfo/America/Los_Angeles": "TZif-la",
		"usr/lib/locale/C.utf8/LC_CTYPE":         "ctype",
		"etc/hostname":                           "h",
	})
	if err := os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(root, "etc/localtime")); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Paths: []manifest.Path{
		{Path: "/usr/share/zoneinfo/UTC", Ops: []string{"open"}, Result: "found"},
		{Path: "/etc/ssl/certs/x.pem", Ops: []string{"open"}, Result: "ENOENT"},
	}}
	got, err := Select(m, root)
	if err != nil {
		t.Fatal(err)
	}
	// certificates: opened, but no path of it on this host.
	if !slices.Equal(names(got), []string{"zoneinfo"}) {
		t.Fatalf("Select = %v, want [zoneinfo]", names(got))
	}
	z := got[0]
	if z.Why != "opened /usr/share/zoneinfo/UTC" || z.Files != 2 || z.Bytes != int64(len("TZif-utc")+len("TZif-la")) {
		t.Errorf("zoneinfo: %+v", z)
	}
	if !slices.Equal(z.Paths, []string{"/usr/share/zoneinfo", "/etc/localtime"}) {
		t.Errorf("zoneinfo paths %v", z.Paths)
	}

	// A failed open is evidence too: the program looks there by name.
	m = &manifest.Manifest{Paths: []manifest.Path{{Path: "/usr/lib/locale/de_DE.utf8/LC_CTYPE", Result: "ENOENT"}}}
	if got, _ := Select(m, root); !slices.Equal(names(got), []string{"locales"}) {
		t.Errorf("Select after a failed open = %v, want [locales]", names(got))
	}
	// gconv's module list is read by every setlocale: no evidence; a
	// module is.
	write(t, root, map[string]string{"usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so": "ELF"})
	m = &manifest.Manifest{Paths: []manifest.Path{{Path: "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", Result: "found"}}}
	if got, _ := Select(m, root); len(got) != 0 {
		t.Errorf("Select after opening gconv-modules.cache = %v, want nothing", names(got))
	}
	m.Paths = append(m.Paths, manifest.Path{Path: "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so", Result: "found"})
	if got, _ := Select(m, root); !slices.Equal(names(got), []string{"gconv"}) {
		t.Errorf("Select after opening a gconv module = %v, want [gconv]", names(got))
	}
	// Nothing touched, nothing linked: nothing pulled.
	if got, _ := Select(&manifest.Manifest{}, root); len(got) != 0 {
		t.Errorf("Select of an empty manifest = %v", names(got))
	}
}

// TestSelectLinks: a library of the closure pulls in the tree it reads,
// without the Java keystore beside it, which it does not read.
func TestSelectLinks(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"etc/ssl/certs/ca-certificates.crt": "PEM", "etc/ssl/certs/java/cacerts": "JKS keystore"})
	m := &manifest.Manifest{Closure: []manifest.File{{Path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", Kind: "library"}}}
	got, err := Select(m, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "certificates" || got[0].Why != "links /usr/lib/x86_64-linux-gnu/libssl.so.3" {
		t.Fatalf("Select = %+v", got)
	}
	if c := got[0]; !slices.Equal(c.Left, []string{"/etc/ssl/certs/java"}) || c.Files != 1 || c.Bytes != 3 {
		t.Errorf("certificates: left out %v, %d files, %d bytes; want the keystore left out, 1 file of 3 bytes", c.Left, c.Files, c.Bytes)
	}
}

// TestSelectImports: a program importing tzset pulls zoneinfo in (a real
// dynamic ELF of the host: the short tier has no compiler guarantee).
func TestSelectImports(t *testing.T) {
	prog := "/usr/bin/date" // coreutils: imports localtime and setlocale
	syms, err := imported(prog)
	if err != nil || !slices.Contains(syms, "setlocale") {
		t.Skipf("%s: %v (no dynamic date importing setlocale on this host)", prog, err)
	}
	root := t.TempDir()
	write(t, root, map[string]string{"usr/lib/locale/C.utf8/LC_CTYPE": "ctype"})
	// Select reads the ELF below root: link the host's in.
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, map[string]string{"usr/bin/date": string(b)})
	m := &manifest.Manifest{Program: manifest.Program{Resolved: prog}}
	got, err := Select(m, root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(got), []string{"locales"}) || !strings.HasSuffix(got[0].Why, " imports setlocale") {
		t.Errorf("Select = %+v, want locales for setlocale", got)
	}
}

// TestTable: every row says what pulls it in, where from, and holds only
// absolute paths.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Table() {
		if r.Name == "" || seen[r.Name] || r.What == "" || r.Source == "" || len(r.Paths) == 0 {
			t.Errorf("row %+v: want a unique name, what, source and paths", r)
		}
		seen[r.Name] = true
		if len(r.Opened)+len(r.Imports)+len(r.ProgramImports)+len(r.Links) == 0 {
			t.Errorf("row %s: nothing pulls it in", r.Name)
		}
		for _, p := range slices.Concat(r.Paths, r.Opened) {
			if !filepath.IsAbs(p) {
				t.Errorf("row %s: %s is not absolute", r.Name, p)
			}
		}
	}
}

// TestPackageFiles: the program's package's files under /etc and
// /usr/share that the image does not hold are listed; documentation and
// other packages are not.
func TestPackageFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"usr/sbin/foo":                        "ELF",
		"etc/foo/foo.conf":                    "conf",
		"usr/share/foo/data.txt":              "0123456789",
		"usr/share/doc/foo/README":            "docs",
		"usr/share/bar/other":                 "other package",
		"var/lib/dpkg/info/foo:amd64.list":    "/.\n/etc\n/etc/foo\n/etc/foo/foo.conf\n/sbin/foo\n/usr/share/foo\n/usr/share/foo/data.txt\n/usr/share/doc/foo/README\n/usr/share/foo/gone\n",
		"var/lib/dpkg/info/bar.list":          "/usr/share/bar/other\n",
		"var/lib/dpkg/info/foo:amd64.md5sums": "x",
	})
	m := &manifest.Manifest{Program: manifest.Program{Resolved: "/usr/sbin/foo"}}
	in := func(p string) bool { return p == "/etc/foo/foo.conf" }
	got, err := PackageFiles(m, in, root)
	if err != nil {
		t.Fatal(err)
	}
	want := Package{Name: "foo", Programs: []string{"/usr/sbin/foo"}, Shipped: 2, Missing: []string{"/usr/share/foo/data.txt"}, MissingBytes: 10}
	if len(got) != 1 || got[0].Name != want.Name || got[0].Shipped != want.Shipped ||
		!slices.Equal(got[0].Missing, want.Missing) || got[0].MissingBytes != want.MissingBytes || !slices.Equal(got[0].Programs, want.Programs) {
		t.Errorf("PackageFiles = %+v, want [%+v]", got, want)
	}
	// No dpkg database: nothing, no error.
	if got, err := PackageFiles(m, in, t.TempDir()); err != nil || got != nil {
		t.Errorf("without dpkg: %v, %v", got, err)
	}
}
