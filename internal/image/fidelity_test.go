package image_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// bootApp boots the example image dir, calls onReady with its forwarded
// ports, stops it and returns the status output (bespoke run's lines).
func bootApp(t *testing.T, dir string, memoryMB int, vols []vm.Volume, onReady func(ctx context.Context, ports map[int]int) error) (*vm.Result, string) {
	t.Helper()
	var status bytes.Buffer
	cfg := vm.Config{ImageDir: dir, Timeout: 10 * time.Minute, StopGuest: true, StopWait: time.Minute,
		MemoryMB: memoryMB, Volumes: vols, Status: &status,
		LogPath: filepath.Join(t.TempDir(), "console.log"), OnReady: onReady}
	res, err := vm.Run(context.Background(), cfg)
	if err != nil {
		con, _ := os.ReadFile(cfg.LogPath)
		t.Fatalf("boot: %v\nstatus:\n%s\nconsole:\n%s", err, status.String(), tail(string(con), 30))
	}
	return res, status.String()
}

// TestPostgresTimeZones: clients that send a time zone the workload never
// used (PGTZ, as JDBC and other drivers do at connect) are served by the
// image, with the offsets the host's tzdata gives, because the image holds
// the zoneinfo tree (spec data: trees, the default). The report says why
// it is there and what postgresql-15 ships that the image does not hold.
func TestPostgresTimeZones(t *testing.T) {
	testenv.Command(t, "psql")
	dir, rep := appImage(t, "postgresql")
	var zone *string
	for _, d := range rep.DataTrees {
		if d.Name == "zoneinfo" {
			zone = &d.Why
		}
	}
	if zone == nil || rep.Boot == nil || rep.Boot.State == nil {
		t.Fatalf("report: data trees %+v, boot %+v; want zoneinfo and the state directory's room", rep.DataTrees, rep.Boot)
	}
	t.Logf("zoneinfo: %s", *zone)
	var pg bool
	for _, p := range rep.NotInImage {
		if p.Name == "postgresql-15" && len(p.Missing) > 0 && p.Missing[0] != "" {
			pg = true
			t.Logf("postgresql-15: %d of %d files under /etc and /usr/share not in the image, e.g. %s", len(p.Missing), p.Shipped, p.Missing[0])
		}
	}
	if !pg {
		t.Errorf("report not_in_image: %+v; want postgresql-15's files left out (its extensions)", rep.NotInImage)
	}

	zones := []string{"America/Los_Angeles", "Asia/Kolkata", "Australia/Adelaide"}
	got := map[string]int{}
	_, status := bootApp(t, dir, 0, nil, func(ctx context.Context, ports map[int]int) error {
		for _, z := range zones {
			cmd := exec.CommandContext(ctx, "psql", "-h", "127.0.0.1", "-p", strconv.Itoa(ports[5432]), "-U", "postgres",
				"-tAc", "select extract(timezone from now())::int", "postgres")
			cmd.Env = append(os.Environ(), "PGTZ="+z)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("PGTZ=%s psql: %v: %s", z, err, out)
			}
			got[z], err = strconv.Atoi(strings.TrimSpace(string(out)))
			if err != nil {
				return fmt.Errorf("PGTZ=%s psql: %q", z, out)
			}
		}
		return nil
	})
	for _, z := range zones {
		loc, err := time.LoadLocation(z) // the host's /usr/share/zoneinfo
		if err != nil {
			t.Fatal(err)
		}
		_, want := time.Now().In(loc).Zone()
		if got[z] != want {
			t.Errorf("PGTZ=%s: the image's offset %d s, the host's tzdata %d s", z, got[z], want)
		}
	}
	if !strings.Contains(status, "bespoke: state "+rep.Boot.State.Path+": ") || !strings.Contains(status, "in memory") {
		t.Errorf("the boot did not report the state directory's room:\n%s", status)
	}
}

// TestMimeTypes: nginx and apache2 serve a file of a type the workload
// never asked for (an SVG image) with the Content-Type the host's own
// table gives (Debian's /etc/nginx/mime.types and /etc/mime.types, which
// the examples' configs read).
func TestMimeTypes(t *testing.T) {
	for _, tc := range []struct {
		app, table string
		port       int
	}{
		{"nginx", "/etc/nginx/mime.types", 8080},
		{"apache2", "/etc/mime.types", 80},
	} {
		t.Run(tc.app, func(t *testing.T) {
			want := mimeType(t, tc.table, "svg")
			dir, _ := appImage(t, tc.app)
			var got string
			bootApp(t, dir, 0, nil, func(ctx context.Context, ports map[int]int) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/logo.svg", ports[tc.port]), nil)
				if err != nil {
					return err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET /logo.svg: %s", resp.Status)
				}
				got = resp.Header.Get("Content-Type")
				return nil
			})
			if got != want {
				t.Errorf("%s served logo.svg as %q; the host's %s says %q", tc.app, got, tc.table, want)
			}
		})
	}
}

