package image_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/cli"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/verify"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// TestStateVolume: with a state volume (bespoke run -v FILE:{state}),
// what the workload writes in one boot is read back in the next boot of
// the same image; without one, a boot starts from the image's state
// again. A volume of another image is refused by the guest init.
func TestStateVolume(t *testing.T) {
	testenv.Command(t, "psql")
	testenv.Command(t, "mariadb")
	for _, tc := range []struct {
		app   string
		query string // run against the second boot: the workload's data
		want  string
	}{
		// pgbench -i creates pgbench_accounts with 100000 rows per scale.
		{"postgresql", "psql -h 127.0.0.1 -p {port} -U postgres -tAc 'select count(*) from pgbench_accounts' postgres", "100000"},
		// sysbench prepare fills sbtest1 with --table-size rows.
		{"mariadb", "mariadb -h 127.0.0.1 -P {port} -u sbtest -N -e 'select count(*) from sbtest.sbtest1'", "10000"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			dir, _ := appImage(t, tc.app)
			sp, err := image.ReadSpec(dir)
			if err != nil {
				t.Fatal(err)
			}
			img, err := vm.LoadImage(dir)
			if err != nil || img.StateDir == "" {
				t.Fatalf("image.json: %+v, %v; want a state directory", img, err)
			}
			vol := filepath.Join(t.TempDir(), tc.app+".ext4")
			boot := func(volumes bool, onReady func(ctx context.Context, ports map[int]int) error) {
				t.Helper()
				cfg := vm.Config{ImageDir: dir, Timeout: 5 * time.Minute, StopGuest: true, StopWait: time.Minute,
					LogPath: filepath.Join(t.TempDir(), "console.log"), OnReady: onReady}
				if volumes {
					release, err := vm.OpenVolume(vol, 256)
					if err != nil {
						t.Fatal(err)
					}
					defer release()
					cfg.Volumes = []vm.Volume{{Host: vol, Guest: img.StateDir, Type: vm.VolumeFS, Image: img.Name}}
				}
				res, err := vm.Run(context.Background(), cfg)
				if err != nil || res.ExitCode != 0 {
					con, _ := os.ReadFile(cfg.LogPath)
					t.Fatalf("boot: %+v, %v\nconsole:\n%s", res, err, tail(string(con), 30))
				}
			}
			query := func(ctx context.Context, ports map[int]int) (string, error) {
				q, err := sp.Expand(tc.query, "127.0.0.1", ports)
				if err != nil {
					return "", err
				}
				out, err := exec.CommandContext(ctx, "sh", "-c", q).CombinedOutput()
				return strings.TrimSpace(string(out)), err
			}
			// 1: the workload writes into a new volume, filled from the image.
			boot(true, func(ctx context.Context, ports map[int]int) error {
				w, err := sp.Expand(sp.Workload, "127.0.0.1", ports)
				if err != nil {
					return err
				}
				var out bytes.Buffer
				wl, err := image.RunWorkload(ctx, w, sp.WorkloadTimeout, &out)
				if err == nil && wl.ExitCode != 0 {
					err = fmt.Errorf("workload exit %d:\n%s", wl.ExitCode, tail(out.String(), 20))
				}
				return err
			})
			// 2: the same volume holds it.
			var got string
			boot(true, func(ctx context.Context, ports map[int]int) error {
				var err error
				got, err = query(ctx, ports)
				return err
			})
			if got != tc.want {
				t.Errorf("second boot with the volume: %q, want %s", got, tc.want)
			}
			// 3: without it, the image's own state: the tables are not there.
			var without string
			var qerr error
			boot(false, func(ctx context.Context, ports map[int]int) error {
				without, qerr = query(ctx, ports)
				return nil
			})
			if qerr == nil && without == tc.want {
				t.Errorf("a boot without the volume saw the volume's data: %q", without)
			}
		})
	}

	// A volume marked for postgresql, given to mariadb.
	pgVol := filepath.Join(t.TempDir(), "pg.ext4")
	pg, _ := appImage(t, "postgresql")
	pgImg, err := vm.LoadImage(pg)
	if err != nil {
		t.Fatal(err)
	}
	// postgres -C prints a setting and exits: a boot that fills the volume.
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", pg, "-v", pgVol + ":{state}", "--timeout", "2m", "--",
		"-D", pgImg.StateDir + "/pgdata", "-C", "data_directory"}, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), pgImg.StateDir+"/pgdata") {
		t.Fatalf("bespoke run postgresql -v ... -- -C data_directory: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	maria, _ := appImage(t, "mariadb")
	stderr.Reset()
	start := time.Now()
	code = cli.Main(context.Background(), []string{"run", maria, "-v", pgVol + ":{state}", "--timeout", "3m"}, nil, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), `belongs to image "postgresql", not "mariadb"`) {
		t.Errorf("mariadb with postgresql's volume: exit %d, want the volume refused\n%s", code, stderr.String())
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("the refusal took %s, want it at boot", d)
	}
}

// TestMinMemory: bespoke min-memory finds the least memory the redis image
// passes its workload with, records it, and bespoke run then refuses less;
// a truncated root disk is named before QEMU starts.
func TestMinMemory(t *testing.T) {
	dir, _ := redisImage(t)
	img := filepath.Join(t.TempDir(), "redis.image")
	if out, err := exec.Command("cp", "-a", dir, img).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	res, err := verify.MinMemory(context.Background(), verify.MemoryOptions{ImageDir: img, Low: 16, High: 128, Step: 8, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if res.MinMB <= 16 || res.MinMB > 128 || len(res.Tries) < 4 {
		t.Fatalf("min-memory: %+v, want a minimum in (16, 128] MiB found in 4 or more boots", res)
	}
	failedBelow := false
	for _, tr := range res.Tries {
		if tr.MB < res.MinMB && !tr.Passed {
			failedBelow = true
		}
		if tr.MB >= res.MinMB && !tr.Passed {
			t.Errorf("a boot with %d MiB, above the minimum %d, failed: %s", tr.MB, res.MinMB, tr.Why)
		}
	}
	if !failedBelow {
		t.Errorf("no boot below the minimum %d MiB failed: %+v", res.MinMB, res.Tries)
	}
	rep, err := image.ReadReport(img)
	if err != nil || rep.MinMemoryMB != res.MinMB {
		t.Errorf("report.json min_memory_mb = %v (%v), want %d", rep.MinMemoryMB, err, res.MinMB)
	}
	t.Logf("redis (erofs root): least memory %d MiB (step 8 MiB): %+v", res.MinMB, res.Tries)
	var stdout, stderr bytes.Buffer
	low := fmt.Sprintf("%dM", res.MinMB-1) // at least 16M, bespoke run's own floor: MinMB > 16
	if code := cli.Main(context.Background(), []string{"run", img, "-m", low}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "is below the least memory") {
		t.Errorf("bespoke run -m %s: exit %d, %s; want a usage error", low, code, stderr.String())
	}

	// A truncated root disk.
	root := filepath.Join(img, image.RootFile)
	st, _ := os.Stat(root)
	if err := os.Truncate(root, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	code := cli.Main(context.Background(), []string{"run", img, "--timeout", "1m"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "is truncated") {
		t.Errorf("bespoke run with a truncated root: exit %d, %s; want an error naming it", code, stderr.String())
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
