package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Run runs cfg.Scenario and returns its summary. Progress lines go to
// cfg.Progress every cfg.Interval. A partial summary comes with an error when
// the connect phase fails.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if soft, hard, err := FileLimit(); err == nil {
		if err := checkFileLimit(&cfg, soft, hard, openFiles()); err != nil {
			return nil, err
		}
	}
	var out io.Writer
	if cfg.Interval > 0 {
		out = cfg.Progress
	}
	s := &scenario{cfg: &cfg, clk: newClock(), smp: newSampler(out), cpu: startCPU(), t0: time.Now(),
		runID: rand.Uint32()}
	s.sum = &Summary{Scenario: cfg.Scenario, Hosts: cfg.Hosts, MQTT: cfg.Version.String(),
		QoS: int(cfg.QoS), Size: cfg.Size, Clients: cfg.Clients, Rate: cfg.Rate,
		PubHosts: cfg.PubHosts, SubHosts: cfg.SubHosts, ReconnectHosts: cfg.ReconnectHosts}
	if cfg.TLS {
		s.sum.TLS = &TLSStats{}
	}
	var err error
	switch cfg.Scenario {
	case "conn":
		err = s.conn(ctx)
	case "storm":
		err = s.storm(ctx)
	case "retained":
		err = s.retained(ctx)
	case "routes":
		err = s.routes(ctx)
	case "takeover":
		err = s.takeover(ctx)
	default:
		err = s.flow(ctx)
	}
	s.finish()
	return s.sum, err
}

// scenario is one Run. Scenario goroutine only.
type scenario struct {
	cfg     *Config
	clk     clock
	smp     *sampler
	cpu     cpuMeter
	t0      time.Time
	sum     *Summary
	runners []*Runner
	runID   uint32
}

func (s *scenario) newRunner(cfg *Config) (*Runner, error) {
	r, err := NewRunner(cfg, s.clk, s.smp, s.runID)
	if err == nil {
		s.runners = append(s.runners, r)
	}
	return r, err
}

func (s *scenario) topic(tmpl string, idx, p int) string {
	t, _ := ExpandTemplate(tmpl, idx, p) // validated
	return t
}

// flow runs pub, sub, fanin, fanout, pairs and latency: subscribers first,
// then publishers, then the publish phase and the drain.
func (s *scenario) flow(ctx context.Context) error {
	cfg := s.cfg
	n := cfg.Clients
	var nSubs, nPubs, fan int
	switch cfg.Scenario {
	case "pub":
		nPubs = n
	case "sub":
		nSubs = n
	case "fanin":
		nSubs, nPubs, fan = 1, n, 1
	case "fanout":
		nSubs, nPubs, fan = n, 1, n
	default: // pairs, latency
		nSubs, nPubs, fan = n, n, 1
	}
	r, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.Stop(ctx)
	var subSpecs, pubSpecs []clientSpec
	for i := range nSubs {
		subSpecs = append(subSpecs, clientSpec{idx: i, host: cfg.subHost(i, i), clean: cfg.Clean,
			subs: []string{s.topic(cfg.Filter, i, i)}})
	}
	for p := range nPubs {
		idx := nSubs + p
		pubSpecs = append(pubSpecs, clientSpec{idx: idx, host: cfg.pubHost(p, idx), clean: cfg.Clean, pub: true, pubIdx: p,
			topics: []string{s.topic(cfg.Topic, idx, p)}, limit: uint64(cfg.Count)})
	}
	expects := func(sub, pub int) bool { // subscriber sub should receive publisher pub's stream
		switch cfg.Scenario {
		case "pairs", "latency":
			return sub == pub
		}
		return true
	}
	ct := time.Now()
	subs, err := r.open(ctx, subSpecs)
	if err != nil {
		return err
	}
	pubs, err := r.open(ctx, pubSpecs)
	s.sum.Conn.Seconds = time.Since(ct).Seconds()
	if err != nil {
		return err
	}
	if err := s.flowRoutes(ctx, r, subs, pubs, expects); err != nil {
		return err
	}
	if cfg.Scenario == "sub" {
		s.sum.Pub.PublishSecs = r.publish(ctx, false, cfg.Duration).Seconds()
	} else {
		s.sum.Pub.PublishSecs = r.publish(ctx, cfg.Count > 0, cfg.Duration).Seconds()
	}
	var want func(totals) bool
	if fan > 0 {
		want = func(t totals) bool { return t.recv >= t.sent*int64(fan) }
	}
	s.sum.Pub.DrainSecs = r.drain(ctx, want).Seconds()
	t := r.totals()
	r.Stop(ctx)
	s.sum.Pub.Expected = t.sent * int64(fan)
	s.account(subs, pubs, expects)
	return nil
}

