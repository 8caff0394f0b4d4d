package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/bench"
	"github.com/bespoke-os/bespoke/internal/breakdown"
	"github.com/bespoke-os/bespoke/internal/datatrees"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// page is what bespoke report --html shows and --json writes.
type page struct {
	Date   string      `json:"date"`
	Host   string      `json:"host"`
	Images []pageImage `json:"images"`
	Notes  []string    `json:"notes,omitempty"`
	// Cross is the cross-evaluation, when the images' bench runs measured
	// them on one another's kernels.
	Cross []crossMatrix `json:"cross,omitempty"`
}

// pageImage is one image of the page.
type pageImage struct {
	Name   string            `json:"name"`
	Dir    string            `json:"dir"`
	Row    []string          `json:"row"` // the Markdown table's cells
	Bench  *bench.Result     `json:"bench,omitempty"`
	Kernel *breakdown.Kernel `json:"kernel,omitempty"`
	// KernelNote says why Kernel or its subsystems are missing.
	KernelNote string              `json:"kernel_note,omitempty"`
	Root       *breakdown.Root     `json:"root,omitempty"`
	DataTrees  []datatrees.Pulled  `json:"data_trees,omitempty"`
	NotInImage []datatrees.Package `json:"not_in_image,omitempty"`
	Sizes      map[string]int64    `json:"sizes"` // kernel, root, total bytes
	Boot       map[string]float64  `json:"boot"`  // seconds: init, ready (host)
	Memory     int                 `json:"min_memory_mb,omitempty"`
	Workload   *image.Workload     `json:"workload,omitempty"`
}

// newPage gathers the page's figures: the rows, and where each image's
// bytes go (its vmlinux, and the kernel's build directory from the
// cache when it is still there).
func newPage(rows []*reportRow) *page {
	host, _ := os.Hostname()
	p := &page{
		Date:  time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Host:  fmt.Sprintf("%s, %d CPUs, %s", host, runtime.NumCPU(), accelName()),
		Notes: notes(rows),
	}
	for _, r := range rows {
		rep := r.Rep
		im := pageImage{Name: rep.Name, Dir: r.Dir, Row: r.Cells, Bench: r.Bench,
			DataTrees: rep.DataTrees, NotInImage: rep.NotInImage, Memory: rep.MinMemoryMB, Workload: rep.Workload,
			Sizes: map[string]int64{"kernel": rep.KernelBytes, "root": rep.InitramfsBytes, "total": rep.TotalBytes},
			Boot:  map[string]float64{}}
		if b := rep.Boot; b != nil {
			im.Boot["init"], im.Boot["ready"] = b.InitHost, b.ReadyHost
		}
		build, same := "", false
		if rep.Kernel != nil {
			build, same = breakdown.BuildDir(rep.Kernel.BuildDir, rep.Kernel.Key)
		}
		k, err := breakdown.KernelOf(filepath.Join(r.Dir, image.VmlinuxFile), build)
		switch {
		case err != nil:
			im.KernelNote = fmt.Sprintf("no kernel breakdown: %v", err)
		case build == "":
			im.KernelNote = "the kernel's build directory is no longer in the cache: functions only, no subsystems"
		case !same:
			im.KernelNote = fmt.Sprintf("source directories from the objects of %s, which a build of another config continued since this kernel's: functions its objects do not define are under %s", build, breakdown.Other)
		}
		im.Kernel = k
		if rep.Initramfs != nil {
			im.Root = breakdown.RootOf(rep.Initramfs.Files)
		}
		p.Images = append(p.Images, im)
	}
	return p
}

// accelName is the accelerator guests get on this host.
func accelName() string {
	if vm.KVMUsable() == nil {
		return "QEMU with KVM"
	}
	return "no KVM: QEMU TCG"
}

func writePageJSON(path string, p *page) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

func writePageHTML(path string, p *page) error {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return fmt.Errorf("writing the report page: %w", err)
	}
	return writeFileAtomic(path, buf.Bytes(), 0o644)
}

