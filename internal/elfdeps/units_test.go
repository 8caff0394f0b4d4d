package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnvCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"sh"}, "sh"},
		{[]string{"python3 -u"}, "python3"},
		{[]string{"-S python3 -u"}, "python3"},
		{[]string{"-Spython3 -u"}, "python3"},
		{[]string{"-i LANG=C perl -w"}, "perl"},
		{[]string{"-u HOME -C /tmp bash"}, "bash"},
		{[]string{"-- -weird"}, "-weird"},
		{[]string{"-i"}, ""},
	} {
		if got := envCommand(tc.args); got != tc.want {
			t.Errorf("envCommand(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestExpandDST(t *testing.T) {
	x86 := &elfObject{class: elf.ELFCLASS64, machine: elf.EM_X86_64}
	for _, tc := range []struct {
		in, origin string
		want       string
		ok         bool
	}{
		{"/usr/lib", "/o", "/usr/lib", true},
		{"$ORIGIN/lib", "/opt/app/bin", "/opt/app/bin/lib", true},
		{"${ORIGIN}/../lib", "/opt/app/bin", "/opt/app/bin/../lib", true},
		{"/usr/$LIB", "/o", "/usr/lib/x86_64-linux-gnu", true},
		{"/opt/${PLATFORM}/x", "/o", "/opt/x86_64/x", true},
		{"$ORIGINAL/x", "/o", "$ORIGINAL/x", true}, // not a DST
		{"$FOO/$ORIGIN", "/o", "$FOO//o", true},
		{"$ORIGIN/lib", "", "", false},
	} {
		got, ok := expandDST(tc.in, tc.origin, x86)
		if got != tc.want || ok != tc.ok {
			t.Errorf("expandDST(%q, %q) = %q, %v, want %q, %v", tc.in, tc.origin, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseShebang(t *testing.T) {
	for _, tc := range []struct {
		head   string
		interp string
		args   []string
		bad    bool
	}{
		{"#!/bin/sh\necho", "/bin/sh", nil, false},
		{"#! /bin/sh -e -x\r\n", "/bin/sh", []string{"-e -x"}, false},
		{"#!\t/usr/bin/env\tpython3\n", "/usr/bin/env", []string{"python3"}, false},
		{"#!/bin/sh", "/bin/sh", nil, false}, // no newline
		{"#!   \n", "", nil, true},
	} {
		info, err := parseShebang([]byte(tc.head))
		if tc.bad {
			if err == nil {
				t.Errorf("parseShebang(%q) = %+v, want an error", tc.head, info)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseShebang(%q): %v", tc.head, err)
			continue
		}
		if info.Interp != tc.interp || !cmp.Equal(info.ScriptArgs, tc.args) {
			t.Errorf("parseShebang(%q) = %q %q, want %q %q", tc.head, info.Interp, info.ScriptArgs, tc.interp, tc.args)
		}
	}
}

// encodeLDCache writes a new-format cache as ldconfig does, optionally
// preceded by an old-format section, with a glibc-hwcaps extension.
func encodeLDCache(bo binary.AppendByteOrder, entries []ldCacheEntry, hwcaps []string, oldPrefix bool) []byte {
	var strs bytes.Buffer
	strOff := map[string]uint32{}
	strTab := ldCacheNewHeaderSize + len(entries)*ldCacheNewEntrySize
	add := func(s string) uint32 {
		if o, ok := strOff[s]; ok {
			return o
		}
		o := uint32(strTab + strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		strOff[s] = o
		return o
	}
	var ents bytes.Buffer
	for _, e := range entries {
		var hw uint64
		for i, h := range hwcaps {
			if e.Hwcaps == h {
				hw = ldCacheHwcapExtension | uint64(i)
			}
		}
		if e.Legacy {
			hw = 1 << 3
		}
		ents.Write(bo.AppendUint32(nil, uint32(e.Flags)))
		ents.Write(bo.AppendUint32(nil, add(e.Name)))
		ents.Write(bo.AppendUint32(nil, add(e.Path)))
		ents.Write(bo.AppendUint32(nil, 0))
		ents.Write(bo.AppendUint64(nil, hw))
	}
	var hwOffs []uint32
	for _, h := range hwcaps {
		hwOffs = append(hwOffs, add(h))
	}
	gen := "test generator"
	for (strTab+strs.Len())%4 != 0 {
		strs.WriteByte(0)
	}
	extOff := uint32(strTab + strs.Len())
	var ext bytes.Buffer
	ext.Write(bo.AppendUint32(nil, ldCacheExtensionMagic))
	ext.Write(bo.AppendUint32(nil, 2))
	dataOff := extOff + 8 + 2*16
	ext.Write(bo.AppendUint32(nil, ldCacheExtGenerator))
	ext.Write(bo.AppendUint32(nil, 0))
	ext.Write(bo.AppendUint32(nil, dataOff))
	ext.Write(bo.AppendUint32(nil, uint32(len(gen))))
	ext.Write(bo.AppendUint32(nil, ldCacheExtGlibcHwcaps))
	ext.Write(bo.AppendUint32(nil, 0))
	ext.Write(bo.AppendUint32(nil, dataOff+uint32(len(gen))))
	ext.Write(bo.AppendUint32(nil, uint32(4*len(hwOffs))))
	ext.WriteString(gen)
	for _, o := range hwOffs {
		ext.Write(bo.AppendUint32(nil, o))
	}

	var out bytes.Buffer
	if oldPrefix {
		out.WriteString(ldCacheOldMagic)
		out.WriteByte(0)
		out.Write(binary.LittleEndian.AppendUint32(nil, 1))
		out.Write(make([]byte, ldCacheOldEntrySize))
		for out.Len()%8 != 0 {
			out.WriteByte(0)
		}
	}
	out.WriteString(ldCacheNewMagic)
	out.Write(bo.AppendUint32(nil, uint32(len(entries))))
	out.Write(bo.AppendUint32(nil, uint32(strs.Len())))
	if bo == binary.AppendByteOrder(binary.BigEndian) {
		out.WriteByte(ldCacheEndianBig)
	} else {
		out.WriteByte(ldCacheEndianLittle)
	}
	out.Write(make([]byte, 3))
	out.Write(bo.AppendUint32(nil, extOff))
	out.Write(make([]byte, 12))
	out.Write(ents.Bytes())
	out.Write(strs.Bytes())
	out.Write(ext.Bytes())
	return out.Bytes()
}

func TestParseLDCache(t *testing.T) {
	const f = 0x0303 // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
	entries := []ldCacheEntry{
		{Name: "libfoo.so.1", Path: "/lib/glibc-hwcaps/x86-64-v2/libfoo.so.1", Flags: f, Hwcaps: "x86-64-v2"},
		{Name: "libfoo.so.1", Path: "/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1", Flags: f, Hwcaps: "x86-64-v3"},
		{Name: "libfoo.so.1", Path: "/lib/x86_64/libfoo.so.1", Flags: f, Legacy: true},
		{Name: "libfoo.so.1", Path: "/lib/libfoo.so.1", Flags: f},
		{Name: "libfoo.so.1", Path: "/lib32/libfoo.so.1", Flags: 0x0003},
		{Name: "libbar.so", Path: "/lib/libbar.so", Flags: 0x0000}, // libc5-era: not ELF_LIBC6
	}
	hwcaps := []string{"x86-64-v2", "x86-64-v3"}
	for _, tc := range []struct {
		name      string
		bo        binary.AppendByteOrder
		oldPrefix bool
	}{
		{"little", binary.LittleEndian, false},
		{"big", binary.BigEndian, false},
		{"old+new", binary.LittleEndian, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseLDCache(encodeLDCache(tc.bo, entries, hwcaps, tc.oldPrefix))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(entries, c.Entries); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if c.Generator != "test generator" {
				t.Errorf("generator %q, want %q", c.Generator, "test generator")
			}
			for _, lc := range []struct {
				levels []string
				want   []string
			}{
				{nil, []string{"/lib/libfoo.so.1", "/lib32/libfoo.so.1"}},
				{[]string{"x86-64-v2"}, []string{"/lib/glibc-hwcaps/x86-64-v2/libfoo.so.1", "/lib/libfoo.so.1", "/lib32/libfoo.so.1"}},
				{[]string{"x86-64-v4", "x86-64-v3", "x86-64-v2"}, []string{
					"/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1", "/lib/glibc-hwcaps/x86-64-v2/libfoo.so.1",
					"/lib/libfoo.so.1", "/lib32/libfoo.so.1"}},
			} {
				if diff := cmp.Diff(lc.want, c.candidates("libfoo.so.1", lc.levels)); diff != "" {
					t.Errorf("candidates with %v (-want +got):\n%s", lc.levels, diff)
				}
			}
			if got := c.candidates("libbar.so", nil); len(got) != 0 {
				t.Errorf("candidates(libbar.so) = %q, want none (not a libc6 entry)", got)
			}
		})
	}
	for _, bad := range [][]byte{
		nil,
		[]byte("glibc-ld.so.cache1.1"),
		[]byte("ld.so-1.7.0\x00\x05\x00\x00\x00"),
		encodeLDCache(binary.LittleEndian, entries, hwcaps, false)[:ldCacheNewHeaderSize+10],
	} {
		if _, err := parseLDCache(bad); err == nil {
			t.Errorf("parseLDCache(%q...) succeeded, want an error", bad[:min(len(bad), 24)])
		}
	}
}
