package pgo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The functions of testdata/src/core.c as gcov-dump-12 -l lists them.
var coreFunctions = []Function{
	// main: entered once, the loop body 7 times, the argc > 100 branch never.
	{Ident: 108032747, LineChecksum: 0xb122e222, CfgChecksum: 0x86f75ccc, Arcs: []uint64{1, 7, 0, 0, 1}},
	// never_called: its counters are all zero, streamed with length -16.
	{Ident: 1661851531, LineChecksum: 0x626e94a8, CfgChecksum: 0xb8ea5793, Arcs: []uint64{0, 0}},
	// step: called for i = 0..6, odd i three times, even i four times.
	{Ident: 1463909802, LineChecksum: 0xe0772ffe, CfgChecksum: 0xc27ce21c, Arcs: []uint64{3, 4}},
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "profile", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReadGCC12(t *testing.T) {
	for _, tt := range []struct {
		file      string
		functions []Function
		executed  bool
		sum       uint64
	}{
		{"kernel/sched/core.gcda", coreFunctions, true, 1 + 7 + 1 + 3 + 4},
		{"fs/unused.gcda", []Function{{Ident: 790934983, LineChecksum: 0x88828e06, CfgChecksum: 0xc27ce21c, Arcs: []uint64{0, 0}}}, false, 0},
	} {
		t.Run(tt.file, func(t *testing.T) {
			p, err := Read(bytes.NewReader(readTestdata(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.functions, p.Functions); diff != "" {
				t.Errorf("functions (-want +got):\n%s", diff)
			}
			if got := p.Executed(); got != tt.executed {
				t.Errorf("Executed() = %v, want %v", got, tt.executed)
			}
			if got := p.Sum(); got != tt.sum {
				t.Errorf("Sum() = %d, want %d", got, tt.sum)
			}
			if got, want := p.GCCVersion(), "12.2"; got != want {
				t.Errorf("GCCVersion() = %q, want %q", got, want)
			}
			if got, want := p.Runs, uint32(1); got != want {
				t.Errorf("Runs = %d, want %d", got, want)
			}
			if got, want := p.SumMax, uint32(7); got != want {
				t.Errorf("SumMax = %d, want %d", got, want)
			}
			if p.BigEndian {
				t.Errorf("BigEndian = true, want false")
			}
		})
	}
}

// kernelGCDA encodes functions as Linux 6.12's convert_to_gcda does for
// GCC 12 (kernel/gcov/gcc_4_7.c): magic, version, stamp, a zero checksum,
// then per function its record and one arcs record with every counter
// streamed, lengths in bytes, no summary and no end marker.
func kernelGCDA(order binary.AppendByteOrder, version, stamp uint32, fns []Function) []byte {
	var b []byte
	w := func(v uint32) { b = order.AppendUint32(b, v) }
	w(gcdaMagic)
	w(version)
	w(stamp)
	w(0)
	for _, f := range fns {
		w(tagFunction)
		w(3 * 4)
		w(f.Ident)
		w(f.LineChecksum)
		w(f.CfgChecksum)
		w(tagCounterBase)
		w(uint32(len(f.Arcs) * 2 * 4))
		for _, c := range f.Arcs {
			w(uint32(c))
			w(uint32(c >> 32))
		}
	}
	return b
}

func TestReadKernelLayout(t *testing.T) {
	const version = 'B'<<24 | '2'<<16 | '2'<<8 | '*'
	fns := []Function{
		{Ident: 1, LineChecksum: 2, CfgChecksum: 3, Arcs: []uint64{0, 0, 0}},
		{Ident: 4, LineChecksum: 5, CfgChecksum: 6, Arcs: []uint64{5, 1 << 40, 0}},
	}
	for _, tt := range []struct {
		name      string
		order     binary.AppendByteOrder
		bigEndian bool
	}{
		{"little-endian", binary.LittleEndian, false},
		{"big-endian", binary.BigEndian, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Read(bytes.NewReader(kernelGCDA(tt.order, version, 77, fns)))
			if err != nil {
				t.Fatal(err)
			}
			want := &Profile{Version: version, Stamp: 77, BigEndian: tt.bigEndian, Functions: fns}
			if diff := cmp.Diff(want, p); diff != "" {
				t.Errorf("profile (-want +got):\n%s", diff)
			}
			if got, want := p.Sum(), uint64(5+1<<40); got != want {
				t.Errorf("Sum() = %d, want %d", got, want)
			}
		})
	}
}

// swapWords byte-swaps every 32-bit word: a little-endian .gcda becomes the
// file a big-endian machine writes (64-bit counters stay low word first).
func swapWords(b []byte) []byte {
	out := make([]byte, len(b))
	for i := 0; i+4 <= len(b); i += 4 {
		binary.BigEndian.PutUint32(out[i:], binary.LittleEndian.Uint32(b[i:]))
	}
	return out
}

func TestReadByteSwapped(t *testing.T) {
	data := swapWords(readTestdata(t, "kernel/sched/core.gcda"))
	if got, want := string(data[:4]), "gcda"; got != want {
		t.Fatalf("swapped magic = %q, want %q", got, want)
	}
	p, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !p.BigEndian {
		t.Errorf("BigEndian = false, want true")
	}
	if diff := cmp.Diff(coreFunctions, p.Functions); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
}

func TestReadErrors(t *testing.T) {
	core := readTestdata(t, "kernel/sched/core.gcda")
	badCounter := kernelGCDA(binary.LittleEndian, 'B'<<24|'2'<<16|'2'<<8|'*', 0, nil)
	badCounter = binary.LittleEndian.AppendUint32(badCounter, tagCounterBase)
	badCounter = binary.LittleEndian.AppendUint32(badCounter, 8)
	badCounter = binary.LittleEndian.AppendUint64(badCounter, 1)
	for _, tt := range []struct {
		name string
		data []byte
		is   error  // when set, errors.Is must hold
		msg  string // when set, the error must contain it
	}{
		{"empty", nil, io.ErrUnexpectedEOF, ""},
		{"bad magic", append([]byte("gcno"), core[4:]...), ErrNotGCDA, ""},
		{"text", []byte("hello, world\n"), ErrNotGCDA, ""},
		{"truncated header", core[:10], io.ErrUnexpectedEOF, "header"},
		{"truncated in a record", core[:60], io.ErrUnexpectedEOF, ""},
		{"truncated in a length", core[:42], io.ErrUnexpectedEOF, ""},
		{"counters without a function", badCounter, nil, "no function before it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Read(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatalf("Read() = %+v, want an error", p)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Read() error = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Read() error = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	s, err := Classify(filepath.Join("testdata", "profile"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Summary{
		Hot:       []string{"kernel/sched/core"},
		Cold:      []string{"fs/unused"},
		Functions: 4,
		Executed:  2,
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Classify (-want +got):\n%s", diff)
	}
}

func TestClassifyCorrupt(t *testing.T) {
	dir := t.TempDir()
	core := readTestdata(t, "kernel/sched/core.gcda")
	for name, data := range map[string][]byte{
		"kernel/sched/core.gcda": core,
		"mm/broken.gcda":         core[:50],
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Classify(dir)
	if err == nil {
		t.Fatal("Classify() succeeded, want an error")
	}
	if want := filepath.Join(dir, "mm/broken.gcda"); !strings.Contains(err.Error(), want) {
		t.Errorf("Classify() error = %q, want it to name %s", err, want)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Classify() error = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestDefaultExclusionsParse(t *testing.T) {
	e, err := ParseExclusions(bytes.NewReader(DefaultExclusions), "exclude.default")
	if err != nil {
		t.Fatal(err)
	}
	if !e.ExcludesFile("arch/x86/boot/compressed/misc.c", "arch/x86/boot/compressed/misc.o") || e.ExcludesFile("kernel/sched/core.c", "kernel/sched/core.o") {
		t.Errorf("default exclusions: boot code excluded %v, scheduler excluded %v; want true, false",
			e.ExcludesFile("arch/x86/boot/compressed/misc.c", "arch/x86/boot/compressed/misc.o"), e.ExcludesFile("kernel/sched/core.c", "kernel/sched/core.o"))
	}
}

func TestWithSummary(t *testing.T) {
	const version = 'B'<<24 | '2'<<16 | '2'<<8 | '*'
	fns := []Function{
		{Ident: 1, LineChecksum: 2, CfgChecksum: 3, Arcs: []uint64{0, 9}},
		{Ident: 4, LineChecksum: 5, CfgChecksum: 6, Arcs: []uint64{5, 1 << 40}},
	}
	for _, tt := range []struct {
		name   string
		order  binary.AppendByteOrder
		sumMax uint64
		want   uint32
	}{
		{"little-endian", binary.LittleEndian, 77, 77},
		{"big-endian", binary.BigEndian, 77, 77},
		{"capped", binary.LittleEndian, 1 << 40, 1<<32 - 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := WithSummary(kernelGCDA(tt.order, version, 7, fns), tt.sumMax)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Read(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if p.Runs != 1 || p.SumMax != tt.want {
				t.Errorf("summary: runs %d, sum_max %d; want 1, %d", p.Runs, p.SumMax, tt.want)
			}
			if diff := cmp.Diff(fns, p.Functions); diff != "" {
				t.Errorf("functions (-want +got):\n%s", diff)
			}
			again, err := WithSummary(data, 5)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Error("a second WithSummary changed the file")
			}
		})
	}
	if got := (&Profile{Functions: fns}).MaxArc(); got != 1<<40 {
		t.Errorf("MaxArc() = %d, want %d", got, uint64(1<<40))
	}
	// libgcov's own files have a summary already.
	core := readTestdata(t, "kernel/sched/core.gcda")
	if got, err := WithSummary(core, 99); err != nil || !bytes.Equal(got, core) {
		t.Errorf("WithSummary(core.gcda) changed it (err %v)", err)
	}
	if _, err := WithSummary([]byte("nope"), 1); !errors.Is(err, ErrNotGCDA) {
		t.Errorf("WithSummary(garbage): %v, want ErrNotGCDA", err)
	}
}
