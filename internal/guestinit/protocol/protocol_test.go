package protocol

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Kind: EventStarted, Uptime: 0.512},
		{Kind: EventExec, Pid: 42, Uptime: 0.6},
		{Kind: EventExit, Code: 3, Uptime: 1.25},
		{Kind: EventExit, Code: 139, Signal: "SIGSEGV", Uptime: 2},
		{Kind: EventError, Msg: `exec "/bin/x": no such file or directory`, Uptime: 0.7},
		{Kind: EventClock, Uptime: 0.71},
		{Kind: EventAck, Msg: ClockSet, Uptime: 0.72},
		{Kind: EventSeccomp, Pid: 51, Nr: 435, Msg: SeccompDenied, Uptime: 3.5},
		{Kind: EventState, Msg: StateInfo{StateMemory, 128 << 20, 120 << 20, "/var/lib/my state"}.String(), Uptime: 0.8},
		{Kind: EventStateFull, Msg: StateInfo{StateVolume, 1 << 30, 1 << 20, "/srv"}.String(), Uptime: 9},
	} {
		line := "[    1.000000] noise " + e.Format() + "\r\n"
		got, ok := ParseEvent(line)
		if !ok {
			t.Fatalf("ParseEvent(%q) found no event", line)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", line, diff)
		}
	}
	if _, ok := ParseEvent("bespoke-init: bogus uptime=1"); ok {
		t.Error("ParseEvent accepted an unknown event kind")
	}
	if _, ok := ParseEvent("plain kernel line"); ok {
		t.Error("ParseEvent found an event in a plain line")
	}
}

func TestOverrideRoundTrip(t *testing.T) {
	o := Override{Args: []string{"--port", "6379"}, Env: []string{"A=b c"}}
	s, err := EncodeOverride(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings := []byte(s); len(strings) == 0 {
		t.Fatal("empty encoding")
	}
	got, err := DecodeOverride(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := DecodeOverride("!!!"); err == nil {
		t.Error("DecodeOverride accepted garbage")
	}
}

func TestTimeReply(t *testing.T) {
	at := time.Unix(1764755555, 123456789)
	line := FormatTime(at)
	if len(line) != 18 {
		t.Errorf("%q: %d bytes, want 18 (the UART's FIFO hands the guest 8 at a time)", line, len(line))
	}
	got, ok := ParseTime("echo " + line + "\r")
	if !ok || !got.Equal(at) {
		t.Errorf("ParseTime(%q) = %v %v, want %v", line, got, ok, at)
	}
	for _, bad := range []string{"", TimeReply, TimeReply + "12", "x"} {
		if _, ok := ParseTime(bad); ok {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestSeccompParam(t *testing.T) {
	allow := []int{0, 1, 3, 60, 231, 435, 462}
	for _, mode := range []string{SeccompEnforce, SeccompLog} {
		v, err := EncodeSeccomp(mode, allow)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) > 100 {
			t.Errorf("%d bytes of command line for %d syscalls: %q", len(v), len(allow), v)
		}
		m, got, err := DecodeSeccomp(v)
		if err != nil || m != mode {
			t.Fatalf("DecodeSeccomp(%q) = %q, %v", v, m, err)
		}
		if diff := cmp.Diff(allow, got); diff != "" {
			t.Errorf("allowlist round trip (-want +got):\n%s", diff)
		}
	}
	if v, err := EncodeSeccomp(SeccompOff, allow); err != nil || v != SeccompOff {
		t.Errorf("off encodes as %q, %v", v, err)
	}
	for _, bad := range []string{"", "on", "enforce", "log:!!", "off:AA", "enforce:" + strings.Repeat("A", 100)} {
		if _, _, err := DecodeSeccomp(bad); err == nil {
			t.Errorf("DecodeSeccomp(%q) accepted", bad)
		}
	}
	if _, err := EncodeSeccomp("strict", nil); err == nil {
		t.Error("EncodeSeccomp accepted an unknown mode")
	}
	if _, err := EncodeSeccomp(SeccompLog, []int{MaxSyscall + 1}); err == nil {
		t.Error("EncodeSeccomp accepted a number out of range")
	}
}

// TestStateInfo: a state event's Msg round-trips, a path with spaces
// included, and a bad one is an error.
func TestStateInfo(t *testing.T) {
	want := StateInfo{Where: StateMemory, Total: 134217728, Free: 4096, Path: "/root/.cache/bespoke state/pg"}
	got, err := ParseStateInfo(want.String())
	if err != nil || got != want {
		t.Errorf("ParseStateInfo(%q) = %+v, %v; want %+v", want.String(), got, err, want)
	}
	for _, tc := range []struct {
		total, free uint64
		full        bool
	}{
		{128 << 20, 17 << 20, false},
		{128 << 20, 15 << 20, true}, // less than 16 MiB
		{32 << 20, 9 << 20, false},
		{32 << 20, 7 << 20, true}, // less than a quarter
		{0, 0, false},             // nothing known
	} {
		if got := (StateInfo{Total: tc.total, Free: tc.free}).Full(); got != tc.full {
			t.Errorf("%d of %d free: Full() = %v, want %v", tc.free, tc.total, got, tc.full)
		}
	}
	for _, bad := range []string{"", "memory 1 2", "tape 1 2 /x", "memory x 2 /x", "volume 1 -2 /x"} {
		if _, err := ParseStateInfo(bad); err == nil {
			t.Errorf("ParseStateInfo(%q) took it", bad)
		}
	}
}
