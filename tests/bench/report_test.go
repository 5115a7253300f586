//go:build integration

package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func numCPU() int { return runtime.NumCPU() }

// write saves the report as bench.json, bench.csv and latency.png in dir.
func write(r Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "bench.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"language", "way", "concurrency", "pause_ms", "sustained_s", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "per_second"})
	for _, c := range r.Cells {
		_ = w.Write([]string{c.Language, c.Way, strconv.Itoa(c.Concurrency), strconv.Itoa(c.PauseMS), ff(c.SustainedS), strconv.Itoa(c.Requests), strconv.Itoa(c.Errors),
			ff(c.P50MS), ff(c.P95MS), ff(c.P99MS), ff(c.PerSecond)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return chart(r, filepath.Join(dir, "latency.png"))
}

func ff(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// chart draws median latency against concurrency, one panel per
// language, one line per way.
func chart(r Report, path string) error {
	var langs, ways []string
	seen := map[string]bool{}
	for _, c := range r.Cells {
		if !seen["l"+c.Language] {
			seen["l"+c.Language] = true
			langs = append(langs, c.Language)
		}
		if !seen["w"+c.Way] {
			seen["w"+c.Way] = true
			ways = append(ways, c.Way)
		}
	}
	if len(langs) == 0 {
		return fmt.Errorf("nothing to draw")
	}
	plots := make([][]*plot.Plot, 1)
	for _, lang := range langs {
		p := plot.New()
		p.Title.Text = lang + ": median latency"
		p.X.Label.Text = "concurrent requests"
		p.Y.Label.Text = "ms (log)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 1, Label: "1"}, {Value: 2, Label: "2"}, {Value: 4, Label: "4"}, {Value: 8, Label: "8"}})
		p.Legend.Top = true
		p.Legend.Left = true
		for i, way := range ways {
			var pts plotter.XYs
			for _, c := range r.Cells {
				if c.Language == lang && c.Way == way && c.P50MS > 0 && c.PauseMS == 0 && c.SustainedS == 0 {
					pts = append(pts, plotter.XY{X: float64(c.Concurrency), Y: c.P50MS})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(i)
			s.Color = plotutil.Color(i)
			s.Shape = plotutil.Shape(i)
			p.Add(l, s)
			p.Legend.Add(way, l, s)
		}
		plots[0] = append(plots[0], p)
	}
	const panel = 4 * vg.Inch
	img := vgimg.New(panel*vg.Length(len(langs)), panel)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(langs), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for i, p := range plots[0] {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// table renders the report for a terminal (and docs/performance.md).
func table(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d requests per cell, %d CPUs, %s\n\n", r.RequestsPerCell, r.CPUs, r.Date)
	fmt.Fprintln(&b, "| language | way | concurrency | p50 ms | p95 ms | p99 ms | per second | errors |")
	fmt.Fprintln(&b, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.Cells {
		conc, rate := strconv.Itoa(c.Concurrency), fmt.Sprintf("%.1f", c.PerSecond)
		if c.PauseMS > 0 {
			conc, rate = fmt.Sprintf("1, %d ms apart", c.PauseMS), "—"
		}
		if c.SustainedS > 0 {
			conc = fmt.Sprintf("%d, for %.0f s", c.Concurrency, c.SustainedS)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.0f | %s | %d |\n", c.Language, c.Way, conc, c.P50MS, c.P95MS, c.P99MS, rate, c.Errors)
	}
	fmt.Fprintf(&b, "\nruntimed RSS: %.1f MiB idle, %.1f MiB at most under load\n", mib(r.DaemonRSSIdleBytes), mib(r.DaemonRSSPeakBytes))
	for image, bytes := range r.IdleSandboxBytes {
		fmt.Fprintf(&b, "idle pooled sandbox of %s: %.1f MiB (its cgroup)\n", image, mib(bytes))
	}
	for _, c := range r.Cells {
		if c.SustainedS > 0 {
			fmt.Fprintf(&b, "%s, warm pool, %d at a time for %.0f s: %.1f executions/s, %d errors\n", c.Language, c.Concurrency, c.SustainedS, c.PerSecond, c.Errors)
		}
	}
	// Side by side, at concurrency 1: the ratios the design is about.
	for _, lang := range []string{"python", "javascript", "c", "java"} {
		get := func(way string) float64 {
			for _, c := range r.Cells {
				if c.Language == lang && c.Way == way && c.Concurrency == 1 && c.PauseMS == 0 && c.SustainedS == 0 {
					return c.P50MS
				}
			}
			return 0
		}
		paced := func(way string) float64 {
			for _, c := range r.Cells {
				if c.Language == lang && c.Way == way && c.PauseMS > 0 {
					return c.P50MS
				}
			}
			return 0
		}
		warm, old, warmPaced := get("runtimed warm pool"), get("ctr run --rm"), paced("runtimed warm pool")
		if warm > 0 && old > 0 {
			fmt.Fprintf(&b, "%s, one at a time back to back: warm pool %.0f ms vs ctr run --rm %.0f ms: %.1f× faster\n", lang, warm, old, old/warm)
		}
		if warmPaced > 0 && old > 0 {
			fmt.Fprintf(&b, "%s, one at a time with the pool refilled: warm pool %.0f ms vs ctr run --rm %.0f ms: %.1f× faster\n", lang, warmPaced, old, old/warmPaced)
		}
	}
	return b.String()
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }
