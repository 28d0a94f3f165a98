package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// WriteReportFile writes a self-contained HTML page (inline SVG, no scripts
// or network) with the summary, throughput and latency over time, and the
// latency distribution.
func WriteReportFile(path string, s *Summary) error {
	if err := os.WriteFile(path, Report(s), 0o644); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	return nil
}

// Report renders the HTML report of s.
func Report(s *Summary) []byte {
	var b bytes.Buffer
	var text bytes.Buffer
	s.WriteText(&text)
	fmt.Fprintf(&b, `<!doctype html><html><head><meta charset="utf-8"><title>flockmq-bench %s</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1000px}pre{background:#f4f4f4;padding:1em;overflow-x:auto}
svg{background:#fff;border:1px solid #ddd;margin:1em 0}text{font-size:11px;font-family:sans-serif}</style></head><body>
<h1>flockmq-bench: %s</h1><pre>%s</pre>
`, html.EscapeString(s.Scenario), html.EscapeString(s.Scenario), html.EscapeString(text.String()))
	if len(s.Series) > 1 {
		var t, sent, recv, p50, p99 []float64
		for _, p := range s.Series {
			t = append(t, p.T)
			sent, recv = append(sent, p.SentRate), append(recv, p.RecvRate)
			p50, p99 = append(p50, p.P50), append(p99, p.P99)
		}
		b.WriteString("<h2>Throughput</h2>")
		b.WriteString(lineChart("messages/s over time (s)", t, false, []series{{"sent", "#1f77b4", sent}, {"delivered", "#d62728", recv}}, nil))
		b.WriteString("<h2>Latency over time</h2>")
		b.WriteString(lineChart("interval latency µs over time (s)", t, false, []series{{"p50", "#2ca02c", p50}, {"p99", "#ff7f0e", p99}}, nil))
	}
	if len(s.Distribution) > 1 {
		var x, y []float64
		var ticks []tick
		for _, d := range s.Distribution {
			x = append(x, -math.Log10(1-d.Percentile/100+1e-12))
			y = append(y, d.Micros)
		}
		for _, n := range []float64{0, 1, 2, 3, 4, 5, 6} {
			ticks = append(ticks, tick{n, fmt.Sprintf("%g%%", 100*(1-math.Pow(10, -n)))})
		}
		b.WriteString("<h2>Latency distribution</h2>")
		b.WriteString(lineChart("latency µs by percentile", x, true, []series{{"latency", "#9467bd", y}}, ticks))
	}
	b.WriteString("</body></html>\n")
	return b.Bytes()
}

type series struct {
	name, color string
	y           []float64
}

type tick struct {
	x     float64
	label string
}

// lineChart draws series over x as an SVG line chart. xticks, when given,
// replaces the numeric x axis labels.
func lineChart(title string, x []float64, markers bool, ss []series, xticks []tick) string {
	const w, h, ml, mr, mt, mb = 900.0, 320.0, 70.0, 20.0, 30.0, 40.0
	minX, maxX := x[0], x[0]
	for _, v := range x {
		minX, maxX = math.Min(minX, v), math.Max(maxX, v)
	}
	for _, t := range xticks {
		minX, maxX = math.Min(minX, t.x), math.Max(maxX, t.x)
	}
	maxY := 0.0
	for _, s := range ss {
		for _, v := range s.y {
			maxY = math.Max(maxY, v)
		}
	}
	if maxX == minX {
		maxX = minX + 1
	}
	if maxY == 0 {
		maxY = 1
	}
	maxY *= 1.05
	px := func(v float64) float64 { return ml + (v-minX)/(maxX-minX)*(w-ml-mr) }
	py := func(v float64) float64 { return h - mb - v/maxY*(h-mt-mb) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="18">%s</text>`, ml, html.EscapeString(title))
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#444"/>`, ml, h-mb, w-mr, h-mb)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#444"/>`, ml, mt, ml, h-mb)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/><text x="4" y="%.1f">%s</text>`,
			ml, py(v), w-mr, py(v), py(v)+4, html.EscapeString(num(v)))
	}
	if xticks == nil {
		for i := 0; i <= 5; i++ {
			v := minX + (maxX-minX)*float64(i)/5
			xticks = append(xticks, tick{v, num(v)})
		}
	}
	for _, t := range xticks {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, px(t.x), h-mb+16, html.EscapeString(t.label))
	}
	for i, s := range ss {
		var pts strings.Builder
		for j, v := range s.y {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(x[j]), py(v))
			if markers {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, px(x[j]), py(v), s.color)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`, s.color, pts.String())
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`, w-mr-120, mt+14*float64(i+1), s.color, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
