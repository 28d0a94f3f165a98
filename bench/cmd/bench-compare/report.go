package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flockmq/flockmq/bench"
)

// parseCompare reads the JSON that `flockmq-bench compare --json` prints.
func parseCompare(r io.Reader) (*bench.CompareResult, error) {
	var res bench.CompareResult
	dec := json.NewDecoder(r)
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("compare JSON: %w", err)
	}
	if len(res.Targets) == 0 {
		return nil, fmt.Errorf("compare JSON: no targets")
	}
	return &res, nil
}

// mergeCompare joins the results of several compare runs (Fresh rows: one
// per run) into one: per target, in order of first appearance, the runs and
// errors concatenated in the order given.
func mergeCompare(parts []*bench.CompareResult) *bench.CompareResult {
	if len(parts) == 0 {
		return nil
	}
	out := &bench.CompareResult{Scenario: parts[0].Scenario, Args: parts[0].Args}
	index := map[string]int{}
	for _, p := range parts {
		out.Rounds += p.Rounds
		for _, t := range p.Targets {
			i, ok := index[t.Name]
			if !ok {
				i = len(out.Targets)
				index[t.Name] = i
				out.Targets = append(out.Targets, bench.TargetFigures{Name: t.Name, Hosts: t.Hosts,
					Runs: map[string][]float64{}})
			}
			m := &out.Targets[i]
			for fig, runs := range t.Runs {
				m.Runs[fig] = append(m.Runs[fig], runs...)
			}
			m.Errors = append(m.Errors, t.Errors...)
		}
	}
	return out
}

// targetResult is one broker's figures for one row.
type targetResult struct {
	Name    string
	Runs    []float64 // the row's figure, one per run
	Median  float64
	ToolCPU float64  // median cores used by the load tool
	CPU     cpuTotal // the broker's CPU time over its runs
	// Lost, duplicated and reordered messages summed over SeqRuns runs.
	Lost, Dup, Reord uint64
	SeqRuns          int
	Errors           []string
	Extra            []float64 // medians of the row's Extra figures (their non-zero runs)
	// Skipped says why the broker was not run in this row (no TLS
	// listener); its cells read n/a.
	Skipped string
}

// HasData says whether any run produced the figure.
func (t targetResult) HasData() bool { return len(t.Runs) > 0 }

// rowResult is one row of the table.
type rowResult struct {
	Row      row
	Targets  []targetResult // FlockMQ first
	Notes    []string       // broker crashes and other trouble
	Commands []string       // the tool's command lines
}

// collect extracts the row's figure for each of names from a compare result.
// grown, for SampleRSS rows, maps a target to each run's VmRSS growth in KiB
// (peak minus idle, in run order); the figure is then KiB per connection.
func collect(r row, res *bench.CompareResult, names []string, grown map[string][]int64) []targetResult {
	out := make([]targetResult, 0, len(names))
	for _, name := range names {
		tr := targetResult{Name: name}
		var tf *bench.TargetFigures
		if res != nil {
			for i := range res.Targets {
				if res.Targets[i].Name == name {
					tf = &res.Targets[i]
				}
			}
		}
		if tf == nil {
			tr.Errors = append(tr.Errors, "no result")
			out = append(out, tr)
			continue
		}
		tr.Errors = append(tr.Errors, tf.Errors...)
		// A run that failed reports zeros: a zero throughput is a result,
		// a zero latency or memory figure is not.
		connected := tf.Runs["connect_per_s"]
		if r.Figure == figSampledRSS {
			for i, kb := range grown[name] {
				if r.Clients > 0 && i < len(connected) && connected[i] > 0 {
					tr.Runs = append(tr.Runs, float64(kb)/float64(r.Clients))
				}
			}
		} else {
			for _, v := range tf.Runs[r.Figure] {
				if r.Higher || v != 0 {
					tr.Runs = append(tr.Runs, v)
				}
			}
		}
		tr.Median = bench.Median(tr.Runs)
		for _, x := range r.Extra {
			var runs []float64
			for _, v := range tf.Runs[x.Name] {
				if v != 0 {
					runs = append(runs, v)
				}
			}
			tr.Extra = append(tr.Extra, bench.Median(runs))
		}
		tr.ToolCPU = bench.Median(tf.Runs["tool_cpu_cores"])
		for _, v := range tf.Runs["lost"] {
			tr.Lost += uint64(v)
		}
		for _, v := range tf.Runs["duplicated"] {
			tr.Dup += uint64(v)
		}
		for _, v := range tf.Runs["reordered"] {
			tr.Reord += uint64(v)
		}
		tr.SeqRuns = len(tf.Runs["lost"])
		out = append(out, tr)
	}
	return out
}

