package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

type entry struct {
	Header
	Data string
}

// readAll reads an archive with Reader.
func readAll(t *testing.T, r io.Reader) []entry {
	t.Helper()
	cr := NewReader(r)
	var got []entry
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("reading archive: %v", err)
		}
		data, err := io.ReadAll(cr)
		if err != nil {
			t.Fatalf("reading %s: %v", h.Name, err)
		}
		got = append(got, entry{*h, string(data)})
	}
}

func sampleEntries() []entry {
	return []entry{
		{Header: Header{Name: "dev", Mode: TypeDir | 0o755}},
		{Header: Header{Name: "dev/console", Mode: TypeChar | 0o600, RdevMajor: 5, RdevMinor: 1}},
		{Header: Header{Name: "dev/sda", Mode: TypeBlock | 0o660, RdevMajor: 8, RdevMinor: 0, Gid: 6}},
		{Header: Header{Name: "fifo", Mode: TypeFIFO | 0o644}},
		{Header: Header{Name: "init", Mode: TypeReg | 0o755, Mtime: 1700000000}, Data: "#!/bin/sh\necho hi\n"},
		{Header: Header{Name: "lib64", Mode: TypeSymlink | 0o777}, Data: ""},
		{Header: Header{Name: "suid", Mode: TypeReg | 0o4755, Uid: 1000, Gid: 100}, Data: "x"},
		{Header: Header{Name: "tmp", Mode: TypeDir | 0o1777}},
		{Header: Header{Name: "empty", Mode: TypeReg | 0o600}},
		{Header: Header{Name: "a-name-of-odd-length", Mode: TypeReg | 0o644}, Data: "12345"},
	}
}

func writeEntries(t *testing.T, w io.Writer, ents []entry) {
	t.Helper()
	cw := NewWriter(w)
	for _, e := range ents {
		h := e.Header
		if h.Type() == TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := cw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Type() == TypeReg {
			if _, err := io.WriteString(cw, e.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCpioRoundTrip(t *testing.T) {
	ents := sampleEntries()
	ents[5].Linkname = "usr/lib64"
	var buf bytes.Buffer
	writeEntries(t, &buf, ents)
	if buf.Len()%512 != 0 {
		t.Errorf("archive is %d bytes, want a multiple of 512", buf.Len())
	}
	got := readAll(t, bytes.NewReader(buf.Bytes()))

	var want []entry
	for i, e := range ents {
		e.Ino = uint32(i + 1)
		e.Nlink = 1
		switch e.Type() {
		case TypeDir:
			e.Nlink = 2
		case TypeReg:
			e.Size = int64(len(e.Data))
		case TypeSymlink:
			e.Size = int64(len(e.Linkname))
		}
		want = append(want, e)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
}

func TestCpioWriterErrors(t *testing.T) {
	cw := NewWriter(io.Discard)
	if err := cw.WriteHeader(&Header{Name: "/abs", Mode: TypeReg}); err == nil {
		t.Error("WriteHeader accepted an absolute name")
	}
	if err := cw.WriteHeader(&Header{Name: "f", Mode: TypeReg | 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write([]byte("abc")); err != ErrWriteTooLong {
		t.Errorf("writing 3 bytes to a 2-byte entry: got %v, want ErrWriteTooLong", err)
	}
	cw = NewWriter(io.Discard)
	cw.WriteHeader(&Header{Name: "f", Mode: TypeReg | 0o644, Size: 2})
	if err := cw.Close(); err == nil {
		t.Error("Close accepted an entry with missing data")
	}
}

func TestCpioReaderRejectsGarbage(t *testing.T) {
	_, err := NewReader(strings.NewReader(strings.Repeat("x", 200))).Next()
	if err == nil {
		t.Error("Next accepted an archive with a bad magic")
	}
}

// lookTool returns the path of a tool the short tier may use when it is
// installed; the full tier requires it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not installed", name)
		}
		return p
	}
	return testenv.Command(t, name)
}

// TestCpioToolLists checks the archive with GNU cpio: every entry listed,
// with its type, mode, owner, device numbers and link target.
func TestCpioToolLists(t *testing.T) {
	cpio := lookTool(t, "cpio")
	ents := sampleEntries()
	ents[5].Linkname = "usr/lib64"
	f := filepath.Join(t.TempDir(), "a.cpio")
	var buf bytes.Buffer
	writeEntries(t, &buf, ents)
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := os.Open(f)
	defer in.Close()
	cmd := exec.Command(cpio, "-itv", "--quiet", "--numeric-uid-gid")
	cmd.Stdin = in
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(ents) {
		t.Fatalf("cpio listed %d entries, want %d:\n%s", len(lines), len(ents), out)
	}
	want := map[string]string{
		"dev":                  "drwxr-xr-x 2 0 0 0",
		"dev/console":          "crw------- 1 0 0 5, 1",
		"dev/sda":              "brw-rw---- 1 0 6 8, 0",
		"fifo":                 "prw-r--r-- 1 0 0 0",
		"init":                 "-rwxr-xr-x 1 0 0 18",
		"lib64 -> usr/lib64":   "lrwxrwxrwx 1 0 0 9",
		"suid":                 "-rwsr-xr-x 1 1000 100 1",
		"tmp":                  "drwxrwxrwt 2 0 0 0",
		"empty":                "-rw------- 1 0 0 0",
		"a-name-of-odd-length": "-rw-r--r-- 1 0 0 5",
	}
	for _, line := range lines {
		f := strings.Fields(line)
		// mode links uid gid [size | major, minor] month day year name [-> target]
		i := 5
		if strings.HasSuffix(f[4], ",") {
			i = 6
		}
		name := strings.Join(f[i+3:], " ")
		w, ok := want[name]
		if !ok {
			t.Errorf("cpio listed an unexpected entry %q", line)
			continue
		}
		if got := strings.Join(f[:i], " "); got != w {
			t.Errorf("cpio lists %s as %q, want %q", name, got, w)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("cpio did not list %s", name)
	}
}
