package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Config describes one scenario run. Build it with DefaultConfig and
// ParseFlags; a Config is read-only once a run starts.
type Config struct {
	Scenario string   // conn, pub, sub, fanin, fanout, pairs, latency, storm, retained, routes, takeover
	Hosts    []string // host:port, clients are spread over them round-robin
	// Role hosts, each nil unless its flag is given (see pubHost, subHost,
	// reconnectHost): publishers (and route probes), subscribers (and
	// sessions), and takeover's second node.
	PubHosts       []string
	SubHosts       []string
	ReconnectHosts []string

	Version  codec.Version
	QoS      byte
	Size     int     // payload bytes, at least HeaderSize
	Rate     float64 // messages per second per publisher; 0 = unlimited
	Inflight int     // QoS 1/2 window per publisher (capped by the broker's Receive Maximum)
	Topic    string  // publish topic template (%i client index, %p publisher index)
	Filter   string  // subscription filter template (%i client index, %p subscriber index)

	Clients       int // the scenario's main count, see the usage text
	Topics        int // retained: number of retained topics; routes: subscriptions per connection
	ClientPrefix  string
	Username      string
	Password      string
	Clean         bool
	SessionExpiry uint32 // seconds, v5 only
	KeepAlive     time.Duration
	Duration      time.Duration // publish phase (or hold time for conn)
	Count         int           // messages per publisher; 0 = until Duration
	Ramp          float64       // connections per second; 0 = as fast as Dialers allow
	Dialers       int           // concurrent dials
	SourceIPs     []netip.Addr
	Loops         int           // gnet client event loops
	Drain         time.Duration // wait after publishing for in-flight deliveries
	Tick          time.Duration // publish scheduler tick
	ConnTimeout   time.Duration // whole connect phase
	PID           int           // broker PID, for RSS from /proc
	NoCleanup     bool          // storm/retained: leave sessions and retained messages behind
	Probe         int           // conn: after the hold, one message to this many random connections; routes: random topics probed
	ProbeEvery    time.Duration // routes, takeover and multi-node flows: period of route probes

	// MQTT over TLS (tls.go, stdnet.go): a crypto/tls connection per client
	// instead of gnet's loops.
	TLS           bool
	CAFile        string // PEM CA certificates to verify the broker's certificate with
	Insecure      bool   // skip the verification (instead of CAFile)
	CertFile      string // client certificate, PEM; optional
	KeyFile       string // its key
	TLSServerName string // name to verify; default each host's host part

	Interval time.Duration // progress line period; 0 disables it
	Progress io.Writer     // where progress lines go (stderr in the binary)
	JSON     bool
	Report   string // HTML report path

	tlsConf *tls.Config // built from the TLS flags by Validate
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		Hosts:        []string{"127.0.0.1:1883"},
		Version:      codec.V5,
		Size:         64,
		Inflight:     64,
		Clients:      10,
		Topics:       1000,
		ClientPrefix: "fmqb",
		Clean:        true,
		KeepAlive:    60 * time.Second,
		Duration:     10 * time.Second,
		Dialers:      32,
		Loops:        runtime.GOMAXPROCS(0),
		Drain:        5 * time.Second,
		Tick:         time.Millisecond,
		ConnTimeout:  60 * time.Second,
		ProbeEvery:   50 * time.Millisecond,
		Interval:     time.Second,
	}
}

// Scenarios lists the scenario names in usage order.
var Scenarios = []string{"conn", "pub", "sub", "fanin", "fanout", "pairs", "latency", "storm", "retained", "routes", "takeover"}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("bench: invalid configuration")

