package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// ErrRoutes is returned when some topic did not become routable from a
// publisher's node within the time allowed.
var ErrRoutes = errors.New("bench: routes not ready")

// probeBit marks the publisher id of a route probe: a QoS 0 message that
// asks whether a topic is routable yet from its publisher's node. Probes are
// counted by the Runner's routeProber and never reach the sequence checks.
const probeBit = 1 << 31

// RouteWait is how long routes took to reach every (publisher, topic,
// subscriber) pair of a run: from the last SUBACK, probes go out from each
// publisher's node every --probe-every to the topics whose subscribers have
// not yet received one, until all have. A pair's time is the send time of
// the first probe that reached it, so it is exact to one probe period.
type RouteWait struct {
	Pairs        int       `json:"pairs"`   // (publisher, topic, subscriber) to reach
	Reached      int       `json:"reached"` // pairs a probe reached
	Seconds      float64   `json:"seconds"` // last SUBACK to the probe that reached the last pair
	PerPublisher []float64 `json:"per_publisher_s,omitempty"`
	Rounds       int       `json:"rounds"`       // probe rounds sent
	Probes       int64     `json:"probes"`       // probe messages sent
	Every        float64   `json:"every_s"`      // the probe period: the resolution of the times
	Misdelivered uint64    `json:"misdelivered"` // probes at a client they were not meant for
	TimeToRoute  Latency   `json:"time_to_route"`
}

// Err says which pairs were not reached and which probes went astray, or
// nil.
func (w *RouteWait) Err() error {
	if w.Reached == w.Pairs && w.Misdelivered == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of %d (publisher node, topic, subscriber) pairs reached by a probe after %d rounds; "+
		"%d probes delivered to a client they were not meant for", ErrRoutes, w.Reached, w.Pairs, w.Rounds, w.Misdelivered)
}

// probeTarget is one topic to probe from one prober, and the clients
// (by index) it must reach.
type probeTarget struct {
	prober int
	topic  []byte
	subs   []int
}

type probeKey struct {
	prober uint32
	topic  uint64
}

type slotKey struct {
	target int32
	client int32
}

// routeProber accounts for the probes of one route wait. Its maps are
// built before the probes go out and only read afterwards; the counters are
// atomics. Safe for concurrent use.
type routeProber struct {
	targets []probeTarget
	keys    map[probeKey]int32 // (prober, topic hash) -> target
	slots   map[slotKey]int32  // (target, client) -> slot
	first   []atomic.Int64     // per slot: send time of the first probe to arrive, 0 = none yet
	reached []atomic.Int32     // per target: slots reached
	all     atomic.Int64       // slots reached
	astray  atomic.Uint64      // probes at a client not among their target's
}

func newRouteProber(targets []probeTarget) *routeProber {
	pr := &routeProber{targets: targets, keys: make(map[probeKey]int32, len(targets)),
		slots: make(map[slotKey]int32), reached: make([]atomic.Int32, len(targets))}
	n := int32(0)
	for t, tg := range targets {
		pr.keys[probeKey{uint32(tg.prober), fnv64(tg.topic)}] = int32(t)
		for _, c := range tg.subs {
			pr.slots[slotKey{int32(t), int32(c)}] = n
			n++
		}
	}
	pr.first = make([]atomic.Int64, n)
	return pr
}

// observe accounts for a probe with header h on topic at client idx. Loop
// goroutine of that client; does not allocate.
func (pr *routeProber) observe(client int, h Header, topic []byte, _ int64) {
	t, ok := pr.keys[probeKey{h.Publisher &^ probeBit, fnv64(topic)}]
	if !ok {
		pr.astray.Add(1)
		return
	}
	s, ok := pr.slots[slotKey{t, int32(client)}]
	if !ok {
		pr.astray.Add(1)
		return
	}
	if pr.first[s].CompareAndSwap(0, max(h.SendNs, 1)) {
		pr.reached[t].Add(1)
		pr.all.Add(1)
	}
}

