package libshake

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestDecodeAgreesWithObjdump decodes every function of real libraries
// from its FDE's start and checks that each instruction starts where
// binutils' objdump says one does.
func TestDecodeAgreesWithObjdump(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		t.Skip("no objdump (binutils)")
	}
	libs := []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
		"/usr/lib/x86_64-linux-gnu/libgcrypt.so.20"} // VIA PadLock's 0F A6/A7
	checked := 0
	for _, lib := range libs {
		if _, err := os.Stat(lib); err != nil {
			t.Logf("%s: %v", lib, err)
			continue
		}
		checked++
		starts := objdumpStarts(t, lib)
		o, err := load(Object{Path: lib, Host: lib})
		if err != nil {
			t.Fatal(err)
		}
		defer o.close()
		if o.whole != "" {
			t.Fatalf("%s: kept whole: %s", lib, o.whole)
		}
		insts, bad, skipped, funcs := 0, 0, 0, 0
		for _, f := range o.funcs {
			if f.gap {
				continue
			}
			funcs++
			if !starts[f.start] {
				// objdump's sweep is out of step here (data in .text before
				// the function), or the FDE starts before the function's
				// first instruction (glibc's signal return trampoline).
				skipped++
				continue
			}
			code := o.textData[f.start-o.text.Addr : f.end-o.text.Addr]
			for off := 0; off < len(code); {
				pc := f.start + uint64(off)
				// objdump shows fwait (9b) and the x87 instruction after
				// it as one.
				if !starts[pc] && !(off > 0 && code[off-1] == 0x9b) {
					bad++
					if bad <= 5 {
						t.Errorf("%s: an instruction starts at %#x in the function at %#x; objdump disagrees", lib, pc, f.start)
					}
					break
				}
				in, err := decode(code[off:])
				if err != nil {
					t.Errorf("%s: %#x: % x: %v", lib, pc, code[off:min(off+15, len(code))], err)
					break
				}
				insts++
				off += in.len
			}
		}
		t.Logf("%s: %d functions, %d instructions agree; %d functions not compared", lib, funcs, insts, skipped)
		if skipped*100 > funcs {
			t.Errorf("%s: %d of %d functions not compared: objdump's sweep is out of step too often for the test to mean much", lib, skipped, funcs)
		}
	}
	if checked == 0 {
		t.Skip("none of the libraries is on this machine")
	}
}

// objdumpStarts returns the addresses where objdump's linear sweep of
// .text starts an instruction.
func objdumpStarts(t *testing.T, lib string) map[uint64]bool {
	out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", "-j", ".text", lib).Output()
	if err != nil {
		t.Fatalf("objdump %s: %v", lib, err)
	}
	starts := map[uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		a, rest, ok := strings.Cut(line, ":\t")
		if !ok || strings.Contains(rest, "(bad)") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(a), 16, 64)
		if err == nil {
			starts[v] = true
		}
	}
	return starts
}
