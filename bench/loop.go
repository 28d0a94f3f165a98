package bench

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/panjf2000/gnet/v2"

	"github.com/flockmq/flockmq/codec"
)

// loopStats are one loop's counters: written by that loop only, read by the
// reporter. Safe for concurrent use.
type loopStats struct {
	sent     atomic.Int64 // PUBLISH written
	acked    atomic.Int64 // QoS 1/2 publishes completed (PUBACK, PUBCOMP)
	recv     atomic.Int64 // PUBLISH received with a valid header
	foreign  atomic.Int64 // PUBLISH received without a valid header
	stale    atomic.Int64 // PUBLISH from another run (an earlier run's leftovers)
	inflight atomic.Int64 // QoS 1/2 publishes awaiting completion
	open     atomic.Int64 // connections with a successful CONNACK, not closed
	protoErr atomic.Int64 // undecodable or unexpected packets
	_        [64]byte
}

// loopState is the per-event-loop part of a run: the connections the loop
// owns, its scratch buffers, and its histograms.
type loopState struct {
	r  *Runner
	el executor // a gnet event loop, or a stdLoop (--tls)

	// Loop goroutine only.
	clients    []*client
	pubs       []*client
	pkt        codec.Packet
	pp         codec.PublishPacket // reused by pump
	wbuf       []byte
	publishing bool
	lastSweep  int64
	tickJob    gnet.Runnable

	scheduled atomic.Bool // a tick job is queued on the loop
	st        loopStats

	mu sync.Mutex
	// Interval histograms, in ns. Lock must be held.
	lat, ack, connack *hdrhistogram.Histogram
}

func newLoopState(r *Runner, el executor) *loopState {
	l := &loopState{r: r, el: el, wbuf: make([]byte, 0, 64<<10),
		lat: newHist(), ack: newHist(), connack: newHist()}
	l.tickJob = gnet.RunnableFunc(l.tick)
	return l
}

// run executes fn on the loop. Safe for concurrent use.
func (l *loopState) run(fn func()) error {
	return l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// schedule queues one tick unless one is already queued. Safe for concurrent
// use; coalesces ticks when the loop falls behind.
func (l *loopState) schedule() {
	if l.scheduled.CompareAndSwap(false, true) {
		if l.el.Execute(context.Background(), l.tickJob) != nil {
			l.scheduled.Store(false)
		}
	}
}

// tick runs the publish scheduler and the keepalive sweep. Loop goroutine only.
func (l *loopState) tick(context.Context) error {
	l.scheduled.Store(false)
	now := l.r.clk.now()
	if l.publishing {
		for _, c := range l.pubs {
			l.wbuf = c.pump(l.wbuf[:0], now)
			c.flush(l.wbuf)
		}
	}
	if now-l.lastSweep >= 1e9 {
		l.lastSweep = now
		half := int64(l.r.cfg.KeepAlive) / 2
		for _, c := range l.clients {
			if half > 0 && c.state >= stateReady && c.state < stateClosed && now-c.lastOut >= half {
				c.flush(append(l.wbuf[:0], byte(codec.Pingreq)<<4, 0))
			}
		}
	}
	return nil
}

// handler is the gnet client event handler of a Runner.
type handler struct {
	gnet.BuiltinEventEngine
	r *Runner
}

// OnOpen binds the client to its loop and writes CONNECT.
func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	cl, ok := c.Context().(*client)
	if !ok {
		return nil, gnet.Close
	}
	return cl.opened(h.r.loopFor(c.EventLoop()), c, h.r.clk.now()), gnet.None
}

// OnTraffic decodes every complete packet in place and answers with one write.
func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	cl, ok := c.Context().(*client)
	if !ok {
		return gnet.Close
	}
	buf, _ := c.Peek(-1)
	now := h.r.clk.now()
	off, out, keep := cl.decode(buf, cl.loop.wbuf[:0], now)
	_, _ = c.Discard(off)
	cl.answer(out, now, keep)
	if !keep {
		return gnet.Close
	}
	return gnet.None
}

// OnClose accounts for the connection's end.
func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	if cl, ok := c.Context().(*client); ok && cl.loop != nil {
		cl.closed(err)
	}
	return gnet.None
}

// maxPacket bounds packets from the broker: the largest payload plus slack.
const maxPacket = 16<<20 + 64<<10
