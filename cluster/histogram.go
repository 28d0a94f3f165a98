package cluster

import "sync/atomic"

// Histogram counts observations into fixed buckets, for the admin endpoint's
// metrics. Observe takes no lock and allocates nothing; the buckets are set
// once by newHistogram. Safe for concurrent use.
type Histogram struct {
	bounds []uint64        // upper bounds, inclusive, ascending
	counts []atomic.Uint64 // counts[i]: observations <= bounds[i] and > bounds[i-1]; the last is +Inf
	sum    atomic.Uint64
	n      atomic.Uint64
}

func newHistogram(bounds ...uint64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts v.
func (h *Histogram) Observe(v uint64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
	h.n.Add(1)
}

// Snapshot returns the upper bounds, the cumulative count at each (as
// Prometheus exposes a histogram), the count of all observations and their
// sum. Concurrent observations may be counted in some of the figures and
// not yet in others.
func (h *Histogram) Snapshot() (bounds []uint64, cumulative []uint64, count, sum uint64) {
	cumulative = make([]uint64, len(h.bounds))
	var c uint64
	for i := range h.bounds {
		c += h.counts[i].Load()
		cumulative[i] = c
	}
	return h.bounds, cumulative, c + h.counts[len(h.bounds)].Load(), h.sum.Load()
}
