package main

// The -cluster mode: issue 11's cluster figures. Three FlockMQ nodes on
// loopback, each started as `make run` starts a broker plus the cluster
// flags, against one FlockMQ node started as `make run` starts it, the two
// never at the same time; written to the "Cluster (three nodes on
// loopback)" section of docs/benchmarks.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flockmq/flockmq/bench"
)

// clusterTitle is the heading the -cluster mode owns in docs/benchmarks.md.
const clusterTitle = "## Cluster (three nodes on loopback)"

// clusterNodes is the size of the cluster.
const clusterNodes = 3

// Row kinds: how a row's figures are read from the tool's summary.
const (
	kindFlow     = "flow"     // delivered msg/s and the sequence checks
	kindRoutes   = "routes"   // seconds until the sampled routes reach every probe node
	kindTakeover = "takeover" // CONNACK latency, session present, offline messages received
)

// clusterPlan sizes the cluster rows: the full run, or a short smoke run.
type clusterPlan struct {
	Rounds         int
	Duration       time.Duration // publish phase of the flow rows
	Drain          time.Duration // of the flow and routes rows
	RouteConns     int
	RoutesPerConn  int
	RouteProbe     int           // random sampled topics, besides each connection's last
	RouteLimit     time.Duration // longest wait for convergence
	Sessions       int
	SessionMsgs    int
	TakeoverDrain  time.Duration
	FanoutSubs     int
	FaninPubs      int
	ClusterStartup time.Duration // longest wait for a node to serve
}

func fullClusterPlan() clusterPlan {
	return clusterPlan{Rounds: 3, Duration: 10 * time.Second, Drain: 5 * time.Second,
		RouteConns: 100, RoutesPerConn: 1000, RouteProbe: 1000, RouteLimit: 120 * time.Second,
		Sessions: 10000, SessionMsgs: 10, TakeoverDrain: 30 * time.Second,
		FanoutSubs: 300, FaninPubs: 8, ClusterStartup: 60 * time.Second}
}

func quickClusterPlan() clusterPlan {
	p := fullClusterPlan()
	p.Rounds, p.Duration, p.Drain = 1, 2*time.Second, 2*time.Second
	p.RouteConns, p.RouteLimit = 10, 60*time.Second
	p.Sessions, p.TakeoverDrain = 1000, 10*time.Second
	return p
}

// clusterRow is one row of the cluster table: a flockmq-bench scenario and
// the nodes each of its roles uses on the cluster (indices into the three
// nodes); on the single node every role uses that node.
type clusterRow struct {
	ID       string
	Title    string
	Figure   string // the table's figure column
	Kind     string
	Scenario string
	Args     []string
	Pub      []int // --pub-host
	Sub      []int // --sub-host
	Re       []int // --reconnect-host
	Acked    bool  // QoS 1/2: lost, duplicated and reordered must be 0
	Goal     float64
}

