// Package flock takes advisory locks on files (flock(2)) without waiting:
// a build dir's lock, a cache entry's, a console log's.
package flock

import (
	"errors"
	"os"
	"syscall"
)

// TryLock opens path (creating it) and takes an exclusive flock on it
// without waiting. It returns the locked file, or nil and no error when
// another open file holds the lock. Closing the file unlocks it (for every
// process that inherited it: there is no LOCK_UN).
func TryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}
