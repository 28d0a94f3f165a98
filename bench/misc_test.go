package bench

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

func TestSummarize(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 1000; i++ {
		record(h, i*1000) // 1 µs .. 1 ms
	}
	record(h, 5) // clamped up to 1 µs
	record(h, int64(time.Hour))
	l := Summarize(h)
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*0.01+1 }
	if l.Count != 1002 || !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) {
		t.Fatalf("summary %+v", l)
	}
	if !near(l.Max, float64(time.Minute/time.Microsecond)) || l.Min > 1.01 {
		t.Fatalf("clamping: %+v", l)
	}
	if (Summarize(newHist()) != Latency{}) || (Summarize(nil) != Latency{}) {
		t.Fatal("empty histogram must give a zero Latency")
	}
	d := Distribution(h)
	if len(d) < 10 || d[0].Percentile != 0 || d[len(d)-1].Micros < d[0].Micros {
		t.Fatalf("distribution %+v", d)
	}
}

func TestExpandTemplate(t *testing.T) {
	cases := []struct {
		tmpl      string
		client, p int
		want      string
		err       bool
	}{
		{"a/%i/b/%p", 12, 3, "a/12/b/3", false},
		{"plain", 1, 2, "plain", false},
		{"100%%/%p", 0, 7, "100%/7", false},
		{"bad%", 0, 0, "", true},
		{"bad%x", 0, 0, "", true},
	}
	for _, c := range cases {
		got, err := ExpandTemplate(c.tmpl, c.client, c.p)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: got %q, %v", c.tmpl, got, err)
		}
		if c.err && !errors.Is(err, ErrTemplate) {
			t.Errorf("%q: error %v is not ErrTemplate", c.tmpl, err)
		}
	}
}

func TestParseSourceIPs(t *testing.T) {
	str := func(as []netip.Addr) string {
		var s []string
		for _, a := range as {
			s = append(s, a.String())
		}
		return strings.Join(s, ",")
	}
	cases := []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1, 10.0.0.7", "10.0.0.1,10.0.0.7"},
		{"10.0.0.0/30", "10.0.0.1,10.0.0.2"}, // network and broadcast skipped
		{"10.0.0.5/31", "10.0.0.4,10.0.0.5"}, // point to point: both usable
		{"127.0.0.0/30", "127.0.0.0,127.0.0.1,127.0.0.2,127.0.0.3"},
		{"192.168.1.9/32", "192.168.1.9"},
		{"fd00::/127", "fd00::,fd00::1"},
	}
	for _, c := range cases {
		got, err := ParseSourceIPs(c.in)
		if err != nil || str(got) != c.want {
			t.Errorf("%q: got %s, %v; want %s", c.in, str(got), err, c.want)
		}
	}
	if got, err := ParseSourceIPs("10.0.0.0/16"); err != nil || len(got) != 65534 {
		t.Errorf("/16: %d addresses, %v", len(got), err)
	}
	for _, bad := range []string{"", "10.0.0.300", "10.0.0.0/8", "10.0.0.0/33", "nope"} {
		if _, err := ParseSourceIPs(bad); !errors.Is(err, ErrSourceIPs) {
			t.Errorf("%q: got %v, want ErrSourceIPs", bad, err)
		}
	}
}

func TestMedianRatio(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.xs...)
		if got := Median(c.xs); got != c.want {
			t.Errorf("Median(%v) = %v want %v", c.xs, got, c.want)
		}
		for i := range in {
			if in[i] != c.xs[i] {
				t.Fatal("Median modified its input")
			}
		}
	}
	if Ratio(50, 100) != 0.5 || Ratio(3, 0) != 0 || Ratio(0, 4) != 0 {
		t.Fatal("Ratio")
	}
}

