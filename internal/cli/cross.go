package cli

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/bench"
)

// crossMatrix is one cost-model figure of a cross-evaluation: each image's
// workload (a row) on the kernel of each image of the report (a column),
// as bespoke bench --kernel-of measured it (scripts/cross.sh).
type crossMatrix struct {
	Figure string `json:"figure"`
	// Images name the rows (each image's workload) and the columns (each
	// image's kernel), in the report's order. On the diagonal is the
	// image's own kernel (bench's "pgo").
	Images []string `json:"images"`
	// Cells[i][j] is the change of the figure, in percent, on the kernel
	// of Images[j] against the -O2 kernel of row i's bench run: a
	// profile-guided image's twin ("o2"), else the image's own kernel
	// ("image"); nil where that run did not measure it.
	Cells [][]*float64 `json:"cells"`
	// Per and Runs are each row's bench: what the figures are per, and
	// the boots per kernel.
	Per  []string `json:"per"`
	Runs []int    `json:"runs"`
}

// crossFigures are the cost model's figures a cross-evaluation compares.
var crossFigures = []struct {
	name string
	get  func(*bench.Model) float64
}{
	{"kernel instructions", func(m *bench.Model) float64 { return m.KernelInsns.Mean }},
	{"kernel blocks (taken branches)", func(m *bench.Model) float64 { return m.KernelTBs.Mean }},
	{"kernel L1i misses", func(m *bench.Model) float64 { return m.L1iMisses.Mean }},
}

// crossMatrices returns the cross-evaluation of the report's images, one
// matrix per cost-model figure, or nil when no image's bench measured it
// on the kernel of another image of the report.
func crossMatrices(rows []*reportRow) []crossMatrix {
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Rep.Name
	}
	var out []crossMatrix
	crossed := false
	for _, f := range crossFigures {
		m := crossMatrix{Figure: f.name, Images: names}
		for i, r := range rows {
			cells := make([]*float64, len(rows))
			per, runs := "", 0
			if r.Bench != nil {
				per, runs = r.Bench.Per, r.Bench.Runs
				// A profile-guided image's -O2 twin and its own
				// kernel; another image's one kernel, both.
				base, own := series(r.Bench, "o2"), "pgo"
				if base == nil {
					base, own = series(r.Bench, "image"), "image"
				}
				for j := range rows {
					label := names[j]
					if j == i {
						label = own
					}
					s := series(r.Bench, label)
					if base == nil || s == nil || f.get(base.Model) <= 0 {
						continue
					}
					v := (f.get(s.Model)/f.get(base.Model) - 1) * 100
					cells[j] = &v
					crossed = crossed || j != i
				}
			}
			m.Cells = append(m.Cells, cells)
			m.Per = append(m.Per, per)
			m.Runs = append(m.Runs, runs)
		}
		out = append(out, m)
	}
	if !crossed {
		return nil
	}
	return out
}

// series returns the kernel of a bench result labelled label that has
// cost-model figures, or nil.
func series(r *bench.Result, label string) *bench.Series {
	for i := range r.Kernels {
		if s := &r.Kernels[i]; s.Label == label && s.Model != nil {
			return s
		}
	}
	return nil
}

// crossReport prints the matrices as Markdown tables.
func crossReport(w io.Writer, ms []crossMatrix) {
	for _, m := range ms {
		fmt.Fprintf(w, "\n%s per %s, each workload (row) on each image's kernel (column; the diagonal is the image's own), against the row's -O2 kernel in the same bench run (a profile-guided image's twin; the image's own for another; bespoke bench --kernel-of; boots per kernel: %s)\n\n",
			m.Figure, strings.Join(uniq(m.Per), " or "), strings.Trim(fmt.Sprint(uniq(m.Runs)), "[]"))
		fmt.Fprintf(w, "| workload \\ kernel | %s |\n|%s\n", strings.Join(m.Images, " | "), strings.Repeat(" --- |", len(m.Images)+1))
		for i, row := range m.Cells {
			fmt.Fprintf(w, "| %s |", m.Images[i])
			for j, c := range row {
				switch {
				case c == nil:
					fmt.Fprint(w, " - |")
				case i == j:
					fmt.Fprintf(w, " **%+.1f%%** |", *c)
				default:
					fmt.Fprintf(w, " %+.1f%% |", *c)
				}
			}
			fmt.Fprintln(w)
		}
	}
}

// uniq returns the distinct values of v that are not zero, in order.
func uniq[T comparable](v []T) []T {
	var zero T
	var out []T
	for _, x := range v {
		if x != zero && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// heatMap draws a matrix as an inline SVG grid: green cells where the
// kernel does better than -O2, red where worse, deeper to ±40%.
func heatMap(m crossMatrix) template.HTML {
	const labelW, cellW, cellH, top = 130, 92, 26, 68
	width := labelW + cellW*len(m.Images)
	height := top + cellH*len(m.Images) + 8
	var s strings.Builder
	title := fmt.Sprintf("%s per %s against -O2", m.Figure, strings.Join(uniq(m.Per), " or "))
	sub := "each workload (row) on each image's kernel (column); the diagonal: the image's own"
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">`, max(width, 760), height, template.HTMLEscapeString(title+": "+sub))
	fmt.Fprintf(&s, `<text x="0" y="16" class="t">%s</text><text x="0" y="34" class="l">%s</text>`, template.HTMLEscapeString(title), template.HTMLEscapeString(sub))
	for j, p := range m.Images {
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="l" text-anchor="middle">%s</text>`, labelW+j*cellW+cellW/2, top-8, template.HTMLEscapeString(p))
	}
	for i, row := range m.Cells {
		y := top + i*cellH
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="l" text-anchor="end">%s</text>`, labelW-8, y+cellH/2+4, template.HTMLEscapeString(m.Images[i]))
		for j, c := range row {
			x := labelW + j*cellW
			fill, text := "#eeeeee", "-"
			if c != nil {
				fill, text = heatColor(*c), fmt.Sprintf("%+.1f%%", *c)
			}
			stroke := ""
			if i == j {
				stroke = ` stroke="#222" stroke-width="2"`
			}
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"%s/>`, x+1, y+1, cellW-2, cellH-2, fill, stroke)
			fmt.Fprintf(&s, `<text x="%d" y="%d" class="v" text-anchor="middle">%s</text>`, x+cellW/2, y+cellH/2+4, text)
		}
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// heatColor is the fill of a cell of change v percent: white at 0, green
// below (better), red above, full at ±40%.
func heatColor(v float64) string {
	a := math.Min(math.Abs(v)/40, 1)
	fade := func(c float64) int { return int(math.Round(255 - a*(255-c))) }
	if v < 0 {
		return fmt.Sprintf("#%02x%02x%02x", fade(40), fade(160), fade(80))
	}
	return fmt.Sprintf("#%02x%02x%02x", fade(210), fade(50), fade(40))
}
