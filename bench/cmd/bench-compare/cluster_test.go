package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/bench"
)

func fakeNode(name, dir string, limit time.Duration) brokerSpec {
	s := fakeSpec()
	s.Name, s.LogReady, s.StartLimit = name, servingLogged, limit
	s.Env = append(s.Env, "BENCH_COMPARE_FAKE_CLUSTER="+dir)
	return s
}

// TestStartBrokersTogether: the nodes of a cluster only serve once all are
// up, so startBrokers must start every process before it waits for any;
// one node alone never becomes ready, and its start fails cleanly.
func TestStartBrokersTogether(t *testing.T) {
	dir, marks := t.TempDir(), t.TempDir()
	specs := []brokerSpec{fakeNode("n1", marks, 10*time.Second), fakeNode("n2", marks, 10*time.Second), fakeNode("n3", marks, 10*time.Second)}
	bases := []string{filepath.Join(dir, "n1"), filepath.Join(dir, "n2"), filepath.Join(dir, "n3")}
	bs, err := startBrokers(context.Background(), specs, dir, bases)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		c.Close()
	}
	for _, b := range bs {
		if err := b.Stop(5 * time.Second); err != nil {
			t.Fatalf("stop %s: %v", b.Name, err)
		}
		if _, err := os.Stat(b.DataDir); !os.IsNotExist(err) {
			t.Fatalf("%s: data directory left: %v", b.Name, err)
		}
	}

	alone := t.TempDir()
	_, err = startBroker(context.Background(), fakeNode("n1", alone, 500*time.Millisecond), dir, filepath.Join(dir, "alone"))
	if err == nil || !strings.Contains(err.Error(), "not accepting") {
		t.Fatalf("a lone node: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "n1-data-*")); len(left) != 0 {
		t.Fatalf("data directories left: %q", left)
	}
}

// TestClusterSpecs: three nodes as `make run` starts FlockMQ plus the
// cluster flags, on distinct ports, each joining all three.
func TestClusterSpecs(t *testing.T) {
	specs, err := clusterSpecs("bin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("%d nodes", len(specs))
	}
	ports := map[string]bool{}
	var gossip []string
	for i, s := range specs {
		if s.LogReady == nil || s.StartLimit != time.Minute || len(s.Env) != 0 || s.Port == 0 {
			t.Fatalf("%s: %+v", s.Name, s)
		}
		argv, err := s.Argv(s.Port, "", "DATA")
		if err != nil {
			t.Fatal(err)
		}
		flags := map[string]string{}
		for j := 1; j+1 < len(argv); j += 2 {
			flags[argv[j]] = argv[j+1]
		}
		name := "n" + string(rune('1'+i))
		if argv[0] != "bin/flockmq" || len(argv) != 21 || flags["-admin-listen"] != "127.0.0.1:0" || s.Name != name || flags["-node-id"] != name ||
			flags["-listen"] != loopback(s.Port) || flags["-data-dir"] != "DATA" || flags["-cluster-bind"] != "127.0.0.1" ||
			flags["-bootstrap-expect"] != "3" {
			t.Fatalf("%s argv %q", s.Name, argv)
		}
		for _, f := range []string{"-listen", "-gossip-port", "-raft-port", "-peer-port"} {
			p := flags[f]
			if f == "-listen" {
				p = strings.TrimPrefix(p, "127.0.0.1:")
			}
			if ports[p] {
				t.Fatalf("port %s twice", p)
			}
			ports[p] = true
		}
		gossip = append(gossip, "127.0.0.1:"+flags["-gossip-port"])
		if i == 2 && flags["-join"] != strings.Join(gossip, ",") {
			t.Fatalf("join %q, gossip %q", flags["-join"], gossip)
		}
	}
	single := singleSpec("bin")
	argv, err := single.Argv(1883, "", "DATA")
	if err != nil || single.Name != "single" || single.LogReady == nil || len(argv) != 9 || argv[1] != "-listen" {
		t.Fatalf("single %q %v", argv, err)
	}
}

