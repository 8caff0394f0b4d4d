package image_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/breakdown"
	"github.com/bespoke-os/bespoke/internal/cli"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// TestReportPage: bespoke report --html over two real images writes a
// self-contained page (no scripts, no external assets) that Debian's
// chromium renders without console messages; its screenshot is kept in
// out/report-page.png. --json has where the bytes go: the kernel's code by
// source directory (from the build's objects) and its largest functions,
// the root by kind.
func TestReportPage(t *testing.T) {
	testenv.Command(t, "chromium")
	redis, _ := redisImage(t)
	pg, _ := appImage(t, "postgresql")
	tmp := t.TempDir()
	html, js := filepath.Join(tmp, "report.html"), filepath.Join(tmp, "report.json")
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), []string{"report", "--html", html, "--json", js, redis, pg}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("bespoke report: exit %d: %s", code, stderr.String())
	}
	// Two programs: said on stderr, and the report is still made.
	if !strings.Contains(stderr.String(), "the images are of 2 different programs (postgresql, redis)") {
		t.Errorf("stderr: %s; want the note on different programs", stderr.String())
	}
	var page struct {
		Images []struct {
			Name       string
			Kernel     *breakdown.Kernel
			KernelNote string `json:"kernel_note"`
			Root       *breakdown.Root
		}
	}
	data, err := os.ReadFile(js)
	if err != nil || json.Unmarshal(data, &page) != nil || len(page.Images) != 2 {
		t.Fatalf("report.json: %v: %s", err, data)
	}
	for _, im := range page.Images {
		k := im.Kernel
		if k == nil || len(k.Functions) != breakdown.TopFunctions || len(k.Subsystems) < 10 || k.Mapped < 0.9 || im.Root == nil || len(im.Root.Kinds) < 3 {
			t.Errorf("%s: kernel %+v (%s), root %+v; want functions, subsystems mapping 90%% of the code, root kinds", im.Name, k, im.KernelNote, im.Root)
			continue
		}
		t.Logf("%s: kernel code %d B, largest subsystem %s (%d B), largest function %s, %.1f%% mapped", im.Name, k.Code, k.Subsystems[0].Name, k.Subsystems[0].Bytes, k.Functions[0].Name, 100*k.Mapped)
	}

	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", " src=", " href=", "@import", "url("} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("the page has %q: it must be self-contained", bad)
		}
	}
	for _, want := range []string{"<svg", "Kernel code by source directory", "largest functions", "Root files by kind", "Data trees held whole"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	shot := filepath.Join(tmp, "report.png")
	out, err := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1200,2400", "--screenshot="+shot, "--enable-logging=stderr", "--v=0", "file://"+html).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			t.Errorf("console message while rendering the page: %s", line)
		}
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 20<<10 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	keep, err := filepath.Abs("../../out/report-page.png")
	if err == nil && os.MkdirAll(filepath.Dir(keep), 0o755) == nil && os.WriteFile(keep, png, 0o644) == nil {
		t.Logf("screenshot of the page (%d bytes): %s", len(png), keep)
	}
}

// TestConsoleCheck: the console check of TestReportPage sees what it
// looks for: a page with a script error makes chromium print it.
func TestConsoleCheck(t *testing.T) {
	testenv.Command(t, "chromium")
	page := filepath.Join(t.TempDir(), "bad.html")
	if err := os.WriteFile(page, []byte(`<html><body><script>console.error("bespoke-boom")</script></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--enable-logging=stderr", "--v=0", "file://"+page).CombinedOutput()
	if !strings.Contains(string(out), ":CONSOLE") || !strings.Contains(string(out), "bespoke-boom") {
		t.Errorf("chromium printed no console line for console.error:\n%s", out)
	}
}
