package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/bench"
)

// compareJSON is the shape `flockmq-bench compare --json` prints (trimmed to
// the figures bench-compare reads), for three targets and three rounds.
const compareJSON = `{
  "scenario": "fanin",
  "args": ["-c", "8", "--qos", "1"],
  "rounds": 3,
  "figures": ["sent_per_s", "delivered_per_s", "latency_p99_us", "connect_per_s", "tool_cpu_cores"],
  "targets": [
    {"name": "flockmq", "hosts": ["127.0.0.1:40001"],
     "runs": {"delivered_per_s": [90000, 100000, 80000], "latency_p99_us": [900, 0, 1100],
              "connect_per_s": [50, 60, 70], "lost": [0, 0, 0], "duplicated": [0, 1, 0],
              "reordered": [0, 0, 0], "tool_cpu_cores": [0.5, 0.7, 0.6]},
     "median": {"delivered_per_s": 90000}, "ratio_to_first": {"delivered_per_s": 1}},
    {"name": "mosquitto", "hosts": ["127.0.0.1:40002"],
     "runs": {"delivered_per_s": [150000, 120000, 130000], "latency_p99_us": [400, 500, 450],
              "connect_per_s": [50, 60, 70], "lost": [2, 0, 0], "duplicated": [0, 0, 0],
              "reordered": [3, 0, 2], "tool_cpu_cores": [0.9, 0.9, 0.9]},
     "median": {"delivered_per_s": 130000}, "ratio_to_first": {"delivered_per_s": 1.44}},
    {"name": "mochi", "hosts": ["127.0.0.1:40003"],
     "runs": {"delivered_per_s": [60000, 0, 70000], "latency_p99_us": [2000, 3000, 2500],
              "connect_per_s": [50, 0, 70], "lost": [0, 0, 0], "duplicated": [0, 0, 0],
              "reordered": [0, 0, 0], "tool_cpu_cores": [0.4, 0.4, 0.4]},
     "median": {"delivered_per_s": 60000}, "ratio_to_first": {"delivered_per_s": 0.67},
     "errors": ["bench: connect failed: 8 of 9 ready"]}
  ]
}`

var names = []string{"flockmq", "mosquitto", "mochi"}

