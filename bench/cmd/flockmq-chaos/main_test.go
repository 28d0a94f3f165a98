package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestAnalyze checks the history checks on a made-up history, without Docker:
// a loss during a fault whose victim held the subscriber's session is the
// documented limit, the same loss in a calm stretch fails the run, and a
// reorder fails only outside a fault's window.
func TestAnalyze(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cl := &cluster{nodes: []*node{{name: "n1"}, {name: "n2"}, {name: "n3"}}}
	f := &fault{kind: "follower-kill", victim: "n2", start: at(10), restored: at(20), recovered: at(22)}
	subs := []string{"chaos-s1", "chaos-s2", "chaos-s3"}
	homes := []string{"n2", "n3", "n1"}

	build := func(drop func(sub string, seq int) bool, swap bool) *history {
		h := newHistory()
		for i, s := range subs {
			h.conns = append(h.conns, &connRec{client: s, node: homes[i], from: at(0)})
		}
		for seq := 1; seq <= 40; seq++ {
			a := ackRec{pub: "p1", seq: seq, node: "n1", at: at(float64(seq))}
			h.acks = append(h.acks, a)
		}
		for _, s := range subs {
			var ds []delivRec
			for seq := 1; seq <= 40; seq++ {
				if !drop(s, seq) {
					ds = append(ds, delivRec{sub: s, pub: "p1", seq: seq, node: "n1", at: at(float64(seq) + 0.01)})
				}
			}
			if swap && s == "chaos-s3" {
				ds[30], ds[31] = ds[31], ds[30]
			}
			h.delivs = append(h.delivs, ds...)
		}
		return h
	}
	run := func(h *history) (string, []string) {
		return analyze(h, []*fault{f}, at(0.5), at(41), map[string][]string{}, nil,
			[]string{"n1: running", "n2: running", "n3: running"}, cl)
	}

	// s1 (session on n2, the victim) misses 12..15: the documented limit.
	rep, fails := run(build(func(s string, seq int) bool { return s == "chaos-s1" && seq >= 12 && seq <= 15 }, false))
	if len(fails) != 0 || !strings.Contains(rep, "lost under the documented limit 4") {
		t.Fatalf("loss on the victim's subscriber: fails %v\n%s", fails, rep)
	}
	// s2 (on n3, up) misses 12: a failure.
	_, fails = run(build(func(s string, seq int) bool { return s == "chaos-s2" && seq == 12 }, false))
	if len(fails) != 1 || !strings.Contains(fails[0], "both stayed up") {
		t.Fatalf("loss with both nodes up: fails %v", fails)
	}
	// A loss after recovery: a delivery gap.
	_, fails = run(build(func(s string, seq int) bool { return s == "chaos-s3" && seq == 35 }, false))
	if len(fails) != 1 || !strings.Contains(fails[0], "no fault under way") {
		t.Fatalf("loss after recovery: fails %v", fails)
	}
	// A reorder after recovery fails the run.
	_, fails = run(build(func(string, int) bool { return false }, true))
	if len(fails) != 1 || !strings.Contains(fails[0], "out of order") {
		t.Fatalf("reorder after recovery: fails %v", fails)
	}
}

