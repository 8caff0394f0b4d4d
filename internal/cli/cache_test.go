package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCacheVerb(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BESPOKE_CACHE", dir)
	old := filepath.Join(dir, "kbuild", "work-aaaa.0")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "x.o"), make([]byte, 8192), 0o644)
	at := time.Now().Add(-40 * 24 * time.Hour)
	os.Chtimes(old, at, at)
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), append([]string{"cache"}, args...), nil, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "build dir") || !strings.Contains(out, "total") {
		t.Errorf("cache: exit %d\n%s", code, out)
	}
	if code, out := run("prune", "--older-than", "30d", "-n"); code != 0 || !strings.Contains(out, "would remove build dir "+old) {
		t.Errorf("cache prune -n: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("-n removed it: %v", err)
	}
	if code, out := run("prune", "--older-than", "30d"); code != 0 || !strings.Contains(out, "removed build dir") {
		t.Errorf("cache prune: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(old); err == nil {
		t.Errorf("prune left %s", old)
	}
	for _, args := range [][]string{{"prune"}, {"prune", "--max-size", "lots"}, {"prune", "--older-than", "-3d"}, {"ls", "-n"}, {"clean"}} {
		if code, _ := run(args...); code != 2 {
			t.Errorf("cache %v: exit %d, want 2", args, code)
		}
	}
}
