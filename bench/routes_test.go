package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// TestRoleHostFlags: --pub-host and --sub-host pick per role, round-robin
// on the role's index; without them --host is used round-robin on the
// client index, as before the role flags.
func TestRoleHostFlags(t *testing.T) {
	cfg, err := ParseFlags("fanout", []string{"--host", "a:1,b:2,c:3", "--pub-host", "p:1", "--sub-host", "s:1,s:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{cfg.pubHost(0, 5), cfg.subHost(0, 0), cfg.subHost(1, 1), cfg.subHost(2, 2)}; strings.Join(got, " ") != "p:1 s:1 s:2 s:1" {
		t.Fatalf("role hosts %q", got)
	}
	cfg, err = ParseFlags("pairs", []string{"--host", "a:1,b:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{cfg.subHost(0, 0), cfg.pubHost(0, 1), cfg.reconnectHost(0, 2)}; strings.Join(got, " ") != "a:1 b:2 a:1" {
		t.Fatalf("default hosts %q", got)
	}
	cfg, err = ParseFlags("takeover", []string{"--sub-host", "s:1", "--pub-host", "p:1,p:2", "--reconnect-host", "r:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.reconnectHost(3, 3) != "r:1" || cfg.roleHosts() != 2 || cfg.Connections() != 12 {
		t.Fatalf("takeover hosts: %+v", cfg)
	}
	if cfg.QoS != 1 || cfg.Count != 10 || cfg.Clean || cfg.SessionExpiry != 300 || cfg.Filter != "flockmq-bench/takeover/%i" {
		t.Fatalf("takeover defaults: %+v", cfg)
	}
	cfg, err = ParseFlags("routes", nil, io.Discard)
	if err != nil || cfg.Probe != 1000 || cfg.Topics != 1000 || cfg.Filter != "flockmq-bench/routes/%i" || cfg.Connections() != 11 {
		t.Fatalf("routes defaults: %+v %v", cfg, err)
	}
	for _, bad := range []struct {
		scenario string
		args     []string
	}{
		{"pairs", []string{"--reconnect-host", "r:1"}},
		{"takeover", []string{"--qos", "0"}},
		{"takeover", []string{"--filter", "same/topic"}},
		{"routes", []string{"--filter", "r/%i/#"}},
		{"routes", []string{"--topics", "0"}},
		{"routes", []string{"--probe-every", "0s"}},
	} {
		if _, err := ParseFlags(bad.scenario, bad.args, io.Discard); !errors.Is(err, ErrConfig) {
			t.Errorf("%s %v: got %v, want ErrConfig", bad.scenario, bad.args, err)
		}
	}
}

func TestRouteSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := routeSample(100, 1000, 1000, rng)
	if len(s) != 1100 {
		t.Fatalf("%d sampled", len(s))
	}
	seen := map[[2]int]bool{}
	for i, sk := range s {
		if seen[sk] || sk[0] < 0 || sk[0] >= 100 || sk[1] < 0 || sk[1] >= 1000 {
			t.Fatalf("bad or repeated pick %v", sk)
		}
		seen[sk] = true
		if i < 100 && sk != [2]int{i, 999} {
			t.Fatalf("pick %d is %v, want every connection's last first", i, sk)
		}
	}
	if all := routeSample(3, 4, 100, rng); len(all) != 12 {
		t.Fatalf("a sample larger than the subscriptions takes them all: %d", len(all))
	}
	if one := routeSample(5, 1, 10, rng); len(one) != 5 {
		t.Fatalf("one subscription each: %d", len(one))
	}
}

// TestRouteProber checks the probe accounting on hand-made arrivals:
// first arrivals count once, late copies do not, and probes at the wrong
// client or on an unknown topic are misdelivered.
func TestRouteProber(t *testing.T) {
	targets := []probeTarget{
		{prober: 0, topic: []byte("t/a"), subs: []int{10, 11}},
		{prober: 1, topic: []byte("t/a"), subs: []int{10}},
		{prober: 1, topic: []byte("t/b"), subs: []int{12}},
	}
	pr := newRouteProber(targets)
	probe := func(prober uint32, send int64) Header {
		return Header{Publisher: probeBit | prober, SendNs: send}
	}
	const t0 = 1_000_000_000
	pr.observe(10, probe(0, t0+5e6), []byte("t/a"), 0)
	pr.observe(10, probe(0, t0+9e6), []byte("t/a"), 0) // a later copy: the first counts
	pr.observe(12, probe(0, t0+1e6), []byte("t/a"), 0) // wrong client
	pr.observe(10, probe(0, t0+1e6), []byte("t/c"), 0) // unknown topic
	if pr.done() {
		t.Fatal("done with pairs missing")
	}
	if got := pr.pending(2); len(got[0]) != 1 || len(got[1]) != 2 {
		t.Fatalf("pending %v", got)
	}
	pr.observe(11, probe(0, t0+20e6), []byte("t/a"), 0)
	pr.observe(10, probe(1, t0-3e6), []byte("t/a"), 0) // sent before the last SUBACK: 0
	pr.observe(12, probe(1, t0+50e6), []byte("t/b"), 0)
	if !pr.done() {
		t.Fatal("not done with every pair reached")
	}
	w := pr.stats(t0, 2)
	if w.Pairs != 4 || w.Reached != 4 || w.Misdelivered != 2 || w.Seconds != 0.05 ||
		w.PerPublisher[0] != 0.02 || w.PerPublisher[1] != 0.05 || w.TimeToRoute.Count != 4 {
		t.Fatalf("stats %+v", w)
	}
	if err := w.Err(); !errors.Is(err, ErrRoutes) || !strings.Contains(err.Error(), "2 probes delivered") {
		t.Fatalf("err %v", err)
	}
	w.Misdelivered = 0
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
}

// TestSubscribeBatches: a client with more than subBatch subscriptions
// sends them in several SUBSCRIBE packets, and is ready at the last SUBACK.
func TestSubscribeBatches(t *testing.T) {
	cfg := DefaultConfig()
	r := &Runner{cfg: &cfg}
	c := &client{r: r}
	for i := range 2*subBatch + 1 {
		c.subs = append(c.subs, codec.Subscription{Filter: fmt.Appendf(nil, "t/%d", i), QoS: 1})
	}
	b := c.appendSubscribes(nil)
	var pk codec.Packet
	var n int
	for off := 0; off < len(b); n++ {
		m, err := codec.Decode(b[off:], cfg.Version, 1<<20, &pk)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Type != codec.Subscribe || int(pk.Subscribe.PacketID) != n+1 {
			t.Fatalf("packet %d: %v id %d", n, pk.Type, pk.Subscribe.PacketID)
		}
		off += m
	}
	if n != 3 || c.subAcks != 3 {
		t.Fatalf("%d packets, %d SUBACKs due", n, c.subAcks)
	}
}

func TestStreamCounts(t *testing.T) {
	tr := NewTracker()
	k := StreamKey{Run: 1, Publisher: 2, Topic: 3}
	for _, seq := range []uint64{0, 2, 1, 2, 4} {
		tr.Observe(k, seq)
	}
	got := tr.StreamCounts(k, 6)
	want := SeqCounts{Received: 5, Unique: 4, Lost: 2, Duplicated: 1, Reordered: 1, Streams: 1}
	if got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
	if got := tr.StreamCounts(StreamKey{Run: 9}, 7); got != (SeqCounts{Lost: 7}) {
		t.Fatalf("unseen stream: %+v", got)
	}
}

func routesConfig(addr string) Config {
	cfg := e2eConfig(addr, "routes")
	cfg.Clients, cfg.Topics, cfg.Probe, cfg.QoS, cfg.Count = 4, 250, 100, 1, 0
	cfg.Filter = "flockmq-bench/routes/%i"
	cfg.Drain = 5 * time.Second
	return cfg
}

// checkRoutes asserts a clean routes run: every sampled topic routable
// from every probe host, every check message delivered once.
func checkRoutes(t *testing.T, sum *Summary, hosts int) {
	t.Helper()
	rs, w := sum.Routes, sum.RouteWait
	if rs == nil || w == nil {
		t.Fatalf("no routes figures: %+v", sum)
	}
	if rs.Subscriptions != 1000 || rs.Sampled != 104 || len(rs.ProbeHosts) != hosts {
		t.Fatalf("routes %+v", rs)
	}
	if w.Pairs != 104*hosts || w.Reached != w.Pairs || w.Misdelivered != 0 || w.Seconds < 0 || w.Seconds > 10 {
		t.Fatalf("route wait %+v", w)
	}
	if rs.Sent != int64(104*hosts) || rs.Received != 104*hosts || rs.Lost != 0 || rs.Duplicated != 0 || rs.Misdelivered != 0 {
		t.Fatalf("checks %+v", rs)
	}
	if sum.Pub.Delivered != int64(104*hosts) || sum.Seq.Lost != 0 || sum.Seq.Streams != uint64(104*hosts) || sum.Pub.Foreign != 0 {
		t.Fatalf("publish %+v, sequence %+v", sum.Pub, sum.Seq)
	}
}

// TestE2ERoutes runs the routes scenario against one mosquitto, probing
// from both its listeners as if they were two nodes.
func TestE2ERoutes(t *testing.T) {
	m := startMosquitto(t)
	cfg := routesConfig(m.addr)
	cfg.SubHosts, cfg.PubHosts = []string{m.addr}, []string{m.addr, m.addr2}
	checkRoutes(t, runOK(t, cfg), 2)
}

// TestE2ERoutesUnroutable probes topics nobody subscribed to (a filter the
// subscriptions do not match): the wait must end at --duration with
// ErrRoutes, and the check messages must be reported lost.
func TestE2ERoutesUnroutable(t *testing.T) {
	m := startMosquitto(t)
	cfg := routesConfig(m.addr)
	cfg.Duration, cfg.Drain = 300*time.Millisecond, 300*time.Millisecond
	r, err := NewRunner(&cfg, newClock(), newSampler(nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())
	s := &scenario{cfg: &cfg, clk: newClock(), smp: newSampler(nil), runID: 1, sum: &Summary{}}
	subs, err := r.open(context.Background(), []clientSpec{{idx: 0, clean: true, subs: []string{"x/subscribed"}}})
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := r.open(context.Background(), []clientSpec{{idx: 1, clean: true, pub: true, topics: []string{"x/other"}}})
	if err != nil {
		t.Fatal(err)
	}
	pr := newRouteProber([]probeTarget{{prober: 0, topic: []byte("x/other"), subs: []int{0}}})
	w := s.waitRoutes(context.Background(), r, pr, pubs, lastReady(subs), cfg.Duration)
	if w.Reached != 0 || w.Rounds < 2 || w.Probes < 2 || !errors.Is(w.Err(), ErrRoutes) {
		t.Fatalf("wait %+v, err %v", w, w.Err())
	}
}

// TestE2ERoleHostsWaitForRoutes: with publishers and subscribers on
// different hosts (two listeners of one mosquitto), a flow first waits for
// the routes and then runs as usual.
func TestE2ERoleHostsWaitForRoutes(t *testing.T) {
	m := startMosquitto(t)
	for _, scenario := range []string{"fanin", "fanout", "pairs"} {
		t.Run(scenario, func(t *testing.T) {
			cfg := e2eConfig(m.addr, scenario)
			cfg.QoS, cfg.PubHosts, cfg.SubHosts = 1, []string{m.addr}, []string{m.addr2, m.addr}
			sum := runOK(t, cfg)
			w := sum.RouteWait // 3 publishers to 1, 1 to 3, or 3 pairs
			if w == nil || w.Pairs != 3 || w.Reached != w.Pairs || w.Misdelivered != 0 {
				t.Fatalf("route wait %+v", w)
			}
			if sum.Seq.Lost != 0 || sum.Pub.Delivered != sum.Pub.Expected || sum.Pub.Foreign != 0 || sum.Seq.Duplicated != 0 {
				t.Fatalf("publish %+v, sequence %+v", sum.Pub, sum.Seq)
			}
		})
	}
	cfg := e2eConfig(m.addr, "pairs") // one host: no wait
	if sum := runOK(t, cfg); sum.RouteWait != nil {
		t.Fatalf("route wait on one host: %+v", sum.RouteWait)
	}
}

func takeoverConfig(addr string) Config {
	cfg := e2eConfig(addr, "takeover")
	cfg.Clients, cfg.Count, cfg.QoS, cfg.Clean, cfg.SessionExpiry = 50, 10, 1, false, 300
	cfg.Filter = "flockmq-bench/takeover/%i"
	cfg.Drain = 10 * time.Second
	return cfg
}

// checkTakeover asserts a clean takeover: every session present, every
// message received once, in order, at its own session.
func checkTakeover(t *testing.T, sum *Summary) {
	t.Helper()
	tk := sum.Takeover
	if tk == nil {
		t.Fatal("no takeover figures")
	}
	want := TakeoverStats{Sessions: 50, Published: 500, Reconnected: 50, Expected: 500, Received: 500, Complete: 50}
	got := *tk
	got.SubscribeSecs, got.PublishSecs, got.ReconnectSecs, got.DrainSecs = 0, 0, 0, 0
	if got != want {
		t.Fatalf("takeover %+v", *tk)
	}
	if sum.Conn.SessionPresent != 50 || sum.Conn.Connack.Count != 50 || sum.RouteWait == nil || sum.RouteWait.Reached != 50 {
		t.Fatalf("connections %+v, route wait %+v", sum.Conn, sum.RouteWait)
	}
	if sum.Seq.Lost != 0 || sum.Seq.Reordered != 0 || sum.Seq.Streams != 50 || sum.Pub.Expected != 500 {
		t.Fatalf("sequence %+v, publish %+v", sum.Seq, sum.Pub)
	}
}

func TestE2ETakeover(t *testing.T) {
	m := startMosquitto(t)
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			cfg := takeoverConfig(m.addr)
			cfg.Version = v
			// Sessions made on one listener, published to from and
			// reconnected to the other.
			cfg.SubHosts, cfg.PubHosts, cfg.ReconnectHosts = []string{m.addr}, []string{m.addr2}, []string{m.addr2}
			checkTakeover(t, runOK(t, cfg))
			// The cleanup deleted the sessions: a second run finds exactly
			// its own messages again.
			checkTakeover(t, runOK(t, cfg))
		})
	}
}