// clusterRows is the table of issue 11 (64-byte payloads, MQTT 5).
func clusterRows(p clusterPlan) []clusterRow {
	flow := func(args ...string) []string {
		return append(args, "--size", "64", "--duration", p.Duration.String(), "--drain", p.Drain.String())
	}
	subs := p.RouteConns * p.RoutesPerConn
	return []clusterRow{
		{ID: "fanin-qos1-v5", Kind: kindFlow, Scenario: "fanin", Acked: true, Goal: 0.5,
			Title:  fmt.Sprintf("cross-node fan-in: %d publishers on node 1 → 1 wildcard subscriber on node 2, QoS 1, MQTT 5", p.FaninPubs),
			Figure: "delivered msg/s, ↑", Pub: []int{0}, Sub: []int{1},
			Args: flow("-c", strconv.Itoa(p.FaninPubs), "--qos", "1", "--mqtt", "5")},
		{ID: "fanout-qos0", Kind: kindFlow, Scenario: "fanout",
			Title:  fmt.Sprintf("fan-out: 1 publisher on node 1 → %d subscribers spread over the 3 nodes, QoS 0", p.FanoutSubs),
			Figure: "delivered msg/s, ↑", Pub: []int{0}, Sub: []int{0, 1, 2},
			Args: flow("-c", strconv.Itoa(p.FanoutSubs), "--qos", "0")},
		{ID: "fanout-qos1", Kind: kindFlow, Scenario: "fanout", Acked: true,
			Title:  fmt.Sprintf("fan-out: 1 publisher on node 1 → %d subscribers spread over the 3 nodes, QoS 1", p.FanoutSubs),
			Figure: "delivered msg/s, ↑", Pub: []int{0}, Sub: []int{0, 1, 2},
			Args: flow("-c", strconv.Itoa(p.FanoutSubs), "--qos", "1")},
		{ID: "routes", Kind: kindRoutes, Scenario: "routes", Acked: true,
			Title: fmt.Sprintf("route convergence: %s subscriptions (%d connections × %s, distinct topics) on node 1; "+
				"the last of each connection and %s random ones probed from nodes 2 and 3",
				thousands(int64(subs)), p.RouteConns, thousands(int64(p.RoutesPerConn)), thousands(int64(p.RouteProbe))),
			Figure: "s from the last SUBACK until every sampled topic is routable from both nodes, ↓",
			Pub:    []int{1, 2}, Sub: []int{0},
			Args: []string{"-c", strconv.Itoa(p.RouteConns), "--topics", strconv.Itoa(p.RoutesPerConn),
				"--probe", strconv.Itoa(p.RouteProbe), "--qos", "1", "--duration", p.RouteLimit.String(), "--drain", p.Drain.String()}},
		{ID: "takeover", Kind: kindTakeover, Scenario: "takeover", Acked: true,
			Title: fmt.Sprintf("takeover: %s persistent sessions (clean start 0, expiry 300 s) subscribe on node 1 and disconnect; "+
				"%d QoS 1 messages each published from node 3; all reconnect to node 2", thousands(int64(p.Sessions)), p.SessionMsgs),
			Figure: "reconnect CONNACK p50 / p99, ms, ↓",
			Pub:    []int{2}, Sub: []int{0}, Re: []int{1},
			Args: []string{"-c", strconv.Itoa(p.Sessions), "--count", strconv.Itoa(p.SessionMsgs), "--qos", "1",
				"--session-expiry", "300", "--drain", p.TakeoverDrain.String()}},
	}
}

// hostArgs are the row's host flags for a broker set with MQTT addresses
// addrs: the roles' nodes on the cluster, --host alone on a single node.
func (r clusterRow) hostArgs(addrs []string) []string {
	args := []string{"--host", strings.Join(addrs, ",")}
	if len(addrs) == 1 {
		return args
	}
	pick := func(nodes []int) string {
		var out []string
		for _, n := range nodes {
			out = append(out, addrs[n])
		}
		return strings.Join(out, ",")
	}
	for _, role := range []struct {
		flag  string
		nodes []int
	}{{"--pub-host", r.Pub}, {"--sub-host", r.Sub}, {"--reconnect-host", r.Re}} {
		if len(role.nodes) > 0 {
			args = append(args, role.flag, pick(role.nodes))
		}
	}
	return args
}

// brokerSet is the cluster or the single node.
type brokerSet struct {
	ID    string // in file names
	Name  string // in the table
	specs func() ([]brokerSpec, error)
}

// Set ids.
const (
	setCluster = "cluster"
	setSingle  = "single"
)

// servingLogged says whether a FlockMQ log shows that it serves MQTT on
// addr, which it does once raft has a leader.
func servingLogged(log []byte, addr string) bool {
	return bytes.Contains(log, []byte(`"flockmq serving MQTT"`)) && bytes.Contains(log, []byte("listen="+addr))
}

