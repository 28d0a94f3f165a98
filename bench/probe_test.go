package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// TestCountProbes checks the probe accounting on hand-made deliveries: one
// picked connection of each outcome and one that was not picked.
func TestCountProbes(t *testing.T) {
	key := func(i int) StreamKey {
		return StreamKey{Run: 7, Publisher: 0, Topic: fnv64(fmt.Appendf(nil, "flockmq-bench/conn/%d", i))}
	}
	subs := make([]*client, 6)
	for i := range subs {
		subs[i] = &client{idx: i, tracker: NewTracker()}
	}
	subs[5].tracker = nil              // never connected
	subs[0].tracker.Observe(key(0), 0) // received its own, once
	subs[1].tracker.Observe(key(1), 0) // twice
	subs[1].tracker.Observe(key(1), 0)
	// 2 received nothing; 3 received 2's message instead of its own.
	subs[3].tracker.Observe(key(2), 0)
	subs[4].tracker.Observe(key(0), 0) // not picked, yet received 0's message
	own := map[int]StreamKey{0: key(0), 1: key(1), 2: key(2), 3: key(3), 5: key(5)}
	ps := ProbeStats{Connections: len(own), Sent: int64(len(own))}
	seq := countProbes(&ps, subs, own)
	want := ProbeStats{Connections: 5, Sent: 5, Received: 2, Lost: 3, Duplicated: 1, Misdelivered: 2}
	if ps != want {
		t.Fatalf("got %+v\nwant %+v", ps, want)
	}
	if seq.Lost != 3 || seq.Duplicated != 1 || seq.Received != 5 || seq.Streams != 4 {
		t.Fatalf("sequence figures %+v", seq)
	}
	err := ps.Err()
	if !errors.Is(err, ErrProbe) || !strings.Contains(err.Error(), "3 lost, 1 duplicated, 2 delivered") {
		t.Fatalf("error %v", err)
	}

	// Exactly one each: no error. A publisher that sent fewer than it
	// picked is an error even when nothing else is wrong.
	ok := ProbeStats{Connections: 1, Sent: 1}
	if got := countProbes(&ok, subs[:1], map[int]StreamKey{0: key(0)}); ok.Received != 1 || got.Lost != 0 || ok.Err() != nil {
		t.Fatalf("clean probe: %+v %+v %v", ok, got, ok.Err())
	}
	ok.Sent = 0
	if !errors.Is(ok.Err(), ErrProbe) {
		t.Fatal("a probe that was never sent must fail")
	}
}

