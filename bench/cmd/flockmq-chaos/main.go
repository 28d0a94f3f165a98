// Command flockmq-chaos is FlockMQ's chaos checker: it starts the three-node
// compose cluster of deploy/compose under a project and network of its own,
// runs QoS 1 publishers, persistent-session subscribers and retained writes
// against all three nodes from the host, injects one fault at a time (kill of
// the raft leader, kill of a follower, a partition of one node, a pause of one
// node longer than failure detection, a degraded link, a degraded link with a
// leader kill, a rolling restart, then a restart of the whole cluster), and
// then checks the recorded history against the guarantees of
// docs/cluster.md. See docs/reliability.md.
//
//	make chaos                       # full run, under 15 minutes
//	make chaos CHAOS_FLAGS=-short    # one leader kill and one partition, about 3 minutes
//	make chaos CHAOS_FLAGS='-faults leader-kill,leader-kill -log-level debug'
//
// The exit status is 0 when every assertion held, 1 with one sentence per
// failed assertion otherwise, 2 for a bad command line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	root      string
	short     bool
	keep      bool
	rate      int
	out       string
	token     string
	down      time.Duration // a killed node stays down this long
	isolate   time.Duration // partition length
	pause     time.Duration // pause length
	slow      time.Duration // degraded link length
	settle    time.Duration // quiet time after each recovery
	maxLeader time.Duration // a new leader within this after a leader kill
	faults    []string      // the plan, when -faults names one
	logLevel  string        // the nodes' log level, "" for the compose file's
	logs      string        // directory for the nodes' logs, "" for none
}

// faultKinds are the faults the checker injects, in the full run's order.
var faultKinds = []string{"leader-kill", "follower-kill", "partition", "pause", "slow-link", "mixed",
	"restart-n1", "restart-n2", "restart-n3", "full-restart"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flockmq-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.root, "root", ".", "the repository's root (deploy/compose is under it)")
	fs.BoolVar(&c.short, "short", false, "one leader kill and one partition only (about 3 minutes)")
	fs.BoolVar(&c.keep, "keep", false, "leave the compose project running at the end")
	fs.IntVar(&c.rate, "rate", 200, "QoS 1 publishes per second, all publishers together")
	fs.StringVar(&c.out, "out", "bin/chaos-report.txt", "also write the report to this file (empty: no file)")
	fs.StringVar(&c.token, "token", "change-me-admin-token", "the admin token of deploy/compose/flockmq.env")
	fs.DurationVar(&c.settle, "settle", 0, "quiet time after each recovery (default 15s, 8s with -short)")
	faults := fs.String("faults", "", "comma-separated faults to inject instead of the plan, repeats allowed: "+strings.Join(faultKinds, ", "))
	fs.StringVar(&c.logLevel, "log-level", "", "the nodes' log level (debug, info, warn, error; default: the compose file's)")
	fs.StringVar(&c.logs, "logs", "bin/chaos-logs", "save every node's log under this directory at the end (empty: do not)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	c.down, c.isolate, c.pause, c.slow, c.maxLeader = 10*time.Second, 15*time.Second, 12*time.Second, 20*time.Second, 5*time.Second
	if c.settle == 0 {
		c.settle = 15 * time.Second
		if c.short {
			c.settle = 8 * time.Second
		}
	}
	if c.short {
		c.isolate = 12 * time.Second
	}
	if *faults != "" {
		for _, f := range strings.Split(*faults, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains(faultKinds, f) {
				fmt.Fprintf(stderr, "flockmq-chaos: -faults: %q is not one of %s\n", f, strings.Join(faultKinds, ", "))
				return 2
			}
			c.faults = append(c.faults, f)
		}
	}
	switch c.logLevel {
	case "", "debug", "info", "warn", "error":
	default:
		fmt.Fprintf(stderr, "flockmq-chaos: -log-level %q is not debug, info, warn or error\n", c.logLevel)
		return 2
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		fmt.Fprintln(stderr, "flockmq-chaos:", err)
		return 2
	}
	c.root = root
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
	cl := &cluster{cfg: c, logf: logf, project: fmt.Sprintf("flockmq-chaos-%08x", rand.Uint32())}
	defer cl.teardown()
	rep, fails, err := chaos(ctx, cl)
	if err != nil {
		fmt.Fprintf(stdout, "flockmq-chaos: the run could not complete: %v\n", err)
		if rep != "" {
			fmt.Fprint(stdout, rep)
		}
		return 1
	}
	fmt.Fprint(stdout, rep)
	if c.out != "" {
		p := c.out
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.root, p)
		}
		if err := os.WriteFile(p, []byte(rep), 0o644); err != nil {
			logf("writing %s: %v", p, err)
		}
	}
	if len(fails) > 0 {
		for _, f := range fails {
			fmt.Fprintln(stdout, "FAIL: "+f)
		}
		return 1
	}
	fmt.Fprintln(stdout, "PASS: every assertion held.")
	return 0
}

// chaos runs the whole thing and returns the report and the failed
// assertions.
func chaos(ctx context.Context, cl *cluster) (string, []string, error) {
	start := time.Now()
	if err := cl.up(ctx); err != nil {
		return "", nil, err
	}
	cl.logf("cluster up and healthy after %v", time.Since(start).Round(time.Millisecond))
	h := newHistory()
	cl.startEvents()
	w := newWorkload(cl, h)
	if err := w.start(ctx); err != nil {
		return "", nil, err
	}
	var faults []*fault
	plan := faultKinds
	switch {
	case len(cl.cfg.faults) > 0:
		plan = cl.cfg.faults
	case cl.cfg.short:
		plan = []string{"leader-kill", "partition"}
	}
	// A calm stretch first: the baseline.
	sleep(ctx, cl.cfg.settle)
	for _, kind := range plan {
		if ctx.Err() != nil {
			break
		}
		f, err := cl.inject(ctx, kind, h, w)
		if f != nil {
			faults = append(faults, f)
		}
		if err != nil {
			w.stop()
			return "", nil, fmt.Errorf("fault %s: %w", kind, err)
		}
		// Every acknowledged retained message on every node, after every fault.
		f.retained = checkRetained(ctx, cl, h)
		sleep(ctx, cl.cfg.settle)
	}
	end := w.stop()
	cl.logf("workload stopped; checking retained messages")
	retained := checkRetained(ctx, cl, h)
	dies := cl.stopEvents()
	running := cl.allRunning()
	rep, fails := analyze(h, faults, w.measureFrom, end, retained, dies, running, cl)
	mode := map[bool]string{true: "short", false: "full"}[cl.cfg.short]
	if len(cl.cfg.faults) > 0 {
		mode = "faults " + strings.Join(cl.cfg.faults, ",")
	}
	head := fmt.Sprintf("flockmq-chaos report: project %s, mode %s, %s, commit %s, %v in all\n",
		cl.project, mode,
		start.UTC().Format("2006-01-02 15:04 UTC"), gitCommit(cl.cfg.root), time.Since(start).Round(time.Second))
	return head + rep, fails, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func gitCommit(root string) string {
	out, err := runCmd(context.Background(), root, nil, 10*time.Second, "git", "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(out)
}