// flowRoutes, when the publishers and subscribers are not all on one host,
// waits until every publisher's topic reaches every subscriber that expects
// it from the publisher's node (see RouteWait), so that the publish phase
// measures the data path rather than the spread of new routes, which the
// routes scenario measures. Up to --conn-timeout; ErrRoutes after it.
func (s *scenario) flowRoutes(ctx context.Context, r *Runner, subs, pubs []*client, expects func(sub, pub int) bool) error {
	if len(subs) == 0 || len(pubs) == 0 {
		return nil
	}
	hosts := map[string]bool{}
	for _, c := range append(append([]*client(nil), subs...), pubs...) {
		hosts[c.host] = true
	}
	if len(hosts) < 2 {
		return nil
	}
	var targets []probeTarget
	for pi, p := range pubs {
		if p.failed {
			continue
		}
		var want []int
		for si, sub := range subs {
			if expects(si, pi) && !sub.failed {
				want = append(want, sub.idx)
			}
		}
		for _, t := range p.topics {
			if len(want) > 0 {
				targets = append(targets, probeTarget{prober: pi, topic: t, subs: want})
			}
		}
	}
	w := s.waitRoutes(ctx, r, newRouteProber(targets), pubs, lastReady(subs), s.cfg.ConnTimeout)
	s.sum.RouteWait = &w
	return w.Err()
}

// account fills the correctness figures. expects says whether subscriber i
// should receive publisher p's stream. Clients must be quiescent.
func (s *scenario) account(subs, pubs []*client, expects func(sub, pub int) bool) {
	type pubKey struct {
		pub   uint32
		topic uint64
	}
	sent := make(map[pubKey]uint64)
	for _, p := range pubs {
		for i, t := range p.topics {
			sent[pubKey{p.pubIdx, fnv64(t)}] = p.seqs[i]
		}
	}
	sentFn := func(k StreamKey) (uint64, bool) {
		n, ok := sent[pubKey{k.Publisher, k.Topic}]
		return n, ok
	}
	for si, sub := range subs {
		if sub.tracker == nil || sub.failed {
			continue
		}
		s.sum.Seq.Add(sub.tracker.Counts(sentFn))
		for pi, p := range pubs {
			if p.failed || !expects(si, pi) {
				continue
			}
			for i, t := range p.topics {
				if !sub.tracker.Seen(StreamKey{s.runID, p.pubIdx, fnv64(t)}) {
					s.sum.Seq.Lost += p.seqs[i] // the whole stream is missing
				}
			}
		}
	}
}

// conn opens the connections, holds them for --duration and reports the
// connect rate and the broker's memory. With --probe, every connection
// subscribes to a topic of its own first, and after the hold a random
// --probe of them are sent one message each.
func (s *scenario) conn(ctx context.Context) error {
	cfg := s.cfg
	cs := &s.sum.Conn
	cs.RSSBeforeKB = ProcessRSS(cfg.PID)
	r, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.Stop(ctx)
	specs := make([]clientSpec, cfg.Clients)
	for i := range specs {
		specs[i] = clientSpec{idx: i, clean: cfg.Clean}
		if cfg.Probe > 0 {
			specs[i].subs = []string{s.topic(cfg.Filter, i, i)}
		}
	}
	ct := time.Now()
	subs, err := r.open(ctx, specs)
	cs.Seconds = time.Since(ct).Seconds()
	cs.RSSAfterKB = ProcessRSS(cfg.PID) // idle: before any probe
	held := len(specs) - int(r.connFailed.Load())
	if cs.Seconds > 0 {
		cs.Rate = float64(held) / cs.Seconds
	}
	if cs.RSSAfterKB > 0 && held > 0 {
		cs.RSSPerConnKB = float64(cs.RSSAfterKB-cs.RSSBeforeKB) / float64(held)
		cs.RSS1MGiB = (float64(cs.RSSBeforeKB) + cs.RSSPerConnKB*1e6) / (1 << 20)
	}
	if err != nil {
		return err
	}
	if cfg.Duration > 0 {
		r.publish(ctx, false, cfg.Duration) // no publishers: holds the connections
	}
	if cfg.Probe > 0 {
		return s.probe(ctx, r, subs)
	}
	return nil
}