// TestClusterRowsParse: every row's command line, on the cluster and on
// the single node, is one the tool accepts, with the roles on the nodes
// issue 11 names.
func TestClusterRowsParse(t *testing.T) {
	nodes := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	for _, p := range []clusterPlan{fullClusterPlan(), quickClusterPlan()} {
		for _, r := range clusterRows(p) {
			for _, addrs := range [][]string{nodes, nodes[:1]} {
				args := append(append([]string(nil), r.Args...), r.hostArgs(addrs)...)
				cfg, err := bench.ParseFlags(r.Scenario, args, io.Discard)
				if err != nil {
					t.Fatalf("%s %q: %v", r.ID, args, err)
				}
				if len(addrs) == 1 && (len(cfg.PubHosts) > 0 || len(cfg.SubHosts) > 0 || len(cfg.ReconnectHosts) > 0) {
					t.Fatalf("%s: role hosts on the single node: %q", r.ID, args)
				}
				if r.Acked != (cfg.QoS > 0) {
					t.Fatalf("%s: Acked %v, QoS %d", r.ID, r.Acked, cfg.QoS)
				}
			}
		}
	}
	full := map[string]string{}
	for _, r := range clusterRows(fullClusterPlan()) {
		full[r.ID] = strings.Join(append(r.Args, r.hostArgs(nodes)...), " ")
	}
	for id, want := range map[string]string{
		"fanin-qos1-v5": "-c 8 --qos 1 --mqtt 5 --size 64 --duration 10s --drain 5s --host 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 --pub-host 127.0.0.1:1 --sub-host 127.0.0.1:2",
		"fanout-qos0":   "-c 300 --qos 0 --size 64 --duration 10s --drain 5s --host 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 --pub-host 127.0.0.1:1 --sub-host 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
		"routes":        "-c 100 --topics 1000 --probe 1000 --qos 1 --duration 2m0s --drain 5s --host 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 --pub-host 127.0.0.1:2,127.0.0.1:3 --sub-host 127.0.0.1:1",
		"takeover":      "-c 10000 --count 10 --qos 1 --session-expiry 300 --drain 30s --host 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 --pub-host 127.0.0.1:3 --sub-host 127.0.0.1:1 --reconnect-host 127.0.0.1:2",
	} {
		if full[id] != want {
			t.Errorf("%s:\ngot  %s\nwant %s", id, full[id], want)
		}
	}
	if _, err := selectClusterRows(clusterRows(fullClusterPlan()), "routes, nope"); err == nil {
		t.Fatal("an unknown row id must be refused")
	}
	if got, err := selectClusterRows(clusterRows(fullClusterPlan()), "takeover,routes"); err != nil || len(got) != 2 || got[0].ID != "takeover" {
		t.Fatalf("select: %v %v", got, err)
	}
}

// clusterFixture is one result per kind: fan-in that meets its goal,
// fan-out at QoS 0 with loss, routes where one single-node run did not
// converge, and takeover.
func clusterFixture() []clusterResult {
	rows := clusterRows(fullClusterPlan())
	byID := map[string]clusterRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	cpu := func(names ...string) []nodeCPU {
		var out []nodeCPU
		for _, n := range names {
			out = append(out, nodeCPU{Name: n, CPU: cpuTotal{CPU: 5 * time.Second, Wall: 10 * time.Second, Runs: 1}})
		}
		return out
	}
	flow := func(rate float64, lost uint64) *bench.Summary {
		s := &bench.Summary{}
		s.Pub.DeliveredRate, s.Pub.Expected, s.Pub.Delivered, s.Seq.Lost = rate, 1000, 1000-int64(lost), lost
		return s
	}
	routes := func(secs float64, reached int) *bench.Summary {
		return &bench.Summary{RouteWait: &bench.RouteWait{Pairs: 2200, Reached: reached, Seconds: secs},
			Routes: &bench.RouteStats{Sampled: 1100, ProbeHosts: []string{"a", "b"}, Received: 2200, Sent: 2200}}
	}
	takeover := func(p50, p99 float64) *bench.Summary {
		s := &bench.Summary{Takeover: &bench.TakeoverStats{Sessions: 10000, Expected: 100000, Received: 100000, Reconnected: 10000}}
		s.Conn.Connack = bench.Latency{Count: 10000, P50: p50 * 1e3, P99: p99 * 1e3}
		s.Conn.SessionPresent = 10000
		return s
	}
	three, one := cpu("n1", "n2", "n3"), cpu("single")
	return []clusterResult{
		{Row: byID["fanin-qos1-v5"], Runs: map[string][]setRun{
			setCluster: {{Sum: flow(300e3, 0), CPU: three}, {Sum: flow(200e3, 0), CPU: three}, {Sum: flow(250e3, 0), CPU: three}},
			setSingle:  {{Sum: flow(400e3, 0), CPU: one}, {Sum: flow(500e3, 0), CPU: one}, {Sum: flow(450e3, 0), CPU: one}}}},
		{Row: byID["fanout-qos0"], Runs: map[string][]setRun{
			setCluster: {{Sum: flow(1e6, 100), CPU: three}},
			setSingle:  {{Err: "starting the single node: boom", CPU: nil}}}},
		{Row: byID["routes"], Runs: map[string][]setRun{
			setCluster: {{Sum: routes(1.5, 2200), CPU: three}, {Sum: routes(2.5, 2200), CPU: three}},
			setSingle:  {{Sum: routes(0.001, 2200), CPU: one}, {Sum: routes(9, 2000), CPU: one, Err: "exit status 1"}}}},
		{Row: byID["takeover"], Runs: map[string][]setRun{
			setCluster: {{Sum: takeover(58.4, 95.3), CPU: three}},
			setSingle:  {{Sum: takeover(7.3, 16.2), CPU: one}}},
			Notes: []string{"n2 exited during the run"}},
	}
}

