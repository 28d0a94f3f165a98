package main

import (
	"fmt"
	"strings"

	"github.com/flockmq/flockmq/bench"
)

// setFigures are one broker set's results for a row, over its runs.
type setFigures struct {
	Runs, Failed int       // runs with and without a summary
	Main         []float64 // the row's figure per run: msg/s, s (converged runs only) or CONNACK p50 ms
	P99          []float64 // takeover: CONNACK p99 ms per run
	// Summed over the runs with a summary.
	Lost, Dup, Reord, Misdelivered uint64
	Expected, Delivered            int64 // flow: expected and delivered; routes: checks sent and arrived; takeover: messages
	Present, Sessions              int   // takeover
	Reached, Pairs                 int   // the route waits (routes: the convergence itself)
	RouteSecs                      []float64
	ToolCPU                        []float64
	CPU                            []nodeCPU // per broker process, summed
}

// figuresOf reads a row's figures from its runs on one set.
func figuresOf(kind string, runs []setRun) setFigures {
	var f setFigures
	for _, run := range runs {
		for i, c := range run.CPU {
			if i == len(f.CPU) {
				f.CPU = append(f.CPU, nodeCPU{Name: c.Name})
			}
			f.CPU[i].CPU = f.CPU[i].CPU.add(c.CPU)
		}
		s := run.Sum
		if s == nil {
			f.Failed++
			continue
		}
		f.Runs++
		f.ToolCPU = append(f.ToolCPU, s.CPU.Cores)
		if w := s.RouteWait; w != nil {
			f.Reached += w.Reached
			f.Pairs += w.Pairs
			f.RouteSecs = append(f.RouteSecs, w.Seconds)
		}
		switch kind {
		case kindFlow:
			f.Main = append(f.Main, s.Pub.DeliveredRate)
			f.Lost += s.Seq.Lost
			f.Dup += s.Seq.Duplicated
			f.Reord += s.Seq.Reordered
			f.Expected += s.Pub.Expected
			f.Delivered += s.Pub.Delivered
		case kindRoutes:
			if w := s.RouteWait; w != nil && w.Pairs > 0 && w.Reached == w.Pairs {
				f.Main = append(f.Main, w.Seconds)
			}
			if rs := s.Routes; rs != nil {
				f.Lost += uint64(rs.Lost)
				f.Dup += rs.Duplicated
				f.Misdelivered += rs.Misdelivered
				f.Expected += int64(rs.Sampled * len(rs.ProbeHosts))
				f.Delivered += int64(rs.Received)
			}
		case kindTakeover:
			if s.Conn.Connack.Count > 0 {
				f.Main = append(f.Main, s.Conn.Connack.P50/1e3)
				f.P99 = append(f.P99, s.Conn.Connack.P99/1e3)
			}
			f.Present += s.Conn.SessionPresent
			if tk := s.Takeover; tk != nil {
				f.Sessions += tk.Sessions
				f.Expected += tk.Expected
				f.Delivered += int64(tk.Received)
				f.Lost += tk.Lost
				f.Dup += tk.Duplicated
				f.Reord += tk.Reordered
				f.Misdelivered += tk.Misdelivered
			}
		}
	}
	return f
}

// mainCell is the row's figure: the median over the runs that have it.
func mainCell(kind string, f setFigures) string {
	if len(f.Main) == 0 {
		if kind == kindRoutes && f.Runs > 0 {
			return "not converged"
		}
		return "failed"
	}
	m := bench.Median(f.Main)
	var s string
	switch kind {
	case kindFlow:
		s = formatFigure(m, "msg/s")
	case kindRoutes:
		s = fmt.Sprintf("%.2f", m)
	case kindTakeover:
		s = fmt.Sprintf("%.1f / %.1f", m, bench.Median(f.P99))
	}
	if n := f.Runs + f.Failed; len(f.Main) < n {
		s += fmt.Sprintf(" (%d of %d runs)", len(f.Main), n)
	}
	return s
}