// storm connects every client with a persistent session and a subscription,
// disconnects them all, then reconnects them all and measures the CONNACKs
// and how many found their session. The sessions are removed afterwards.
func (s *scenario) storm(ctx context.Context) error {
	cfg := s.cfg
	specs := make([]clientSpec, cfg.Clients)
	for i := range specs {
		specs[i] = clientSpec{idx: i, clean: false, subs: []string{s.topic(cfg.Filter, i, i)}}
	}
	r1, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	_, err = r1.open(ctx, specs)
	r1.Stop(ctx)
	if err != nil {
		return fmt.Errorf("storm: creating sessions: %w", err)
	}
	s.smp.resetConnack() // the figure is the reconnect storm's
	r2, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	for i := range specs {
		specs[i].subs = nil // the session keeps the subscription
	}
	ct := time.Now()
	cls, err := r2.open(ctx, specs)
	s.sum.Conn.Seconds = time.Since(ct).Seconds()
	r2.Stop(ctx)
	for _, c := range cls {
		if c.sessionPres {
			s.sum.Conn.SessionPresent++
		}
	}
	if cfg.NoCleanup {
		return err
	}
	return s.cleanSessions(ctx, specs, err)
}

// cleanSessions reconnects every client with a clean start and no session
// expiry, which deletes its session. It returns prev, or its own error.
func (s *scenario) cleanSessions(ctx context.Context, specs []clientSpec, prev error) error {
	ccfg := *s.cfg
	ccfg.SessionExpiry, ccfg.Interval = 0, 0
	ccfg.Progress = nil
	r, err := NewRunner(&ccfg, s.clk, newSampler(nil), s.runID)
	if err != nil {
		return err
	}
	for i := range specs {
		specs[i].clean = true
	}
	_, err = r.open(ctx, specs)
	r.Stop(ctx)
	if prev != nil {
		return prev
	}
	if err != nil {
		return fmt.Errorf("storm: cleaning sessions: %w", err)
	}
	return nil
}

// retained stores --topics retained messages, then subscribes -c clients to
// the wildcard --filter and measures how long each takes to receive them all.
func (s *scenario) retained(ctx context.Context) error {
	cfg := s.cfg
	base := s.topic(cfg.Topic, 0, 0)
	topics := make([]string, cfg.Topics)
	for k := range topics {
		topics[k] = fmt.Sprintf("%s/%d", base, k)
	}
	rt := &RetainedStats{Topics: cfg.Topics, Subscribers: cfg.Clients}
	s.sum.Retained = rt
	r, err := s.newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.Stop(ctx)
	pubSpec := clientSpec{idx: cfg.Clients, clean: true, pub: true, topics: topics, retain: true,
		limit: uint64(len(topics))}
	pubs, err := r.open(ctx, []clientSpec{pubSpec})
	if err != nil {
		return err
	}
	rt.StoreSecs = r.publish(ctx, true, cfg.ConnTimeout).Seconds()
	specs := make([]clientSpec, cfg.Clients)
	for i := range specs {
		specs[i] = clientSpec{idx: i, clean: true, subs: []string{s.topic(cfg.Filter, i, i)},
			expect: uint64(len(topics))}
	}
	ct := time.Now()
	subs, err := r.open(ctx, specs)
	s.sum.Conn.Seconds = time.Since(ct).Seconds()
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, max(cfg.Duration, cfg.Drain))
		_ = r.complete.wait(wctx) // incomplete subscribers are reported
		cancel()
	}
	r.Stop(ctx)
	s.sum.Pub.Expected = int64(len(topics) * cfg.Clients)
	s.sum.Pub.PublishSecs = rt.StoreSecs
	h := newHist()
	for _, c := range subs {
		if c.completed > 0 {
			rt.Complete++
			record(h, c.completed-c.subStart)
		}
	}
	rt.TimeToAll = Summarize(h)
	s.account(subs, pubs, func(int, int) bool { return true })
	if !cfg.NoCleanup {
		if cerr := s.clearRetained(ctx, topics); err == nil {
			err = cerr
		}
	}
	return err
}

