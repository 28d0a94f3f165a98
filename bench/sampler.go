package bench

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Sample is one progress interval, kept for the HTML report.
type Sample struct {
	T        float64 `json:"t"` // seconds since the scenario started
	Conns    int64   `json:"conns"`
	SentRate float64 `json:"sent_per_s"`
	RecvRate float64 `json:"recv_per_s"`
	P50      float64 `json:"p50_us"` // of this interval
	P99      float64 `json:"p99_us"`
}

// sampler folds the loops' interval histograms into cumulative ones, prints
// the progress line and keeps the time series. It spans every Runner of a
// scenario. Safe for concurrent use.
type sampler struct {
	mu    sync.Mutex
	start time.Time
	out   io.Writer // nil: no progress lines

	lat, ack, connack *hdrhistogram.Histogram // cumulative
	iv                *hdrhistogram.Histogram // scratch: this interval's latency

	runner             *Runner // whose counters last* refer to
	lastT              time.Time
	lastSent, lastRecv int64
	series             []Sample
}

func newSampler(out io.Writer) *sampler {
	now := time.Now()
	return &sampler{start: now, lastT: now, out: out,
		lat: newHist(), ack: newHist(), connack: newHist(), iv: newHist()}
}

// sample collects r's intervals. final skips the progress line (the summary
// follows) but still folds the histograms.
func (s *sampler) sample(r *Runner, final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.iv.Reset()
	for _, l := range r.allLoops() {
		l.mu.Lock()
		s.lat.Merge(l.lat)
		s.iv.Merge(l.lat)
		s.ack.Merge(l.ack)
		s.connack.Merge(l.connack)
		l.lat.Reset()
		l.ack.Reset()
		l.connack.Reset()
		l.mu.Unlock()
	}
	if r != s.runner {
		s.runner, s.lastSent, s.lastRecv = r, 0, 0
	}
	t := r.totals()
	now := time.Now()
	dt := now.Sub(s.lastT).Seconds()
	if final || dt <= 0 {
		return
	}
	smp := Sample{
		T:        now.Sub(s.start).Seconds(),
		Conns:    t.open,
		SentRate: float64(t.sent-s.lastSent) / dt,
		RecvRate: float64(t.recv-s.lastRecv) / dt,
		P50:      float64(s.iv.ValueAtQuantile(50)) / 1e3,
		P99:      float64(s.iv.ValueAtQuantile(99)) / 1e3,
	}
	s.series = append(s.series, smp)
	s.lastT, s.lastSent, s.lastRecv = now, t.sent, t.recv
	if s.out != nil {
		fmt.Fprintf(s.out, "[%6.1fs] conns %d  pub %s/s  recv %s/s  inflight %d  p99 %s (so far %s)  failed %d\n",
			smp.T, t.open, si(smp.SentRate), si(smp.RecvRate), t.inflight,
			micros(smp.P99), micros(float64(s.lat.ValueAtQuantile(99))/1e3), r.connFailed.Load())
	}
}

// snapshot returns the series and the cumulative histograms. Call after the
// last Runner has stopped.
func (s *sampler) snapshot() ([]Sample, *hdrhistogram.Histogram, *hdrhistogram.Histogram, *hdrhistogram.Histogram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.series...), s.lat, s.ack, s.connack
}

// resetConnack clears the cumulative CONNACK histogram (storm: phase two
// only).
func (s *sampler) resetConnack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connack.Reset()
}

// si formats a rate with a k/M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// micros formats microseconds as µs, ms or s.
func micros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}