// bestPeer returns the index (into ts, never 0) of the best peer by the
// row's direction, or -1 when no peer has data.
func bestPeer(r row, ts []targetResult) int {
	best := -1
	for i := 1; i < len(ts); i++ {
		if !ts[i].HasData() {
			continue
		}
		if best < 0 || (r.Higher && ts[i].Median > ts[best].Median) ||
			(!r.Higher && ts[i].Median < ts[best].Median) {
			best = i
		}
	}
	return best
}

// ratioCell is "FlockMQ / best peer", with the peer's name.
func ratioCell(r row, ts []targetResult) string {
	b := bestPeer(r, ts)
	if b < 0 || len(ts) == 0 || !ts[0].HasData() || ts[b].Median == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f (vs %s)", ts[0].Median/ts[b].Median, ts[b].Name)
}

// qosCell summarises lost / duplicated / reordered per target.
func qosCell(ts []targetResult) string {
	var parts []string
	for _, t := range ts {
		if t.Skipped != "" {
			continue
		}
		if t.SeqRuns == 0 {
			parts = append(parts, t.Name+" n/a")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d/%d", t.Name, t.Lost, t.Dup, t.Reord))
	}
	return strings.Join(parts, ", ")
}

// cpuCell gives each broker's cores used and CPU seconds over its runs.
func cpuCell(ts []targetResult) string {
	var parts []string
	for _, t := range ts {
		if t.Skipped != "" {
			continue
		}
		if t.CPU.Runs == 0 {
			parts = append(parts, t.Name+" ?")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f (%.1f s)", t.Name, t.CPU.Cores(), t.CPU.CPU.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// formatFigure prints a figure for its unit: integers with thousands
// separators, per-connection memory with two decimals.
func formatFigure(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if strings.Contains(unit, "/ conn") {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return thousands(int64(math.Round(v)))
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func cell(t targetResult, unit string) string {
	if t.Skipped != "" {
		return "n/a"
	}
	if !t.HasData() {
		return "failed"
	}
	return formatFigure(t.Median, unit)
}

// rowCell is cell plus the row's Extra figures, e.g. "9,624 (p50 1.2 ms,
// p99 5.3 ms)".
func rowCell(r row, t targetResult) string {
	c := cell(t, r.Unit)
	if !t.HasData() || t.Skipped != "" || len(r.Extra) == 0 {
		return c
	}
	var xs []string
	for i, x := range r.Extra {
		if i < len(t.Extra) && t.Extra[i] > 0 {
			xs = append(xs, x.Label+" "+millis(t.Extra[i]))
		}
	}
	if len(xs) == 0 {
		return c
	}
	return c + " (" + strings.Join(xs, ", ") + ")"
}

// millis prints microseconds as ms with at most three significant digits
// (µs below 1 ms).
func millis(us float64) string {
	if us < 1000 {
		return strconv.FormatFloat(us, 'f', 0, 64) + " µs"
	}
	return strconv.FormatFloat(us/1000, 'g', 3, 64) + " ms"
}

// env is the machine and run description at the top of the section.
type env struct {
	Date            time.Time
	NProc           int
	CPUModel        string
	Kernel          string
	GoVersion       string
	Mosquitto       string
	Mochi           string
	FlockMQ         string // commit
	FlockMQDefaults string // from `flockmq -h`, see flagDefaults
	DataFS          string // file system of the data directories
	LoadStart       string // `uptime` before the first row
	LoadEnd         string // and after the last
	Rounds          int
	Quick           bool
	MakeCommand     string
	Brokers         []string // broker command lines
	MosqConf        string
}

// sectionTitle is the heading bench-compare owns in docs/benchmarks.md.
const sectionTitle = "## Broker comparison"

// renderSection builds the markdown section.
func renderSection(e env, results []rowResult, names []string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("%s", sectionTitle)
	p("")
	p("Written by `%s` (bench/cmd/bench-compare) on %s. The numbers are not edited by hand; rerun the target to refresh them.",
		e.MakeCommand, e.Date.UTC().Format("2006-01-02 15:04 MST"))
	if e.Quick {
		p("**QUICK smoke run**: 1 round, short durations, fewer connections; not a measurement.")
	}
	p("")
	p("- Machine: %d CPUs (`nproc`), %s; kernel %s", e.NProc, e.CPUModel, e.Kernel)
	p("- Software: %s; Mosquitto %s (Debian package); mochi-mqtt %s (bench/peers/mochi, default options, allow-all auth); FlockMQ %s",
		e.GoVersion, e.Mosquitto, e.Mochi, e.FlockMQ)
	p("- Load (`uptime`), a shared and noisy machine: at start `%s`; at end `%s`", e.LoadStart, e.LoadEnd)
	p("- Each broker runs as its users run it (command lines under Commands; no tuned configuration is measured):")
	p("  - FlockMQ as `make run` starts it: `bin/flockmq` with this build's defaults (`bin/flockmq -h`: %s). Only `-listen` (a free loopback port), `-data-dir` (a fresh directory for each broker start, on %s like `make run`'s `./data`, removed once the broker stops) and `-raft-bind` (a free loopback port, so as not to clash with a node on the default 127.0.0.1:7300) differ.",
		e.FlockMQDefaults, orUnknown(e.DataFS))
	p("  - Mosquitto with Debian's packaged configuration (persistence on, default logging, every limit at its default, e.g. `max_inflight_messages` 20 and `max_queued_messages` 1000), with a loopback listener and anonymous access; the file is below.")
	p("  - mochi-mqtt as bench/peers/mochi builds it: default options, allow-all auth.")
	p("- CPU: nothing is pinned. No `taskset` for the brokers or the load tool, which share all %d CPUs; GOMAXPROCS, GOGC, GOMEMLIMIT and `FLOCKMQ_*` are removed from the brokers' environment, so FlockMQ runs one event loop per CPU, mochi one P per CPU, Mosquitto its one thread. One broker is under load at a time; the others idle. The \"broker CPU\" column is each broker's CPU time (utime + stime from /proc/PID/stat, read as each of its runs starts and ends) summed over its runs, and that divided by the runs' wall time: the cores it kept busy on average. The load tool's cores are under Runs.", e.NProc)
	p("- Method: every row starts all three brokers afresh; `flockmq-bench compare` runs the scenario %d time(s) per broker, alternating brokers; the table shows medians. A broker that crashes is restarted on the same port (FlockMQ with the same data directory) and the crash is listed under Runs. The two memory rows start a fresh broker for every run. 64-byte payloads; MQTT 5 unless the row says 3.1.1.", e.Rounds)
	p("")
	writeTable(&b, results, names)
	p("")
	p("Ratio: FlockMQ's median over the best peer's; on ↑ rows above 1 means FlockMQ leads, on ↓ rows below 1 means FlockMQ leads.")
	p("Broker CPU: \"?\" when no run of that broker was measured (it crashed during each).")
	p("QoS 1/2 column: lost, duplicated and reordered messages, as the load tool's sequence checks count them (bench/README.md), summed over every compare run of each broker; \"n/a\" when no run of that broker finished. Mosquitto at its defaults drops outgoing QoS 1/2 messages to a client that already has 1000 queued (`max_queued_messages`) and logs \"Outgoing messages are being dropped\" (see its logs in bench-compare.out): loss there is that documented policy of the default configuration.")
	p("RSS rows: each run has a freshly started broker. \"1 subscription\" is sampled by bench-compare (the broker's VmRSS every 100 ms during the run, peak minus the idle broker's, over the connection count; the tool's `--pid` is read by the `conn` scenario only); \"no subscription\" is the tool's own `conn --pid` figure (RSS once all are connected minus before).")
	p("")
	writeRuns(&b, results)
	writeCommands(&b, e, results, "brokers, as started for the first row (every row starts them afresh on free loopback ports, with fresh data directories)")
	p("Generated Mosquitto configuration (PORT and DATA_DIR are the broker's own at each start):")
	p("")
	p("```")
	p("%s", strings.TrimSpace(e.MosqConf))
	p("```")
	return b.String()
}

// writeTable writes the comparison table: one line per row, one column per
// broker of names.
func writeTable(b *strings.Builder, results []rowResult, names []string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	header := "| scenario | figure |"
	sep := "|---|---|"
	for _, n := range names {
		header += " " + n + " |"
		sep += "---:|"
	}
	p("%s FlockMQ / best peer | broker CPU: cores used (CPU s) | QoS 1/2 lost/dup/reordered |", header)
	p("%s---|---|---|", sep)
	for _, rr := range results {
		dir := "↓ lower is better"
		if rr.Row.Higher {
			dir = "↑ higher is better"
		}
		line := fmt.Sprintf("| %s | %s, %s |", rr.Row.Title, rr.Row.Unit, dir)
		for _, t := range rr.Targets {
			line += " " + rowCell(rr.Row, t) + " |"
		}
		q := "n/a (QoS 0)"
		if rr.Row.Acked() {
			q = qosCell(rr.Targets)
		}
		p("%s %s | %s | %s |", line, ratioCell(rr.Row, rr.Targets), cpuCell(rr.Targets), q)
	}
}

// writeRuns writes the "Runs" subsection: every run's figure, CPU and
// correctness per row and broker, and the row's notes.
func writeRuns(b *strings.Builder, results []rowResult) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	p("### Runs")
	p("")
	for _, rr := range results {
		p("- **%s**", rr.Row.Title)
		for _, t := range rr.Targets {
			if t.Skipped != "" {
				p("  - %s: not run (%s)", t.Name, t.Skipped)
				continue
			}
			runs := make([]string, len(t.Runs))
			for i, v := range t.Runs {
				runs[i] = formatFigure(v, rr.Row.Unit)
			}
			line := fmt.Sprintf("  - %s: [%s] %s; broker CPU %.2f s in %.1f s of %d run(s), %.2f cores",
				t.Name, strings.Join(runs, ", "), rr.Row.Unit, t.CPU.CPU.Seconds(), t.CPU.Wall.Seconds(), t.CPU.Runs, t.CPU.Cores())
			if t.CPU.Unmeasured > 0 {
				line += fmt.Sprintf(" (%d run(s) not measured)", t.CPU.Unmeasured)
			}
			line += fmt.Sprintf("; load tool %.2f cores", t.ToolCPU)
			if rr.Row.Acked() {
				line += fmt.Sprintf("; lost %d, duplicated %d, reordered %d over %d run(s)", t.Lost, t.Dup, t.Reord, t.SeqRuns)
			}
			if len(t.Errors) > 0 {
				line += "; errors: " + strings.Join(dedupe(t.Errors), "; ")
			}
			p("%s", line)
		}
		for _, n := range rr.Notes {
			p("  - note: %s", n)
		}
	}
	p("")
}

// writeCommands writes the "Commands" subsection: how the run was started,
// the brokers' command lines (under the comment brokers) and the tool's.
func writeCommands(b *strings.Builder, e env, results []rowResult, brokers string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	p("### Commands")
	p("")
	p("```sh")
	p("%s", e.MakeCommand)
	p("# %s", brokers)
	for _, c := range e.Brokers {
		p("%s", c)
	}
	p("# load tool, per row")
	for _, rr := range results {
		for _, c := range rr.Commands {
			p("%s", c)
		}
	}
	p("```")
	p("")
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown file system"
	}
	return s
}

// dedupe drops repeated messages, keeping the first's position, with a count.
func dedupe(msgs []string) []string {
	count := map[string]int{}
	var order []string
	for _, m := range msgs {
		if count[m] == 0 {
			order = append(order, m)
		}
		count[m]++
	}
	for i, m := range order {
		if count[m] > 1 {
			order[i] = fmt.Sprintf("%s (x%d)", m, count[m])
		}
	}
	return order
}

// replaceSection puts section in doc in place of the existing section
// headed title (up to the next "## " heading), or appends it. Everything
// else in doc is kept byte for byte.
func replaceSection(doc, title, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	start, end := -1, len(lines)
	inFence := false
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(t, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if start < 0 && t == title {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(t, "## ") {
			end = i
			break
		}
	}
	if start < 0 {
		if doc == "" {
			return section
		}
		sep := "\n"
		if !strings.HasSuffix(doc, "\n") {
			sep = "\n\n"
		} else if strings.HasSuffix(doc, "\n\n") {
			sep = ""
		}
		return doc + sep + section
	}
	before := strings.Join(lines[:start], "")
	after := strings.Join(lines[end:], "")
	if after != "" {
		section += "\n"
	}
	return before + section + after
}