// clearRetained publishes an empty retained message on every topic.
func (s *scenario) clearRetained(ctx context.Context, topics []string) error {
	ccfg := *s.cfg
	ccfg.Interval, ccfg.Progress = 0, nil
	ccfg.QoS = max(ccfg.QoS, 1)
	r, err := NewRunner(&ccfg, s.clk, newSampler(nil), s.runID)
	if err != nil {
		return err
	}
	defer r.Stop(ctx)
	spec := clientSpec{idx: ccfg.Clients + 1, clean: true, pub: true, topics: topics, retain: true,
		limit: uint64(len(topics)), empty: true}
	if _, err := r.open(ctx, []clientSpec{spec}); err != nil {
		return fmt.Errorf("retained: clearing: %w", err)
	}
	r.publish(ctx, true, ccfg.ConnTimeout)
	return nil
}

// finish fills the figures common to every scenario.
func (s *scenario) finish() {
	sum := s.sum
	sum.Elapsed = time.Since(s.t0).Seconds()
	sum.CPU = s.cpu.stop()
	var failed int
	hs := newHist()
	for _, r := range s.runners {
		if r.std != nil {
			st := r.std.stats(hs)
			if sum.TLS.Version == "" {
				sum.TLS.Version, sum.TLS.Cipher, sum.TLS.Group = st.Version, st.Cipher, st.Group
			}
			sum.TLS.Handshakes += st.Handshakes
		}
		t := r.totals()
		sum.Pub.Sent += t.sent
		sum.Pub.Acked += t.acked
		sum.Pub.Delivered += t.recv
		sum.Pub.Foreign += t.foreign
		sum.Pub.Stale += t.stale
		sum.Conn.Attempted += len(r.clients)
		sum.Conn.Dropped += int(r.dropped.Load())
		failed += int(r.connFailed.Load())
		sum.Errors = append(sum.Errors, r.errorList()...)
		if t.protoErr > 0 {
			sum.Errors = append(sum.Errors, fmt.Sprintf("%d protocol errors", t.protoErr))
		}
	}
	sum.Conn.Failed = failed
	sum.Conn.Connected = sum.Conn.Attempted - failed
	if sum.Conn.Seconds > 0 && sum.Conn.Rate == 0 { // conn sets its own
		last := s.runners[len(s.runners)-1]
		sum.Conn.Rate = float64(len(last.clients)-int(last.connFailed.Load())) / sum.Conn.Seconds
	}
	if sum.Pub.PublishSecs > 0 {
		sum.Pub.SentRate = float64(sum.Pub.Sent) / sum.Pub.PublishSecs
		sum.Pub.DeliveredRate = float64(sum.Pub.Delivered) / (sum.Pub.PublishSecs + sum.Pub.DrainSecs)
	}
	series, lat, ack, connack := s.smp.snapshot()
	sum.Series = series
	sum.Latency, sum.Ack, sum.Conn.Connack = Summarize(lat), Summarize(ack), Summarize(connack)
	if sum.TLS != nil {
		sum.TLS.Handshake = Summarize(hs)
	}
	sum.Distribution = Distribution(lat)
	if sum.Probe != nil {
		sum.Probe.Latency = sum.Latency // the probe's are the only deliveries
	}
}