// ratioCell is the cluster's median over the single node's, for the
// throughput rows, with the row's goal.
func clusterRatioCell(r clusterRow, cl, single setFigures) string {
	if r.Kind != kindFlow {
		return "—"
	}
	if len(cl.Main) == 0 || len(single.Main) == 0 || bench.Median(single.Main) == 0 {
		return "n/a"
	}
	ratio := bench.Median(cl.Main) / bench.Median(single.Main)
	s := fmt.Sprintf("%.2f", ratio)
	if r.Goal > 0 {
		verdict := "met"
		if ratio < r.Goal {
			verdict = "**not met**"
		}
		s += fmt.Sprintf(" (goal ≥ %.2f: %s)", r.Goal, verdict)
	}
	return s
}

// checkCell summarises the correctness figures of one set.
func checkCell(r clusterRow, f setFigures) string {
	if f.Runs == 0 {
		return "n/a (no run finished)"
	}
	switch r.Kind {
	case kindRoutes:
		return fmt.Sprintf("%s of %s (probe node, topic) routed; check messages lost/dup/misdelivered %d/%d/%d",
			thousands(int64(f.Reached)), thousands(int64(f.Pairs)), f.Lost, f.Dup, f.Misdelivered)
	case kindTakeover:
		return fmt.Sprintf("session present %s of %s; received %s of %s; lost/dup/reordered/misdelivered %d/%d/%d/%d",
			thousands(int64(f.Present)), thousands(int64(f.Sessions)), thousands(f.Delivered), thousands(f.Expected),
			f.Lost, f.Dup, f.Reord, f.Misdelivered)
	}
	if r.Acked {
		return fmt.Sprintf("lost/dup/reordered %d/%d/%d", f.Lost, f.Dup, f.Reord)
	}
	pct := 0.0
	if f.Expected > 0 {
		pct = 100 * float64(f.Lost) / float64(f.Expected)
	}
	return fmt.Sprintf("lost %s of %s (%.3f %%; QoS 0 may drop)", thousands(int64(f.Lost)), thousands(f.Expected), pct)
}

