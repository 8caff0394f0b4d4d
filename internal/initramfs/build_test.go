package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

// fakeInit writes the smallest file checkStatic accepts: an x86-64 ELF
// header with no program headers (so no PT_INTERP).
func fakeInit(t *testing.T) string {
	t.Helper()
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Ehsize: 64, Phentsize: 56, Shentsize: 64,
	}
	copy(h.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, &h)
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostTree makes a small host root:
//
//	lib -> usr/lib, usr/lib/libfoo.so.1 -> libfoo.so.1.2, usr/bin/app,
//	etc/app/{app.conf,secret.key}, etc/passwd, usr/share/app/data/...
func hostTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"usr/bin/app":                      "app binary",
		"usr/lib/libfoo.so.1.2":            "libfoo",
		"etc/app/app.conf":                 "port 1\n",
		"etc/app/secret.key":               "KEY",
		"etc/passwd":                       "host:x:1:1::/:/bin/false\n",
		"usr/share/app/data/a.txt":         "a",
		"usr/share/app/data/b.txt":         "bb",
		"usr/share/app/data/skip.log":      "log",
		"usr/share/app/data/sub/c.txt":     "c",
		"usr/share/app/data/link-dir/d.md": "d",
		"usr/share/locale/fr/x.mo":         "mo",
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		mode := os.FileMode(0o644)
		if strings.Contains(p, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"lib":                            "usr/lib",
		"usr/lib/libfoo.so.1":            "libfoo.so.1.2",
		"usr/share/app/data/loop":        ".",
		"usr/share/app/data/abs":         "/usr/share/app/data/a.txt",
		"usr/share/app/data/dangling":    "nowhere",
		"usr/share/app/data/link-to-dir": "link-dir",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func testManifest() *manifest.Manifest {
	return &manifest.Manifest{
		Schema: manifest.Schema,
		Closure: []manifest.File{
			{Path: "/usr/bin/app", Kind: "program"},
			{Path: "/lib/libfoo.so.1", Kind: "library"},
		},
		Files: []manifest.File{
			{Path: "/etc/app/app.conf", Kind: "config"},
			{Path: "/etc/passwd", Kind: "config"},
			{Path: "/usr/share/app", Kind: "dir"},
			{Path: "/proc/self/status", Kind: "data"},
		},
		Excluded: []manifest.Excluded{{Path: "/etc/app/secret.key", Reason: "private key"}},
	}
}

func testOptions(t *testing.T, root string) Options {
	return Options{
		Manifest: testManifest(),
		Init:     fakeInit(t),
		Config:   protocol.Config{Name: "app", Path: "/usr/bin/app", Args: []string{"-v"}, Uid: 1000, Gid: 1000},
		User:     User{Name: "app", Uid: 1000, Gid: 1000, Home: "/var/lib/app"},
		Include:  []string{"/usr/share/app/data"},
		Exclude:  []string{"*.log", "/usr/share/app/data/sub/**"},
		Output:   filepath.Join(t.TempDir(), "initramfs.img"),
		HostRoot: root,
	}
}

// readArchive decompresses and reads an initramfs into a map by path.
func readArchive(t *testing.T, file, method string) (map[string]entry, []string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(b)
	switch method {
	case CompressGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case CompressXZ:
		cmd := exec.Command("xz", "-dc")
		cmd.Stdin = r
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz -dc: %v", err)
		}
		r = bytes.NewReader(out)
	}
	m := map[string]entry{}
	var order []string
	for _, e := range readAll(t, r) {
		p := "/" + e.Name
		m[p] = e
		order = append(order, p)
	}
	return m, order
}

