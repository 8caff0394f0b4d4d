package kbuild

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"
)

// objectLineRe matches Kbuild's short build lines for compiled objects:
// "  CC      init/main.o", "  AS      arch/x86/entry/entry_64.o".
var objectLineRe = regexp.MustCompile(`^  (?:CC|AS|HOSTCC|CC \[M\])\s+\S+\.o$`)

// progress counts the objects in make's output as it is written to the
// log and reports them: on a terminal one line rewritten in place, else a
// line every interval.
type progress struct {
	w        io.Writer // nil: no progress
	terminal bool
	interval time.Duration
	start    time.Time

	mu      sync.Mutex
	partial []byte
	objects int
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, terminal bool, interval time.Duration) *progress {
	now := time.Now()
	return &progress{w: w, terminal: terminal, interval: interval, start: now, last: now}
}

// Write takes make's output (the log's copy).
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		if objectLineRe.Match(p.partial[:i]) {
			p.objects++
		}
		p.partial = p.partial[i+1:]
	}
	p.tick(false)
	return len(b), nil
}

// Objects returns the objects compiled so far.
func (p *progress) Objects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.objects
}

// tick reports when due; p.mu is held.
func (p *progress) tick(force bool) {
	if p.w == nil {
		return
	}
	now := time.Now()
	every := p.interval
	if p.terminal {
		every = 200 * time.Millisecond
	}
	if !force && now.Sub(p.last) < every-every/10 {
		return
	}
	p.last = now
	msg := fmt.Sprintf("kernel build: %d objects compiled, %s elapsed", p.objects, now.Sub(p.start).Round(time.Second))
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
		p.printed = true
	} else {
		fmt.Fprintln(p.w, msg)
	}
}

// run reports on a timer too, so that a quiet link step still shows time
// passing, until stop is closed.
func (p *progress) run(stop <-chan struct{}) {
	every := p.interval
	if p.terminal {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.tick(false)
			p.mu.Unlock()
		}
	}
}

// done ends the updating line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil && p.terminal && p.printed {
		fmt.Fprintln(p.w)
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