func TestProbeFlags(t *testing.T) {
	cfg, err := ParseFlags("conn", []string{"-c", "20", "--probe", "5"}, io.Discard)
	if err != nil || cfg.Probe != 5 || cfg.Filter != "flockmq-bench/conn/%i" || cfg.Topic != cfg.Filter {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	cfg, err = ParseFlags("conn", []string{"-c", "20", "--probe", "5", "--filter", "x/%i"}, io.Discard)
	if err != nil || cfg.Topic != "x/%i" {
		t.Fatalf("--filter alone sets the probe topic too: %+v %v", cfg, err)
	}
	cfg, err = ParseFlags("conn", []string{"-c", "20", "--probe", "5", "--filter", "x/%i/#", "--topic", "x/%i/y"}, io.Discard)
	if err != nil || cfg.Topic != "x/%i/y" || cfg.Filter != "x/%i/#" {
		t.Fatalf("filter and topic: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"-c", "20", "--probe", "21"},
		{"-c", "20", "--probe", "-1"},
		{"-c", "20", "--probe", "5", "--filter", "same/topic"},
		{"-c", "20", "--probe", "5", "--filter", "x/%i/#"}, // the probe cannot publish to a filter
	} {
		if _, err := ParseFlags("conn", bad, io.Discard); !errors.Is(err, ErrConfig) {
			t.Errorf("%v: got %v, want ErrConfig", bad, err)
		}
	}
	if _, err := ParseFlags("pairs", []string{"--probe", "1"}, io.Discard); !errors.Is(err, ErrConfig) {
		t.Errorf("--probe on pairs: got %v", err)
	}
}

// TestCheckFileLimit: the row of issue 5 fits under this machine's 20,000
// descriptors with the default flags on one loop; a count that does not
// fit is refused with the largest one that does; and openFiles counts.
func TestCheckFileLimit(t *testing.T) {
	cfg, err := ParseFlags("conn", []string{"-c", "19900", "--probe", "1000", "--loops", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	const open = 9 // stdio, two cgroup files, the Go poller and two inherited, as seen here
	if err := checkFileLimit(&cfg, 20000, 20000, open); err != nil {
		t.Fatal(err)
	}
	fit := 20000 - filesReserved(&cfg, open) - 1 // the probe publisher
	cfg.Clients = fit
	if err := checkFileLimit(&cfg, 20000, 20000, open); err != nil {
		t.Fatalf("-c %d: %v", fit, err)
	}
	cfg.Clients = fit + 1
	err = checkFileLimit(&cfg, 20000, 20000, open)
	if !errors.Is(err, ErrFileLimit) || !strings.Contains(err.Error(), fmt.Sprintf("Use -c %d at most", fit)) {
		t.Fatalf("-c %d: %v", fit+1, err)
	}
	pairs, err := ParseFlags("pairs", []string{"-c", "10000", "--loops", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkFileLimit(&pairs, 20000, 20000, open); !errors.Is(err, ErrFileLimit) {
		t.Fatalf("10,000 pairs are 20,000 connections: %v", err)
	}
	if n := openFiles(); n < 3 || n > 1000 {
		t.Fatalf("openFiles %d: stdio at least", n)
	}
	// Run refuses before it connects anywhere.
	soft, _, err := FileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft > 1<<24 {
		t.Skipf("open-file limit %d: too high to check Run's refusal", soft)
	}
	cfg.Clients, cfg.Probe = int(soft), 0
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrFileLimit) {
		t.Fatalf("Run with -c %d under a limit of %d: %v", cfg.Clients, soft, err)
	}
}

func probeConfig(addr string, pid int) Config {
	cfg := e2eConfig(addr, "conn")
	cfg.Clients, cfg.Probe, cfg.Count, cfg.Duration, cfg.PID = 300, 50, 0, 50*time.Millisecond, pid
	cfg.Drain = 5 * time.Second
	return cfg
}

// checkProbeOK asserts that every probe arrived exactly once, and nothing
// else did.
func checkProbeOK(t *testing.T, cfg Config) {
	t.Helper()
	sum := runOK(t, cfg)
	pr := sum.Probe
	want := ProbeStats{Connections: 50, Sent: 50, Received: 50}
	if pr == nil {
		t.Fatal("no probe figures")
	}
	got := *pr
	got.Seconds, got.Latency = 0, Latency{}
	if got != want {
		t.Fatalf("probe %+v", *pr)
	}
	if pr.Latency.Count != 50 || pr.Latency.P50 <= 0 || sum.Pub.Delivered != 50 || sum.Pub.Expected != 50 {
		t.Fatalf("latency %+v, publish %+v", pr.Latency, sum.Pub)
	}
	if sum.Seq.Lost != 0 || sum.Seq.Duplicated != 0 || sum.Seq.Streams != 50 || sum.Pub.Foreign != 0 {
		t.Fatalf("sequence figures %+v, publish %+v", sum.Seq, sum.Pub)
	}
	// The 300 held connections and the probe publisher.
	if sum.Conn.Connected != 301 || sum.Conn.RSSAfterKB <= 0 || sum.Conn.RSS1MGiB <= 0 {
		t.Fatalf("connections %+v", sum.Conn)
	}
}

func TestE2EProbe(t *testing.T) {
	m := startMosquitto(t)
	for _, tc := range []struct {
		v   codec.Version
		qos byte
	}{{codec.V5, 0}, {codec.V311, 1}, {codec.V5, 2}} {
		t.Run(fmt.Sprintf("v%d/qos%d", tc.v, tc.qos), func(t *testing.T) {
			cfg := probeConfig(m.addr, m.pid)
			cfg.Version, cfg.QoS = tc.v, tc.qos
			checkProbeOK(t, cfg)
		})
	}
}

// TestE2EProbeLost publishes the probes to topics nobody subscribed to: all
// must be reported lost, with ErrProbe.
func TestE2EProbeLost(t *testing.T) {
	m := startMosquitto(t)
	cfg := probeConfig(m.addr, m.pid)
	cfg.Filter, cfg.Topic = "flockmq-bench/conn/%i", "flockmq-bench/nobody/%i"
	cfg.Drain = 300 * time.Millisecond // the probes never come
	sum, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrProbe) || !strings.Contains(err.Error(), "50 lost") {
		t.Fatalf("want ErrProbe with 50 lost, got %v", err)
	}
	if pr := sum.Probe; pr == nil || pr.Sent != 50 || pr.Lost != 50 || pr.Received != 0 || sum.Seq.Lost != 50 {
		t.Fatalf("probe %+v seq %+v", sum.Probe, sum.Seq)
	}
}

// TestE2EProbeFlockMQ runs the probe against the flockmq binary in its own
// process, as bench-maxconn does.
func TestE2EProbeFlockMQ(t *testing.T) {
	p := nodetest.Start(t, nodetest.Build(t), "-store", "memory", "-sys-interval", "0", "-loops", "1")
	cfg := probeConfig(p.Addr, p.Cmd.Process.Pid)
	cfg.QoS = 1
	checkProbeOK(t, cfg)
}
