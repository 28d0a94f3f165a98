package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTakeover is returned when a taken-over session lost, duplicated or
// was sent messages that were not its own, or did not find its session.
var ErrTakeover = errors.New("bench: takeover failed")

// TakeoverStats are the takeover scenario's figures. The reconnects'
// CONNACK latency and session-present count are the summary's connection
// figures.
type TakeoverStats struct {
	Sessions      int     `json:"sessions"`
	SubscribeSecs float64 `json:"subscribe_s"` // connect and subscribe every session
	Published     int64   `json:"published"`   // messages acknowledged while the sessions were offline
	PublishSecs   float64 `json:"publish_s"`
	Reconnected   int     `json:"reconnected"`
	ReconnectSecs float64 `json:"reconnect_s"` // first CONNECT to the last CONNACK of the reconnects
	Expected      int64   `json:"expected"`    // messages the reconnected sessions should receive
	Received      uint64  `json:"received"`    // of those, unique ones at their own session
	Lost          uint64  `json:"lost"`
	Duplicated    uint64  `json:"duplicated"`
	Reordered     uint64  `json:"reordered"`
	Misdelivered  uint64  `json:"misdelivered"` // messages at a session they were not published for
	Complete      int     `json:"complete"`     // sessions that received all of theirs
	DrainSecs     float64 `json:"drain_s"`      // the last CONNACK to the last message, or --drain
}

// Err says what went wrong, or nil when every session was present and
// received exactly its own count messages.
func (tk *TakeoverStats) Err(present, count int) error {
	if tk.Lost == 0 && tk.Duplicated == 0 && tk.Misdelivered == 0 && present == tk.Sessions &&
		tk.Reconnected == tk.Sessions && tk.Expected == int64(tk.Sessions*count) && tk.Published == tk.Expected {
		return nil
	}
	return fmt.Errorf("%w: %d of %d sessions reconnected, %d with their session; %d of %d messages acknowledged, %d of %d received: "+
		"%d lost, %d duplicated, %d delivered to a session they were not published for",
		ErrTakeover, tk.Reconnected, tk.Sessions, present, tk.Published, tk.Sessions*count, tk.Received, tk.Expected,
		tk.Lost, tk.Duplicated, tk.Misdelivered)
}

// takeover connects -c persistent sessions to --sub-host, each subscribed to
// a topic of its own, waits until the --pub-host nodes route every topic,
// disconnects them, publishes --count messages to each topic from
// --pub-host, reconnects every session to --reconnect-host and waits up to
// --drain for the messages. The sessions are deleted afterwards unless
// --no-cleanup.
func (s *scenario) takeover(ctx context.Context) error {
	cfg := s.cfg
	n := cfg.Clients
	nPubs := min(cfg.roleHosts(), n)
	tk := &TakeoverStats{Sessions: n}
	s.sum.Takeover = tk
	topics := make([]string, n)
	specs := make([]clientSpec, n)
	for i := range specs {
		topics[i] = s.topic(cfg.Filter, i, i)
		specs[i] = clientSpec{idx: i, host: cfg.subHost(i, i), clean: false, subs: []string{topics[i]}}
	}
	// Session i's messages come from publisher i%nPubs, as its topic number
	// i/nPubs.
	pubSpecs := make([]clientSpec, nPubs)
	for p := range pubSpecs {
		var ts []string
		for i := p; i < n; i += nPubs {
			ts = append(ts, topics[i])
		}
		idx := n + p
		pubSpecs[p] = clientSpec{idx: idx, host: cfg.pubHost(p, idx), clean: true, pub: true, pubIdx: p,
			topics: ts, limit: uint64(cfg.Count * len(ts))}
	}
	rp, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	defer rp.Stop(ctx)
	pubs, err := rp.open(ctx, pubSpecs)
	if err != nil {
		return fmt.Errorf("takeover: publishers: %w", err)
	}
	r1, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	ct := time.Now()
	sess, err := r1.open(ctx, specs)
	tk.SubscribeSecs = time.Since(ct).Seconds()
	if err != nil {
		r1.Stop(ctx)
		return s.cleanSessions(ctx, specs, fmt.Errorf("takeover: creating sessions: %w", err))
	}
	targets := make([]probeTarget, n)
	for i := range targets {
		targets[i] = probeTarget{prober: i % nPubs, topic: []byte(topics[i]), subs: []int{i}}
	}
	w := s.waitRoutes(ctx, r1, newRouteProber(targets), pubs, lastReady(sess), cfg.ConnTimeout)
	s.sum.RouteWait = &w
	r1.Stop(ctx) // every session offline
	s.sum.Pub.PublishSecs = rp.publish(ctx, true, cfg.ConnTimeout).Seconds()
	tk.PublishSecs = s.sum.Pub.PublishSecs
	tk.Published = rp.totals().acked

	s.smp.sample(rp, true) // fold the publishers' CONNACKs before the reset
	s.smp.resetConnack()   // the figure is the reconnects'
	r2, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	for i := range specs {
		specs[i].subs, specs[i].track, specs[i].expect = nil, true, uint64(cfg.Count)
		specs[i].host = cfg.reconnectHost(i, i)
	}
	ct = time.Now()
	back, err := r2.open(ctx, specs)
	tk.ReconnectSecs = time.Since(ct).Seconds()
	s.sum.Conn.Seconds = tk.ReconnectSecs
	if err == nil {
		dt := time.Now()
		wctx, cancel := context.WithTimeout(ctx, cfg.Drain)
		_ = r2.complete.wait(wctx) // incomplete sessions are counted below
		cancel()
		tk.DrainSecs = time.Since(dt).Seconds()
	}
	r2.Stop(ctx)
	rp.Stop(ctx)
	for _, c := range back {
		if c.sessionPres {
			s.sum.Conn.SessionPresent++
		}
	}
	s.countTakeover(tk, back, pubs)
	s.sum.Pub.Expected = tk.Expected
	err = errors.Join(err, w.Err(), tk.Err(s.sum.Conn.SessionPresent, cfg.Count))
	if cfg.NoCleanup {
		return err
	}
	return s.cleanSessions(ctx, specs, err)
}

// countTakeover fills tk's delivery figures: session i should have
// received publisher i%len(pubs)'s stream on its topic, number i/len(pubs)
// of that publisher's topics. The clients must be quiescent.
func (s *scenario) countTakeover(tk *TakeoverStats, back, pubs []*client) {
	for i, c := range back {
		p := pubs[i%len(pubs)]
		sent := p.seqs[i/len(pubs)]
		tk.Expected += int64(sent)
		if c.failed || c.tracker == nil {
			tk.Lost += sent
			s.sum.Seq.Lost += sent
			continue
		}
		tk.Reconnected++
		own := c.tracker.StreamCounts(StreamKey{Run: s.runID, Publisher: p.pubIdx, Topic: fnv64(p.topics[i/len(pubs)])}, sent)
		all := c.tracker.Counts(nil)
		s.sum.Seq.Add(own)
		tk.Received += own.Unique
		tk.Lost += own.Lost
		tk.Duplicated += own.Duplicated
		tk.Reordered += own.Reordered
		tk.Misdelivered += all.Received - own.Received
		if own.Lost == 0 && own.Unique == sent {
			tk.Complete++
		}
	}
}
