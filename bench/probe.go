package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrProbe is returned when a probe message of conn --probe was lost,
// duplicated or delivered to a connection it was not published for.
var ErrProbe = errors.New("bench: probe failed")

// probeQuiet is how long the probe keeps listening after the last expected
// delivery, for duplicates and misdeliveries that would come later. It is a
// window of observation (nothing more is expected), capped by --drain.
const probeQuiet = 100 * time.Millisecond

// ProbeStats are the figures of conn --probe: one message to each of N
// random idle connections, from one extra publisher connection.
type ProbeStats struct {
	Connections  int     `json:"connections"`  // picked at random, one message each
	Sent         int64   `json:"sent"`         // PUBLISH written by the probe publisher
	Received     int     `json:"received"`     // picked connections that received their message
	Lost         int     `json:"lost"`         // picked connections that did not
	Duplicated   uint64  `json:"duplicated"`   // copies beyond the first at a picked connection
	Misdelivered uint64  `json:"misdelivered"` // messages at a connection they were not published for
	Seconds      float64 `json:"seconds"`      // from the first publish to the last delivery
	Latency      Latency `json:"latency"`      // publish to delivery
}

// Err says what went wrong, or nil when every picked connection received
// its message exactly once and no other connection received anything.
func (p *ProbeStats) Err() error {
	if p.Lost == 0 && p.Duplicated == 0 && p.Misdelivered == 0 && int64(p.Connections) == p.Sent {
		return nil
	}
	return fmt.Errorf("%w: %d probe messages sent for %d picked connections: %d lost, %d duplicated, "+
		"%d delivered to a connection they were not published for",
		ErrProbe, p.Sent, p.Connections, p.Lost, p.Duplicated, p.Misdelivered)
}

// probe picks cfg.Probe of the ready connections subs at random, publishes
// one message to each one's topic from an extra connection on r, waits
// for the deliveries, stops r and checks them. Scenario goroutine only.
func (s *scenario) probe(ctx context.Context, r *Runner, subs []*client) error {
	cfg := s.cfg
	picked := rand.Perm(len(subs))[:cfg.Probe]
	topics := make([]string, len(picked))
	for k, i := range picked {
		topics[k] = s.topic(cfg.Topic, subs[i].idx, subs[i].idx)
	}
	ps := &ProbeStats{Connections: len(picked)}
	s.sum.Probe = ps
	s.sum.Pub.Expected = int64(len(picked))
	spec := clientSpec{idx: cfg.Clients, clean: true, pub: true, topics: topics, limit: uint64(len(topics))}
	pubs, err := r.open(ctx, []clientSpec{spec})
	if err != nil {
		ps.Lost = len(picked)
		return fmt.Errorf("probe publisher: %w", err)
	}
	t0 := time.Now()
	s.sum.Pub.PublishSecs = r.publish(ctx, true, cfg.ConnTimeout).Seconds()
	s.sum.Pub.DrainSecs = r.drain(ctx, func(t totals) bool { return t.recv >= int64(len(picked)) }).Seconds()
	ps.Seconds = time.Since(t0).Seconds()
	t := time.NewTimer(min(probeQuiet, cfg.Drain)) // listening for strays, not waiting for a state
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	r.Stop(ctx)
	own := make(map[int]StreamKey, len(picked))
	for k, i := range picked {
		own[i] = StreamKey{Run: s.runID, Publisher: pubs[0].pubIdx, Topic: fnv64([]byte(topics[k]))}
	}
	ps.Sent = int64(pubs[0].sent)
	s.sum.Seq.Add(countProbes(ps, subs, own))
	return ps.Err()
}

// countProbes fills ps from the connections' trackers: own[i] is the stream
// of which connection subs[i] was sent one message; connections not in own
// were sent nothing. It returns the sequence figures of every stream seen,
// plus one lost message for each picked connection that saw nothing of
// its own. The clients must be quiescent.
func countProbes(ps *ProbeStats, subs []*client, own map[int]StreamKey) SeqCounts {
	var seq SeqCounts
	for i, c := range subs {
		k, picked := own[i]
		var mine, all uint64
		if c.tracker != nil {
			// A one-message stream that was seen at all has no gap: no
			// sent function needed.
			counts := c.tracker.Counts(nil)
			seq.Add(counts)
			all = counts.Received
			if picked {
				mine = c.tracker.Received(k)
			}
		}
		ps.Misdelivered += all - mine
		switch {
		case !picked:
		case mine == 0:
			ps.Lost++
			seq.Lost++
		default:
			ps.Received++
			ps.Duplicated += mine - 1
		}
	}
	return seq
}