// Validate checks c and fills scenario defaults (topics, filters); with
// TLS it reads the certificate files.
func (c *Config) Validate() error {
	known := false
	for _, s := range Scenarios {
		known = known || s == c.Scenario
	}
	switch {
	case !known:
		return fmt.Errorf("%w: unknown scenario %q", ErrConfig, c.Scenario)
	case len(c.Hosts) == 0:
		return fmt.Errorf("%w: no --host", ErrConfig)
	case c.Version != codec.V311 && c.Version != codec.V5:
		return fmt.Errorf("%w: --mqtt must be 3.1.1 or 5", ErrConfig)
	case c.QoS > 2:
		return fmt.Errorf("%w: --qos must be 0, 1 or 2", ErrConfig)
	case c.Size < HeaderSize:
		return fmt.Errorf("%w: --size must be at least %d (the payload header)", ErrConfig, HeaderSize)
	case c.Size > 16<<20:
		return fmt.Errorf("%w: --size above 16 MiB", ErrConfig)
	case c.Rate < 0 || c.Ramp < 0:
		return fmt.Errorf("%w: negative rate", ErrConfig)
	case c.Inflight < 1 || c.Inflight > 65535:
		return fmt.Errorf("%w: --inflight must be 1..65535", ErrConfig)
	case c.Clients < 1:
		return fmt.Errorf("%w: -c must be at least 1", ErrConfig)
	case c.Count < 0 || (c.Count == 0 && c.Duration <= 0):
		return fmt.Errorf("%w: need --count or --duration", ErrConfig)
	case c.Dialers < 1 || c.Loops < 1:
		return fmt.Errorf("%w: --dialers and --loops must be positive", ErrConfig)
	case c.Tick <= 0:
		return fmt.Errorf("%w: --tick must be positive", ErrConfig)
	case c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second:
		return fmt.Errorf("%w: --keepalive out of range", ErrConfig)
	case c.Probe < 0:
		return fmt.Errorf("%w: --probe must not be negative", ErrConfig)
	case c.Probe > 0 && c.Scenario != "conn" && c.Scenario != "routes":
		return fmt.Errorf("%w: --probe belongs to the conn and routes scenarios", ErrConfig)
	case c.Probe > c.Clients && c.Scenario == "conn":
		return fmt.Errorf("%w: --probe %d exceeds -c %d", ErrConfig, c.Probe, c.Clients)
	case c.ProbeEvery <= 0:
		return fmt.Errorf("%w: --probe-every must be positive", ErrConfig)
	case c.Topics < 1:
		return fmt.Errorf("%w: --topics must be at least 1", ErrConfig)
	case len(c.ReconnectHosts) > 0 && c.Scenario != "takeover":
		return fmt.Errorf("%w: --reconnect-host belongs to the takeover scenario", ErrConfig)
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.Topic == "" {
		c.Topic = defaultTopic(c.Scenario)
		if c.Scenario == "conn" && c.Filter != "" {
			c.Topic = c.Filter // the probe publishes to what the connections subscribed
		}
	}
	if c.Filter == "" {
		c.Filter = defaultFilter(c.Scenario, c.Topic)
	}
	if c.Scenario == "storm" || c.Scenario == "takeover" {
		c.Clean = false
		if c.Version == codec.V5 && c.SessionExpiry == 0 {
			c.SessionExpiry = 300
		}
	}
	if c.Scenario == "latency" && c.Rate == 0 {
		c.Rate = 1000
	}
	for _, tmpl := range []string{c.Topic, c.Filter, c.ClientPrefix} {
		if _, err := ExpandTemplate(tmpl, 0, 0); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrConfig, tmpl, err)
		}
	}
	switch {
	case c.Scenario == "routes" || c.Scenario == "takeover":
		return c.validateOwnTopics()
	case c.Probe > 0:
		return c.validateProbe()
	}
	return nil
}

