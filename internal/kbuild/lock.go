package kbuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockPoll is how often a waiting build retries the lock.
var lockPoll = 500 * time.Millisecond

// lockKey takes the lock file of a cache key, waiting (with a message)
// while another process builds the same key. The lock is an flock, so it
// is released when its holder dies. It returns the unlock function.
func lockKey(ctx context.Context, path string, say func(string, ...any)) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock: %w", err)
	}
	waited := false
	// The holder writes its pid just after it takes the lock: a waiter
	// that comes in between polls a few times for it before saying.
	tries := 0
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !waited {
			pid := ""
			if b, err := os.ReadFile(path); err == nil {
				pid = strings.TrimSpace(string(b))
			}
			if tries++; pid == "" && tries > 5 {
				pid = "unknown"
			}
			if pid != "" {
				waited = true
				say("waiting for another build of the same kernel (pid %s)", pid)
			}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
