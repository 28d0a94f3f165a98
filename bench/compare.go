package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Target is one broker of a comparison.
type Target struct {
	Name  string
	Hosts []string
}

// CompareConfig is a parsed compare command line.
type CompareConfig struct {
	Targets  []Target
	Rounds   int
	JSON     bool
	Scenario string
	Args     []string // the scenario's flags
	Progress io.Writer
}

type targetFlag struct{ ts *[]Target }

func (f targetFlag) String() string { return "" }

func (f targetFlag) Set(v string) error {
	name, hosts, ok := strings.Cut(v, "=")
	if !ok || name == "" || hosts == "" {
		return fmt.Errorf("want name=host:port[,host:port], got %q", v)
	}
	*f.ts = append(*f.ts, Target{Name: name, Hosts: splitList(hosts)})
	return nil
}

// ParseCompare parses `compare --target a=h:p --target b=h:p [--rounds N]
// [--json] -- <scenario> [flags]`. The scenario flags are checked once here.
func ParseCompare(args []string, errOut io.Writer) (CompareConfig, error) {
	cc := CompareConfig{Rounds: 3}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Var(targetFlag{&cc.Targets}, "target", "`name=host:port[,host:port]`, repeated; the first is the baseline")
	fs.IntVar(&cc.Rounds, "rounds", cc.Rounds, "runs per target, alternating A B A B ...")
	fs.BoolVar(&cc.JSON, "json", false, "print the comparison as JSON")
	if err := fs.Parse(args); err != nil {
		return cc, err
	}
	rest := fs.Args()
	switch {
	case len(cc.Targets) < 1:
		return cc, fmt.Errorf("%w: compare needs --target", ErrConfig)
	case cc.Rounds < 1:
		return cc, fmt.Errorf("%w: --rounds must be positive", ErrConfig)
	case len(rest) == 0:
		return cc, fmt.Errorf("%w: compare needs -- <scenario> [flags]", ErrConfig)
	}
	cc.Scenario, cc.Args = rest[0], rest[1:]
	if _, err := ParseFlags(cc.Scenario, cc.Args, errOut); err != nil {
		return cc, err
	}
	return cc, nil
}

// Figure names of a comparison, in display order; the bool says whether
// higher is better.
var compareFigures = []struct {
	name   string
	higher bool
	get    func(*Summary) float64
}{
	{"sent_per_s", true, func(s *Summary) float64 { return s.Pub.SentRate }},
	{"delivered_per_s", true, func(s *Summary) float64 { return s.Pub.DeliveredRate }},
	{"latency_p50_us", false, func(s *Summary) float64 { return s.Latency.P50 }},
	{"latency_p99_us", false, func(s *Summary) float64 { return s.Latency.P99 }},
	{"latency_p999_us", false, func(s *Summary) float64 { return s.Latency.P999 }},
	{"latency_max_us", false, func(s *Summary) float64 { return s.Latency.Max }},
	{"ack_p99_us", false, func(s *Summary) float64 { return s.Ack.P99 }},
	{"lost", false, func(s *Summary) float64 { return float64(s.Seq.Lost) }},
	{"duplicated", false, func(s *Summary) float64 { return float64(s.Seq.Duplicated) }},
	{"reordered", false, func(s *Summary) float64 { return float64(s.Seq.Reordered) }},
	{"connect_per_s", true, func(s *Summary) float64 { return s.Conn.Rate }},
	{"connack_p50_us", false, func(s *Summary) float64 { return s.Conn.Connack.P50 }},
	{"connack_p99_us", false, func(s *Summary) float64 { return s.Conn.Connack.P99 }},
	{"conn_failed", false, func(s *Summary) float64 { return float64(s.Conn.Failed) }},
	{"session_present", true, func(s *Summary) float64 { return float64(s.Conn.SessionPresent) }},
	{"retained_all_p99_us", false, func(s *Summary) float64 {
		if s.Retained == nil {
			return 0
		}
		return s.Retained.TimeToAll.P99
	}},
	{"routes_s", false, func(s *Summary) float64 {
		if s.RouteWait == nil {
			return 0
		}
		return s.RouteWait.Seconds
	}},
	{"broker_rss_per_conn_kb", false, func(s *Summary) float64 { return s.Conn.RSSPerConnKB }},
	{"tool_cpu_cores", false, func(s *Summary) float64 { return s.CPU.Cores }},
}