func TestBuildContents(t *testing.T) {
	root := hostTree(t)
	opts := testOptions(t, root)
	opts.Compression = CompressNone
	rep, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, order := readArchive(t, opts.Output, CompressNone)

	// Every parent comes before its children.
	seen := map[string]bool{"/": true}
	for _, p := range order {
		if !seen[path.Dir(p)] {
			t.Errorf("%s comes before its parent directory", p)
		}
		seen[p] = true
	}

	type want struct {
		mode uint32
		data string // for files; the link target for symlinks
	}
	for p, w := range map[string]want{
		"/init":                             {TypeReg | 0o755, ""},
		"/usr/bin/app":                      {TypeReg | 0o755, "app binary"},
		"/lib":                              {TypeSymlink | 0o777, "usr/lib"},
		"/usr/lib/libfoo.so.1":              {TypeSymlink | 0o777, "libfoo.so.1.2"},
		"/usr/lib/libfoo.so.1.2":            {TypeReg | 0o644, "libfoo"},
		"/etc/app/app.conf":                 {TypeReg | 0o644, "port 1\n"},
		"/usr/share/app":                    {TypeDir | 0o755, ""},
		"/usr/share/app/data/a.txt":         {TypeReg | 0o644, "a"},
		"/usr/share/app/data/loop":          {TypeSymlink | 0o777, "."},
		"/usr/share/app/data/abs":           {TypeSymlink | 0o777, "/usr/share/app/data/a.txt"},
		"/usr/share/app/data/dangling":      {TypeSymlink | 0o777, "nowhere"},
		"/usr/share/app/data/link-dir":      {TypeDir | 0o755, ""},
		"/usr/share/app/data/link-to-dir":   {TypeSymlink | 0o777, "link-dir"},
		"/usr/share/app/data/link-dir/d.md": {TypeReg | 0o644, "d"},
		"/etc/resolv.conf":                  {TypeReg | 0o644, ResolvConf},
		"/etc/nsswitch.conf":                {TypeReg | 0o644, NsswitchConf},
		"/dev/console":                      {TypeChar | 0o600, ""},
		"/dev/null":                         {TypeChar | 0o666, ""},
		"/tmp":                              {TypeDir | 0o1777, ""},
		"/run":                              {TypeDir | 0o755, ""},
		"/var/lib/app":                      {TypeDir | 0o755, ""},
	} {
		e, ok := got[p]
		if !ok {
			t.Errorf("%s missing from the archive", p)
			continue
		}
		if e.Mode != w.mode {
			t.Errorf("%s: mode %o, want %o", p, e.Mode, w.mode)
		}
		data := e.Data
		if e.Type() == TypeSymlink {
			data = e.Linkname
		}
		if w.data != "" && data != w.data {
			t.Errorf("%s: content %q, want %q", p, data, w.data)
		}
	}
	initData, _ := os.ReadFile(opts.Init)
	if got["/init"].Data != string(initData) {
		t.Error("/init does not hold the init binary")
	}
	if c := got["/dev/console"]; c.RdevMajor != 5 || c.RdevMinor != 1 {
		t.Errorf("/dev/console is %d:%d, want 5:1", c.RdevMajor, c.RdevMinor)
	}
	if n := got["/dev/null"]; n.RdevMajor != 1 || n.RdevMinor != 3 {
		t.Errorf("/dev/null is %d:%d, want 1:3", n.RdevMajor, n.RdevMinor)
	}
	if h := got["/var/lib/app"]; h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("home directory owned by %d:%d, want 1000:1000", h.Uid, h.Gid)
	}
	passwd := got["/etc/passwd"].Data
	if !strings.Contains(passwd, "app:x:1000:1000:app:/var/lib/app:") || !strings.HasPrefix(passwd, "root:x:0:0:") {
		t.Errorf("/etc/passwd = %q, want root and app:x:1000:1000", passwd)
	}
	if strings.Contains(passwd, "host:") {
		t.Error("/etc/passwd is the host's copy, want the generated one")
	}
	if g := got["/etc/group"].Data; !strings.Contains(g, "app:x:1000:") {
		t.Errorf("/etc/group = %q, want app:x:1000:", g)
	}
	if h := got["/etc/hosts"].Data; !strings.Contains(h, "127.0.0.1\tlocalhost app") {
		t.Errorf("/etc/hosts = %q, want 127.0.0.1 localhost app", h)
	}
	var cfg protocol.Config
	if err := json.Unmarshal([]byte(got[protocol.ConfigPath].Data), &cfg); err != nil {
		t.Fatalf("decoding %s: %v", protocol.ConfigPath, err)
	}
	if diff := cmp.Diff(opts.Config, cfg); diff != "" {
		t.Errorf("%s (-want +got):\n%s", protocol.ConfigPath, diff)
	}
	for _, p := range []string{
		"/etc/app/secret.key", "/usr/share/app/data/skip.log", "/usr/share/app/data/sub",
		"/usr/share/app/data/sub/c.txt", "/usr/share/locale", "/proc/self", "/proc/self/status",
		"/lib/libfoo.so.1", // stored once, under the real directory
	} {
		if _, ok := got[p]; ok {
			t.Errorf("%s is in the archive, want it left out", p)
		}
	}

	// The report.
	byPath := map[string]FileReport{}
	for _, f := range rep.Files {
		byPath[f.Path] = f
	}
	if len(rep.Files) != len(got) {
		t.Errorf("report lists %d files, archive holds %d", len(rep.Files), len(got))
	}
	for p, kind := range map[string]string{
		"/init": KindInit, "/usr/bin/app": "program", "/usr/lib/libfoo.so.1.2": "library",
		"/lib": KindSymlinkOf, "/etc/passwd": KindGenerated, "/dev/console": KindDevice,
		"/usr/share/app/data/a.txt": KindInclude, "/etc/app/app.conf": "config", "/etc": KindDir,
	} {
		if got := byPath[p].Kind; got != kind {
			t.Errorf("report: %s has kind %q, want %q", p, got, kind)
		}
	}
	if got := byPath["/usr/bin/app"]; got.Bytes != 10 || got.Source != filepath.Join(root, "usr/bin/app") {
		t.Errorf("report: /usr/bin/app = %+v, want 10 bytes from the host", got)
	}
	wantDropped := []Dropped{
		{Path: "/usr/share/app/data/skip.log", Pattern: "*.log"},
		{Path: "/usr/share/app/data/sub", Pattern: "/usr/share/app/data/sub/**"},
	}
	if diff := cmp.Diff(wantDropped, rep.Dropped); diff != "" {
		t.Errorf("report: dropped (-want +got):\n%s", diff)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "/proc/self/status") {
		t.Errorf("report: warnings %q do not mention /proc/self/status", rep.Warnings)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "dangling") {
		t.Errorf("report: warnings %q do not mention the dangling symlink", rep.Warnings)
	}
	fi, _ := os.Stat(opts.Output)
	if rep.CompressedBytes != fi.Size() || rep.UncompressedBytes != fi.Size() {
		t.Errorf("report: sizes %d/%d, want the file's %d for both (no compression)", rep.CompressedBytes, rep.UncompressedBytes, fi.Size())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not encode as JSON: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(opts.Output)); len(entries) != 1 {
		t.Errorf("output directory holds %d files, want only the archive (no temporary left)", len(entries))
	}
}

