package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/bench"
)

// TestReportCross: images whose bench runs measured them on one another's
// kernels (bench --kernel-of) get the cross-evaluation's matrices, in the
// Markdown and as heat maps on the page; an image whose bench lacks a
// kernel gets "-" there; images without such runs get none.
func TestReportCross(t *testing.T) {
	// Kernel instructions per request: each row's -O2, then on each
	// image's kernel (its own labelled pgo).
	insns := map[string]map[string]float64{
		"a": {"o2": 1000, "pgo": 900, "b": 1100},
		"b": {"o2": 2000, "pgo": 1800}, // not run on a's kernel
		"c": {"image": 500, "a": 450},  // not profile-guided: its own kernel is the base
	}
	var dirs []string
	for _, name := range []string{"a", "b", "c"} {
		dir := filepath.Join(t.TempDir(), name+".image")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		rep := fmt.Sprintf(`{"name":%q,"kernel_bytes":100,"initramfs_bytes":200,"total_bytes":300}`, name)
		if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(rep), 0o644); err != nil {
			t.Fatal(err)
		}
		sized(t, dir, "bzImage", 100)
		sized(t, dir, "initramfs.cpio.xz", 200)
		var ks []string
		for _, label := range []string{"o2", "pgo", "image", "a", "b"} {
			if v, ok := insns[name][label]; ok {
				ks = append(ks, fmt.Sprintf(`{"label":%q,"file":"bzImage","seconds":[1],"mean_seconds":{"mean":1},
"model":{"kernel_insns":{"mean":%g},"kernel_tbs":{"mean":%g},"kernel_l1i_misses":{"mean":%g}}}`, label, v, v/5, v/20))
			}
		}
		bench := `{"workload":"w","accel":"tcg","runs":3,"per":"request","kernels":[` + strings.Join(ks, ",") + `]}`
		if err := os.WriteFile(filepath.Join(dir, BenchFile), []byte(bench), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	page := filepath.Join(t.TempDir(), "report.html")
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), append([]string{"report", "--html", page}, dirs...), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"kernel instructions per request, each workload (row) on each image's kernel",
		"boots per kernel: 3)",
		"| workload \\ kernel | a | b | c |",
		"| a | **-10.0%** | +10.0% | - |",
		"| b | - | **-10.0%** | - |",
		"| c | -10.0% | - | **+0.0%** |",
		"kernel L1i misses per request",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`aria-label="kernel instructions per request against -O2`,
		`>+10.0%</text>`, `>-10.0%</text>`, heatColor(10), heatColor(-10),
	} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Without another image's kernel in any run: no matrix.
	stdout.Reset()
	if code := Main(context.Background(), []string{"report", dirs[1]}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "each workload (row)") {
		t.Errorf("a report without cross runs has a matrix:\n%s", stdout.String())
	}
}

func TestHeatColor(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "#ffffff"}, {-40, "#28a050"}, {-400, "#28a050"}, {40, "#d23228"}, {-20, "#94d0a8"},
	} {
		if got := heatColor(tc.v); got != tc.want {
			t.Errorf("heatColor(%g) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestUniqueLabels(t *testing.T) {
	ok := []bench.Kernel{{Label: "o2"}, {Label: "pgo"}, {Label: "nginx"}, {Label: "debian-cloud"}}
	if err := uniqueLabels(ok); err != nil {
		t.Errorf("uniqueLabels(%v): %v", ok, err)
	}
	bad := append(ok, bench.Kernel{Label: "pgo", File: "/x/pgo.image/bzImage"})
	if err := uniqueLabels(bad); err == nil || !strings.Contains(err.Error(), `two kernels would be labelled "pgo"`) {
		t.Errorf("uniqueLabels of two pgo: %v", err)
	}
}