// done reports whether every pair has been reached.
func (pr *routeProber) done() bool { return pr.all.Load() == int64(len(pr.first)) }

// pending lists, per prober, the targets with a pair not reached yet.
func (pr *routeProber) pending(probers int) [][]int32 {
	out := make([][]int32, probers)
	for t := range pr.targets {
		tg := &pr.targets[t]
		if int(pr.reached[t].Load()) < len(tg.subs) {
			out[tg.prober] = append(out[tg.prober], int32(t))
		}
	}
	return out
}

// stats summarises the wait: times from t0 (ns, the last SUBACK).
func (pr *routeProber) stats(t0 int64, probers int) RouteWait {
	w := RouteWait{Pairs: len(pr.first), Misdelivered: pr.astray.Load(), PerPublisher: make([]float64, probers)}
	h := newHist()
	for t, tg := range pr.targets {
		for _, c := range tg.subs {
			at := pr.first[pr.slots[slotKey{int32(t), int32(c)}]].Load()
			if at == 0 {
				continue
			}
			w.Reached++
			d := max(at-t0, 0)
			record(h, d)
			secs := float64(d) / 1e9
			w.Seconds = max(w.Seconds, secs)
			w.PerPublisher[tg.prober] = max(w.PerPublisher[tg.prober], secs)
		}
	}
	w.TimeToRoute = Summarize(h)
	return w
}

// lastReady is the latest time (ns) at which one of cls became ready: its
// last SUBACK, for subscribers. The clients must have been opened.
func lastReady(cls []*client) int64 {
	var t int64
	for _, c := range cls {
		if !c.failed {
			t = max(t, c.readyAt)
		}
	}
	return t
}

// waitRoutes probes the targets of pr from probers (index = probeTarget's
// prober) every --probe-every until every pair is reached or limit passes.
// recv is the Runner of the clients the probes should reach; it accounts
// for them from now on. t0 is the last SUBACK. Scenario goroutine only.
func (s *scenario) waitRoutes(ctx context.Context, recv *Runner, pr *routeProber, probers []*client, t0 int64, limit time.Duration) RouteWait {
	recv.prober.Store(pr)
	every := s.cfg.ProbeEvery
	payloads := make([][]byte, len(probers)) // one per prober, used on its loop only
	for i := range payloads {
		payloads[i] = NewPayload(s.cfg.Size)
	}
	var sent atomic.Int64
	rounds := 0
	deadline := time.Now().Add(limit)
	tk := time.NewTicker(every) // the probe period, not a wait for a state
	defer tk.Stop()
	for !pr.done() && time.Now().Before(deadline) && ctx.Err() == nil {
		rounds++
		for p, ts := range pr.pending(len(probers)) {
			c := probers[p]
			if len(ts) == 0 || c.failed || c.loop == nil {
				continue
			}
			seq := uint64(rounds)
			_ = c.loop.run(func() { sent.Add(s.sendProbes(c, uint32(p), payloads[p], pr, ts, seq)) })
		}
		select {
		case <-tk.C:
		case <-ctx.Done():
		}
	}
	w := pr.stats(t0, len(probers))
	w.Rounds, w.Probes, w.Every = rounds, sent.Load(), every.Seconds()
	return w
}

// sendProbes writes one QoS 0 probe on each of targets ts from client c,
// as prober p. Loop goroutine of c.
func (s *scenario) sendProbes(c *client, p uint32, payload []byte, pr *routeProber, ts []int32, seq uint64) int64 {
	if c.state != stateReady {
		return 0
	}
	l := c.loop
	out := l.wbuf[:0]
	pp := codec.PublishPacket{Payload: payload}
	var n int64
	for _, t := range ts {
		Stamp(payload, s.runID, probeBit|p, seq, s.clk.now())
		pp.Topic = pr.targets[t].topic
		out = codec.AppendPublish(out, &pp, s.cfg.Version)
		n++
		if len(out) >= flushAt {
			c.flush(out)
			out = out[:0]
		}
	}
	c.flush(out)
	l.wbuf = out[:0]
	return n
}