func mustParse(t *testing.T) *bench.CompareResult {
	t.Helper()
	res, err := parseCompare(strings.NewReader(compareJSON))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParseCompare(t *testing.T) {
	res := mustParse(t)
	if res.Scenario != "fanin" || res.Rounds != 3 || len(res.Targets) != 3 {
		t.Fatalf("got %+v", res)
	}
	if got := res.Targets[1].Runs["delivered_per_s"]; len(got) != 3 || got[0] != 150000 {
		t.Fatalf("mosquitto runs = %v", got)
	}
	for _, bad := range []string{"", "{", `{"targets": []}`, "[1,2]"} {
		if _, err := parseCompare(strings.NewReader(bad)); err == nil {
			t.Errorf("parseCompare(%q) succeeded", bad)
		}
	}
}

func TestCollectThroughput(t *testing.T) {
	r := rows(fullPlan())[1] // fan-in QoS 1
	if r.Figure != figDelivered || !r.Acked() {
		t.Fatalf("row 1 is %+v", r)
	}
	ts := collect(r, mustParse(t), names, nil)
	want := []float64{90000, 130000, 60000} // mochi's failed run counts as 0 msg/s
	for i, tr := range ts {
		if tr.Name != names[i] || tr.Median != want[i] {
			t.Errorf("%s: median %v, want %v", tr.Name, tr.Median, want[i])
		}
	}
	if ts[0].Dup != 1 || ts[1].Lost != 2 || ts[1].Reord != 5 || ts[1].SeqRuns != 3 || ts[0].ToolCPU != 0.6 {
		t.Errorf("lost/dup/reordered/cpu = %+v %+v", ts[0], ts[1])
	}
	if len(ts[2].Errors) != 1 {
		t.Errorf("mochi errors = %v", ts[2].Errors)
	}
	if got := ratioCell(r, ts); got != "0.69 (vs mosquitto)" {
		t.Errorf("ratio = %q", got)
	}
}

func TestCollectLowerIsBetterSkipsFailedRuns(t *testing.T) {
	r := row{Figure: figLatencyP99, Unit: "µs"}
	ts := collect(r, mustParse(t), names, nil)
	if len(ts[0].Runs) != 2 || ts[0].Median != 1000 {
		t.Fatalf("flockmq runs %v median %v; a 0 µs run is a failed one", ts[0].Runs, ts[0].Median)
	}
	if b := bestPeer(r, ts); b != 1 {
		t.Fatalf("best peer = %d, want mosquitto", b)
	}
	if got := ratioCell(r, ts); got != "2.22 (vs mosquitto)" {
		t.Errorf("ratio = %q", got)
	}
}

func TestCollectSampledRSS(t *testing.T) {
	r := row{Figure: figSampledRSS, Unit: "KiB RSS / conn", Clients: 1000, SampleRSS: true}
	grown := map[string][]int64{ // KiB over the idle broker, per run
		"flockmq":   {2000, 3000, 1000},
		"mosquitto": {3000, 3000, 3000},
		"mochi":     {40000, 89999, 42000}, // run 2 never connected
	}
	ts := collect(r, mustParse(t), names, grown)
	if ts[0].Median != 2 || ts[1].Median != 3 || ts[2].Median != 41 || len(ts[2].Runs) != 2 {
		t.Fatalf("medians %v %v %v (mochi runs %v)", ts[0].Median, ts[1].Median, ts[2].Median, ts[2].Runs)
	}
	if got := ratioCell(r, ts); got != "0.67 (vs mosquitto)" {
		t.Errorf("ratio = %q", got)
	}
}

func TestCollectMissingTarget(t *testing.T) {
	ts := collect(rows(quickPlan())[0], nil, names, nil)
	for _, tr := range ts {
		if tr.HasData() || len(tr.Errors) == 0 {
			t.Errorf("%s: %+v", tr.Name, tr)
		}
	}
	if got := ratioCell(rows(quickPlan())[0], ts); got != "n/a" {
		t.Errorf("ratio = %q", got)
	}
}

// TestRowsQoS: every QoS 1/2 row reports lost/dup/reordered, and fan-in QoS 1
// runs with both MQTT versions.
func TestRowsQoS(t *testing.T) {
	versions := map[string]bool{}
	for _, r := range rows(fullPlan()) {
		qos, mqtt := "0", "5"
		for i := 0; i+1 < len(r.Args); i++ {
			switch r.Args[i] {
			case "--qos":
				qos = r.Args[i+1]
			case "--mqtt":
				mqtt = r.Args[i+1]
			}
		}
		if r.Acked() != (qos == "1" || qos == "2") {
			t.Errorf("%s: Acked %v with --qos %s", r.ID, r.Acked(), qos)
		}
		if r.Scenario == "fanin" && qos == "1" {
			versions[mqtt] = true
			if !strings.Contains(r.Title, "MQTT "+mqtt) {
				t.Errorf("%s: title %q does not name MQTT %s", r.ID, r.Title, mqtt)
			}
		}
	}
	if !versions["5"] || !versions["3.1.1"] {
		t.Errorf("fan-in QoS 1 runs with MQTT %v, want 5 and 3.1.1", versions)
	}
}

func TestMergeCompare(t *testing.T) {
	res := mustParse(t)
	one := func(name string, v float64, errs ...string) *bench.CompareResult {
		return &bench.CompareResult{Scenario: "conn", Rounds: 1, Targets: []bench.TargetFigures{{Name: name,
			Runs: map[string][]float64{"x": {v}}, Errors: errs}}}
	}
	m := mergeCompare([]*bench.CompareResult{one("a", 1), one("b", 10, "boom"), one("a", 2), one("b", 20)})
	if m.Rounds != 4 || len(m.Targets) != 2 || m.Targets[0].Name != "a" || m.Targets[1].Name != "b" {
		t.Fatalf("merged %+v", m)
	}
	if got := m.Targets[0].Runs["x"]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("a runs %v", got)
	}
	if got := m.Targets[1].Errors; len(got) != 1 {
		t.Errorf("b errors %v", got)
	}
	if whole := mergeCompare([]*bench.CompareResult{res}); len(whole.Targets) != 3 ||
		len(whole.Targets[2].Runs["delivered_per_s"]) != 3 {
		t.Errorf("merge of one result changed it: %+v", whole)
	}
	if mergeCompare(nil) != nil {
		t.Fatal("merge of nothing")
	}
}