func TestBuildErrors(t *testing.T) {
	root := hostTree(t)
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   []string // substrings of the error
	}{
		{"excluded file included", func(o *Options) { o.Include = []string{"/etc/app/secret.key"} }, []string{"/etc/app/secret.key", "private key"}},
		{"excluded file in an included dir", func(o *Options) { o.Include = []string{"/etc/app"} }, []string{"/etc/app/secret.key", "private key"}},
		{"excluded file in the manifest", func(o *Options) {
			o.Manifest.Files = append(o.Manifest.Files, manifest.File{Path: "/etc/app/secret.key"})
		}, []string{"/etc/app/secret.key", "private key"}},
		{"missing closure file", func(o *Options) {
			o.Manifest.Closure = append(o.Manifest.Closure, manifest.File{Path: "/usr/lib/libgone.so.3", Kind: "library"})
		}, []string{"usr/lib/libgone.so.3", "no such file"}},
		{"missing include", func(o *Options) { o.Include = []string{"/nope"} }, []string{"/nope", "no such file"}},
		{"program not in the archive", func(o *Options) { o.Config.Path = "/usr/bin/other" }, []string{"/usr/bin/other", "not in the initramfs"}},
		{"program excluded by a pattern", func(o *Options) { o.Exclude = []string{"/usr/bin/*"} }, []string{"/usr/bin/app", "not in the initramfs"}},
		{"unknown compression", func(o *Options) { o.Compression = "lz77" }, []string{"lz77", "xz"}},
		{"bad pattern", func(o *Options) { o.Exclude = []string{"["} }, []string{`"["`}},
		{"dynamic init", func(o *Options) { o.Init = "/usr/bin/true" }, []string{"dynamically linked", "CGO_ENABLED=0"}},
		{"no output", func(o *Options) { o.Output = "" }, []string{"output"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t, root)
			opts.Compression = CompressNone
			tc.change(&opts)
			_, err := Build(context.Background(), opts)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if opts.Output != "" {
				if _, err := os.Stat(opts.Output); err == nil {
					t.Errorf("%s was written despite the error", opts.Output)
				}
			}
		})
	}

	// An exclude pattern takes an excluded file out of an included
	// directory, and then the build succeeds.
	opts := testOptions(t, root)
	opts.Compression = CompressNone
	opts.Include = []string{"/etc/app"}
	opts.Exclude = []string{"secret.*"}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatalf("with secret.key excluded by a pattern: %v", err)
	}
	got, _ := readArchive(t, opts.Output, CompressNone)
	if _, ok := got["/etc/app/secret.key"]; ok {
		t.Error("secret.key is in the archive")
	}
}

