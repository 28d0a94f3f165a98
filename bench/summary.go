package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// Summary is the result of one scenario run; --json prints it as is.
type Summary struct {
	Scenario string   `json:"scenario"`
	Hosts    []string `json:"hosts"`
	MQTT     string   `json:"mqtt"`
	QoS      int      `json:"qos"`
	Size     int      `json:"size"`
	Clients  int      `json:"clients"`
	Rate     float64  `json:"rate_per_client"`
	Elapsed  float64  `json:"elapsed_s"`

	// Role hosts, when given (--pub-host, --sub-host, --reconnect-host).
	PubHosts       []string `json:"pub_hosts,omitempty"`
	SubHosts       []string `json:"sub_hosts,omitempty"`
	ReconnectHosts []string `json:"reconnect_hosts,omitempty"`

	Conn     ConnStats      `json:"connections"`
	Pub      PubStats       `json:"publish"`
	Latency  Latency        `json:"latency"`     // end to end, publish to delivery
	Ack      Latency        `json:"ack_latency"` // publish to PUBACK / PUBCOMP
	Seq      SeqCounts      `json:"correctness"`
	Retained *RetainedStats `json:"retained,omitempty"`
	Probe    *ProbeStats    `json:"probe,omitempty"` // conn --probe
	TLS      *TLSStats      `json:"tls,omitempty"`   // --tls
	CPU      CPUStats       `json:"cpu"`
	Errors   []string       `json:"errors,omitempty"`

	// RouteWait: routes' convergence; takeover's and multi-node flows'
	// wait for routes before publishing.
	RouteWait *RouteWait     `json:"route_wait,omitempty"`
	Routes    *RouteStats    `json:"routes,omitempty"`
	Takeover  *TakeoverStats `json:"takeover,omitempty"`

	Series       []Sample    `json:"series,omitempty"`
	Distribution []DistPoint `json:"distribution,omitempty"`
}

// ConnStats describes the connect phase(s).
type ConnStats struct {
	Attempted      int     `json:"attempted"`
	Connected      int     `json:"connected"`
	Failed         int     `json:"failed"`
	Dropped        int     `json:"dropped"` // lost after being ready
	Seconds        float64 `json:"seconds"`
	Rate           float64 `json:"per_s"`
	Connack        Latency `json:"connack_latency"`
	SessionPresent int     `json:"session_present"`
	RSSBeforeKB    int64   `json:"broker_rss_before_kb,omitempty"`
	RSSAfterKB     int64   `json:"broker_rss_after_kb,omitempty"`
	RSSPerConnKB   float64 `json:"broker_rss_per_conn_kb,omitempty"`
	// RSS1MGiB extrapolates to a million connections: the RSS before plus
	// a million times the RSS per connection.
	RSS1MGiB float64 `json:"broker_rss_1m_conns_gib,omitempty"`
}

// PubStats are the message counts and rates.
type PubStats struct {
	Sent          int64   `json:"sent"`
	Acked         int64   `json:"acked"`
	Delivered     int64   `json:"delivered"`
	Expected      int64   `json:"expected_deliveries"`
	Foreign       int64   `json:"foreign"` // received without a benchmark header
	Stale         int64   `json:"stale"`   // from another run, e.g. a previous run's backlog
	PublishSecs   float64 `json:"publish_s"`
	DrainSecs     float64 `json:"drain_s"`
	SentRate      float64 `json:"sent_per_s"`
	DeliveredRate float64 `json:"delivered_per_s"`
}

// RetainedStats are the retained scenario's figures.
type RetainedStats struct {
	Topics      int     `json:"topics"`
	StoreSecs   float64 `json:"store_s"` // publishing every retained topic
	Subscribers int     `json:"subscribers"`
	Complete    int     `json:"complete"` // subscribers that got every topic
	TimeToAll   Latency `json:"time_to_all"`
}

// CPUStats is the tool's own CPU use, to spot a saturated generator.
type CPUStats struct {
	UserSecs float64 `json:"user_s"`
	SysSecs  float64 `json:"sys_s"`
	Cores    float64 `json:"cores"` // (user+sys)/elapsed
}

// cpuMeter measures the process's CPU time over an interval.
type cpuMeter struct {
	t0          time.Time
	user0, sys0 time.Duration
}

func startCPU() cpuMeter {
	u, s := rusage()
	return cpuMeter{t0: time.Now(), user0: u, sys0: s}
}

func (m cpuMeter) stop() CPUStats {
	u, s := rusage()
	wall := time.Since(m.t0).Seconds()
	c := CPUStats{UserSecs: (u - m.user0).Seconds(), SysSecs: (s - m.sys0).Seconds()}
	if wall > 0 {
		c.Cores = (c.UserSecs + c.SysSecs) / wall
	}
	return c
}