// TestAnalyzeQoS2RoamersFence: a second QoS 2 delivery fails the run, at any
// time; so does a roamer's old connection that receives a message published
// after its next connection's CONNACK, or one the server leaves open; so does
// DISCONNECT 0x9C from a node that was not cut off.
func TestAnalyzeQoS2RoamersFence(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cl := &cluster{nodes: []*node{{name: "n1"}, {name: "n2"}, {name: "n3"}}}
	f := &fault{kind: "partition", victim: "n2", start: at(10), restored: at(20), recovered: at(22)}
	base := func() *history {
		h := newHistory()
		h.conns = append(h.conns, &connRec{client: q2Subscriber, node: "n3", from: at(0)})
		for seq := 1; seq <= 40; seq++ {
			h.acks = append(h.acks, ackRec{pub: q2Publisher, seq: seq, node: "n2", at: at(float64(seq))})
			h.delivs = append(h.delivs, delivRec{sub: q2Subscriber, pub: q2Publisher, seq: seq, node: "n3", at: at(float64(seq) + 0.01)})
		}
		h.roams = []*roamConn{
			{client: "chaos-roam-1", node: "n1", ackAt: at(1), closed: at(5.2), sends: []time.Time{at(2), at(5)}},
			{client: "chaos-roam-1", node: "n2", ackAt: at(5.1), closed: at(40), sends: []time.Time{at(6), at(30)}},
		}
		return h
	}
	run := func(h *history) (string, []string) {
		return analyze(h, []*fault{f}, at(0.5), at(41), map[string][]string{}, nil,
			[]string{"n1: running", "n2: running", "n3: running"}, cl)
	}
	if rep, fails := run(base()); len(fails) != 0 {
		t.Fatalf("clean history: fails %v\n%s", fails, rep)
	}
	h := base()
	h.delivs = append(h.delivs, delivRec{sub: q2Subscriber, pub: q2Publisher, seq: 12, node: "n3", at: at(12.5)})
	if _, fails := run(h); len(fails) != 1 || !strings.Contains(fails[0], "QoS 2 messages were delivered twice") {
		t.Fatalf("QoS 2 duplicate inside a fault: fails %v", fails)
	}
	h = base()
	h.roams[0].sends = append(h.roams[0].sends, at(5.15))
	if _, fails := run(h); len(fails) != 1 || !strings.Contains(fails[0], "two served connections") {
		t.Fatalf("old connection served after the newer CONNACK: fails %v", fails)
	}
	h = base()
	h.roams[0].closed, h.roams[0].forced = at(15.2), true
	if _, fails := run(h); len(fails) != 1 || !strings.Contains(fails[0], "not closed") {
		t.Fatalf("old connection left open: fails %v", fails)
	}
	h = base()
	h.discs = []discRec{{client: "chaos-s1", node: "n2", code: 0x9C, at: at(13)}}
	if _, fails := run(h); len(fails) != 0 {
		t.Fatalf("0x9C on the partitioned node: fails %v", fails)
	}
	h.discs = append(h.discs, discRec{client: "chaos-s2", node: "n3", code: 0x9C, at: at(13)})
	if _, fails := run(h); len(fails) != 1 || !strings.Contains(fails[0], "0x9C") {
		t.Fatalf("0x9C on a majority node: fails %v", fails)
	}
}

// TestBadCommandLine: a fault or log level the checker does not know is a
// usage error (exit 2) that names it, before anything starts.
func TestBadCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-faults", "leader-kill,meteor"}, `-faults: "meteor" is not one of leader-kill`},
		{[]string{"-log-level", "loud"}, `-log-level "loud" is not debug, info, warn or error`},
	} {
		var stdout, stderr strings.Builder
		if code := run(tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q, want it to say %q", tc.args, stderr.String(), tc.want)
		}
	}
}

// TestComposeFiles: -log-level adds an override of every node's
// FLOCKMQ_LOG_LEVEL; without it the compose file is used alone.
func TestComposeFiles(t *testing.T) {
	dir := t.TempDir()
	cl := &cluster{}
	if err := cl.composeFiles(dir); err != nil {
		t.Fatal(err)
	}
	if len(cl.files) != 1 {
		t.Fatalf("files %v, want the compose file alone", cl.files)
	}
	cl.cfg.logLevel = "debug"
	if err := cl.composeFiles(dir); err != nil {
		t.Fatal(err)
	}
	if len(cl.files) != 2 {
		t.Fatalf("files %v, want the compose file and an override", cl.files)
	}
	b, err := os.ReadFile(cl.files[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(string(b), "  "+n+":\n    environment:\n      FLOCKMQ_LOG_LEVEL: debug\n") {
			t.Errorf("override lacks %s's log level:\n%s", n, b)
		}
	}
}