func TestBuildReproducible(t *testing.T) {
	root := hostTree(t)
	methods := []string{CompressNone, CompressGzip}
	if _, err := exec.LookPath("xz"); err == nil || !testing.Short() {
		methods = append(methods, CompressXZ)
	}
	for _, method := range methods {
		t.Run(method, func(t *testing.T) {
			opts := testOptions(t, root)
			opts.Compression = method
			first, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(opts.Output)
			// Touch every host file: mtimes must not leak into the archive.
			later := time.Now().Add(time.Hour)
			filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error {
				os.Chtimes(p, later, later)
				return nil
			})
			opts.Output = filepath.Join(t.TempDir(), "again.img")
			second, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(opts.Output)
			if !bytes.Equal(a, b) {
				t.Errorf("two builds differ (%d and %d bytes)", len(a), len(b))
			}
			if first.SHA256 != second.SHA256 {
				t.Errorf("report hashes differ: %s and %s", first.SHA256, second.SHA256)
			}
			if method != CompressNone && first.CompressedBytes >= first.UncompressedBytes {
				t.Errorf("%s: compressed %d bytes, not less than the %d uncompressed", method, first.CompressedBytes, first.UncompressedBytes)
			}
			got, _ := readArchive(t, opts.Output, method)
			if _, ok := got["/init"]; !ok {
				t.Errorf("%s: the archive does not decompress to one holding /init", method)
			}
			for p, e := range got {
				if e.Mtime != 0 {
					t.Errorf("%s: mtime %d, want 0", p, e.Mtime)
				}
			}
		})
	}

	t.Run("SOURCE_DATE_EPOCH", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		opts := testOptions(t, root)
		opts.Compression = CompressNone
		if _, err := Build(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		got, _ := readArchive(t, opts.Output, CompressNone)
		for p, e := range got {
			if e.Mtime != 1700000000 {
				t.Errorf("%s: mtime %d, want SOURCE_DATE_EPOCH 1700000000", p, e.Mtime)
			}
		}
	})
}

// TestBuildHostProgram builds an initramfs for the host's /usr/bin/true
// with the closure ldd reports: the dynamic loader is reached through the
// /lib64 -> usr/lib64 symlink, and every symlink on the way is kept.
func TestBuildHostProgram(t *testing.T) {
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("ldd not installed")
	}
	out, err := exec.Command(ldd, "/usr/bin/true").Output()
	if err != nil {
		t.Fatalf("ldd /usr/bin/true: %v", err)
	}
	m := &manifest.Manifest{Schema: manifest.Schema, Closure: []manifest.File{{Path: "/usr/bin/true", Kind: "program"}}}
	var interp string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			m.Closure = append(m.Closure, manifest.File{Path: f[2], Kind: "library"})
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			interp = f[0]
			m.Closure = append(m.Closure, manifest.File{Path: f[0], Kind: "interpreter"})
		}
	}
	if interp == "" || len(m.Closure) < 3 {
		t.Fatalf("could not read the closure from ldd:\n%s", out)
	}
	opts := Options{
		Manifest:    m,
		Init:        fakeInit(t),
		Config:      protocol.Config{Name: "true", Path: "/usr/bin/true"},
		Compression: CompressNone,
		Output:      filepath.Join(t.TempDir(), "initramfs.img"),
	}
	rep, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readArchive(t, opts.Output, CompressNone)
	for _, f := range m.Closure {
		// Follow the path through the archive's symlinks as the kernel would.
		p := f.Path
		for i := 0; ; i++ {
			if i > 40 {
				t.Fatalf("%s: symlink loop in the archive", f.Path)
			}
			real, ok := resolveIn(got, p)
			if !ok {
				t.Errorf("%s (%s) does not resolve in the archive", f.Path, p)
				break
			}
			e := got[real]
			if e.Type() == TypeReg {
				host, _ := os.ReadFile(f.Path)
				if len(e.Data) != len(host) || e.Data != string(host) {
					t.Errorf("%s: archive holds %d bytes, host %d", f.Path, len(e.Data), len(host))
				}
				break
			}
			if e.Type() != TypeSymlink {
				t.Errorf("%s resolves to a %s", f.Path, typeName(e.Type()))
				break
			}
			if path.IsAbs(e.Linkname) {
				p = e.Linkname
			} else {
				p = path.Join(path.Dir(real), e.Linkname)
			}
		}
	}
	if fi, err := os.Lstat("/lib64"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink("/lib64")
		if e := got["/lib64"]; e.Type() != TypeSymlink || e.Linkname != target {
			t.Errorf("/lib64 in the archive: %+v, want a symlink to %s as on the host", e.Header, target)
		}
	}
	t.Logf("/usr/bin/true image: %d files, %d bytes of files, %d bytes of cpio", len(rep.Files), rep.FileBytes, rep.UncompressedBytes)
}

