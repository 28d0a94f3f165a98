package bench

import (
	"context"
	"sync"
)

// gate opens when a count of events reaches a target that may grow while
// clients are added. Safe for concurrent use.
type gate struct {
	mu     sync.Mutex
	n      int64
	target int64
	ch     chan struct{} // closed while n >= target
}

func newGate() *gate {
	g := &gate{ch: make(chan struct{})}
	close(g.ch)
	return g
}

// grow raises the target by k.
func (g *gate) grow(k int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.n >= g.target
	g.target += int64(k)
	if was && g.n < g.target {
		g.ch = make(chan struct{})
	}
}

// add counts one event.
func (g *gate) add() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	if g.n == g.target {
		close(g.ch)
	}
}

// wait blocks until the count reaches the target or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) count() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