// bar is one bar of a chart.
type bar struct {
	Label string
	Value float64
	Text  string // shown after the bar
}

// barChart draws a horizontal bar chart as inline SVG.
func barChart(title string, bars []bar) template.HTML {
	const width, labelW, rowH, textW = 760, 230, 22, 140
	max := 0.0
	for _, b := range bars {
		max = math.Max(max, b.Value)
	}
	var s strings.Builder
	h := rowH*len(bars) + 30
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">`, width, h, template.HTMLEscapeString(title))
	fmt.Fprintf(&s, `<text x="0" y="16" class="t">%s</text>`, template.HTMLEscapeString(title))
	for i, b := range bars {
		y := 28 + i*rowH
		w := 0.0
		if max > 0 {
			w = b.Value / max * float64(width-labelW-textW)
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="l" text-anchor="end">%s</text>`, labelW-8, y+14, template.HTMLEscapeString(b.Label))
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="%d" class="b%d"/>`, labelW, y+2, w, rowH-6, i%2)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" class="v">%s</text>`, float64(labelW)+w+6, y+14, template.HTMLEscapeString(b.Text))
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"kb": kb,
	"sizeChart": func(ims []pageImage) template.HTML {
		var bs []bar
		for _, im := range ims {
			bs = append(bs, bar{im.Name + " kernel", float64(im.Sizes["kernel"]), kb(im.Sizes["kernel"])},
				bar{im.Name + " root", float64(im.Sizes["root"]), kb(im.Sizes["root"])})
		}
		return barChart("Image bytes as shipped (compressed kernel and root)", bs)
	},
	"bootChart": func(ims []pageImage) template.HTML {
		var bs []bar
		for _, im := range ims {
			if im.Boot["ready"] > 0 {
				bs = append(bs, bar{im.Name, im.Boot["ready"], fmt.Sprintf("%.2f s (/init %.2f s)", im.Boot["ready"], im.Boot["init"])})
			}
		}
		if len(bs) == 0 {
			return ""
		}
		return barChart("Boot to ready, host seconds (the build's smoke boot)", bs)
	},
	"memChart": func(ims []pageImage) template.HTML {
		var bs []bar
		for _, im := range ims {
			if im.Memory > 0 {
				bs = append(bs, bar{im.Name, float64(im.Memory), fmt.Sprintf("%d MiB", im.Memory)})
			}
		}
		if len(bs) == 0 {
			return ""
		}
		return barChart("Least memory passing the workload (bespoke min-memory)", bs)
	},
	"benchCharts": func(b *bench.Result) template.HTML {
		var wall, size, ready, insns []bar
		for _, k := range b.Kernels {
			wall = append(wall, bar{k.Label, k.Mean.Mean, fmt.Sprintf("%.3f ± %.3f s", k.Mean.Mean, k.Mean.Stddev)})
			if k.Bytes > 0 {
				text := kb(k.Bytes)
				if k.ModulesBytes > 0 {
					text += " + " + kb(k.ModulesBytes) + " of modules"
				}
				size = append(size, bar{k.Label, float64(k.Bytes + k.ModulesBytes), text})
			}
			if m := bench.Median(k.Ready); m > 0 {
				ready = append(ready, bar{k.Label, m, fmt.Sprintf("%.2f s (/init %.2f s)", m, bench.Median(k.Init))})
			}
			if k.Model != nil {
				insns = append(insns, bar{k.Label, k.Model.KernelInsns.Mean, fmt.Sprintf("%.0f ± %.0f (L1i misses %.0f)", k.Model.KernelInsns.Mean, k.Model.KernelInsns.Stddev, k.Model.L1iMisses.Mean)})
			}
		}
		out := barChart(fmt.Sprintf("bespoke bench: workload wall time per kernel, %d runs (%s; lower is faster)", b.Runs, b.Accel), wall)
		if len(size) == len(b.Kernels) {
			out += barChart("Kernel bytes (and the modules its package ships)", size)
		}
		if len(ready) == len(b.Kernels) {
			out += barChart("Boot to ready per kernel, host seconds (median of the runs)", ready)
		}
		if len(insns) == len(b.Kernels) {
			out += barChart("Kernel instructions per "+b.Per+" (cost model, QEMU TCG plugin)", insns)
		}
		return out
	},
	"subsystemChart": func(k *breakdown.Kernel) template.HTML {
		var bs []bar
		for i, s := range k.Subsystems {
			if i == 20 {
				break
			}
			bs = append(bs, bar{s.Name, float64(s.Bytes), fmt.Sprintf("%s (%.1f%%)", kb(s.Bytes), 100*float64(s.Bytes)/float64(k.Code))})
		}
		return barChart("Kernel code by source directory (20 largest)", bs)
	},
	"kindChart": func(r *breakdown.Root) template.HTML {
		var bs []bar
		for _, k := range r.Kinds {
			bs = append(bs, bar{k.Name, float64(k.Bytes), fmt.Sprintf("%s, %d files", kb(k.Bytes), k.Count)})
		}
		return barChart("Root files by kind (uncompressed)", bs)
	},
	"heatMap": heatMap,
	"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>bespoke report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:12px 0}svg .t{font-weight:600;font-size:14px}svg .l,svg .v{font-size:12px;fill:#333}
svg .b0{fill:#3a7bd5}svg .b1{fill:#6aa0e8}.note{color:#8a5a00}
</style></head><body>
<h1>bespoke report</h1>
<p>{{.Date}} · {{.Host}}</p>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<table><tr><th>app</th><th>kernel</th><th>root</th><th>total</th><th>options =y</th><th>files</th><th>boot to ready</th><th>min memory</th><th>workload</th><th>stop</th><th>verify</th></tr>
{{range .Images}}<tr>{{range .Row}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{sizeChart .Images}}
{{bootChart .Images}}
{{memChart .Images}}
{{range .Cross}}{{heatMap .}}{{end}}
{{range .Images}}
<h2>{{.Name}} <small>{{.Dir}}</small></h2>
{{with .Bench}}{{benchCharts .}}{{end}}
{{with .Kernel}}
<h3>Kernel: {{kb .Code}} of code in functions</h3>
{{if .Subsystems}}{{subsystemChart .}}<p>{{pct .Mapped}} of the code mapped to a source directory through the build's object files.</p>{{end}}
<table><tr><th>largest functions</th><th>bytes</th></tr>
{{range .Functions}}<tr><td>{{.Name}}</td><td class="n">{{.Bytes}}</td></tr>{{end}}</table>
{{end}}
{{with .KernelNote}}<p class="note">{{.}}</p>{{end}}
{{with .Root}}
<h3>Root: {{kb .Bytes}} of files</h3>
{{kindChart .}}
<table><tr><th>largest files</th><th>bytes</th></tr>
{{range .Files}}<tr><td>{{.Name}}</td><td class="n">{{.Bytes}}</td></tr>{{end}}</table>
{{end}}
{{if .DataTrees}}<h3>Data trees held whole</h3>
<table><tr><th>tree</th><th>files</th><th>bytes</th><th>why</th></tr>
{{range .DataTrees}}<tr><td>{{.Name}}</td><td class="n">{{.Files}}</td><td class="n">{{kb .Bytes}}</td><td>{{.Why}}</td></tr>{{end}}</table>{{end}}
{{range .NotInImage}}{{if .Missing}}<p class="note">{{.Name}}: {{len .Missing}} of its {{.Shipped}} files under /etc and /usr/share are not in the image ({{kb .MissingBytes}}).</p>{{end}}{{end}}
{{end}}
</body></html>
`

// writeFileAtomic writes data to path through a temporary file in the
// same directory: a reader sees the old file or the new one, never half.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
