package main

import (
	"strconv"
	"time"
)

// Figures a row can be judged by: a compare figure of flockmq-bench, or
// figSampledRSS, which bench-compare measures itself.
const (
	figDelivered  = "delivered_per_s"
	figLatencyP99 = "latency_p99_us"
	figConnect    = "connect_per_s"
	figToolRSS    = "broker_rss_per_conn_kb"
	figSampledRSS = "sampled_rss_per_conn_kb"
)

// row is one line of the comparison table: a flockmq-bench scenario and the
// figure it is judged by.
type row struct {
	ID       string   // file name stem for the raw output
	Title    string   // the table's first column
	Scenario string   // flockmq-bench scenario
	Args     []string // scenario flags
	Figure   string   // compare figure shown in the table
	Unit     string
	Higher   bool // a higher figure is better
	Clients  int  // connections held; divides the sampled RSS
	// Fresh: memory rows. Each run gets a freshly started broker and its own
	// `compare --rounds 1` with that one target (rounds still alternate
	// brokers), because a broker that already held the connections of an
	// earlier run reuses that memory and would report almost no growth.
	Fresh bool
	// SampleRSS: bench-compare samples the broker's VmRSS every 100 ms during
	// the run; the figure is the peak minus the idle RSS of the fresh broker,
	// per connection. (The tool's --pid is read by the conn scenario only.)
	SampleRSS bool
	// PIDFlag: pass the broker's --pid to the tool.
	PIDFlag bool
	// TLS: the tool connects to each broker's TLS listener (--tls --cafile
	// with the run's CA); brokers without one are left out (-tls).
	TLS bool
	// Base is the ID of the row a TLS row is the TCP twin of (-tls).
	Base string
	// Extra are compare figures shown beside Figure's median, e.g. the
	// connect latency percentiles of a connect-rate row.
	Extra []extraFigure
}

// extraFigure is a figure shown beside a row's figure, in µs.
type extraFigure struct {
	Name  string // compare figure
	Label string // printed before the value
}

// Acked says whether the row publishes at QoS 1 or 2, whose rows report
// lost, duplicated and reordered messages for every broker.
func (r row) Acked() bool {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "--qos" || r.Args[i] == "-qos" {
			return r.Args[i+1] == "1" || r.Args[i+1] == "2"
		}
	}
	return false
}

// plan sizes the rows: the full run, or a short smoke run.
type plan struct {
	Rounds   int
	Duration time.Duration // publish phase of the flow rows
	Hold     time.Duration // how long idle connections are held
	Conns    int           // the 10,000-connection rows
	Drain    time.Duration
}

func fullPlan() plan {
	return plan{Rounds: 3, Duration: 10 * time.Second, Hold: 5 * time.Second, Conns: 10000, Drain: 5 * time.Second}
}

func quickPlan() plan {
	return plan{Rounds: 1, Duration: 2 * time.Second, Hold: 2 * time.Second, Conns: 1000, Drain: 2 * time.Second}
}

// rows is the comparison table of issue 5 (64-byte payloads throughout, MQTT
// 5 unless a row says otherwise), with fan-in QoS 1 for both MQTT versions.
func rows(p plan) []row {
	dur := []string{"--size", "64", "--duration", p.Duration.String(), "--drain", p.Drain.String()}
	flow := func(args ...string) []string { return append(args, dur...) }
	conns := strconv.Itoa(p.Conns)
	n := thousands(int64(p.Conns))
	hold := p.Hold.String()
	return []row{
		{ID: "fanin-qos0", Title: "fan-in 8 → 1, QoS 0", Scenario: "fanin",
			Args: flow("-c", "8", "--qos", "0"), Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "fanin-qos1-v5", Title: "fan-in 8 → 1, QoS 1, MQTT 5", Scenario: "fanin",
			Args: flow("-c", "8", "--qos", "1", "--mqtt", "5"), Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "fanin-qos1-v311", Title: "fan-in 8 → 1, QoS 1, MQTT 3.1.1", Scenario: "fanin",
			Args: flow("-c", "8", "--qos", "1", "--mqtt", "3.1.1"), Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "fanout-qos0", Title: "fan-out 1 → 100, QoS 0", Scenario: "fanout",
			Args: flow("-c", "100", "--qos", "0"), Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "pairs-qos0", Title: "100 pairs, QoS 0", Scenario: "pairs",
			Args: flow("-c", "100", "--qos", "0"), Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "latency-qos1", Title: "latency, 1 pair at 5,000 msg/s, QoS 1 (p99)", Scenario: "latency",
			Args: flow("-c", "1", "--rate", "5000", "--qos", "1"), Figure: figLatencyP99, Unit: "µs"},
		{ID: "idle-subscribed", Title: n + " idle connections, 1 subscription each", Scenario: "sub",
			Args: []string{"-c", conns, "--duration", hold}, Figure: figSampledRSS, Unit: "KiB RSS / conn",
			Clients: p.Conns, Fresh: true, SampleRSS: true},
		{ID: "idle-conn", Title: n + " idle connections, no subscription (tool --pid)", Scenario: "conn",
			Args: []string{"-c", conns, "--duration", hold}, Figure: figToolRSS, Unit: "KiB RSS / conn",
			Clients: p.Conns, Fresh: true, PIDFlag: true},
		{ID: "connect-subscribe", Title: "connect + subscribe, " + n + " clients", Scenario: "sub",
			Args: []string{"-c", conns, "--duration", "1s"}, Figure: figConnect, Unit: "clients/s", Higher: true},
	}
}