// TestCountTakeover checks the takeover accounting on hand-made
// deliveries: sessions 0..3 of two publishers (session i has publisher
// i%2's topic number i/2), 3 messages each.
func TestCountTakeover(t *testing.T) {
	topic := func(i int) []byte { return fmt.Appendf(nil, "tk/%d", i) }
	pubs := []*client{
		{pubIdx: 0, topics: [][]byte{topic(0), topic(2)}, seqs: []uint64{3, 3}},
		{pubIdx: 1, topics: [][]byte{topic(1), topic(3)}, seqs: []uint64{3, 3}},
	}
	key := func(i int) StreamKey { return StreamKey{Run: 7, Publisher: uint32(i % 2), Topic: fnv64(topic(i))} }
	back := make([]*client, 5)
	for i := range back {
		back[i] = &client{tracker: NewTracker()}
	}
	for _, q := range []uint64{0, 1, 2} { // session 0: all of its own
		back[0].tracker.Observe(key(0), q)
	}
	for _, q := range []uint64{0, 2, 1, 1} { // session 1: reordered and duplicated
		back[1].tracker.Observe(key(1), q)
	}
	back[2].tracker.Observe(key(2), 0) // session 2: two lost at the tail
	back[3].tracker.Observe(key(0), 0) // session 3: none of its own, one of session 0's
	back = back[:4]
	s := &scenario{runID: 7, sum: &Summary{}}
	tk := &TakeoverStats{Sessions: 4, Published: 12}
	s.countTakeover(tk, back, pubs)
	want := TakeoverStats{Sessions: 4, Published: 12, Reconnected: 4, Expected: 12, Received: 7, Lost: 5,
		Duplicated: 1, Reordered: 1, Misdelivered: 1, Complete: 2}
	if *tk != want {
		t.Fatalf("got  %+v\nwant %+v", *tk, want)
	}
	if err := tk.Err(4, 3); !errors.Is(err, ErrTakeover) || !strings.Contains(err.Error(), "5 lost, 1 duplicated, 1 delivered") {
		t.Fatalf("err %v", err)
	}
	back[3].failed = true // a session that never reconnected loses all of its own
	tk = &TakeoverStats{Sessions: 4, Published: 12}
	s.countTakeover(tk, back, pubs)
	if tk.Reconnected != 3 || tk.Lost != 5 || tk.Misdelivered != 0 {
		t.Fatalf("failed session: %+v", *tk)
	}
	ok := TakeoverStats{Sessions: 1, Published: 3, Reconnected: 1, Expected: 3, Received: 3, Complete: 1}
	if err := ok.Err(1, 3); err != nil {
		t.Fatal(err)
	}
	if err := ok.Err(0, 3); !errors.Is(err, ErrTakeover) {
		t.Fatal("a session not present must fail")
	}
}

// TestE2ERoutesTakeoverFlockMQ runs both scenarios against the flockmq
// binary in its own process, on one node.
func TestE2ERoutesTakeoverFlockMQ(t *testing.T) {
	p := nodetest.Start(t, nodetest.Build(t), "-store", "memory", "-sys-interval", "0", "-loops", "1")
	t.Run("routes", func(t *testing.T) {
		checkRoutes(t, runOK(t, routesConfig(p.Addr)), 1)
	})
	t.Run("takeover", func(t *testing.T) {
		checkTakeover(t, runOK(t, takeoverConfig(p.Addr)))
	})
}
