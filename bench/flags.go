package bench

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// ScenarioHelp is one line per scenario, for the usage text.
var ScenarioHelp = map[string]string{
	"conn":     "open -c connections at --ramp and hold them for --duration; connect rate, broker RSS (--pid); --probe N: then one message to N random ones",
	"pub":      "-c publishers, no subscribers; publish and PUBACK rate",
	"sub":      "-c subscribers on --filter for --duration (pair with a pub run elsewhere)",
	"fanin":    "-c publishers -> 1 subscriber on a wildcard",
	"fanout":   "1 publisher -> -c subscribers of one topic",
	"pairs":    "-c independent publisher/subscriber pairs",
	"latency":  "pairs at a fixed --rate (default 1000/s, -c 1); latency percentiles",
	"storm":    "-c persistent sessions: connect, disconnect all, reconnect all; CONNACK latency, session present",
	"retained": "store --topics retained messages, then -c subscribers on a wildcard; time to receive all",
	"routes":   "-c connections make --topics subscriptions each on --sub-host; time until --pub-host nodes route a sample of them",
	"takeover": "-c persistent sessions on --sub-host, --count messages each while offline from --pub-host, reconnect to --reconnect-host",
}

// ParseFlags parses a scenario's flags into a validated Config.
func ParseFlags(scenario string, args []string, errOut io.Writer) (Config, error) {
	cfg := DefaultConfig()
	cfg.Scenario = scenario
	fs := flag.NewFlagSet(scenario, flag.ContinueOnError)
	fs.SetOutput(errOut)
	hosts := fs.String("host", strings.Join(cfg.Hosts, ","), "broker `host:port` list, comma separated; clients spread round-robin")
	pubHosts := fs.String("pub-host", "", "`host:port` list for publishers and route probes, round-robin on the publisher index (default: --host)")
	subHosts := fs.String("sub-host", "", "`host:port` list for subscribers and sessions, round-robin on the subscriber index (default: --host)")
	reHosts := fs.String("reconnect-host", "", "takeover: `host:port` list the sessions reconnect to, round-robin (default: where each first connected)")
	mqtt := fs.String("mqtt", "5", "protocol `version`: 3.1.1 or 5")
	qos := fs.Int("qos", 0, "QoS of publishes and subscriptions")
	fs.IntVar(&cfg.Size, "size", cfg.Size, fmt.Sprintf("payload bytes (at least %d, the sequence header)", HeaderSize))
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages/s per publisher; 0 = unlimited (QoS1/2 bounded by --inflight)")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "QoS 1/2 in-flight window per publisher")
	fs.StringVar(&cfg.Topic, "topic", "", "publish topic template: %i client index, %p publisher index (default per scenario)")
	fs.StringVar(&cfg.Filter, "filter", "", "subscription filter template: %i client index, %p subscriber index (default per scenario)")
	fs.IntVar(&cfg.Clients, "c", cfg.Clients, "clients: connections, publishers, subscribers or pairs, per scenario")
	fs.IntVar(&cfg.Topics, "topics", cfg.Topics, "retained: number of retained topics; routes: subscriptions per connection")
	fs.StringVar(&cfg.ClientPrefix, "client-prefix", cfg.ClientPrefix, "client id prefix (template); ids are <prefix>-<index>")
	fs.StringVar(&cfg.Username, "username", "", "user name")
	fs.StringVar(&cfg.Password, "password", "", "password")
	fs.BoolVar(&cfg.Clean, "clean", cfg.Clean, "clean start / clean session (storm forces false)")
	expiry := fs.Uint("session-expiry", 0, "v5 session expiry interval, seconds (storm default 300)")
	keep := fs.String("keepalive", "60", "keep alive, seconds or a duration")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "publish phase (conn: hold time; routes: the longest wait for the routes); with --count, a cap")
	fs.IntVar(&cfg.Count, "count", 0, "messages per publisher (instead of --duration); takeover: per session (default 10)")
	fs.Float64Var(&cfg.Ramp, "ramp", 0, "connections per second; 0 = as fast as --dialers allow")
	fs.IntVar(&cfg.Dialers, "dialers", cfg.Dialers, "concurrent dials")
	srcIPs := fs.String("source-ips", "", "local source addresses to bind, list or CIDR (10.0.0.1,10.0.1.0/28)")
	fs.IntVar(&cfg.Loops, "loops", cfg.Loops, "client event loops (gnet's; with --tls, protocol goroutines)")
	fs.BoolVar(&cfg.TLS, "tls", false, "MQTT over TLS: a crypto/tls connection per client (two goroutines each) instead of gnet; "+
		"the CONNACK latency includes the handshake. Needs --cafile or --insecure")
	fs.StringVar(&cfg.CAFile, "cafile", "", "--tls: verify the broker's certificate against the CA certificates in `FILE` (PEM)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "--tls: do not verify the broker's certificate")
	fs.StringVar(&cfg.CertFile, "cert", "", "--tls: client certificate `FILE` (PEM), with --key")
	fs.StringVar(&cfg.KeyFile, "key", "", "--tls: client key `FILE` (PEM)")
	fs.StringVar(&cfg.TLSServerName, "tls-server-name", "", "--tls: the `name` the broker's certificate must have (default: each --host's host part)")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "wait this long at most for in-flight deliveries after publishing")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "publish scheduler tick")
	fs.DurationVar(&cfg.ConnTimeout, "conn-timeout", cfg.ConnTimeout, "limit for each connect phase")
	fs.IntVar(&cfg.PID, "pid", 0, "broker PID, to report its RSS from /proc/PID/status")
	fs.IntVar(&cfg.Probe, "probe", 0, "conn: subscribe every connection to its own topic (--filter, default flockmq-bench/conn/%i); after the hold, "+
		"publish one message to each of `N` random connections from one extra connection; each must arrive exactly once. "+
		"routes: probe N random topics besides each connection's last (default 1000)")
	fs.DurationVar(&cfg.ProbeEvery, "probe-every", cfg.ProbeEvery, "routes, takeover, flows over several nodes: period of the route probes (the routing time's resolution)")
	fs.BoolVar(&cfg.NoCleanup, "no-cleanup", false, "storm/retained: leave sessions and retained messages on the broker")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "progress line period; 0 = quiet")
	fs.BoolVar(&cfg.JSON, "json", false, "print the summary as JSON")
	fs.StringVar(&cfg.Report, "report", "", "write a self-contained HTML report to `FILE.html`")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.Hosts = splitList(*hosts)
	cfg.PubHosts, cfg.SubHosts, cfg.ReconnectHosts = splitList(*pubHosts), splitList(*subHosts), splitList(*reHosts)
	switch *mqtt {
	case "3.1.1", "311", "4":
		cfg.Version = codec.V311
	case "5", "5.0":
		cfg.Version = codec.V5
	default:
		return cfg, fmt.Errorf("%w: --mqtt %q: want 3.1.1 or 5", ErrConfig, *mqtt)
	}
	if *qos < 0 || *qos > 2 {
		return cfg, fmt.Errorf("%w: --qos %d", ErrConfig, *qos)
	}
	cfg.QoS = byte(*qos)
	if *expiry > 0xFFFFFFFF {
		return cfg, fmt.Errorf("%w: --session-expiry too large", ErrConfig)
	}
	cfg.SessionExpiry = uint32(*expiry)
	ka, err := parseSeconds(*keep)
	if err != nil {
		return cfg, fmt.Errorf("%w: --keepalive: %v", ErrConfig, err)
	}
	cfg.KeepAlive = ka
	if *srcIPs != "" {
		if cfg.SourceIPs, err = ParseSourceIPs(*srcIPs); err != nil {
			return cfg, err
		}
	}
	if set["count"] && !set["duration"] {
		cfg.Duration = 0 // --count alone: no time cap
	}
	if scenario == "latency" && !set["c"] {
		cfg.Clients = 1
	}
	if scenario == "routes" && !set["probe"] {
		cfg.Probe = 1000
	}
	if scenario == "takeover" {
		if !set["count"] {
			cfg.Count = 10
		}
		if !set["qos"] {
			cfg.QoS = 1
		}
	}
	return cfg, cfg.Validate()
}

func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
