package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RouteStats are the routes scenario's figures; the convergence itself is
// the summary's RouteWait.
type RouteStats struct {
	Connections   int      `json:"connections"`
	Subscriptions int      `json:"subscriptions"`
	SubscribeSecs float64  `json:"subscribe_s"` // first CONNECT to the last SUBACK
	Sampled       int      `json:"sampled"`     // topics probed from each probe host
	ProbeHosts    []string `json:"probe_hosts"`
	// The check once the sampled topics are routable: one message at --qos
	// from each probe host to each sampled topic must arrive exactly once,
	// at the connection that subscribed to it, and nowhere else.
	Sent         int64  `json:"verify_sent"`
	Received     int    `json:"verify_received"` // (host, topic) whose message arrived
	Lost         int    `json:"verify_lost"`
	Duplicated   uint64 `json:"verify_duplicated"`
	Misdelivered uint64 `json:"verify_misdelivered"`
}

// ErrVerify is returned when the routes scenario's check messages were
// lost, duplicated or misdelivered.
var ErrVerify = errors.New("bench: route check failed")

// Err says what went wrong with the check messages, or nil.
func (rs *RouteStats) Err() error {
	want := int64(rs.Sampled * len(rs.ProbeHosts))
	if rs.Lost == 0 && rs.Duplicated == 0 && rs.Misdelivered == 0 && rs.Sent == want {
		return nil
	}
	return fmt.Errorf("%w: %d check messages sent for %d (probe host, topic) pairs: %d lost, %d duplicated, "+
		"%d delivered to a connection that did not subscribe to them", ErrVerify, rs.Sent, want, rs.Lost, rs.Duplicated, rs.Misdelivered)
}

// routeTopic is subscription k of a connection whose --filter expands to
// base: the run id keeps one run's topics apart from another's routes.
func routeTopic(base string, run uint32, k int) string {
	return fmt.Sprintf("%s/%08x/%d", base, run, k)
}

// routeSample picks the sampled subscriptions, as (connection, k): the last
// one of every connection, then n distinct others at random (all of them if
// there are no more than n).
func routeSample(conns, perConn, n int, rng *rand.Rand) [][2]int {
	out := make([][2]int, 0, conns+n)
	for i := range conns {
		out = append(out, [2]int{i, perConn - 1})
	}
	rest := conns * (perConn - 1)
	if n >= rest {
		for j := range rest {
			out = append(out, [2]int{j / (perConn - 1), j % (perConn - 1)})
		}
		return out
	}
	for _, j := range rng.Perm(rest)[:n] {
		out = append(out, [2]int{j / (perConn - 1), j % (perConn - 1)})
	}
	return out
}

// routes makes -c connections with --topics subscriptions each on
// --sub-host, then measures from the last SUBACK how long it takes until
// each --pub-host routes a sample of them (RouteWait), and checks the
// sample with one message per (host, topic).
func (s *scenario) routes(ctx context.Context) error {
	cfg := s.cfg
	nHosts := cfg.roleHosts()
	rs := &RouteStats{Connections: cfg.Clients, Subscriptions: cfg.Clients * cfg.Topics}
	s.sum.Routes = rs
	r, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.Stop(ctx)
	sample := routeSample(cfg.Clients, cfg.Topics, cfg.Probe, rand.New(rand.NewPCG(rand.Uint64(), 0)))
	rs.Sampled = len(sample)
	topics := make([]string, len(sample))
	for j, sk := range sample {
		topics[j] = routeTopic(s.topic(cfg.Filter, sk[0], sk[0]), s.runID, sk[1])
	}
	// The probers connect first, so that probing starts at the last SUBACK.
	proberSpecs := make([]clientSpec, nHosts)
	for h := range proberSpecs {
		idx := cfg.Clients + h
		proberSpecs[h] = clientSpec{idx: idx, host: cfg.pubHost(h, idx), clean: true, pub: true, pubIdx: h,
			topics: topics, limit: uint64(len(topics))}
	}
	probers, err := r.open(ctx, proberSpecs)
	for _, p := range probers {
		rs.ProbeHosts = append(rs.ProbeHosts, p.host)
	}
	if err != nil {
		return fmt.Errorf("routes: probers: %w", err)
	}
	specs := make([]clientSpec, cfg.Clients)
	for i := range specs {
		base := s.topic(cfg.Filter, i, i)
		subs := make([]string, cfg.Topics)
		for k := range subs {
			subs[k] = routeTopic(base, s.runID, k)
		}
		specs[i] = clientSpec{idx: i, host: cfg.subHost(i, i), clean: cfg.Clean, subs: subs}
	}
	ct := time.Now()
	subs, err := r.open(ctx, specs)
	rs.SubscribeSecs = time.Since(ct).Seconds()
	s.sum.Conn.Seconds = rs.SubscribeSecs
	if err != nil {
		return err
	}
	var targets []probeTarget
	for h := range probers {
		for j, sk := range sample {
			targets = append(targets, probeTarget{prober: h, topic: []byte(topics[j]), subs: []int{sk[0]}})
		}
	}
	w := s.waitRoutes(ctx, r, newRouteProber(targets), probers, lastReady(subs), cfg.Duration)
	s.sum.RouteWait = &w
	// The check: the probers publish each sampled topic once at --qos.
	s.sum.Pub.PublishSecs = r.publish(ctx, true, cfg.ConnTimeout).Seconds()
	want := int64(nHosts * len(sample))
	s.sum.Pub.DrainSecs = r.drain(ctx, func(t totals) bool { return t.recv >= want }).Seconds()
	t := time.NewTimer(min(probeQuiet, cfg.Drain)) // listening for strays, not waiting for a state
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	r.Stop(ctx)
	s.sum.Pub.Expected = want
	for _, p := range probers {
		rs.Sent += int64(p.sent)
	}
	s.sum.Seq.Add(s.countRouteChecks(rs, subs, probers, sample, topics))
	return errors.Join(w.Err(), rs.Err())
}

// countRouteChecks fills rs's check figures from the subscribers' trackers:
// sampled topic j, subscribed by connection sample[j][0], should have one
// message from each prober. It returns the sequence figures, with a lost
// message for each (prober, topic) that did not arrive. The clients must be
// quiescent.
func (s *scenario) countRouteChecks(rs *RouteStats, subs, probers []*client, sample [][2]int, topics []string) SeqCounts {
	var seq SeqCounts
	var all, own uint64
	for _, c := range subs {
		if c.tracker != nil {
			counts := c.tracker.Counts(nil) // one-message streams: no gaps to find
			seq.Add(counts)
			all += counts.Received
		}
	}
	for j, sk := range sample {
		c := subs[sk[0]]
		for _, p := range probers {
			var n uint64
			if c.tracker != nil {
				n = c.tracker.Received(StreamKey{Run: s.runID, Publisher: p.pubIdx, Topic: fnv64([]byte(topics[j]))})
			}
			own += n
			if n == 0 {
				rs.Lost++
				seq.Lost++
				continue
			}
			rs.Received++
			rs.Duplicated += n - 1
		}
	}
	rs.Misdelivered = all - own
	return seq
}