// clusterSpecs are the three nodes: each started as `make run` starts
// FlockMQ (bin/flockmq with its defaults, a fresh data directory) plus its
// node id and the cluster flags, on free loopback ports picked now.
func clusterSpecs(binDir string, startup time.Duration) ([]brokerSpec, error) {
	ports, err := distinctPorts(4 * clusterNodes)
	if err != nil {
		return nil, err
	}
	var seeds []string
	for i := range clusterNodes {
		seeds = append(seeds, loopback(ports[4*i+1]))
	}
	join := strings.Join(seeds, ",")
	specs := make([]brokerSpec, clusterNodes)
	for i := range specs {
		name := fmt.Sprintf("n%d", i+1)
		gossip, raft, peer := ports[4*i+1], ports[4*i+2], ports[4*i+3]
		specs[i] = brokerSpec{Name: name, Port: ports[4*i], LogReady: servingLogged, StartLimit: startup,
			Argv: func(port int, _, data string) ([]string, error) {
				return []string{filepath.Join(binDir, "flockmq"), "-node-id", name, "-listen", loopback(port),
					"-data-dir", data, "-cluster-bind", "127.0.0.1", "-gossip-port", strconv.Itoa(gossip),
					"-raft-port", strconv.Itoa(raft), "-peer-port", strconv.Itoa(peer), "-join", join,
					"-bootstrap-expect", strconv.Itoa(clusterNodes), "-admin-listen", "127.0.0.1:0"}, nil
			}}
	}
	return specs, nil
}

// singleSpec is one FlockMQ as bench-compare starts it (specs), named
// "single", which also waits for its serving line.
func singleSpec(binDir string) brokerSpec {
	s := specs(binDir, "")[0]
	s.Name, s.LogReady = "single", servingLogged
	return s
}

// distinctPorts returns n different loopback ports, each free for TCP and
// UDP (gossip uses both) when it was picked.
func distinctPorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n {
			return nil, errors.New("bench-compare: no free loopback ports")
		}
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if seen[p] {
			continue
		}
		pc, err := net.ListenPacket("udp", loopback(p))
		if err != nil {
			continue
		}
		pc.Close()
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// setRun is one run of a row on one broker set.
type setRun struct {
	Sum  *bench.Summary // nil when the tool printed no summary
	Err  string         // the tool's failure, or the set's start failure
	CPU  []nodeCPU      // per broker process, over the tool's run
	Wall time.Duration  // the tool's run
}

// nodeCPU is one broker process's CPU time over a run.
type nodeCPU struct {
	Name string
	CPU  cpuTotal
}

// clusterResult is one row's runs on both sets.
type clusterResult struct {
	Row      clusterRow
	Runs     map[string][]setRun // by set id
	Notes    []string
	Commands []string
}

// clusterHarness runs the rows. Main goroutine only.
type clusterHarness struct {
	*harness
	plan     clusterPlan
	sets     []brokerSet
	nodeCmds map[string][]string // per set id, the command lines of its first start
}

// runCluster is bench-compare -cluster.
func runCluster(args []string, bin, out, doc string, quick bool, rounds int, only, makeCmd string, stdout, stderr io.Writer) int {
	pl := fullClusterPlan()
	if quick {
		pl = quickClusterPlan()
	}
	if rounds > 0 {
		pl.Rounds = rounds
	}
	if out == "" {
		out = filepath.Join(bin, "bench-cluster.out")
	}
	for _, b := range []string{"flockmq", "flockmq-bench"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			fmt.Fprintf(stderr, "bench-compare: %v (run `make build`)\n", err)
			return 2
		}
	}
	if err := cleanOut(out); err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	selected, err := selectClusterRows(clusterRows(pl), only)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	if makeCmd == "" {
		makeCmd = "bench-compare " + strings.Join(args, " ")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := &clusterHarness{harness: &harness{bin: bin, out: out, progress: stderr}, plan: pl,
		nodeCmds: map[string][]string{}}
	h.sets = []brokerSet{
		{ID: setCluster, Name: "3 nodes", specs: func() ([]brokerSpec, error) { return clusterSpecs(bin, pl.ClusterStartup) }},
		{ID: setSingle, Name: "single node", specs: func() ([]brokerSpec, error) { return []brokerSpec{singleSpec(bin)}, nil }},
	}
	e := gatherEnv(ctx, bin, "", out)
	e.Rounds, e.Quick, e.MakeCommand = pl.Rounds, quick, makeCmd
	fmt.Fprintf(stderr, "bench-compare -cluster: %d rows x 2 broker sets x %d rounds; %d CPUs, nothing pinned; load %s\n",
		len(selected), pl.Rounds, e.NProc, e.LoadStart)
	var results []clusterResult
	for i, r := range selected {
		fmt.Fprintf(stderr, "\n=== bench-compare -cluster row %d/%d: %s\n", i+1, len(selected), r.Title)
		results = append(results, h.runRow(ctx, r))
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench-compare: interrupted; the brokers are stopped, no section written")
			return 130
		}
	}
	e.LoadEnd = uptime(ctx)
	section := renderCluster(e, results, h.nodeCmds)
	return publishSection(out, doc, clusterTitle, section, stdout, stderr)
}

