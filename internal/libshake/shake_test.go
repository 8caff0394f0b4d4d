package libshake

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const libDir = "/usr/lib/x86_64-linux-gnu"

// hostObjects returns the host's date, its libc and the dynamic loader.
func hostObjects(t *testing.T) []Object {
	t.Helper()
	var objs []Object
	for _, p := range []string{"/usr/bin/date", libDir + "/libc.so.6", libDir + "/ld-linux-x86-64.so.2"} {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Skipf("%s: %v", p, err)
		}
		objs = append(objs, Object{Path: real, Host: real, Loader: strings.Contains(p, "ld-linux")})
	}
	return objs
}

// TestShakeRunsOnHost shakes date and libc, then runs the shaken date
// with the shaken libc (through the host's loader) and compares what it
// prints with the host's date: removal left every function date needs.
func TestShakeRunsOnHost(t *testing.T) {
	objs := hostObjects(t)
	results, err := Shake(Options{Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := map[string]string{}
	for _, r := range results {
		t.Logf("%s: kept whole %q, %d of %d functions removed, %d of %d bytes", r.Path, r.Whole, r.Removed, r.Functions, r.RemovedBytes, r.TextBytes)
		if r.Path == objs[2].Path {
			if r.Whole == "" || r.Removed != 0 {
				t.Errorf("the loader: %+v, want it kept whole", r)
			}
			continue
		}
		if r.Whole != "" || r.Removed == 0 || r.RemovedBytes == 0 {
			t.Fatalf("%s: %+v, want functions removed", r.Path, r)
		}
		p := filepath.Join(dir, filepath.Base(r.Path))
		if err := r.Write(p); err != nil {
			t.Fatal(err)
		}
		out[r.Path] = p
		// Every removed byte is int3; every other byte is the host's.
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := os.ReadFile(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(orig)
		for _, f := range r.Ranges {
			for a := f.Start; a < f.End; a++ {
				want[r.offset(a)] = 0xcc
			}
		}
		// .eh_frame is compared by TestShakeRemovedCFI.
		lo, eh, _ := readEhFrame(t, r.Path)
		hi := lo + int64(len(eh))
		copy(want[lo:hi], got[lo:hi])
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the shaken copy differs from the host's file outside the removed functions", r.Path)
		}
	}
	libs := t.TempDir()
	if err := os.Symlink(out[objs[1].Path], filepath.Join(libs, "libc.so.6")); err != nil {
		t.Fatal(err)
	}
	args := []string{"-u", "-d", "@1700000000", "+%Y-%m-%d %H:%M:%S %A %j"}
	want, err := exec.Command("/usr/bin/date", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(objs[2].Path, append([]string{"--library-path", libs, out[objs[0].Path]}, args...)...)
	got, err := cmd.CombinedOutput()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the shaken date: %v: %q, want %q", err, got, want)
	}
}

// TestShakeKeepRemove: Keep makes a removed function stay; Remove takes a
// reachable one out; an unknown name in Remove is an error.
func TestShakeKeepRemove(t *testing.T) {
	objs := hostObjects(t)
	libc := objs[1].Path
	base, err := Shake(Options{Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	removed := func(rs []*Result, name string) bool {
		for _, f := range rs[1].Ranges {
			if f.Name == name {
				return true
			}
		}
		return false
	}
	// date never calls accept4; it does call clock_gettime.
	if !removed(base, "accept4") {
		t.Fatalf("accept4 kept in libc for date")
	}
	if removed(base, "clock_gettime") {
		t.Fatalf("clock_gettime removed from libc for date")
	}
	kept, err := Shake(Options{Objects: objs, Keep: map[string][]string{libc: {"accept4", "no_such_function"}}})
	if err != nil {
		t.Fatal(err)
	}
	if removed(kept, "accept4") {
		t.Errorf("Keep accept4: still removed")
	}
	if got := kept[1].Unknown; len(got) != 1 || got[0] != "no_such_function" {
		t.Errorf("unknown keeps %v, want [no_such_function]", got)
	}
	rm, err := Shake(Options{Objects: objs, Remove: map[string][]string{libc: {"clock_gettime"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !removed(rm, "clock_gettime") {
		t.Errorf("Remove clock_gettime: kept")
	}
	if _, err := Shake(Options{Objects: objs, Remove: map[string][]string{libc: {"no_such_function"}}}); err == nil || !strings.Contains(err.Error(), "no_such_function") {
		t.Errorf("Remove of an unknown function: %v, want an error naming it", err)
	}
}

// TestShakeKeptWhole: an object that cannot be analysed is kept whole,
// with the reason, never half-shaken.
func TestShakeKeptWhole(t *testing.T) {
	dir := t.TempDir()
	date, err := os.ReadFile("/usr/bin/date")
	if err != nil {
		t.Skip(err)
	}
	// date without .eh_frame: its section name changed.
	noEH := bytes.Replace(date, []byte(".eh_frame\x00"), []byte(".xx_frame\x00"), 1)
	// date with an undecodable instruction (3DNow!'s 0f 0f) at the start
	// of a function's code.
	o, err := load(Object{Path: "/usr/bin/date", Host: "/usr/bin/date"})
	if err != nil {
		t.Fatal(err)
	}
	entry := o.elf.Entry
	badInst := bytes.Clone(date)
	copy(badInst[o.text.Offset+(entry-o.text.Addr):], []byte{0x0f, 0x0f})
	o.close()
	// An object of another machine: the header's e_machine is aarch64.
	arm := bytes.Clone(date)
	arm[18], arm[19] = 183, 0
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"no-eh-frame": {noEH, "no .eh_frame"},
		"bad-inst":    {badInst, "does not know"},
		"aarch64":     {arm, "not an x86-64 object"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, tc.data, 0o755); err != nil {
			t.Fatal(err)
		}
		rs, err := Shake(Options{Objects: []Object{{Path: "/" + name, Host: p}}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := rs[0]; !strings.Contains(r.Whole, tc.want) || r.Removed != 0 || len(r.Ranges) != 0 {
			t.Errorf("%s: %+v, want kept whole: %q", name, r, tc.want)
		}
	}
}

func TestMapFault(t *testing.T) {
	m := &Map{Objects: []MapObject{{
		Path: "/usr/bin/redis-check-rdb", TextAddr: 0x601d0, TextOffset: 0x601d0,
		Removed: []Function{{Name: "getCommand", Start: 0xab200, End: 0xab240}, {Name: "incrCommand", Start: 0xac140, End: 0xac14a}},
	}}}
	for _, tc := range []struct {
		msg  string
		want string
	}{
		{"traps: redis-server[39] trap int3 ip:557ae469e141 sp:7ffdd941df68 error:0 in redis-check-rdb[ac141,557ae4651000+117000]", "incrCommand of /usr/bin/redis-check-rdb"},
		{"traps: redis-server[39] trap int3 ip:1 sp:2 error:0 in redis-check-rdb[ab201,557ae4651000+117000]", "getCommand of /usr/bin/redis-check-rdb"},
		{"traps: redis-server[39] trap int3 ip:1 sp:2 error:0 in redis-check-rdb[ab300,557ae4651000+117000]", ""},
		{"traps: redis-server[39] trap int3 ip:1 sp:2 error:0 in libc.so.6[ac141,7f0000000000+156000]", ""},
		{"redis-server[9]: segfault at 0 ip 0 sp 0 error 4", ""},
		// A segfault reports the faulting instruction itself: the first
		// byte after incrCommand is not in it.
		{"redis-server[9]: segfault at 0 ip 000055bfa8ee114a sp 00007ffd error 4 in redis-check-rdb[ac14a,55bfa8e94000+117000]", ""},
		{"redis-server[9]: segfault at 0 ip 000055bfa8ee1149 sp 00007ffd error 4 in redis-check-rdb[ac149,55bfa8e94000+117000]", "incrCommand of /usr/bin/redis-check-rdb"},
	} {
		r, ok := m.Fault(tc.msg)
		if got := map[bool]string{true: r.String()}[ok]; got != tc.want {
			t.Errorf("Fault(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
	var none *Map
	if _, ok := none.Fault("traps: x[1] trap int3 ip:1 sp:2 error:0 in x[1,2+3]"); ok {
		t.Errorf("a nil map found a removed function")
	}
}

func TestGadgets(t *testing.T) {
	for _, tc := range []struct {
		code []byte
		want int
	}{
		{[]byte{0xc3}, 1},                   // ret
		{[]byte{0x58, 0xc3}, 2},             // pop rax; ret, and ret
		{[]byte{0x5f, 0x58, 0xc3}, 3},       // pop rdi; pop rax; ret
		{[]byte{0xeb, 0x00, 0xc3}, 1},       // a jump before the ret breaks the chain
		{[]byte{0xcc, 0xcc, 0xcc, 0xcc}, 0}, // int3 only
		{[]byte{0x90, 0x90}, 0},
	} {
		if got := Gadgets(tc.code); got != tc.want {
			t.Errorf("Gadgets(% x) = %d, want %d", tc.code, got, tc.want)
		}
	}
}

// TestRestore: a restore copies the host's file again with one function
// fewer removed, and refuses a function that was not removed (the host
// file's identity is checked by its caller, image.restoreFunctions).
func TestRestore(t *testing.T) {
	objs := hostObjects(t)
	rs, err := Shake(Options{Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	mo := rs[1].MapObject()
	mo.HostSHA256 = "kept"
	name := mo.Removed[0].Name
	out := filepath.Join(t.TempDir(), "libc.so.6")
	got, err := mo.Restore(name, out)
	if err != nil {
		t.Fatalf("Restore(%s): %v", name, err)
	}
	if len(got.Removed) != len(mo.Removed)-1 || got.HostSHA256 != "kept" {
		t.Errorf("after Restore: %d removed, hash %q; want %d and the hash kept", len(got.Removed), got.HostSHA256, len(mo.Removed)-1)
	}
	// Its code and its FDE's call frame instructions are the host's
	// again; the next removed function's are not.
	host, err := os.ReadFile(mo.Host)
	if err != nil {
		t.Fatal(err)
	}
	copyData, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lo, _, fdes := readEhFrame(t, mo.Host)
	for i, f := range mo.Removed[:2] {
		at := slices.IndexFunc(fdes, func(d fde) bool { return d.start == f.Start })
		if at < 0 {
			t.Fatalf("%s: no FDE starts at %#x", f.Name, f.Start)
		}
		d := fdes[at]
		a, b := lo+int64(d.cfi), lo+int64(d.cfiEnd)
		code := int64(f.Start - mo.TextAddr + mo.TextOffset)
		same := bytes.Equal(copyData[a:b], host[a:b]) && bytes.Equal(copyData[code:code+int64(f.End-f.Start)], host[code:code+int64(f.End-f.Start)])
		if same != (i == 0) {
			t.Errorf("%s (restored %v): its code and call frame instructions are the host's: %v", f.Name, i == 0, same)
		}
	}
	if _, err := mo.Restore("no_such_function", out); err == nil {
		t.Errorf("Restore of a function that was not removed: no error")
	}
}

// TestNeighbours: with a function A of libc removed, Neighbours(A) also
// names B, removed, which a kept caller of A calls too, and C, removed,
// which B calls.
func TestNeighbours(t *testing.T) {
	libc := hostObjects(t)[1]
	o, err := load(libc)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	starts := map[uint64]int{}
	for i, f := range o.funcs {
		if !f.gap {
			starts[f.start] = i
		}
	}
	callees := func(i int) []uint64 {
		var out []uint64
		for _, t := range o.calls(o.funcs[i]) {
			if j, ok := starts[t]; ok && j != i && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out
	}
	var k, a, b, c uint64
	for i, f := range o.funcs {
		cs := callees(i)
		if f.gap || len(cs) < 2 {
			continue
		}
		for _, cb := range callees(starts[cs[1]]) {
			if cb != f.start && cb != cs[0] && !slices.Contains(cs, cb) {
				k, a, b, c = f.start, cs[0], cs[1], cb
				break
			}
		}
		if c != 0 {
			break
		}
	}
	if c == 0 {
		t.Fatal("no function in libc calls two others, the second calling a third")
	}
	fnOf := func(addr uint64) Function {
		f := o.funcs[starts[addr]]
		return Function{Name: fmt.Sprintf("fn_%x", addr), Start: f.start, End: f.end}
	}
	mo := MapObject{Path: libc.Path, Host: libc.Host, Removed: []Function{fnOf(a), fnOf(b), fnOf(c)}}
	got, err := mo.Neighbours(fnOf(a).Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("caller %#x; Neighbours(%s) = %v", k, fnOf(a).Name, got)
	if len(got) < 3 || got[0] != fnOf(a).Name || !slices.Contains(got, fnOf(b).Name) || !slices.Contains(got, fnOf(c).Name) {
		t.Errorf("Neighbours(%s) = %v; want it first, then %s (its caller's other callee) and %s (that one's callee)", fnOf(a).Name, got, fnOf(b).Name, fnOf(c).Name)
	}
	if _, err := mo.Neighbours("no_such_function"); err == nil {
		t.Error("Neighbours of a function that was not removed: no error")
	}
}

// readEhFrame returns the .eh_frame section of the ELF file p: its file
// offset, its bytes and its FDEs.
func readEhFrame(t *testing.T, p string) (off int64, data []byte, fdes []fde) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eh := f.Section(".eh_frame")
	if eh == nil {
		t.Fatalf("%s has no .eh_frame", p)
	}
	if data, err = eh.Data(); err != nil {
		t.Fatal(err)
	}
	if fdes, err = parseEhFrame(data, eh.Addr); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return int64(eh.Offset), data, fdes
}

// TestShakeRemovedCFI: in the shaken libc, the FDEs of removed functions
// keep their headers (the same FDEs are found, at the same places) and
// their call frame instructions are nops; every other FDE is the host's,
// byte for byte; and binutils' reader of .eh_frame (objdump --dwarf=frames)
// reads the copy without a warning.
func TestShakeRemovedCFI(t *testing.T) {
	objs := hostObjects(t)
	rs, err := Shake(Options{Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	r := rs[1]
	out := filepath.Join(t.TempDir(), "libc.so.6")
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	_, hostData, hostFDEs := readEhFrame(t, r.Path)
	_, data, fdes := readEhFrame(t, out)
	if !slices.Equal(fdes, hostFDEs) {
		t.Fatalf("the shaken copy's .eh_frame has %d FDEs, the host's %d, or they differ", len(fdes), len(hostFDEs))
	}
	removed := func(d fde) bool {
		return slices.ContainsFunc(r.Ranges, func(f Function) bool { return f.Start <= d.start && d.end <= f.End })
	}
	want := bytes.Clone(hostData)
	zeroed, saved := 0, 0
	for _, d := range fdes {
		if removed(d) {
			clear(want[d.cfi:d.cfiEnd])
			zeroed++
			saved += d.cfiEnd - d.cfi
		}
	}
	if !bytes.Equal(data, want) {
		t.Errorf("the shaken .eh_frame differs from the host's elsewhere than in the removed functions' instructions")
	}
	if zeroed == 0 || zeroed > r.Removed {
		t.Errorf("%d FDEs zeroed for %d removed functions", zeroed, r.Removed)
	}
	t.Logf("%d of %d FDEs' instructions zeroed (%d bytes of %d)", zeroed, len(fdes), saved, len(data))
	cmd := exec.Command("objdump", "--dwarf=frames", out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("objdump --dwarf=frames on the shaken copy: %v: %s", err, stderr.String())
	}
}
