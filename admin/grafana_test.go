package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/eventloop"
)

// grafanaDashboardPath is the Grafana dashboard shipped in deploy/grafana.
const grafanaDashboardPath = "../deploy/grafana/flockmq.json"

// clusterOnlyPrefixes are the metrics the collector exposes only when the
// endpoint has a cluster (admin.Node.Cluster set).
var clusterOnlyPrefixes = []string{"flockmq_cluster_members", "flockmq_cluster_key_refused", "flockmq_routes_", "flockmq_gossip_", "flockmq_peer_link_"}

func clusterOnly(name string) bool {
	for _, p := range clusterOnlyPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// histogramDefs are the metricDefs exposed as histograms.
var histogramDefs = map[string]bool{"flockmq_raft_apply_seconds": true, "flockmq_raft_batch_ops": true}

// defType is the type a metricDefs entry is exposed with.
func defType(name string) dto.MetricType {
	switch {
	case histogramDefs[name]:
		return dto.MetricType_HISTOGRAM
	case strings.HasSuffix(name, "_total"):
		return dto.MetricType_COUNTER
	default:
		return dto.MetricType_GAUGE
	}
}

// metricsNode is a raft-backed single node as cmd/node wires one: raft node,
// broker on its store, admin endpoint served by httptest and, when asked for,
// an MQTT listener.
type metricsNode struct {
	node *cluster.Node
	b    *broker.Broker
	srv  *eventloop.Server // nil without MQTT
	adm  *Server
	web  *httptest.Server
}

func startMetricsNode(t *testing.T, mqtt bool) *metricsNode {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := cluster.StartNode(cluster.NodeConfig{ID: "metrics-node", DataDir: t.TempDir(),
		RaftBind: "127.0.0.1:0", Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m := &metricsNode{node: node}
	// One cleanup, in cmd/node's order: admin endpoint, broker (its loops
	// close the clients), MQTT engine, raft node.
	t.Cleanup(func() {
		if m.web != nil {
			m.web.Close()
		}
		if m.adm != nil {
			m.adm.Close()
		}
		if m.b != nil {
			if err := m.b.Shutdown(5 * time.Second); err != nil {
				t.Errorf("broker shutdown: %v", err)
			}
		}
		if m.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.srv.Stop(ctx); err != nil {
				t.Errorf("eventloop stop: %v", err)
			}
		}
		if err := m.node.Close(); err != nil {
			t.Errorf("node close: %v", err)
		}
	})
	if err := node.WaitReady(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	m.b, err = broker.New(broker.DefaultConfig(), broker.WithStore(node.Store()), broker.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	node.Run(m.b)
	if mqtt {
		srv := eventloop.NewServer(m.b, "127.0.0.1:0", eventloop.Options{Loops: 1, Logger: quiet})
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		m.srv = srv
	}
	m.adm, err = New(Config{Logger: quiet}, Node{Broker: m.b, Raft: node})
	if err != nil {
		t.Fatal(err)
	}
	m.web = httptest.NewServer(m.adm.Handler())
	return m
}

// scrape GETs /metrics and parses the text exposition.
func (m *metricsNode) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.web.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := m.web.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// grafanaDashboard is the part of a Grafana dashboard the test reads.
type grafanaDashboard struct {
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID      int            `json:"id"`
	Type    string         `json:"type"`
	Title   string         `json:"title"`
	Panels  []grafanaPanel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// grafanaExpr is one query of the dashboard and where it is.
type grafanaExpr struct {
	where string
	expr  string
}

// grafanaExprs returns every target expression of every panel, rows'
// nested panels included.
func grafanaExprs(t *testing.T, d *grafanaDashboard) []grafanaExpr {
	t.Helper()
	var out []grafanaExpr
	var walk func(ps []grafanaPanel, in string)
	walk = func(ps []grafanaPanel, in string) {
		for _, p := range ps {
			where := fmt.Sprintf("%spanel %d %q", in, p.ID, p.Title)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s (%s) has no query", where, p.Type)
			}
			for i, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s target %d has no expr", where, i)
					continue
				}
				out = append(out, grafanaExpr{where: where, expr: tg.Expr})
			}
			walk(p.Panels, where+" / ")
		}
	}
	walk(d.Panels, "")
	return out
}

var (
	promIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// promString matches PromQL string literals: label values hold no
	// metric names.
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'` + "|`[^`]*`")
)

// metricNames returns the metric names expr uses: the identifiers outside
// string literals that start with flockmq_, go_ or process_ (PromQL
// functions, keywords, label names and Grafana's $variables do not).
func metricNames(expr string) []string {
	expr = promString.ReplaceAllString(expr, `""`)
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		if loc[0] > 0 && expr[loc[0]-1] == '$' {
			continue // a Grafana variable such as $__rate_interval
		}
		id := expr[loc[0]:loc[1]]
		if strings.HasPrefix(id, "flockmq_") || strings.HasPrefix(id, "go_") || strings.HasPrefix(id, "process_") {
			names = append(names, id)
		}
	}
	return names
}

// resolveMetric maps a series name to its family in fams: itself, or for
// name_bucket/_sum/_count the histogram (or for _sum/_count the summary)
// it belongs to. A histogram's bare name names no series in Prometheus.
func resolveMetric(name string, fams map[string]*dto.MetricFamily) (string, error) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f := fams[base]; f != nil {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return base, nil
			case dto.MetricType_SUMMARY:
				if suffix != "_bucket" {
					return base, nil
				}
			}
		}
	}
	f := fams[name]
	if f == nil {
		return "", fmt.Errorf("no metric %s on /metrics", name)
	}
	if f.GetType() == dto.MetricType_HISTOGRAM {
		return "", fmt.Errorf("%s is a histogram: query %[1]s_bucket, %[1]s_sum or %[1]s_count", name)
	}
	return name, nil
}

