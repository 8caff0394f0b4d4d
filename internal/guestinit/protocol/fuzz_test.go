package protocol

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzConsole: any console line is an event, a blob part or neither,
// never a panic; an event's Format parses back to itself.
func FuzzConsole(f *testing.F) {
	for _, e := range []Event{
		{Kind: EventStarted, Uptime: 0.5}, {Kind: EventExec, Pid: 7, Uptime: 1}, {Kind: EventExit, Code: 139, Signal: "SIGSEGV"},
		{Kind: EventError, Msg: "exec \"/x\": no such file"}, {Kind: EventClock}, {Kind: EventAck, Msg: ClockSet},
	} {
		f.Add(e.Format())
	}
	f.Add(BlobPrefix + "trace.json 0 eyJ9")
	f.Add(BlobPrefix + "trace.json end 1 00000000")
	f.Add(FormatTime(time.Unix(1764755555, 1)))
	f.Fuzz(func(t *testing.T, line string) {
		var b Blobs
		b.Line(line)
		b.Get(BlobTrace)
		ParseTime(line)
		e, ok := ParseEvent(line)
		if !ok || strings.ContainsAny(e.Msg+e.Signal, "\r\n") || strings.Contains(e.Signal, " ") {
			return
		}
		if e.Kind == EventError || e.Kind == EventAck || e.Msg == "" {
			got, ok := ParseEvent(e.Format())
			if !ok || got.Kind != e.Kind || got.Code != e.Code || got.Pid != e.Pid {
				t.Errorf("%q: %+v, formatted %q, parsed %+v", line, e, e.Format(), got)
			}
		}
	})
}

// FuzzDecodeParams: the kernel command line's encoded values decode or
// fail, never panic.
func FuzzDecodeParams(f *testing.F) {
	o, _ := EncodeOverride(Override{Args: []string{"--port", "1"}, Env: []string{"A=1"}})
	f.Add(o)
	v, _ := EncodeVolumes([]Volume{{Serial: "bespoke-vol0", Target: "/var/lib/x", Type: "ext4"}})
	f.Add(v)
	f.Add("!!")
	sc, _ := EncodeSeccomp(SeccompLog, []int{0, 1, 60, 231})
	f.Add(sc)
	f.Fuzz(func(t *testing.T, s string) {
		DecodeOverride(s)
		DecodeVolumes(s)
		if mode, allow, err := DecodeSeccomp(s); err == nil {
			// What decodes encodes back to the same allowlist.
			v, err := EncodeSeccomp(mode, allow)
			if err != nil {
				t.Fatalf("EncodeSeccomp(%q, %v) of a decoded value: %v", mode, allow, err)
			}
			if m2, a2, err := DecodeSeccomp(v); err != nil || m2 != mode || !slices.Equal(a2, allow) {
				t.Fatalf("%q: decoded %q %v, re-encoded %q decodes %q %v %v", s, mode, allow, v, m2, a2, err)
			}
		}
	})
}