func TestRenderCluster(t *testing.T) {
	res := clusterFixture()
	e := env{Date: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), NProc: 2, CPUModel: "Test CPU", GoVersion: "go1.26",
		FlockMQ: "abc1234", Rounds: 3, MakeCommand: "make bench-cluster"}
	sec := renderCluster(e, res, map[string][]string{setCluster: {"bin/flockmq -node-id n1"}, setSingle: {"bin/flockmq -listen x"}})
	for _, want := range []string{
		clusterTitle + "\n",
		"Written by `make bench-cluster` (bench/cmd/bench-compare -cluster) on 2026-12-05 10:00 UTC",
		"- Machine: 2 CPUs (`nproc`), Test CPU",
		"- Software: go1.26; FlockMQ abc1234",
		"| 250,000 | 450,000 | 0.56 (goal ≥ 0.50: met) | lost/dup/reordered 0/0/0 | lost/dup/reordered 0/0/0 |",
		"| 1,000,000 | failed | n/a | lost 100 of 1,000 (10.000 %; QoS 0 may drop) | n/a (no run finished) |",
		"| 2.00 | 0.00 (1 of 2 runs) | — | 4,400 of 4,400 (probe node, topic) routed",
		"| 4,200 of 4,400 (probe node, topic) routed",
		"| 58.4 / 95.3 | 7.3 / 16.2 | — | session present 10,000 of 10,000; received 100,000 of 100,000; lost/dup/reordered/misdelivered 0/0/0/0 |",
		"| n1 0.50, n2 0.50, n3 0.50 | 1.50 (45.0 CPU s) | 0.50 (15.0 CPU s) |",
		"  - single node, run 2: ",
		"error: exit status 1",
		"  - note: n2 exited during the run",
		"bin/flockmq -node-id n1\n# single node, likewise\nbin/flockmq -listen x\n",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("section lacks %q\n%s", want, sec)
		}
	}
	// The goal is judged on the medians.
	res[0].Runs[setCluster] = res[0].Runs[setCluster][:1]
	res[0].Runs[setCluster][0].Sum.Pub.DeliveredRate = 100e3
	if sec := renderCluster(e, res, nil); !strings.Contains(sec, "0.22 (goal ≥ 0.50: **not met**)") {
		t.Errorf("goal not judged:\n%s", sec)
	}
	// The section goes after, or in place of, its own heading only.
	doc := "# B\n\n" + sectionTitle + "\n\nkeep\n"
	once := replaceSection(doc, clusterTitle, sec)
	if !strings.HasPrefix(once, doc+"\n"+clusterTitle) || replaceSection(once, clusterTitle, sec) != once {
		t.Fatalf("doc:\n%s", once)
	}
}