// CompareResult holds every run's figures and the medians.
type CompareResult struct {
	Scenario string          `json:"scenario"`
	Args     []string        `json:"args"`
	Rounds   int             `json:"rounds"`
	Figures  []string        `json:"figures"`
	Targets  []TargetFigures `json:"targets"`
}

// TargetFigures are one target's runs.
type TargetFigures struct {
	Name   string               `json:"name"`
	Hosts  []string             `json:"hosts"`
	Runs   map[string][]float64 `json:"runs"`
	Median map[string]float64   `json:"median"`
	Ratio  map[string]float64   `json:"ratio_to_first"` // median / first target's median; 0 when undefined
	Errors []string             `json:"errors,omitempty"`
}

// Compare runs the scenario against every target, alternating targets within
// each round so that drift (thermal, page cache, other load) spreads evenly.
func Compare(ctx context.Context, cc CompareConfig) (*CompareResult, error) {
	res := &CompareResult{Scenario: cc.Scenario, Args: cc.Args, Rounds: cc.Rounds}
	for _, t := range cc.Targets {
		res.Targets = append(res.Targets, TargetFigures{Name: t.Name, Hosts: t.Hosts,
			Runs: map[string][]float64{}})
	}
	for round := range cc.Rounds {
		for i, t := range cc.Targets {
			cfg, err := ParseFlags(cc.Scenario, cc.Args, io.Discard)
			if err != nil {
				return nil, err
			}
			cfg.Hosts, cfg.Progress, cfg.Report = t.Hosts, cc.Progress, ""
			if cc.Progress != nil {
				fmt.Fprintf(cc.Progress, "== round %d/%d: %s (%s)\n", round+1, cc.Rounds, t.Name, strings.Join(t.Hosts, ","))
			}
			sum, err := Run(ctx, cfg)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			tf := &res.Targets[i]
			if err != nil {
				tf.Errors = append(tf.Errors, err.Error())
			}
			if sum == nil {
				continue
			}
			tf.Errors = append(tf.Errors, sum.Errors...)
			for _, f := range compareFigures {
				tf.Runs[f.name] = append(tf.Runs[f.name], f.get(sum))
			}
		}
	}
	res.finish()
	return res, nil
}

// finish computes medians and ratios and keeps the figures any target
// reported as non-zero.
func (res *CompareResult) finish() {
	for i := range res.Targets {
		t := &res.Targets[i]
		t.Median, t.Ratio = map[string]float64{}, map[string]float64{}
		for name, runs := range t.Runs {
			t.Median[name] = Median(runs)
		}
	}
	for _, f := range compareFigures {
		used := false
		for _, t := range res.Targets {
			used = used || t.Median[f.name] != 0
		}
		if !used {
			continue
		}
		res.Figures = append(res.Figures, f.name)
		base := res.Targets[0].Median[f.name]
		for i := range res.Targets {
			res.Targets[i].Ratio[f.name] = Ratio(res.Targets[i].Median[f.name], base)
		}
	}
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Ratio is v/base, or 0 when base is 0.
func Ratio(v, base float64) float64 {
	if base == 0 {
		return 0
	}
	return v / base
}

// WriteJSON prints the comparison as JSON.
func (res *CompareResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteText prints a table: one row per figure, per target the median and
// the ratio to the first target.
func (res *CompareResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "== compare %s %s  (%d rounds, medians; ratio to %s; ^ higher is better, v lower)\n",
		res.Scenario, strings.Join(res.Args, " "), res.Rounds, res.Targets[0].Name)
	fmt.Fprintf(w, "%-24s", "figure")
	for _, t := range res.Targets {
		fmt.Fprintf(w, " %24s", t.Name)
	}
	fmt.Fprintln(w)
	better := map[string]string{}
	for _, f := range compareFigures {
		better[f.name] = map[bool]string{true: " ^", false: " v"}[f.higher]
	}
	for _, f := range res.Figures {
		fmt.Fprintf(w, "%-24s", f+better[f])
		for i, t := range res.Targets {
			cell := fmt.Sprintf("%.4g", t.Median[f])
			if i > 0 {
				cell += fmt.Sprintf(" (x%.2f)", t.Ratio[f])
			}
			fmt.Fprintf(w, " %24s", cell)
		}
		fmt.Fprintln(w)
	}
	for _, t := range res.Targets {
		for _, e := range t.Errors {
			fmt.Fprintf(w, "error %s: %s\n", t.Name, e)
		}
	}
}