func TestFormatFigure(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{1234567.4, "msg/s", "1,234,567"},
		{999, "µs", "999"},
		{-1234, "µs", "-1,234"},
		{0, "msg/s", "0"},
		{3.14159, "KiB RSS / conn", "3.14"},
	} {
		if got := formatFigure(c.v, c.unit); got != c.want {
			t.Errorf("formatFigure(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

func testEnv() env {
	return env{Date: time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC), NProc: 2, CPUModel: "Test CPU",
		Kernel: "6.1.0", GoVersion: "go1.26.8", Mosquitto: "2.0.11", Mochi: "v2.7.9", FlockMQ: "abc123",
		FlockMQDefaults: "-store raft, -loops 0", DataFS: "ext4",
		LoadStart: "load average: 1.00", LoadEnd: "load average: 2.00",
		Rounds: 3, MakeCommand: "make bench-compare",
		Brokers: []string{"bin/flockmq -listen 127.0.0.1:1 -data-dir d -raft-bind 127.0.0.1:2",
			"/usr/sbin/mosquitto -c m.conf", "bin/mochi -listen 127.0.0.1:3"},
		MosqConf: mosquittoConf("PORT", "DATA_DIR/")}
}

func TestRenderSection(t *testing.T) {
	res := mustParse(t)
	r := rows(fullPlan())[1]
	ts := collect(r, res, names, nil)
	ts[0].CPU = cpuTotal{CPU: 15 * time.Second, Wall: 10 * time.Second, Runs: 3}
	ts[1].CPU = cpuTotal{CPU: 9 * time.Second, Wall: 10 * time.Second, Runs: 2, Unmeasured: 1}
	results := []rowResult{{Row: r, Targets: ts, Notes: []string{"mochi exited during the run"},
		Commands: []string{"bin/flockmq-bench compare --rounds 3"}}}
	md := renderSection(testEnv(), results, names)
	for _, want := range []string{
		"## Broker comparison\n",
		"2026-11-26 21:00 UTC",
		"Machine: 2 CPUs (`nproc`), Test CPU; kernel 6.1.0",
		"FlockMQ as `make run` starts it: `bin/flockmq` with this build's defaults (`bin/flockmq -h`: -store raft, -loops 0).",
		"`-data-dir` (a fresh directory for each broker start, on ext4",
		"`-raft-bind` (a free loopback port",
		"Mosquitto with Debian's packaged configuration",
		"CPU: nothing is pinned. No `taskset` for the brokers or the load tool, which share all 2 CPUs",
		"MQTT 5 unless the row says 3.1.1",
		"| scenario | figure | flockmq | mosquitto | mochi | FlockMQ / best peer | broker CPU: cores used (CPU s) | QoS 1/2 lost/dup/reordered |",
		"| fan-in 8 → 1, QoS 1, MQTT 5 | msg/s, ↑ higher is better | 90,000 | 130,000 | 60,000 | 0.69 (vs mosquitto) | " +
			"flockmq 1.50 (15.0 s), mosquitto 0.90 (9.0 s), mochi ? | flockmq 0/1/0, mosquitto 2/0/5, mochi 0/0/0 |",
		"  - flockmq: [90,000, 100,000, 80,000] msg/s; broker CPU 15.00 s in 10.0 s of 3 run(s), 1.50 cores; load tool 0.60 cores; lost 0, duplicated 1, reordered 0 over 3 run(s)",
		"  - mosquitto: [150,000, 120,000, 130,000] msg/s; broker CPU 9.00 s in 10.0 s of 2 run(s), 0.90 cores (1 run(s) not measured);",
		"  - mochi: [60,000, 0, 70,000] msg/s; broker CPU 0.00 s in 0.0 s of 0 run(s), 0.00 cores; load tool 0.40 cores; lost 0, duplicated 0, reordered 0 over 3 run(s); errors: bench: connect failed: 8 of 9 ready",
		"  - note: mochi exited during the run",
		"load average: 1.00",
		"```sh\nmake bench-compare\n",
		"bin/flockmq -listen 127.0.0.1:1 -data-dir d -raft-bind 127.0.0.1:2\n/usr/sbin/mosquitto -c m.conf\nbin/mochi -listen 127.0.0.1:3\n",
		"bin/flockmq-bench compare --rounds 3\n",
		"listener PORT 127.0.0.1\n",
		"persistence_location DATA_DIR/\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	for _, banned := range []string{"taskset -c", "GOMAXPROCS=", "-store memory", "-loops 1", "pinned to CPU"} {
		if strings.Contains(md, banned) {
			t.Errorf("section mentions %q, a tuned or pinned configuration:\n%s", banned, md)
		}
	}
	if strings.Count(md, "\n## ") != 0 {
		t.Errorf("the section must hold no other level-2 heading (replaceSection ends it there)")
	}
}

func TestRenderSectionQoS0AndFailed(t *testing.T) {
	r := rows(fullPlan())[0] // fan-in QoS 0
	ts := collect(r, nil, names, nil)
	md := renderSection(testEnv(), []rowResult{{Row: r, Targets: ts}}, names)
	if want := "| failed | failed | failed | n/a | flockmq ?, mosquitto ?, mochi ? | n/a (QoS 0) |"; !strings.Contains(md, want) {
		t.Errorf("section lacks %q:\n%s", want, md)
	}
	r = rows(fullPlan())[1]
	if got := qosCell(collect(r, nil, names, nil)); got != "flockmq n/a, mosquitto n/a, mochi n/a" {
		t.Errorf("qosCell without results = %q", got)
	}
}

func TestReplaceSection(t *testing.T) {
	sec := "## Broker comparison\n\nnew\n"
	codec := "# Benchmarks\n\n## Codec\n\ncodec numbers\n"
	for _, c := range []struct{ name, doc, want string }{
		{"empty", "", sec},
		{"append", codec, codec + "\n" + sec},
		{"append no newline", "# B\n\ntext", "# B\n\ntext\n\n" + sec},
		{"append after blank", "# B\n\n", "# B\n\n" + sec},
		{"replace last", codec + "\n## Broker comparison\n\nold\n\n### sub\nold\n", codec + "\n" + sec},
		{"replace middle", "# B\n\n## Broker comparison\nold\n```\n## not a heading\n```\n## Codec\nkeep\n",
			"# B\n\n" + sec + "\n## Codec\nkeep\n"},
		{"heading in a fence is not the section", "```\n## Broker comparison\n```\n",
			"```\n## Broker comparison\n```\n\n" + sec},
	} {
		if got := replaceSection(c.doc, sectionTitle, sec); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
		once := replaceSection(c.doc, sectionTitle, sec)
		if twice := replaceSection(once, sectionTitle, sec); twice != once {
			t.Errorf("%s: not idempotent:\n%q\n%q", c.name, once, twice)
		}
	}
}

func TestDedupe(t *testing.T) {
	got := strings.Join(dedupe([]string{"a", "b", "a", "a"}), ";")
	if got != "a (x3);b" {
		t.Errorf("dedupe = %q", got)
	}
}

func TestMachineParsers(t *testing.T) {
	if got := cpuModel([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\n")); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := mosquittoVersion("mosquitto version 2.0.11\n\nmosquitto is an MQTT v5.0 broker."); got != "2.0.11" {
		t.Errorf("mosquittoVersion = %q", got)
	}
	if got := bench.ParseVmRSS([]byte("Name:\tx\nVmRSS:\t   1234 kB\n")); got != 1234 {
		t.Errorf("ParseVmRSS = %d", got)
	}
	help := "Usage of flockmq:\n  -data-dir string\n    \tdirectory of the raft log (default data; env FLOCKMQ_DATA_DIR)\n" +
		"  -loops string\n    \tevent loops (0 = one per CPU) (default 0; env FLOCKMQ_LOOPS)\n" +
		"  -raft-advertise string\n    \taddress (default: the bound one) (default ; env FLOCKMQ_RAFT_ADVERTISE)\n"
	if got, want := flagDefaults(help, "loops", "data-dir", "raft-advertise", "store"),
		"-loops 0, -data-dir data, -raft-advertise , -store ?"; got != want {
		t.Errorf("flagDefaults = %q, want %q", got, want)
	}
}

func TestShellLine(t *testing.T) {
	got := shellLine([]string{"GOMAXPROCS=1"}, []string{"bin/x", "-make", "a b", "it's"})
	if want := `GOMAXPROCS=1 bin/x -make 'a b' 'it'\''s'`; got != want {
		t.Errorf("shellLine = %s, want %s", got, want)
	}
}

// TestMosquittoConf: Debian's configuration plus a listener; no tuning.
func TestMosquittoConf(t *testing.T) {
	c := mosquittoConf("18830", "/tmp/d/")
	for _, want := range []string{"listener 18830 127.0.0.1\n", "allow_anonymous true\n", "persistence true\n",
		"persistence_location /tmp/d/\n", "log_dest stderr\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	for _, tuned := range []string{"max_", "set_tcp_nodelay", "sys_interval", "persistence false", "log_type"} {
		if strings.Contains(c, tuned) {
			t.Errorf("config sets %q, which Debian's leaves at its default", tuned)
		}
	}
}

func TestRSSSamplerWindows(t *testing.T) {
	s := newRSSSampler(func(name string) (int, bool) { // no such process: RSS 0
		return -1, name == "a" || name == "b"
	})
	if err := s.Round("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Round("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Round("c"); err == nil {
		t.Fatal("unknown target accepted")
	}
	s.End()
	if len(s.Peaks("a")) != 1 || len(s.Peaks("b")) != 1 || len(s.Peaks("c")) != 0 {
		t.Fatalf("windows a=%v b=%v", s.Peaks("a"), s.Peaks("b"))
	}
}

func TestExcerpt(t *testing.T) {
	out := "level=WARN msg=x\npanic: runtime error: nil pointer\n\ngoroutine 15 [running]:\nmain.f()\n\tf.go:1\nmain.g()\n"
	if got := excerpt(out, 3); got != "panic: runtime error: nil pointer\n\ngoroutine 15 [running]:\nmain.f()" {
		t.Errorf("excerpt = %q", got)
	}
	if got := excerpt("a\nb\nc\nd", 2); got != "c\nd" {
		t.Errorf("excerpt without a panic = %q", got)
	}
}

func TestCleanOut(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.log", "b.json", "m.conf", "section.md", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "flockmq-data-123", "raft"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cleanOut(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "keep.txt" {
		t.Fatalf("left %v", left)
	}
	if err := cleanOut(filepath.Join(dir, "new", "dir")); err != nil {
		t.Fatal(err)
	}
}
