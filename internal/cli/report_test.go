package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	rep := `{"name":"redis","kernel_bytes":1960000,"initramfs_bytes":6140000,"total_bytes":8100000,"kernel_symbols":506,
"initramfs":{"files":[{"path":"/init"},{"path":"/usr/bin/redis-server"}]},
"boot":{"accel":"tcg","ready_host":6.42,"stop_exit_code":0},"workload":{"exit_code":0,"seconds":1.04}}`
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "verify.json"), []byte(`{"passed":false,"reason":"the workload failed (exit 1)","rounds":[{"n":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"report", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := "| redis | 1.87 MB | 5.86 MB | 7.72 MB | 506 | 2 | 6.42 s (tcg) | exit 0 in 1.0 s | exit 0 | failed: the workload failed (exit 1) (1 round(s)) |"
	if len(lines) != 3 || lines[2] != want {
		t.Errorf("got\n%s\nwant the header and the row\n%s", stdout.String(), want)
	}
	if code := Main(context.Background(), []string{"report"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("report without a dir: exit %d, want 2", code)
	}
}

func TestVerifyUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"verify"}, {"verify", "a", "b"}, {"verify", "--max-rounds", "0", "a"}} {
		if code := Main(context.Background(), args, nil, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	stderr.Reset()
	code := Main(context.Background(), []string{"verify", t.TempDir()}, nil, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "spec.json") {
		t.Errorf("verify of a directory that is no image: exit %d, stderr %q; want an error naming spec.json", code, stderr.String())
	}
}
