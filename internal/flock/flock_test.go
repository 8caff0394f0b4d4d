package flock

import (
	"path/filepath"
	"testing"
)

func TestTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(p)
	if err != nil || a == nil {
		t.Fatalf("first TryLock: %v, %v", a, err)
	}
	if b, err := TryLock(p); b != nil || err != nil {
		t.Errorf("second TryLock while held: %v, %v; want nil, nil", b, err)
	}
	a.Close()
	b, err := TryLock(p)
	if err != nil || b == nil {
		t.Errorf("TryLock after the close: %v, %v", b, err)
	}
	b.Close()
	if _, err := TryLock(filepath.Join(t.TempDir(), "no", "dir")); err == nil {
		t.Error("TryLock in a missing directory succeeded")
	}
}