func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// WriteJSON prints s as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText prints the human summary.
func (s *Summary) WriteText(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	transport := ""
	if s.TLS != nil {
		transport = " tls"
	}
	p("== flockmq-bench %s  hosts=%s%s%s mqtt=%s qos=%d size=%d clients=%d rate=%s  elapsed %.1fs",
		s.Scenario, strings.Join(s.Hosts, ","), s.roleText(), transport, s.MQTT, s.QoS, s.Size, s.Clients, rateText(s.Rate), s.Elapsed)
	c := s.Conn
	p("connections  %d/%d connected, %d failed, %d dropped; %.0f conn/s over %.2fs; session present %d",
		c.Connected, c.Attempted, c.Failed, c.Dropped, c.Rate, c.Seconds, c.SessionPresent)
	if t := s.TLS; t != nil {
		p("  connack    %s  (from the start of the TLS handshake)", latText(c.Connack))
		if t.Handshakes > 0 {
			p("  tls        %s %s %s; handshake %s", t.Version, t.Cipher, t.Group, latText(t.Handshake))
		} else {
			p("  tls        no handshake completed")
		}
	} else {
		p("  connack    %s", latText(c.Connack))
	}
	if c.RSSAfterKB > 0 {
		p("  broker RSS %d KiB -> %d KiB (%.2f KiB = %.0f bytes per connection; 1,000,000 connections ≈ %.2f GiB)",
			c.RSSBeforeKB, c.RSSAfterKB, c.RSSPerConnKB, c.RSSPerConnKB*1024, c.RSS1MGiB)
	}
	if pr := s.Probe; pr != nil {
		p("probe        %d random connections: sent %d, received %d, lost %d, duplicated %d, misdelivered %d in %.2fs; p50 %s p99 %s max %s",
			pr.Connections, pr.Sent, pr.Received, pr.Lost, pr.Duplicated, pr.Misdelivered, pr.Seconds,
			micros(pr.Latency.P50), micros(pr.Latency.P99), micros(pr.Latency.Max))
	}
	if w := s.RouteWait; w != nil {
		p("routes       %d of %d (publisher node, topic, subscriber) reached in %.3fs after the last SUBACK (probes every %s: %d rounds, %d probes, %d misdelivered); per pair p50 %s p99 %s",
			w.Reached, w.Pairs, w.Seconds, micros(w.Every*1e6), w.Rounds, w.Probes, w.Misdelivered, micros(w.TimeToRoute.P50), micros(w.TimeToRoute.P99))
	}
	if rs := s.Routes; rs != nil {
		p("  made       %d subscriptions on %d connections in %.2fs; %d topics sampled, probed from %s",
			rs.Subscriptions, rs.Connections, rs.SubscribeSecs, rs.Sampled, strings.Join(rs.ProbeHosts, ","))
		p("  verified   sent %d, received %d, lost %d, duplicated %d, misdelivered %d",
			rs.Sent, rs.Received, rs.Lost, rs.Duplicated, rs.Misdelivered)
	}
	if tk := s.Takeover; tk != nil {
		p("takeover     %d sessions subscribed in %.2fs; %d messages acked while offline in %.2fs; %d reconnected in %.2fs, session present %d",
			tk.Sessions, tk.SubscribeSecs, tk.Published, tk.PublishSecs, tk.Reconnected, tk.ReconnectSecs, s.Conn.SessionPresent)
		p("  received   %d of %d expected in %.2fs (%d sessions complete); lost %d, duplicated %d, reordered %d, misdelivered %d",
			tk.Received, tk.Expected, tk.DrainSecs, tk.Complete, tk.Lost, tk.Duplicated, tk.Reordered, tk.Misdelivered)
	}
	if s.Pub.Sent > 0 || s.Pub.Delivered > 0 {
		p("throughput   sent %d (%s msg/s over %.2fs)  delivered %d of %d expected (%s msg/s, drain %.2fs)  acked %d",
			s.Pub.Sent, si(s.Pub.SentRate), s.Pub.PublishSecs, s.Pub.Delivered, s.Pub.Expected,
			si(s.Pub.DeliveredRate), s.Pub.DrainSecs, s.Pub.Acked)
		p("latency      %s", latText(s.Latency))
		if s.Ack.Count > 0 {
			p("ack latency  %s", latText(s.Ack))
		}
		q := s.Seq
		p("correctness  lost %d  duplicated %d  reordered %d  late %d  foreign %d  stale %d  (%d streams, %d unique)",
			q.Lost, q.Duplicated, q.Reordered, q.Late, s.Pub.Foreign, s.Pub.Stale, q.Streams, q.Unique)
	}
	if rt := s.Retained; rt != nil {
		p("retained     %d topics stored in %.2fs; %d/%d subscribers got all; time to all %s",
			rt.Topics, rt.StoreSecs, rt.Complete, rt.Subscribers, latText(rt.TimeToAll))
	}
	p("tool CPU     user %.2fs sys %.2fs = %.2f cores", s.CPU.UserSecs, s.CPU.SysSecs, s.CPU.Cores)
	for _, e := range s.Errors {
		p("error        %s", e)
	}
}

func (s *Summary) roleText() string {
	var b strings.Builder
	for _, r := range []struct {
		name  string
		hosts []string
	}{{"pub", s.PubHosts}, {"sub", s.SubHosts}, {"reconnect", s.ReconnectHosts}} {
		if len(r.hosts) > 0 {
			fmt.Fprintf(&b, " %s=%s", r.name, strings.Join(r.hosts, ","))
		}
	}
	return b.String()
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g/s", r)
}

func latText(l Latency) string {
	if l.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		micros(l.P50), micros(l.P90), micros(l.P99), micros(l.P999), micros(l.Max), l.Count)
}