// resolveDef is resolveMetric for the cluster-only metrics, which a node
// without a cluster does not expose: they are looked up in metricDefs.
func resolveDef(name string) (string, error) {
	for _, d := range metricDefs {
		if d.name == name {
			if histogramDefs[name] {
				return "", fmt.Errorf("%s is a histogram: query its _bucket, _sum or _count series", name)
			}
			return name, nil
		}
		if histogramDefs[d.name] {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if name == d.name+suffix {
					return d.name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no metric %s in metricDefs", name)
}

func TestGrafanaDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(grafanaDashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s does not parse: %v", grafanaDashboardPath, err)
	}
	exprs := grafanaExprs(t, &d)
	if len(exprs) < 20 {
		t.Fatalf("%s has %d target expressions, want at least 20", grafanaDashboardPath, len(exprs))
	}
	// The template variables' queries name metrics too
	// (label_values(flockmq_info, node)).
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if json.Unmarshal(v.Query, &s) != nil {
				t.Fatalf("variable %s: query is neither a string nor an object: %s", v.Name, v.Query)
			}
			q.Query = s
		}
		exprs = append(exprs, grafanaExpr{where: "variable $" + v.Name, expr: q.Query})
	}

	m := startMetricsNode(t, false)
	fams := m.scrape(t)

	checked := map[string]bool{} // name as written in the dashboard
	families := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric name in %q", e.where, e.expr)
		}
		for _, n := range names {
			var fam string
			var err error
			if clusterOnly(n) {
				fam, err = resolveDef(n)
			} else {
				fam, err = resolveMetric(n, fams)
			}
			if err != nil {
				t.Errorf("%s: %v\n\texpr: %s", e.where, err, e.expr)
				continue
			}
			checked[n] = true
			families[fam] = true
		}
	}
	t.Logf("%d expressions (targets and variables), %d metric names, %d metric families checked",
		len(exprs), len(checked), len(families))
}

func TestMetricsExposition(t *testing.T) {
	m := startMetricsNode(t, true)

	// One real MQTT v5 client that publishes one QoS 1 message.
	conn, err := net.DialTimeout("tcp", m.srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnClientError: func(error) {}})
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		conn.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: "metrics-pub", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect: %v (connack %+v)", err, ca)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "metrics/test", QoS: 1, Payload: []byte("hello")}); err != nil {
		t.Fatalf("publish QoS 1: %v", err)
	}

	value := func(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, mt := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case mt.GetCounter() != nil:
				return mt.GetCounter().GetValue(), true
			case mt.GetGauge() != nil:
				return mt.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}

	// The counters are read at each scrape; poll until the publish shows.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams = m.scrape(t)
		v, _ := value(fams, "flockmq_messages_received_total", map[string]string{"qos": "1"})
		if v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flockmq_messages_received_total{qos=\"1\"} = %v after the publish was acknowledged", v)
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, d := range metricDefs {
		if clusterOnly(d.name) {
			if fams[d.name] != nil {
				t.Errorf("%s exposed by a node without a cluster", d.name)
			}
			continue
		}
		f := fams[d.name]
		if f == nil {
			t.Errorf("%s missing from /metrics", d.name)
			continue
		}
		if want := defType(d.name); f.GetType() != want {
			t.Errorf("%s: type %v, want %v", d.name, f.GetType(), want)
		}
		if f.GetHelp() != d.help {
			t.Errorf("%s: help %q, want %q", d.name, f.GetHelp(), d.help)
		}
		if len(f.GetMetric()) == 0 {
			t.Errorf("%s: no samples", d.name)
		}
		want := slices.Clone(d.labels)
		sort.Strings(want)
		for _, mt := range f.GetMetric() {
			var got []string
			for _, lp := range mt.GetLabel() {
				got = append(got, lp.GetName())
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: labels %v, want %v", d.name, got, want)
				break
			}
		}
		if h := f.GetMetric(); len(h) > 0 && f.GetType() == dto.MetricType_HISTOGRAM {
			if len(h[0].GetHistogram().GetBucket()) == 0 {
				t.Errorf("%s: histogram without buckets", d.name)
			}
		}
	}

	if v, ok := value(fams, "flockmq_clients_connected", nil); !ok || v < 1 {
		t.Errorf("flockmq_clients_connected = %v (present %v), want >= 1", v, ok)
	}
	if v, ok := value(fams, "flockmq_raft_leader", nil); !ok || v != 1 {
		t.Errorf("flockmq_raft_leader = %v (present %v), want 1", v, ok)
	}
	if v, ok := value(fams, "flockmq_raft_state", map[string]string{"state": "leader"}); !ok || v != 1 {
		t.Errorf("flockmq_raft_state{state=\"leader\"} = %v (present %v), want 1", v, ok)
	}
	if v, ok := value(fams, "flockmq_info", map[string]string{"node": "metrics-node", "version": broker.Version}); !ok || v != 1 {
		t.Errorf("flockmq_info{node=\"metrics-node\",version=%q} = %v (present %v), want 1", broker.Version, v, ok)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}
