// Command bench-compare runs FlockMQ, Mosquitto and mochi-mqtt side by side
// under flockmq-bench and writes the "Broker comparison" section of
// docs/benchmarks.md. `make bench-compare` builds the binaries and runs it;
// `make bench-compare QUICK=1` is a short smoke run that leaves the docs alone.
// With -cluster (`make bench-cluster`) it runs issue 11's cluster rows
// instead, three FlockMQ nodes against a single one (cluster.go); with -tls
// (`make bench-tls`) fan-in and connect rate over TLS next to TCP (tls.go).
//
// Each broker runs as its users run it: FlockMQ as `make run` starts it
// (raft store in a fresh data directory, one event loop per CPU), Mosquitto
// with Debian's configuration, mochi with its defaults; nothing is pinned to
// CPUs, the load tool neither. Every row starts the three brokers afresh,
// runs `flockmq-bench compare` against them, measures each broker's CPU time
// over its runs and stops them again, so a broker that crashes spoils one row
// only and the RSS figures start from an idle broker. Every broker started is
// stopped, and its data directory removed, on every path, ^C included.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flockmq/flockmq/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// harness holds one invocation's settings. Main goroutine only.
type harness struct {
	bin        string
	out        string
	plan       plan
	specs      []brokerSpec
	names      []string
	progress   io.Writer
	brokerCmds []string // the first row's broker command lines
	caFile     string   // -tls: the CA the tool verifies TLS listeners with
	// onStart, when set, sees each broker of a row once it is ready (-tls:
	// what its TLS listener negotiates).
	onStart func(*broker)
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with flockmq, flockmq-bench and mochi")
	out := fs.String("out", "", "directory for raw JSON, broker logs and section.md (default BIN/bench-compare.out)")
	doc := fs.String("doc", "", "markdown file whose \""+sectionTitle+"\" section is replaced (or appended)")
	quick := fs.Bool("quick", false, "smoke run: 1 round, short durations, 1,000 instead of 10,000 connections")
	rounds := fs.Int("rounds", 0, "runs per broker and row (default 3, quick 1)")
	mosq := fs.String("mosquitto", "", "mosquitto binary (default: from PATH or /usr/sbin)")
	only := fs.String("rows", "", "comma-separated row ids to run (default all)")
	makeCmd := fs.String("make-command", "", "how this run was started, for the Commands list")
	cluster := fs.Bool("cluster", false, "issue 11's cluster rows instead: three FlockMQ nodes on loopback against a single node, "+
		"written to the \""+clusterTitle+"\" section (out default BIN/bench-cluster.out)")
	tlsMode := fs.Bool("tls", false, "TLS rows instead: fan-in QoS 1 and connect rate over TLS next to TCP, FlockMQ and Mosquitto "+
		"(mochi on TCP only), written to the \""+tlsTitle+"\" section (out default BIN/bench-tls.out)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cluster && *tlsMode {
		fmt.Fprintln(stderr, "bench-compare: -cluster and -tls are separate runs")
		return 2
	}
	if *cluster {
		return runCluster(args, *bin, *out, *doc, *quick, *rounds, *only, *makeCmd, stdout, stderr)
	}
	if *tlsMode {
		return runTLS(args, *bin, *out, *doc, *quick, *rounds, *mosq, *only, *makeCmd, stdout, stderr)
	}
	pl := fullPlan()
	if *quick {
		pl = quickPlan()
	}
	if *rounds > 0 {
		pl.Rounds = *rounds
	}
	if *out == "" {
		*out = filepath.Join(*bin, "bench-compare.out")
	}
	mosquittoBin, err := findMosquitto(*mosq)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	for _, b := range []string{"flockmq", "flockmq-bench", "mochi"} {
		if _, err := os.Stat(filepath.Join(*bin, b)); err != nil {
			fmt.Fprintf(stderr, "bench-compare: %v (run `make build peers`)\n", err)
			return 2
		}
	}
	if err := cleanOut(*out); err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	selected, err := selectRows(rows(pl), *only)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	if *makeCmd == "" {
		*makeCmd = "bench-compare " + strings.Join(args, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := &harness{bin: *bin, out: *out, plan: pl, specs: specs(*bin, mosquittoBin), progress: stderr}
	for _, s := range h.specs {
		h.names = append(h.names, s.Name)
	}
	e := gatherEnv(ctx, *bin, mosquittoBin, *out)
	e.Rounds, e.Quick, e.MakeCommand = pl.Rounds, *quick, *makeCmd
	e.MosqConf = mosquittoConf("PORT", "DATA_DIR/")
	fmt.Fprintf(stderr, "bench-compare: %d rows x %d brokers x %d rounds; %d CPUs, nothing pinned; load %s\n",
		len(selected), len(h.specs), pl.Rounds, e.NProc, e.LoadStart)

	var results []rowResult
	for i, r := range selected {
		fmt.Fprintf(stderr, "\n=== bench-compare row %d/%d: %s\n", i+1, len(selected), r.Title)
		results = append(results, h.runRow(ctx, r))
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench-compare: interrupted; the brokers are stopped, no section written")
			return 130
		}
	}
	e.LoadEnd = uptime(ctx)
	e.Brokers = h.brokerCmds
	section := renderSection(e, results, h.names)
	return publishSection(*out, *doc, sectionTitle, section, stdout, stderr)
}

// publishSection writes section to out/section.md and stdout and, when doc
// is set, in place of the section titled title in doc; it returns the exit
// status.
func publishSection(out, doc, title, section string, stdout, stderr io.Writer) int {
	if err := os.WriteFile(filepath.Join(out, "section.md"), []byte(section), 0o644); err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, section)
	if doc != "" {
		if err := updateDoc(doc, title, section); err != nil {
			fmt.Fprintf(stderr, "bench-compare: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "bench-compare: wrote the %q section of %s\n", title, doc)
	}
	return 0
}

// cleanOut creates dir, or empties it of a previous run's files (only the
// kinds bench-compare writes, and the data directories a killed run left),
// so that old logs are not mistaken for new ones.
func cleanOut(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, pat := range []string{"*.log", "*.json", "*.conf", "section.md", "*-data-*", "tls-*.pem", "tls-*.key"} {
		old, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range old {
			if err := os.RemoveAll(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateDoc replaces the section headed title in path with section (or
// appends it). It re-reads path just before writing, so that other sections
// edited meanwhile are kept.
func updateDoc(path, title, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(path, []byte(replaceSection(string(old), title, section)), 0o644)
}

func selectRows(all []row, only string) ([]row, error) {
	if only == "" {
		return all, nil
	}
	var out []row
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

// runRow starts the brokers, runs the row, measuring each broker's CPU time
// over its runs, and stops them.
func (h *harness) runRow(ctx context.Context, r row) rowResult {
	if r.Fresh {
		return h.runFresh(ctx, r)
	}
	rr := rowResult{Row: r}
	var brokers []*broker
	defer func() {
		for _, b := range brokers { // on an early return; a second Stop is a no-op
			_ = b.Stop(10 * time.Second)
		}
	}()
	skipped := map[string]string{}
	for _, spec := range h.specs {
		if r.TLS && spec.TLSArgv == nil {
			skipped[spec.Name] = "no TLS listener"
			continue
		}
		b, err := startBroker(ctx, spec, h.out, filepath.Join(h.out, r.ID+"-"+spec.Name))
		if err != nil {
			rr.Notes = append(rr.Notes, err.Error())
			rr.Targets = markSkipped(collect(r, nil, h.names, nil), skipped)
			return rr
		}
		tlsNote := ""
		if b.TLSPort != 0 {
			tlsNote = " (TLS " + b.TLSAddr() + ")"
		}
		fmt.Fprintf(h.progress, "bench-compare: %s pid %d on %s%s, idle RSS %d KiB\n", b.Name, b.PID(), b.Addr(), tlsNote, b.IdleKB)
		brokers = append(brokers, b)
		if h.onStart != nil {
			h.onStart(b)
		}
	}
	if h.brokerCmds == nil {
		for _, b := range brokers {
			h.brokerCmds = append(h.brokerCmds, shellLine(b.Env, b.Argv))
		}
	}
	args := compareArgs(r, brokers, h.plan.Rounds, h.caFile)
	meter := newCPUMeter(func(name string) (int, bool) {
		for _, b := range brokers {
			if b.Name == name {
				return b.PID(), true
			}
		}
		return 0, false
	})
	res, err := h.compare(ctx, &rr, r.ID, args, meter.Line)
	meter.End()
	if err != nil {
		rr.Notes = append(rr.Notes, err.Error())
	}
	for _, b := range brokers {
		h.stop(&rr.Notes, b)
	}
	rr.Targets = collect(r, res, h.names, nil)
	for i := range rr.Targets {
		rr.Targets[i].CPU = meter.Total(rr.Targets[i].Name)
	}
	rr.Targets = markSkipped(rr.Targets, skipped)
	return rr
}

// markSkipped replaces the results of the brokers a row did not run
// (skipped: name -> why) by a bare note.
func markSkipped(ts []targetResult, skipped map[string]string) []targetResult {
	for i, t := range ts {
		if why, ok := skipped[t.Name]; ok {
			ts[i] = targetResult{Name: t.Name, Skipped: why}
		}
	}
	return ts
}

// compareArgs is the tool's command line for row r against brokers: their
// TCP addresses, or for a TLS row their TLS ones, verified with caFile.
func compareArgs(r row, brokers []*broker, rounds int, caFile string) []string {
	args := []string{"compare"}
	for _, b := range brokers {
		addr := b.Addr()
		if r.TLS {
			addr = b.TLSAddr()
		}
		args = append(args, "--target", b.Name+"="+addr)
	}
	args = append(append(args, "--rounds", strconv.Itoa(rounds), "--json", "--", r.Scenario), r.Args...)
	if r.TLS {
		args = append(args, "--tls", "--cafile", caFile)
	}
	return args
}

// compare runs the tool's compare mode and saves its JSON as id.json.
// onLine sees each line of the tool's stderr.
func (h *harness) compare(ctx context.Context, rr *rowResult, id string, args []string, onLine func(string)) (*bench.CompareResult, error) {
	out, err := h.tool(ctx, &rr.Commands, id, args, onLine)
	if len(out) == 0 {
		return nil, err
	}
	res, perr := parseCompare(bytes.NewReader(out))
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	return res, err
}

// runFresh runs a memory row: every run gets a freshly started broker and
// its own one-target compare; rounds still alternate the brokers.
func (h *harness) runFresh(ctx context.Context, r row) rowResult {
	rr := rowResult{Row: r}
	var parts []*bench.CompareResult
	grown := map[string][]int64{}
	cpu := map[string]cpuTotal{}
	for round := 1; round <= h.plan.Rounds && ctx.Err() == nil; round++ {
		for _, spec := range h.specs {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(h.progress, "bench-compare: round %d/%d: fresh %s\n", round, h.plan.Rounds, spec.Name)
			part, kb, used, err := h.freshRun(ctx, &rr, r, spec, fmt.Sprintf("%s-%s-%d", r.ID, spec.Name, round))
			cpu[spec.Name] = cpu[spec.Name].add(used)
			if err != nil {
				rr.Notes = append(rr.Notes, err.Error())
			}
			if part != nil {
				parts = append(parts, part)
				if r.SampleRSS {
					grown[spec.Name] = append(grown[spec.Name], kb)
				}
			}
		}
	}
	rr.Targets = collect(r, mergeCompare(parts), h.names, grown)
	for i := range rr.Targets {
		rr.Targets[i].CPU = cpu[rr.Targets[i].Name]
	}
	return rr
}

// freshRun starts spec, runs one compare round against it (sampling its RSS
// for SampleRSS rows) and stops it. kb is the RSS growth over the idle
// broker, used its CPU time during the run.
func (h *harness) freshRun(ctx context.Context, rr *rowResult, r row, spec brokerSpec, id string) (_ *bench.CompareResult, kb int64, used cpuTotal, _ error) {
	b, err := startBroker(ctx, spec, h.out, filepath.Join(h.out, id))
	if err != nil {
		return nil, 0, used, err
	}
	defer h.stop(&rr.Notes, b)
	fmt.Fprintf(h.progress, "bench-compare: %s pid %d on %s, idle RSS %d KiB\n", b.Name, b.PID(), b.Addr(), b.IdleKB)
	args := []string{"compare", "--target", b.Name + "=" + b.Addr(), "--rounds", "1", "--json", "--", r.Scenario}
	args = append(args, r.Args...)
	if r.PIDFlag {
		args = append(args, "--pid", strconv.Itoa(b.PID()))
	}
	var sampler *rssSampler
	if r.SampleRSS {
		sampler = newRSSSampler(func(string) (int, bool) { return b.PID(), true })
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go sampler.Run(sctx, 100*time.Millisecond)
		if err := sampler.Round(b.Name); err != nil {
			return nil, 0, used, err
		}
	}
	meter := newCPUMeter(func(name string) (int, bool) { return b.PID(), name == b.Name })
	res, err := h.compare(ctx, rr, id, args, meter.Line)
	meter.End()
	if sampler != nil {
		sampler.End()
		if peaks := sampler.Peaks(b.Name); len(peaks) == 1 {
			kb = peaks[0] - b.IdleKB
		}
	}
	return res, kb, meter.Total(b.Name), err
}

// stop stops b and adds its crashes and a failed stop to notes.
func (h *harness) stop(notes *[]string, b *broker) {
	err := b.Stop(10 * time.Second)
	found := b.Crashes()
	if len(found) > 0 {
		found[0] += " (restarted on the same port each time)"
	}
	if err != nil {
		found = append(found, err.Error())
	}
	for _, n := range found {
		fmt.Fprintf(h.progress, "bench-compare: %s\n", n)
	}
	*notes = append(*notes, found...)
}

// tool runs flockmq-bench (unpinned, like the brokers), notes its command
// line in cmds, copies its stderr to the progress writer and onLine (if not
// nil) line by line and returns its stdout, also saved as id.json.
func (h *harness) tool(ctx context.Context, cmds *[]string, id string, args []string, onLine func(string)) ([]byte, error) {
	argv := append([]string{filepath.Join(h.bin, "flockmq-bench")}, args...)
	*cmds = append(*cmds, shellLine(nil, argv))
	fmt.Fprintf(h.progress, "bench-compare: %s\n", shellLine(nil, argv))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // the tool prints what it has
	cmd.WaitDelay = 15 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var errTail tailBuffer
	errTail.max = 2048
	for sc.Scan() {
		line := sc.Text()
		if onLine != nil {
			onLine(line)
		}
		fmt.Fprintln(h.progress, line)
		fmt.Fprintln(&errTail, line)
	}
	werr := cmd.Wait()
	if werr != nil {
		werr = fmt.Errorf("flockmq-bench %s: %w: %s", id, werr, lastLines(errTail.String(), 3))
	}
	if stdout.Len() > 0 {
		if err := os.WriteFile(filepath.Join(h.out, id+".json"), stdout.Bytes(), 0o644); err != nil {
			return stdout.Bytes(), errors.Join(werr, err)
		}
	}
	return stdout.Bytes(), werr
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shellLine prints a command line for the docs.
func shellLine(env, argv []string) string {
	parts := append([]string(nil), env...)
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'$*?&|;<>()[]{}\\`!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
