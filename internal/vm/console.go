package vm

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/trace"
)

// tailLines is how many console lines errors quote.
const tailLines = 20

// console reads the serial console line by line: it keeps the last lines
// for error messages, notes when the kernel first prints, and turns the
// init's marker lines into events. Write is called from one goroutine;
// the getters from any.
type console struct {
	start   time.Time
	readyRe *regexp.Regexp
	blobs   *protocol.Blobs

	mu      sync.Mutex
	partial []byte
	tail    []string
	first   time.Duration // first output before any marker (the kernel's)
	events  []timedEvent

	// Closed once each: the init started, the program started, the
	// program ended or init failed (see final), the ready regex matched.
	started, exec, done, logReady chan struct{}
	final                         *timedEvent // exit or error
	acks                          map[string]chan struct{}
	// onClock answers the init's EventClock (nil: no answer).
	onClock func()
	// onFault is told of each EventFault's kernel line (nil: nothing).
	onFault func(string)
	// onSeccomp is told of each EventSeccomp (nil: nothing).
	onSeccomp func(SeccompEvent)
	// onState is told of each EventState and EventStateFull (nil:
	// nothing).
	onState func(protocol.StateInfo, bool)
}

type timedEvent struct {
	protocol.Event
	at time.Duration // host time since start
}

func newConsole(start time.Time, readyRe *regexp.Regexp, blobs *protocol.Blobs) *console {
	if blobs == nil {
		blobs = &protocol.Blobs{}
	}
	return &console{
		start:    start,
		readyRe:  readyRe,
		blobs:    blobs,
		started:  make(chan struct{}),
		exec:     make(chan struct{}),
		done:     make(chan struct{}),
		logReady: make(chan struct{}),
	}
}

// Write consumes console output; it never fails.
func (c *console) Write(p []byte) (int, error) {
	now := time.Since(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(c.partial[:i]), "\r")
		c.partial = c.partial[i+1:]
		c.line(line, now)
	}
	// A very long line without a newline: treat it as a line so that the
	// buffer stays bounded.
	if len(c.partial) > 64<<10 {
		c.line(string(c.partial), now)
		c.partial = nil
	}
	return len(p), nil
}

// Close handles a last line without a newline.
func (c *console) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.line(strings.TrimRight(string(c.partial), "\r"), time.Since(c.start))
		c.partial = nil
	}
	return nil
}

func (c *console) line(line string, now time.Duration) {
	if c.blobs.Line(line) {
		return // data for the host, not for error messages
	}
	c.tail = append(c.tail, line)
	if len(c.tail) > tailLines {
		c.tail = c.tail[len(c.tail)-tailLines:]
	}
	if c.readyRe != nil && c.readyRe.MatchString(line) {
		closeOnce(c.logReady)
	}
	e, ok := protocol.ParseEvent(line)
	if !ok {
		// Only output before the init's first marker is the kernel's.
		if c.first == 0 && len(c.events) == 0 && strings.TrimSpace(line) != "" {
			c.first = now
		}
		return
	}
	te := timedEvent{Event: e, at: now}
	c.events = append(c.events, te)
	switch e.Kind {
	case protocol.EventStarted:
		closeOnce(c.started)
	case protocol.EventExec:
		closeOnce(c.started)
		closeOnce(c.exec)
	case protocol.EventAck:
		closeOnce(c.ackLocked(e.Msg))
	case protocol.EventClock:
		if c.onClock != nil {
			c.onClock()
		}
	case protocol.EventSeccomp:
		if c.onSeccomp != nil {
			c.onSeccomp(seccompEvent(e))
		}
	case protocol.EventState, protocol.EventStateFull:
		if s, err := protocol.ParseStateInfo(e.Msg); err == nil && c.onState != nil {
			c.onState(s, e.Kind == protocol.EventStateFull)
		}
	case protocol.EventFault:
		if c.onFault != nil {
			c.onFault(e.Msg)
		}
	case protocol.EventExit, protocol.EventError:
		if c.final == nil {
			c.final = &te
			closeOnce(c.done)
		}
	}
}

// acked returns a channel closed once the init acked the request name.
func (c *console) acked(name string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ackLocked(name)
}