// mimeType returns the type the table (nginx's "type ext ...;" or
// mime.types' "type ext ...") gives ext.
func mimeType(t *testing.T, table, ext string) string {
	t.Helper()
	f, err := os.Open(table)
	if err != nil {
		t.Fatalf("no %s on this host: %v (make deps installs it)", table, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimSuffix(strings.TrimSpace(sc.Text()), ";"))
		if len(fields) > 1 && !strings.HasPrefix(fields[0], "#") && slices.Contains(fields[1:], ext) {
			return fields[0]
		}
	}
	t.Fatalf("%s has no type for .%s", table, ext)
	return ""
}

// TestStateFull: postgres's data directory lives in memory unless it has a
// volume. With 160 MiB, half of it holds the state; a client that writes
// more makes postgres fail with ENOSPC, and bespoke says in one line that
// the state directory is full and what to do. With a state volume the
// same client writes more than the memory could hold, to the end.
func TestStateFull(t *testing.T) {
	testenv.Command(t, "psql")
	dir, _ := appImage(t, "postgresql")
	img, err := vm.LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	const memoryMB = 160
	// rows of about 1 KiB, written in transactions of fillBatch rows.
	const fillBatch = 20000
	fill := func(ctx context.Context, port int, mib int) (string, error) {
		var out []byte
		var err error
		sql := "create table if not exists fill (g int, pad text)"
		for written := 0; written < mib<<10 && err == nil; written += fillBatch {
			cmd := exec.CommandContext(ctx, "psql", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
				"-c", sql, "-c", fmt.Sprintf("insert into fill select g, repeat(md5(g::text), 31) from generate_series(1, %d) g", fillBatch), "postgres")
			out, err = cmd.CombinedOutput()
		}
		return string(out), err
	}
	// In memory: 80 MiB of room, 2x that written.
	var failure string
	res, status := bootApp(t, dir, memoryMB, nil, func(ctx context.Context, ports map[int]int) error {
		out, err := fill(ctx, ports[5432], 160)
		if err == nil {
			return fmt.Errorf("writing 160 MiB into a %d MiB VM's memory passed: %s", memoryMB, out)
		}
		failure = out
		return nil
	})
	t.Logf("in memory: the client got: %s", strings.TrimSpace(failure))
	if res.State == nil || res.State.Where != "memory" || res.StateFull == nil {
		t.Fatalf("state %+v, full %+v; want the state in memory, then full\nstatus:\n%s", res.State, res.StateFull, status)
	}
	if !strings.Contains(failure, "No space left on device") && !strings.Contains(failure, "server closed the connection") {
		t.Errorf("the client's error: %s; want postgres's ENOSPC", failure)
	}
	line := "bespoke: " + vm.StateLine(*res.StateFull, true)
	if !strings.Contains(status, line+"\n") || !strings.Contains(line, "-v FILE:"+img.StateDir) {
		t.Errorf("status output lacks the full line %q:\n%s", line, status)
	}
	t.Logf("in memory: %s", line)

	// With a volume: the same VM writes ten times its in-memory room.
	vol := filepath.Join(t.TempDir(), "pg.ext4")
	release, err := vm.OpenVolume(vol, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	start := time.Now()
	res, status = bootApp(t, dir, memoryMB, []vm.Volume{{Host: vol, Guest: img.StateDir, Type: vm.VolumeFS, Image: img.Name}},
		func(ctx context.Context, ports map[int]int) error {
			out, err := fill(ctx, ports[5432], 800)
			if err != nil {
				return fmt.Errorf("writing 800 MiB with a volume: %v: %s", err, out)
			}
			return nil
		})
	if res.State == nil || res.State.Where != "volume" || res.StateFull != nil || res.ExitCode != 0 {
		t.Errorf("with a volume: state %+v, full %+v, exit %d; want a volume that did not fill and a clean stop\nstatus:\n%s", res.State, res.StateFull, res.ExitCode, status)
	}
	t.Logf("with a volume: 800 MiB written in %s", time.Since(start).Round(time.Second))
}
