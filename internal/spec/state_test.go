package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStateDirFor: the state directory stays in the cache when every user
// can reach it, and, for root, moves to SharedStateRoot when a directory
// above it (root's 0700 home) shuts other users out.
func TestStateDirFor(t *testing.T) {
	dir := t.TempDir()
	// t.TempDir and its parent are 0700: open them to every user.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	open := filepath.Join(dir, "open", "cache")
	closed := filepath.Join(dir, "closed", "cache")
	os.MkdirAll(open, 0o755)
	os.MkdirAll(closed, 0o755)
	os.Chmod(filepath.Dir(closed), 0o700)
	wantClosed := filepath.Join(closed, "state", "app")
	if os.Geteuid() == 0 {
		wantClosed = filepath.Join(SharedStateRoot, "app")
	}
	for _, tc := range []struct{ cache, want string }{
		{open, filepath.Join(open, "state", "app")},
		{filepath.Join(open, "not", "yet"), filepath.Join(open, "not", "yet", "state", "app")},
		{closed, wantClosed},
	} {
		if got := StateDirFor(tc.cache, "app"); got != tc.want {
			t.Errorf("StateDirFor(%s, app) = %s, want %s", tc.cache, got, tc.want)
		}
	}
}