func (c *console) ackLocked(name string) chan struct{} {
	if c.acks == nil {
		c.acks = map[string]chan struct{}{}
	}
	ch, ok := c.acks[name]
	if !ok {
		ch = make(chan struct{})
		c.acks[name] = ch
	}
	return ch
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Tail returns the last console lines.
func (c *console) Tail() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := append([]string(nil), c.tail...)
	if len(c.partial) > 0 {
		t = append(t, string(c.partial))
		if len(t) > tailLines {
			t = t[1:]
		}
	}
	return t
}

// Final returns the exit or error event, if one was seen.
func (c *console) Final() *timedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final
}

// SeccompEvent is a syscall the program made outside the image's seccomp
// allowlist (protocol.EventSeccomp).
type SeccompEvent struct {
	Syscall string `json:"syscall"` // x86-64 name; "" for another ABI's
	Nr      int    `json:"nr"`      // -1 for another ABI's
	Pid     int    `json:"pid"`
	// Action is protocol.SeccompDenied or protocol.SeccompAllowed.
	Action string `json:"action"`
}

func seccompEvent(e protocol.Event) SeccompEvent {
	s := SeccompEvent{Nr: e.Nr, Pid: e.Pid, Action: e.Msg}
	if e.Nr >= 0 {
		s.Syscall = trace.SyscallName(e.Nr)
	}
	return s
}

// String says what happened, for a status line: "pid 52 made getppid
// (110), which is not in the image's seccomp allowlist: denied (ENOSYS)".
func (s SeccompEvent) String() string {
	what := fmt.Sprintf("%s (%d)", s.Syscall, s.Nr)
	if s.Nr < 0 {
		what = "a syscall of another ABI (x32 or i386)"
	}
	act := s.Action
	switch s.Action {
	case protocol.SeccompDenied:
		act = "denied (ENOSYS; seccomp enforce)"
	case protocol.SeccompAllowed:
		act = "allowed (seccomp log)"
	}
	return fmt.Sprintf("pid %d made %s, which is not in the image's seccomp allowlist: %s", s.Pid, what, act)
}

// seccomp returns the EventSeccomp events seen.
func (c *console) seccomp() []SeccompEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []SeccompEvent
	for _, e := range c.events {
		if e.Kind == protocol.EventSeccomp {
			out = append(out, seccompEvent(e.Event))
		}
	}
	return out
}

// timing fills t from what the console showed.
func (c *console) timing(t *Timing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Kernel = c.first
	for _, e := range c.events {
		guest := time.Duration(e.Uptime * float64(time.Second))
		switch e.Kind {
		case protocol.EventStarted:
			if t.Init == 0 {
				t.Init, t.GuestInit = e.at, guest
			}
		case protocol.EventExec:
			if t.Exec == 0 {
				t.Exec, t.GuestExec = e.at, guest
			}
		case protocol.EventExit, protocol.EventError:
			if t.Exit == 0 {
				t.Exit, t.GuestExit = e.at, guest
			}
		}
	}
}

// state returns the state directory's room at start, and when it first
// filled up (EventStateFull; nil: it did not).
func (c *console) state() (start, full *protocol.StateInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		s, err := protocol.ParseStateInfo(e.Msg)
		switch {
		case err != nil:
		case e.Kind == protocol.EventState && start == nil:
			start = &s
		case e.Kind == protocol.EventStateFull && full == nil:
			full = &s
		}
	}
	return start, full
}

// StateLine is what bespoke says of a state directory's room: at start
// (full false), or when it filled up.
func StateLine(s protocol.StateInfo, full bool) string {
	where, fix := "in memory", "give the VM more memory (-m) or the state a volume (-v FILE:"+s.Path+")"
	if s.Where == protocol.StateVolume {
		where, fix = "on its volume", "give the volume more room (--volume-size, or a larger file)"
	}
	if full {
		return fmt.Sprintf("the state directory %s is full or nearly: %s free of %s %s; %s", s.Path, mib(s.Free), mib(s.Total), where, fix)
	}
	if s.Where == protocol.StateMemory {
		where += " (half the VM's memory: -m gives more, -v FILE:" + s.Path + " a disk)"
	}
	return fmt.Sprintf("state %s: %s free of %s %s", s.Path, mib(s.Free), mib(s.Total), where)
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