func TestCompareFinish(t *testing.T) {
	res := &CompareResult{Scenario: "pairs", Rounds: 3, Targets: []TargetFigures{
		{Name: "a", Runs: map[string][]float64{"sent_per_s": {100, 300, 200}, "lost": {0, 0, 0}}},
		{Name: "b", Runs: map[string][]float64{"sent_per_s": {50, 70, 60}, "lost": {0, 0, 0}}},
	}}
	res.finish()
	if len(res.Figures) != 1 || res.Figures[0] != "sent_per_s" {
		t.Fatalf("figures %v: all-zero figures are left out", res.Figures)
	}
	if res.Targets[0].Median["sent_per_s"] != 200 || res.Targets[1].Median["sent_per_s"] != 60 {
		t.Fatalf("medians %+v", res.Targets)
	}
	if res.Targets[0].Ratio["sent_per_s"] != 1 || res.Targets[1].Ratio["sent_per_s"] != 0.3 {
		t.Fatalf("ratios %v %v", res.Targets[0].Ratio, res.Targets[1].Ratio)
	}
	var b bytes.Buffer
	res.WriteText(&b)
	if !strings.Contains(b.String(), "x0.30") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestParseCompare(t *testing.T) {
	cc, err := ParseCompare([]string{"--target", "flock=127.0.0.1:1883", "--target", "mochi=127.0.0.1:1884,127.0.0.1:1885",
		"--rounds", "5", "--", "pairs", "-c", "4", "--qos", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Targets) != 2 || cc.Targets[1].Name != "mochi" || len(cc.Targets[1].Hosts) != 2 ||
		cc.Rounds != 5 || cc.Scenario != "pairs" || strings.Join(cc.Args, " ") != "-c 4 --qos 1" {
		t.Fatalf("%+v", cc)
	}
	for _, bad := range [][]string{
		{"--", "pairs"},
		{"--target", "x", "--", "pairs"},
		{"--target", "a=h:1"},
		{"--target", "a=h:1", "--", "nosuch"},
	} {
		if _, err := ParseCompare(bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := ParseFlags("pairs", []string{"--host", "a:1,b:2", "--mqtt", "3.1.1", "--qos", "2", "--size", "100",
		"--count", "50", "--keepalive", "30", "--source-ips", "127.0.0.0/31", "--topic", "t/%p"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hosts) != 2 || cfg.Version != codec.V311 || cfg.QoS != 2 || cfg.Size != 100 || cfg.Count != 50 ||
		cfg.Duration != 0 || cfg.KeepAlive != 30*time.Second || len(cfg.SourceIPs) != 2 || cfg.Filter != "t/%p" {
		t.Fatalf("%+v", cfg)
	}
	cfg, err = ParseFlags("storm", nil, io.Discard)
	if err != nil || cfg.Clean || cfg.SessionExpiry != 300 {
		t.Fatalf("storm defaults: %+v %v", cfg, err)
	}
	cfg, err = ParseFlags("latency", nil, io.Discard)
	if err != nil || cfg.Rate != 1000 || cfg.Clients != 1 {
		t.Fatalf("latency defaults: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{{"--size", "10"}, {"--mqtt", "4.0"}, {"--qos", "3"}, {"--topic", "a/%z"},
		{"--inflight", "0"}, {"extra"}} {
		if _, err := ParseFlags("pairs", bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	st := []byte("Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmRSS:\t   7321 kB\nThreads:\t1\n")
	if got := ParseVmRSS(st); got != 7321 {
		t.Fatalf("got %d", got)
	}
	if ParseVmRSS([]byte("Name: x\n")) != 0 || ProcessRSS(0) != 0 {
		t.Fatal("missing VmRSS must read as 0")
	}
}

func TestReportSelfContained(t *testing.T) {
	h := newHist()
	for i := int64(1); i < 5000; i++ {
		record(h, i*997)
	}
	s := &Summary{Scenario: "pairs<x>", Hosts: []string{"h:1"}, Latency: Summarize(h), Distribution: Distribution(h),
		Series: []Sample{{T: 1, SentRate: 10, RecvRate: 9, P50: 100, P99: 900}, {T: 2, SentRate: 12, RecvRate: 12, P50: 110, P99: 800}}}
	page := string(Report(s))
	for _, want := range []string{"<svg", "Throughput", "Latency distribution", "pairs&lt;x&gt;", "polyline"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, banned := range []string{"http://", "https://", "<script src"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("report refers to the network: %q", banned)
		}
	}
}

func TestPubWindow(t *testing.T) {
	var w pubWindow
	w.init(3)
	var ids []uint16
	for range 3 {
		id, ok := w.take(10)
		if !ok {
			t.Fatal("take")
		}
		ids = append(ids, id)
	}
	if _, ok := w.take(10); ok {
		t.Fatal("window of 3 took a fourth")
	}
	if _, ok := w.free(999); ok {
		t.Fatal("freed an id not in flight")
	}
	if sent, ok := w.free(ids[0]); !ok || sent != 10 {
		t.Fatal("free")
	}
	if _, ok := w.free(ids[0]); ok {
		t.Fatal("double free")
	}
	w.free(ids[1])
	w.free(ids[2])
	// Ids cycle over a multiple of the window below 65535.
	seen := map[uint16]bool{}
	for i := range 70000 {
		id, ok := w.take(int64(i + 1))
		if !ok {
			t.Fatalf("take %d", i)
		}
		if id == 0 {
			t.Fatal("packet id 0")
		}
		seen[id] = true
		if _, ok := w.free(id); !ok {
			t.Fatalf("free %d", id)
		}
	}
	if len(seen) != 65535/3*3 {
		t.Fatalf("%d distinct ids", len(seen))
	}
}