// resolveIn resolves the directory symlinks of p among the entries.
func resolveIn(ents map[string]entry, p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := path.Join(cur, part)
		e, ok := ents[next]
		if !ok {
			return "", false
		}
		if i < len(parts)-1 && e.Type() == TypeSymlink {
			t := e.Linkname
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			return resolveIn(ents, path.Join(append([]string{t}, parts[i+1:]...)...))
		}
		cur = next
	}
	return cur, true
}

func TestKconfigFor(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   []string
	}{
		{"xz", []string{"RD_XZ", "XZ_DEC_X86"}}, {"gzip", []string{"RD_GZIP"}}, {"none", nil}, {"", []string{"RD_XZ", "XZ_DEC_X86"}},
	} {
		got, err := KconfigFor(tc.method)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("KconfigFor(%q) = %q, %v; want %q", tc.method, got, err, tc.want)
		}
	}
	if _, err := KconfigFor("zstd"); err == nil {
		t.Error("KconfigFor(zstd) succeeded, want an error")
	}
}

func TestPasswdGroup(t *testing.T) {
	for _, tc := range []struct {
		u             User
		passwd, group string
	}{
		{User{}, "root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n"},
		{User{Name: "root"}, "root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n"},
		{User{Name: "redis", Uid: 101, Gid: 102, Home: "/var/lib/redis"},
			"root:x:0:0:root:/root:/bin/sh\nredis:x:101:102:redis:/var/lib/redis:/usr/sbin/nologin\n",
			"root:x:0:\nredis:x:102:\n"},
		{User{Name: "www", Uid: 33, Gid: 34, Group: "web"},
			"root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/:/usr/sbin/nologin\n",
			"root:x:0:\nweb:x:34:\n"},
	} {
		p, g := PasswdGroup(tc.u)
		if p != tc.passwd || g != tc.group {
			t.Errorf("PasswdGroup(%+v) = %q, %q; want %q, %q", tc.u, p, g, tc.passwd, tc.group)
		}
	}
}

// TestTreeLeave: a data tree's walk leaves TreeLeave out, but a file
// under it that the program opened is in the image all the same.
func TestTreeLeave(t *testing.T) {
	root := hostTree(t)
	keystore := filepath.Join(root, "usr/share/app/data/java/cacerts")
	os.MkdirAll(filepath.Dir(keystore), 0o755)
	if err := os.WriteFile(keystore, []byte("JKS"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opened := range []bool{false, true} {
		opts := testOptions(t, root)
		opts.Compression = CompressNone
		opts.Include = nil
		opts.Trees = []string{"/usr/share/app/data"}
		opts.TreeLeave = []string{"/usr/share/app/data/java"}
		if opened {
			opts.Manifest.Files = append(opts.Manifest.Files, manifest.File{Path: "/usr/share/app/data/java/cacerts", Kind: "data"})
		}
		rep, err := Build(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readArchive(t, opts.Output, CompressNone)
		if _, ok := got["/usr/share/app/data/a.txt"]; !ok {
			t.Errorf("opened %v: the tree's a.txt is not in the archive", opened)
		}
		if _, ok := got["/usr/share/app/data/java/cacerts"]; ok != opened {
			t.Errorf("opened %v: the left-out keystore in the archive: %v", opened, ok)
		}
		if i := slices.IndexFunc(rep.Files, func(f FileReport) bool { return f.Path == "/usr/share/app/data/java/cacerts" }); opened && (i < 0 || rep.Files[i].Kind != "data") {
			t.Errorf("opened: the keystore's report entry %d, want it there as data", i)
		}
	}
}
