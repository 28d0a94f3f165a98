// Command bench-compare runs FlockMQ, Mosquitto and mochi-mqtt side by side
// under flockmq-bench and writes the "Broker comparison" section of
// docs/benchmarks.md. `make bench-compare` builds the binaries and runs it;
// `make bench-compare QUICK=1` is a short smoke run that leaves the docs alone.
//
// Every row starts the three brokers afresh, each pinned to the same CPUs,
// runs `flockmq-bench compare` against them and stops them again, so a broker
// that crashes spoils one row only and the RSS figures start from an idle
// broker. Every broker started is stopped on every path, ^C included.
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
	"runtime"
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
	brokerCPUs string // taskset list for the brokers, "" = no pinning
	toolCPUs   string
	cpus       int // CPUs per broker
	plan       plan
	specs      []brokerSpec
	names      []string
	progress   io.Writer
	brokerCmds []string // the first row's broker command lines
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defBroker, defTool := defaultCPULists(runtime.NumCPU())
	bin := fs.String("bin", "bin", "directory with flockmq, flockmq-bench and mochi")
	out := fs.String("out", "", "directory for raw JSON, broker logs and section.md (default BIN/bench-compare)")
	doc := fs.String("doc", "", "markdown file whose \""+sectionTitle+"\" section is replaced (or appended)")
	quick := fs.Bool("quick", false, "smoke run: 1 round, short durations, 1,000 instead of 10,000 connections")
	rounds := fs.Int("rounds", 0, "runs per broker and row (default 3, quick 1)")
	brokerCPUs := fs.String("broker-cpus", defBroker, "taskset CPU list every broker is pinned to (\"\" = none)")
	toolCPUs := fs.String("tool-cpus", defTool, "taskset CPU list for the load tool (\"\" = none)")
	mosq := fs.String("mosquitto", "", "mosquitto binary (default: from PATH or /usr/sbin)")
	only := fs.String("rows", "", "comma-separated row ids to run (default all)")
	makeCmd := fs.String("make-command", "", "how this run was started, for the Commands list")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pl := fullPlan()
	if *quick {
		pl = quickPlan()
	}
	if *rounds > 0 {
		pl.Rounds = *rounds
	}
	cpus := runtime.NumCPU()
	if *brokerCPUs != "" {
		n, err := cpuCount(*brokerCPUs)
		if err != nil {
			fmt.Fprintf(stderr, "bench-compare: -broker-cpus: %v\n", err)
			return 2
		}
		cpus = n
	}
	if *out == "" {
		*out = filepath.Join(*bin, "bench-compare")
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
	if err := os.MkdirAll(*out, 0o755); err != nil {
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

	h := &harness{bin: *bin, out: *out, brokerCPUs: *brokerCPUs, toolCPUs: *toolCPUs, cpus: cpus,
		plan: pl, specs: specs(*bin, mosquittoBin, cpus), progress: stderr}
	for _, s := range h.specs {
		h.names = append(h.names, s.Name)
	}
	e := gatherEnv(ctx, *bin, mosquittoBin)
	e.BrokerCPUs, e.ToolCPUs, e.Rounds, e.Quick, e.MakeCommand = orAll(*brokerCPUs), orAll(*toolCPUs), pl.Rounds, *quick, *makeCmd
	e.MosqConf = mosquittoConf(0)
	fmt.Fprintf(stderr, "bench-compare: %d rows x %d brokers x %d rounds; brokers on CPU %s, tool on CPU %s; load %s\n",
		len(selected), len(h.specs), pl.Rounds, e.BrokerCPUs, e.ToolCPUs, e.LoadStart)

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
	if err := os.WriteFile(filepath.Join(*out, "section.md"), []byte(section), 0o644); err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, section)
	if *doc != "" {
		if err := updateDoc(*doc, section); err != nil {
			fmt.Fprintf(stderr, "bench-compare: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "bench-compare: wrote the %q section of %s\n", sectionTitle, *doc)
	}
	return 0
}

// updateDoc re-reads path just before writing, so that other sections edited
// meanwhile are kept.
func updateDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(path, []byte(replaceSection(string(old), section)), 0o644)
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

// runRow starts the brokers, runs the row and stops them.
func (h *harness) runRow(ctx context.Context, r row) rowResult {
	rr := rowResult{Row: r}
	var brokers []*broker
	defer func() {
		for _, b := range brokers { // stop anything still running on an early return
			if !b.stopped && !b.Exited() {
				_ = b.Stop(10 * time.Second)
			}
		}
	}()
	for _, spec := range h.specs {
		b, err := startBroker(ctx, spec, h.brokerCPUs, h.out, filepath.Join(h.out, r.ID+"-"+spec.Name+".log"))
		if err != nil {
			rr.Notes = append(rr.Notes, err.Error())
			rr.Targets = collect(r, nil, h.names, nil, nil)
			return rr
		}
		fmt.Fprintf(h.progress, "bench-compare: %s pid %d on %s, idle RSS %d KiB\n", b.Name, b.PID(), b.Addr(), b.IdleKB)
		brokers = append(brokers, b)
	}
	if h.brokerCmds == nil {
		for _, b := range brokers {
			h.brokerCmds = append(h.brokerCmds, shellLine(b.Env, b.Argv))
		}
	}
	idle, pids := map[string]int64{}, map[string]int{}
	for _, b := range brokers {
		idle[b.Name], pids[b.Name] = b.IdleKB, b.PID()
	}

	var res *bench.CompareResult
	var sampler *rssSampler
	rounds := strconv.Itoa(h.plan.Rounds)
	if r.PerTargetPID {
		var parts []*bench.CompareResult
		for _, b := range brokers {
			args := []string{"compare", "--target", b.Name + "=" + b.Addr(), "--rounds", rounds, "--json", "--", r.Scenario}
			args = append(append(args, r.Args...), "--pid", strconv.Itoa(b.PID()))
			part, err := h.compare(ctx, &rr, r.ID+"-"+b.Name, args, nil)
			if err != nil {
				rr.Notes = append(rr.Notes, err.Error())
			}
			if part != nil {
				parts = append(parts, part)
			}
		}
		res = mergeCompare(parts)
	} else {
		args := []string{"compare"}
		for _, b := range brokers {
			args = append(args, "--target", b.Name+"="+b.Addr())
		}
		args = append(append(args, "--rounds", rounds, "--json", "--", r.Scenario), r.Args...)
		if r.SampleRSS {
			sampler = newRSSSampler(pids)
			sctx, cancel := context.WithCancel(ctx)
			go sampler.Run(sctx, 100*time.Millisecond)
			defer cancel()
		}
		var err error
		if res, err = h.compare(ctx, &rr, r.ID, args, sampler); err != nil {
			rr.Notes = append(rr.Notes, err.Error())
		}
		if sampler != nil {
			sampler.End()
		}
	}
	checks := map[string]*bench.SeqCounts{}
	if r.QoS1 {
		for _, b := range brokers {
			args := append([]string{r.Scenario}, r.Args...)
			args = append(args, "--host", b.Addr(), "--json", "--interval", "0")
			s, err := h.single(ctx, &rr, r.ID+"-check-"+b.Name, args)
			if err != nil {
				rr.Notes = append(rr.Notes, err.Error())
			}
			if s != nil {
				checks[b.Name] = &s.Seq
			}
		}
	}
	for _, b := range brokers {
		if err := b.Stop(10 * time.Second); err != nil {
			note := err.Error()
			if tail := b.Tail(); tail != "" {
				note += "; its output ends: " + strings.ReplaceAll(lastLines(tail, 5), "\n", " ⏎ ")
			}
			rr.Notes = append(rr.Notes, note)
			fmt.Fprintf(h.progress, "bench-compare: %s\n", note)
		}
	}
	var peaks map[string][]int64
	if sampler != nil {
		peaks = map[string][]int64{}
		for _, n := range h.names {
			peaks[n] = sampler.Peaks(n)
		}
	}
	rr.Targets = collect(r, res, h.names, peaks, idle)
	for i := range rr.Targets {
		rr.Targets[i].Check = checks[rr.Targets[i].Name]
	}
	return rr
}

// compare runs the tool's compare mode, saves its JSON as id.json and feeds
// the progress lines to sampler.
func (h *harness) compare(ctx context.Context, rr *rowResult, id string, args []string, sampler *rssSampler) (*bench.CompareResult, error) {
	out, err := h.tool(ctx, rr, id, args, func(line string) {
		if name, ok := parseRoundLine(line); ok && sampler != nil {
			if err := sampler.Round(name); err != nil {
				fmt.Fprintf(h.progress, "bench-compare: %v\n", err)
			}
		}
	})
	if len(out) == 0 {
		return nil, err
	}
	res, perr := parseCompare(bytes.NewReader(out))
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	return res, err
}

// single runs one scenario run and parses its summary.
func (h *harness) single(ctx context.Context, rr *rowResult, id string, args []string) (*bench.Summary, error) {
	out, err := h.tool(ctx, rr, id, args, nil)
	if len(out) == 0 {
		return nil, err
	}
	s, perr := parseSummary(bytes.NewReader(out))
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	return s, err
}

// tool runs flockmq-bench pinned to the tool CPUs, copies its stderr to the
// progress writer line by line (calling onLine for each) and returns its
// stdout, also saved as id.json.
func (h *harness) tool(ctx context.Context, rr *rowResult, id string, args []string, onLine func(string)) ([]byte, error) {
	argv := append([]string{filepath.Join(h.bin, "flockmq-bench")}, args...)
	if h.toolCPUs != "" {
		argv = append([]string{"taskset", "-c", h.toolCPUs}, argv...)
	}
	rr.Commands = append(rr.Commands, shellLine(nil, argv))
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
		fmt.Fprintln(h.progress, line)
		fmt.Fprintln(&errTail, line)
		if onLine != nil {
			onLine(line)
		}
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