// cpuCells gives the processes' cores (CPU time over the runs' wall time)
// and, for several, their total.
func cpuCells(f setFigures) (each, total string) {
	if len(f.CPU) == 0 {
		return "?", "?"
	}
	var parts []string
	var cpu, wall float64
	for _, c := range f.CPU {
		if c.CPU.Runs == 0 {
			parts = append(parts, c.Name+" ?")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", c.Name, c.CPU.Cores()))
		cpu += c.CPU.CPU.Seconds()
		wall = max(wall, c.CPU.Wall.Seconds())
	}
	total = "?"
	if wall > 0 {
		total = fmt.Sprintf("%.2f (%.1f CPU s)", cpu/wall, cpu)
	}
	return strings.Join(parts, ", "), total
}

// renderCluster builds the markdown section of the -cluster mode.
func renderCluster(e env, results []clusterResult, nodeCmds map[string][]string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("%s", clusterTitle)
	p("")
	p("Written by `%s` (bench/cmd/bench-compare -cluster) on %s. The numbers are not edited by hand; rerun the target to refresh them.",
		e.MakeCommand, e.Date.UTC().Format("2006-01-02 15:04 MST"))
	if e.Quick {
		p("**QUICK smoke run**: 1 round, short durations, fewer subscriptions and sessions; not a measurement.")
	}
	p("")
	p("- Machine: %d CPUs (`nproc`), %s; kernel %s", e.NProc, e.CPUModel, e.Kernel)
	p("- Software: %s; FlockMQ %s", e.GoVersion, e.FlockMQ)
	p("- Load (`uptime`), a shared and noisy machine: at start `%s`; at end `%s`", e.LoadStart, e.LoadEnd)
	p("- 3 nodes: three `bin/flockmq` processes on loopback, each as `make run` starts it (this build's defaults, `bin/flockmq -h`: %s) plus `-node-id nK`, `-cluster-bind 127.0.0.1`, free loopback ports for `-listen`, `-gossip-port`, `-raft-port` and `-peer-port`, `-join` with the three gossip addresses and `-bootstrap-expect 3`, and a fresh `-data-dir` each (on %s, removed once the node stops). All three are started before any is waited for; each counts as up once it logs `\"flockmq serving MQTT\"` for its address (raft has a leader) and accepts a connection.",
		e.FlockMQDefaults, orUnknown(e.DataFS))
	p("- Single node, beside every row: one `bin/flockmq` as `make run` starts it (raft store, a fresh data directory, default loops), only `-listen`, `-data-dir` and `-raft-bind` differing, as in \"Broker comparison\"; the same scenario with every client on it.")
	p("- CPU: nothing is pinned. The brokers and the load tool share all %d CPUs; GOMAXPROCS, GOGC, GOMEMLIMIT and `FLOCKMQ_*` are removed from the brokers' environment, so each node runs one event loop per CPU. Broker CPU is each process's utime + stime (/proc/PID/stat) over the tool's runs, and that over the runs' wall time: cores kept busy.", e.NProc)
	p("- Method: every run starts its brokers afresh and stops them (SIGTERM) after one `flockmq-bench` run; the 3 nodes and the single node never run at the same time and alternate within each round; %d round(s) per row, the tables show medians and sums. 64-byte payloads, MQTT 5. In the 3-node flow rows the tool first waits until every publisher's topic reaches its subscribers from the publisher's node (route probes, bench/README.md), so that throughput and loss measure the data path rather than the spread of new routes, which the route-convergence row measures.", e.Rounds)
	p("")
	p("| scenario | figure | 3 nodes | single node | 3 nodes / single node | correctness, 3 nodes | correctness, single node |")
	p("|---|---|---:|---:|---|---|---|")
	figs := make([][2]setFigures, len(results))
	for i, res := range results {
		cl, single := figuresOf(res.Row.Kind, res.Runs[setCluster]), figuresOf(res.Row.Kind, res.Runs[setSingle])
		figs[i] = [2]setFigures{cl, single}
		p("| %s | %s | %s | %s | %s | %s | %s |", res.Row.Title, res.Row.Figure, mainCell(res.Row.Kind, cl),
			mainCell(res.Row.Kind, single), clusterRatioCell(res.Row, cl, single), checkCell(res.Row, cl), checkCell(res.Row, single))
	}
	p("")
	p("Route convergence: the time from the last SUBACK on node 1 to the sending of the first probe that reached each sampled topic's subscriber, from node 2 and from node 3, the largest over the sample; probes go out every 50 ms (`--probe-every`), the resolution. Once all are routable, one QoS 1 check message per (probe node, topic) must arrive exactly once at the right connection. On the single node the probes and the subscriptions are on the one node. Takeover: CONNACK latency of the reconnects only; messages received within the drain (%s) after the reconnects, each session's own, in order.",
		takeoverDrain(results))
	p("")
	p("Broker CPU over the runs:")
	p("")
	p("| scenario | 3 nodes, cores per node | 3 nodes, total cores (CPU s) | single node, cores (CPU s) |")
	p("|---|---|---:|---:|")
	for i, res := range results {
		each, total := cpuCells(figs[i][0])
		_, single := cpuCells(figs[i][1])
		p("| %s | %s | %s | %s |", res.Row.Title, each, total, single)
	}
	p("")
	p("### Runs")
	p("")
	for i, res := range results {
		p("- **%s**", res.Row.Title)
		for j, setID := range []string{setCluster, setSingle} {
			name := map[string]string{setCluster: "3 nodes", setSingle: "single node"}[setID]
			for k, run := range res.Runs[setID] {
				p("  - %s, run %d: %s", name, k+1, runLine(res.Row, run))
			}
			f := figs[i][j]
			if len(f.ToolCPU) > 0 {
				p("  - %s: load tool %.2f cores (median)", name, bench.Median(f.ToolCPU))
			}
		}
		for _, n := range res.Notes {
			p("  - note: %s", n)
		}
	}
	p("")
	p("### Commands")
	p("")
	p("```sh")
	p("%s", e.MakeCommand)
	p("# 3 nodes, as started for the first run (every run starts them afresh on free loopback ports, with fresh data directories)")
	for _, c := range nodeCmds[setCluster] {
		p("%s", c)
	}
	p("# single node, likewise")
	for _, c := range nodeCmds[setSingle] {
		p("%s", c)
	}
	p("# load tool, per run")
	for _, res := range results {
		for _, c := range res.Commands {
			p("%s", c)
		}
	}
	p("```")
	return b.String()
}

// takeoverDrain is the takeover row's --drain.
func takeoverDrain(results []clusterResult) string {
	for _, res := range results {
		if res.Row.Kind != kindTakeover {
			continue
		}
		for i := 0; i+1 < len(res.Row.Args); i++ {
			if res.Row.Args[i] == "--drain" {
				return res.Row.Args[i+1]
			}
		}
	}
	return "--drain"
}

// runLine describes one run for the Runs list.
func runLine(r clusterRow, run setRun) string {
	var parts []string
	if s := run.Sum; s != nil {
		switch r.Kind {
		case kindFlow:
			parts = append(parts, fmt.Sprintf("%s msg/s delivered (%s of %s expected)", formatFigure(s.Pub.DeliveredRate, "msg/s"),
				thousands(s.Pub.Delivered), thousands(s.Pub.Expected)),
				fmt.Sprintf("lost %d, duplicated %d, reordered %d", s.Seq.Lost, s.Seq.Duplicated, s.Seq.Reordered),
				fmt.Sprintf("latency p50 %.2f ms, p99 %.2f ms", s.Latency.P50/1e3, s.Latency.P99/1e3))
		case kindRoutes:
			if rs := s.Routes; rs != nil {
				parts = append(parts, fmt.Sprintf("%s subscriptions made in %.2f s", thousands(int64(rs.Subscriptions)), rs.SubscribeSecs))
			}
			if w := s.RouteWait; w != nil {
				parts = append(parts, fmt.Sprintf("%s of %s pairs routed, the last %.3f s after the last SUBACK (per node %s; per pair p50 %.1f ms, p99 %.1f ms; %d probe rounds)",
					thousands(int64(w.Reached)), thousands(int64(w.Pairs)), w.Seconds, secsList(w.PerPublisher),
					w.TimeToRoute.P50/1e3, w.TimeToRoute.P99/1e3, w.Rounds))
			}
			if rs := s.Routes; rs != nil {
				parts = append(parts, fmt.Sprintf("checks sent %d, received %d, lost %d, duplicated %d, misdelivered %d",
					rs.Sent, rs.Received, rs.Lost, rs.Duplicated, rs.Misdelivered))
			}
		case kindTakeover:
			parts = append(parts, fmt.Sprintf("CONNACK p50 %.1f ms, p99 %.1f ms, max %.1f ms; session present %d",
				s.Conn.Connack.P50/1e3, s.Conn.Connack.P99/1e3, s.Conn.Connack.Max/1e3, s.Conn.SessionPresent))
			if tk := s.Takeover; tk != nil {
				parts = append(parts, fmt.Sprintf("%s of %s sessions reconnected in %.2f s; %s messages acked while offline; received %s of %s (%.2f s after the reconnects); lost %d, duplicated %d, reordered %d, misdelivered %d",
					thousands(int64(tk.Reconnected)), thousands(int64(tk.Sessions)), tk.ReconnectSecs, thousands(tk.Published),
					thousands(int64(tk.Received)), thousands(tk.Expected), tk.DrainSecs, tk.Lost, tk.Duplicated, tk.Reordered, tk.Misdelivered))
			}
		}
		if w := s.RouteWait; w != nil && r.Kind != kindRoutes {
			parts = append(parts, fmt.Sprintf("routes ready %.3f s after the last SUBACK (%d of %d pairs)", w.Seconds, w.Reached, w.Pairs))
		}
		parts = append(parts, fmt.Sprintf("load tool %.2f cores", s.CPU.Cores))
	} else {
		parts = append(parts, "no summary")
	}
	var cpu []string
	for _, c := range run.CPU {
		if c.CPU.Runs > 0 {
			cpu = append(cpu, fmt.Sprintf("%s %.2f", c.Name, c.CPU.Cores()))
		} else {
			cpu = append(cpu, c.Name+" ?")
		}
	}
	if len(cpu) > 0 {
		parts = append(parts, fmt.Sprintf("broker cores %s over %.1f s", strings.Join(cpu, ", "), run.Wall.Seconds()))
	}
	if run.Err != "" {
		parts = append(parts, "error: "+run.Err)
	}
	if s := run.Sum; s != nil && len(s.Errors) > 0 {
		parts = append(parts, "tool errors: "+strings.Join(s.Errors, "; "))
	}
	return strings.Join(parts, "; ")
}

func secsList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.3f s", x)
	}
	return strings.Join(parts, ", ")
}
