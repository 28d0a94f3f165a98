package bench

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms record nanoseconds from 1 µs to one minute with three
// significant digits.
const (
	histMin = 1_000
	histMax = int64(time.Minute)
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, 3) }

// record adds v (ns), clamped into the trackable range. It does not allocate.
func record(h *hdrhistogram.Histogram, v int64) {
	v = min(max(v, histMin), histMax)
	_ = h.RecordValue(v) // in range by construction
}

// Latency is the summary of a latency histogram, in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	Min   float64 `json:"min_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// Summarize reads the percentiles of h (recorded in ns) in microseconds.
// An empty histogram gives a zero Latency.
func Summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e3,
		Min:   us(h.Min()),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}

// DistPoint is one point of a percentile distribution plot.
type DistPoint struct {
	Percentile float64 `json:"percentile"`
	Micros     float64 `json:"us"`
}

// Distribution samples h at percentiles 0..99.9999 on a log scale of
// 1/(1-p), the usual HDR percentile plot.
func Distribution(h *hdrhistogram.Histogram) []DistPoint {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	var out []DistPoint
	for _, nines := range []float64{0, 0.3, 0.5, 0.7, 1, 1.3, 1.5, 1.7, 2, 2.3, 2.5, 2.7, 3, 3.3, 3.5, 3.7, 4, 4.5, 5, 5.5, 6} {
		p := 100 * (1 - math.Pow(10, -nines))
		out = append(out, DistPoint{Percentile: p, Micros: float64(h.ValueAtQuantile(p)) / 1e3})
	}
	return out
}
