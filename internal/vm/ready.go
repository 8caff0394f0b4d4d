package vm

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// readyHold is how long a probe connection must stay open, with no data,
// to count as accepted by the guest program. QEMU's user-mode network
// accepts every connection to a forwarded port on the host at once, then
// connects inside the guest; when nothing listens there, the guest resets
// that connection and QEMU closes the host side within milliseconds.
var readyHold = 300 * time.Millisecond

// probeRetry is the pause between two probe connections.
var probeRetry = 50 * time.Millisecond

// probeTCP returns once a connection to addr is accepted by the guest
// program: data arrives on it, or it stays open for readyHold. It returns
// when that connection was made (the guest was ready then; the hold only
// confirms it), or ctx.Err() when ctx ends first.
func probeTCP(ctx context.Context, addr string) (time.Time, error) {
	var d net.Dialer
	for {
		if at, ok := probeOnce(ctx, &d, addr); ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(probeRetry):
		}
	}
}

func probeOnce(ctx context.Context, d *net.Dialer, addr string) (time.Time, bool) {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	at := time.Now()
	if err != nil {
		return at, false
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	conn.SetReadDeadline(time.Now().Add(readyHold))
	var b [1]byte
	n, err := conn.Read(b[:])
	if n > 0 {
		return at, true // the program spoke first (a banner)
	}
	if ctx.Err() != nil {
		return at, false
	}
	// Still open after readyHold: someone in the guest holds it.
	return at, errors.Is(err, os.ErrDeadlineExceeded)
}