// validateOwnTopics checks routes and takeover, whose --filter is a topic
// name of each connection's own, subscribed and published to.
func (c *Config) validateOwnTopics() error {
	f0, _ := ExpandTemplate(c.Filter, 0, 0) // validated
	f1, _ := ExpandTemplate(c.Filter, 1, 1)
	switch {
	case f0 == f1:
		return fmt.Errorf("%w: %s needs a --filter with %%i, so that each connection has topics of its own", ErrConfig, c.Scenario)
	case strings.ContainsAny(c.Filter, "+#"):
		return fmt.Errorf("%w: %s publishes to --filter %q, which must not contain wildcards", ErrConfig, c.Scenario, c.Filter)
	case c.Scenario == "takeover" && c.QoS == 0:
		return fmt.Errorf("%w: takeover publishes to offline sessions, which keep QoS 1 and 2 messages only: give --qos 1 or 2", ErrConfig)
	}
	return nil
}

// validateProbe checks the topics of conn --probe: each connection needs a
// filter of its own, and the probe needs a topic name, not a filter.
func (c *Config) validateProbe() error {
	f0, _ := ExpandTemplate(c.Filter, 0, 0) // validated
	f1, _ := ExpandTemplate(c.Filter, 1, 1)
	if f0 == f1 {
		return fmt.Errorf("%w: --probe needs a --filter with %%i, so that each connection has a topic of its own", ErrConfig)
	}
	if strings.ContainsAny(c.Topic, "+#") {
		return fmt.Errorf("%w: --probe publishes to --topic %q, which must not contain wildcards", ErrConfig, c.Topic)
	}
	return nil
}

// Connections is the most connections the run holds open at once, which
// sets the open files it needs.
func (c *Config) Connections() int {
	n := c.Clients
	switch c.Scenario {
	case "conn":
		if c.Probe > 0 {
			n++ // the probe publisher
		}
	case "pairs", "latency":
		n *= 2
	case "fanin", "fanout", "retained":
		n++
	case "routes", "takeover":
		n += c.roleHosts() // a prober or publisher per --pub-host
	}
	return n
}

// roleHosts is the number of route probers (routes) or publishers
// (takeover): one per --pub-host, or per --host without it.
func (c *Config) roleHosts() int {
	if len(c.PubHosts) > 0 {
		return len(c.PubHosts)
	}
	return len(c.Hosts)
}

// pubHost is the host of publisher p, client idx: --pub-host round-robin on
// p, or without it --host round-robin on idx (as before the role flags).
func (c *Config) pubHost(p, idx int) string { return pickHost(c.PubHosts, p, c.Hosts, idx) }

// subHost is the host of subscriber (or session) i, client idx.
func (c *Config) subHost(i, idx int) string { return pickHost(c.SubHosts, i, c.Hosts, idx) }

// reconnectHost is where takeover's session i reconnects: --reconnect-host
// round-robin, or without it where it first connected.
func (c *Config) reconnectHost(i, idx int) string {
	if len(c.ReconnectHosts) > 0 {
		return c.ReconnectHosts[i%len(c.ReconnectHosts)]
	}
	return c.subHost(i, idx)
}

func pickHost(role []string, i int, hosts []string, idx int) string {
	if len(role) > 0 {
		return role[i%len(role)]
	}
	return hosts[idx%len(hosts)]
}

func defaultTopic(scenario string) string {
	switch scenario {
	case "fanout":
		return "flockmq-bench/fanout"
	case "fanin":
		return "flockmq-bench/fanin/%p"
	case "retained":
		return "flockmq-bench/retained/%p"
	case "storm":
		return "flockmq-bench/storm/%i"
	case "conn":
		return "flockmq-bench/conn/%i" // --probe: one topic per connection
	case "routes", "takeover":
		return "flockmq-bench/" + scenario + "/%i"
	}
	return "flockmq-bench/" + scenario + "/%p"
}

func defaultFilter(scenario, topic string) string {
	switch scenario {
	case "fanin":
		return "flockmq-bench/fanin/#"
	case "retained":
		return "flockmq-bench/retained/#"
	case "sub":
		return "flockmq-bench/pub/#"
	}
	return topic
}