func selectClusterRows(all []clusterRow, only string) ([]clusterRow, error) {
	if only == "" {
		return all, nil
	}
	var out []clusterRow
	for _, id := range strings.Split(only, ",") {
		found := false
		for _, r := range all {
			if r.ID == strings.TrimSpace(id) {
				out, found = append(out, r), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown row %q", id)
		}
	}
	return out, nil
}

// runRow runs r Rounds times on each set, alternating the sets within a
// round; every run has freshly started brokers.
func (h *clusterHarness) runRow(ctx context.Context, r clusterRow) clusterResult {
	res := clusterResult{Row: r, Runs: map[string][]setRun{}}
	for round := 1; round <= h.plan.Rounds && ctx.Err() == nil; round++ {
		for _, set := range h.sets {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(h.progress, "bench-compare: round %d/%d: %s, fresh %s\n", round, h.plan.Rounds, r.ID, set.Name)
			run := h.runSet(ctx, &res, set, fmt.Sprintf("%s-%s-%d", r.ID, set.ID, round))
			res.Runs[set.ID] = append(res.Runs[set.ID], run)
		}
	}
	return res
}

// runSet starts set's brokers, runs the row's scenario once against them,
// measuring each broker's CPU time over the run, and stops them.
func (h *clusterHarness) runSet(ctx context.Context, res *clusterResult, set brokerSet, id string) setRun {
	r := res.Row
	note := func(err error) setRun {
		msg := fmt.Sprintf("%s: %v", id, err)
		fmt.Fprintf(h.progress, "bench-compare: %s\n", msg)
		res.Notes = append(res.Notes, msg)
		return setRun{Err: err.Error()}
	}
	specs, err := set.specs()
	if err != nil {
		return note(err)
	}
	logBases := make([]string, len(specs))
	for i, s := range specs {
		logBases[i] = filepath.Join(h.out, id+"-"+s.Name)
	}
	brokers, err := startBrokers(ctx, specs, h.out, logBases)
	if err != nil {
		return note(fmt.Errorf("starting the %s: %w", set.Name, err))
	}
	defer func() {
		for _, b := range brokers {
			h.stop(&res.Notes, b)
		}
	}()
	var addrs []string
	for _, b := range brokers {
		addrs = append(addrs, b.Addr())
		fmt.Fprintf(h.progress, "bench-compare: %s pid %d on %s, idle RSS %d KiB\n", b.Name, b.PID(), b.Addr(), b.IdleKB)
		if len(h.nodeCmds[set.ID]) < len(brokers) {
			h.nodeCmds[set.ID] = append(h.nodeCmds[set.ID], shellLine(b.Env, b.Argv))
		}
	}
	args := append(append(append([]string{r.Scenario}, r.Args...), r.hostArgs(addrs)...), "--json")
	meters := make([]*cpuMeter, len(brokers))
	for i, b := range brokers {
		meters[i] = newCPUMeter(func(string) (int, bool) { return b.PID(), true })
		_ = meters[i].Round(b.Name)
	}
	t0 := time.Now()
	out, terr := h.tool(ctx, &res.Commands, id, args, nil)
	run := setRun{Wall: time.Since(t0)}
	for i, b := range brokers {
		meters[i].End()
		run.CPU = append(run.CPU, nodeCPU{Name: b.Name, CPU: meters[i].Total(b.Name)})
	}
	if len(out) > 0 {
		var sum bench.Summary
		if err := json.Unmarshal(out, &sum); err != nil {
			terr = errors.Join(terr, fmt.Errorf("summary JSON: %w", err))
		} else {
			run.Sum = &sum
		}
	}
	if terr != nil {
		run.Err = oneLine(terr.Error())
	}
	return run
}
