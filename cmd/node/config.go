package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/eventloop"
)

// nodeConfig is everything a node is started with.
type nodeConfig struct {
	Listen         string
	Loops          int
	LogLevel       string
	Store          string
	DataDir        string
	NodeID         string
	RaftBind       string
	RaftAdvertise  string
	RaftPeers      string
	Bootstrap      bool
	Expect         int
	PprofListen    string
	LogFormat      string
	AdminListen    string
	AdminToken     string
	AdminTokenFile string
	AdminPprof     bool

	// Transports and security (issue 13); see checkSecurity.
	TLSListen       string
	WSListen        string
	WSSListen       string
	WSPath          string
	TLSCert         string
	TLSKey          string
	TLSCA           string
	TLSClientAuth   string // none, request, require
	TLSUseIdentity  string // false, cn, san (true = cn)
	ProxyProtocol   bool
	PasswordFile    string
	ACLFile         string
	AllowAnonymous  string // auto, true, false
	JWTSecret       string
	JWTSecretFile   string
	JWTPublicKey    string // PEM file
	AuthHTTP        string
	AuthHTTPTimeout time.Duration
	AuthHTTPDown    string // deny, ignore
	ClusterKey      string
	ClusterKeyFile  string
	PartialBytes    int // eventloop.Options.MaxPartialPacketBytes
	Broker          broker.Config

	// Cluster (issue 11); see clustered. With ClusterBind set, loadConfig
	// derives RaftBind and RaftAdvertise from it and RaftPort.
	ClusterBind           string        // host gossip, raft and the peer link bind, no port
	ClusterAdvertise      string        // host other nodes dial, no port ("" = ClusterBind)
	GossipPort            int           // UDP and TCP; 0 picks a free port
	RaftPort              int           // 0 picks a free port
	PeerPort              int           // 0 picks a free port
	Join                  []string      // gossip seeds, each host:port (nil = none)
	DeadGrace             time.Duration // how long a crashed node's routes are kept
	QuorumFence           time.Duration // without a leader this long, claimed connections are closed (0 = off)
	NetsplitCleanSessions bool          // without a raft majority, accept clean sessions locally
}

// defaultGossipPort is gossip's port unless gossip-port says otherwise, and
// the port of a join seed given without one.
const defaultGossipPort = 7946

// The quorum fence (cluster/fence.go): its default, and its bound, below
// memberlist's failure detection with the LAN settings.
const (
	defaultQuorumFence = 3 * time.Second
	maxQuorumFence     = 4 * time.Second
)

// clustered reports whether the node runs gossip and the peer link: it does
// when it has an address to bind them to or seeds to join.
func (c *nodeConfig) clustered() bool {
	return c.ClusterBind != "" || len(c.Join) > 0
}

// option is one configuration option: its name (the flag; FLOCKMQ_NAME in the
// environment, with dashes as underscores; name = value in the file), its
// one-line doc, and how to parse it into the config.
type option struct {
	name string
	doc  string
	def  func(c *nodeConfig) string
	set  func(c *nodeConfig, v string) error
}

func intOpt(p func(c *nodeConfig) *int) binding {
	return binding{func(c *nodeConfig) string { return strconv.Itoa(*p(c)) },
		func(c *nodeConfig, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a whole number: %q", v)
			}
			*p(c) = n
			return nil
		}}
}

func uintOpt[T uint16 | uint32](p func(c *nodeConfig) *T) binding {
	return binding{func(c *nodeConfig) string { return strconv.FormatUint(uint64(*p(c)), 10) },
		func(c *nodeConfig, v string) error {
			var zero T
			bits := 16
			if _, ok := any(zero).(uint32); ok {
				bits = 32
			}
			n, err := strconv.ParseUint(v, 10, bits)
			if err != nil {
				return fmt.Errorf("not a whole number from 0 to %d: %q", uint64(1)<<bits-1, v)
			}
			*p(c) = T(n)
			return nil
		}}
}

func boolOpt(p func(c *nodeConfig) *bool) binding {
	return binding{func(c *nodeConfig) string { return strconv.FormatBool(*p(c)) },
		func(c *nodeConfig, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not true or false: %q", v)
			}
			*p(c) = b
			return nil
		}}
}

func strOpt(p func(c *nodeConfig) *string) binding {
	return binding{func(c *nodeConfig) string { return *p(c) },
		func(c *nodeConfig, v string) error { *p(c) = v; return nil }}
}

func durOpt(p func(c *nodeConfig) *time.Duration) binding {
	return binding{func(c *nodeConfig) string { return p(c).String() },
		func(c *nodeConfig, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration like 10s: %q", v)
			}
			*p(c) = d
			return nil
		}}
}

// joinOpt binds -join: the seeds are checked and normalised as they are set,
// so the error names the source (flag, environment, file line).
func joinOpt() binding {
	return binding{func(c *nodeConfig) string { return strings.Join(c.Join, ",") },
		func(c *nodeConfig, v string) error {
			seeds, err := parseSeeds(v)
			if err != nil {
				return err
			}
			c.Join = seeds
			return nil
		}}
}

// binding reads and writes one option's field.
type binding struct {
	get func(c *nodeConfig) string
	set func(c *nodeConfig, v string) error
}

// options lists every option; README.md's table mirrors it.
func options() []option {
	o := []option{}
	add := func(name, doc string, b binding) {
		o = append(o, option{name: name, doc: doc, def: b.get, set: b.set})
	}
	add("listen", "MQTT over TCP listen address", strOpt(func(c *nodeConfig) *string { return &c.Listen }))
	add("loops", "event loops (0 = one per CPU)", intOpt(func(c *nodeConfig) *int { return &c.Loops }))
	add("log-level", "debug, info, warn or error", strOpt(func(c *nodeConfig) *string { return &c.LogLevel }))
	add("store", "raft (replicated, on disk) or memory (nothing survives a restart)", strOpt(func(c *nodeConfig) *string { return &c.Store }))
	add("data-dir", "directory of the node's raft log, snapshots and node id", strOpt(func(c *nodeConfig) *string { return &c.DataDir }))
	add("node-id", "the node's stable name (default: stored in data-dir, made on first start)", strOpt(func(c *nodeConfig) *string { return &c.NodeID }))
	add("raft-bind", "raft listen address (port 0 picks one; cluster-bind sets it, with raft-port)", strOpt(func(c *nodeConfig) *string { return &c.RaftBind }))
	add("raft-advertise", "raft address other nodes dial (default: the bound one)", strOpt(func(c *nodeConfig) *string { return &c.RaftAdvertise }))
	add("raft-peers", "voters to bootstrap with, id@host:port,... (the same list on every node)", strOpt(func(c *nodeConfig) *string { return &c.RaftPeers }))
	add("bootstrap-expect", "with join: nodes that bootstrap raft together (at least 1); with raft-peers: their number, as a check (0 = however many it lists)", intOpt(func(c *nodeConfig) *int { return &c.Expect }))
	add("bootstrap", "bootstrap raft on first start (false: wait to be added by the leader)", boolOpt(func(c *nodeConfig) *bool { return &c.Bootstrap }))
	add("cluster-bind", "address without a port that gossip, raft and the peer link bind (set: clustering on)", strOpt(func(c *nodeConfig) *string { return &c.ClusterBind }))
	add("cluster-advertise", "address without a port that other nodes dial (default: cluster-bind)", strOpt(func(c *nodeConfig) *string { return &c.ClusterAdvertise }))
	add("gossip-port", "gossip port, UDP and TCP (0 picks one)", intOpt(func(c *nodeConfig) *int { return &c.GossipPort }))
	add("raft-port", "raft port with cluster-bind (0 picks one)", intOpt(func(c *nodeConfig) *int { return &c.RaftPort }))
	add("peer-port", "peer link port (0 picks one)", intOpt(func(c *nodeConfig) *int { return &c.PeerPort }))
	add("join", "gossip seeds, host[:port],... (port default 7946); needs cluster-bind", joinOpt())
	add("dead-node-grace", "how long a crashed node's subscription routes are kept", durOpt(func(c *nodeConfig) *time.Duration { return &c.DeadGrace }))
	add("quorum-fence", "close connections with a committed claim (0x9C use another server) after this long without a raft leader; below takeover-timeout and failure detection (4s at most), 0 = off", durOpt(func(c *nodeConfig) *time.Duration { return &c.QuorumFence }))
	add("netsplit-clean-sessions", "without a raft majority, still accept clean sessions (expiry 0) with a local-only claim; persistent ones get 0x88 / 0x03", boolOpt(func(c *nodeConfig) *bool { return &c.NetsplitCleanSessions }))
	add("log-format", "text or json", strOpt(func(c *nodeConfig) *string { return &c.LogFormat }))
	add("admin-listen", "admin HTTP endpoint: health, metrics, REST API, dashboard (empty = off)", strOpt(func(c *nodeConfig) *string { return &c.AdminListen }))
	add("admin-token", "bearer token the admin API asks for (empty: the API answers loopback clients only)", strOpt(func(c *nodeConfig) *string { return &c.AdminToken }))
	add("admin-token-file", "file holding the admin token (instead of admin-token)", strOpt(func(c *nodeConfig) *string { return &c.AdminTokenFile }))
	add("admin-pprof", "also serve Go's profiler under /debug/pprof/ on the admin endpoint", boolOpt(func(c *nodeConfig) *bool { return &c.AdminPprof }))
	add("tls-listen", "MQTT over TLS listen address, e.g. :8883 (empty = off)", strOpt(func(c *nodeConfig) *string { return &c.TLSListen }))
	add("ws-listen", "MQTT over WebSocket listen address, e.g. :8083 (empty = off)", strOpt(func(c *nodeConfig) *string { return &c.WSListen }))
	add("wss-listen", "MQTT over secure WebSocket listen address, e.g. :8084 (empty = off)", strOpt(func(c *nodeConfig) *string { return &c.WSSListen }))
	add("ws-path", "HTTP path of the WebSocket listeners", strOpt(func(c *nodeConfig) *string { return &c.WSPath }))
	add("tls-cert", "server certificate chain, PEM file (tls-listen, wss-listen); reloaded on SIGHUP", strOpt(func(c *nodeConfig) *string { return &c.TLSCert }))
	add("tls-key", "server private key, PEM file; reloaded on SIGHUP", strOpt(func(c *nodeConfig) *string { return &c.TLSKey }))
	add("tls-ca", "CA certificates, PEM file, that client certificates must chain to (mTLS)", strOpt(func(c *nodeConfig) *string { return &c.TLSCA }))
	add("tls-client-auth", "client certificates: none, request (verified if given) or require", strOpt(func(c *nodeConfig) *string { return &c.TLSClientAuth }))
	add("tls-use-identity", "use the client certificate's name as the user name: false, cn, or san (its first DNS or email SAN); true = cn", strOpt(func(c *nodeConfig) *string { return &c.TLSUseIdentity }))
	add("proxy-protocol", "expect a PROXY protocol v1/v2 header on every TCP connection (behind a load balancer)", boolOpt(func(c *nodeConfig) *bool { return &c.ProxyProtocol }))
	add("password-file", "Mosquitto password file (mosquitto_passwd, flockmq passwd); reloaded on SIGHUP", strOpt(func(c *nodeConfig) *string { return &c.PasswordFile }))
	add("acl-file", "Mosquitto ACL file (user, topic, pattern with %c and %u); reloaded on SIGHUP", strOpt(func(c *nodeConfig) *string { return &c.ACLFile }))
	add("allow-anonymous", "accept clients without credentials: true, false, or auto (true unless a password file, JWT or HTTP source is set)", strOpt(func(c *nodeConfig) *string { return &c.AllowAnonymous }))
	add("jwt-secret", "HS256 secret of JWT passwords (at least 32 bytes)", strOpt(func(c *nodeConfig) *string { return &c.JWTSecret }))
	add("jwt-secret-file", "file holding the HS256 secret (instead of jwt-secret)", strOpt(func(c *nodeConfig) *string { return &c.JWTSecretFile }))
	add("jwt-public-key", "PEM file of the RS256 or ES256 public key of JWT passwords", strOpt(func(c *nodeConfig) *string { return &c.JWTPublicKey }))
	add("auth-http", "URL of an HTTP authentication service (POST, JSON)", strOpt(func(c *nodeConfig) *string { return &c.AuthHTTP }))
	add("auth-http-timeout", "time allowed for the HTTP authentication service", durOpt(func(c *nodeConfig) *time.Duration { return &c.AuthHTTPTimeout }))
	add("auth-http-down", "while the HTTP service fails: deny the client, or ignore (next source, then allow-anonymous)", strOpt(func(c *nodeConfig) *string { return &c.AuthHTTPDown }))
	add("cluster-key", "base64 key of 16, 24 or 32 bytes shared by the cluster's nodes: encrypts gossip and authenticates the peer link and raft connections", strOpt(func(c *nodeConfig) *string { return &c.ClusterKey }))
	add("cluster-key-file", "file holding the cluster key (instead of cluster-key)", strOpt(func(c *nodeConfig) *string { return &c.ClusterKeyFile }))
	add("pprof-listen", "address of the Go profiler's HTTP endpoint, /debug/pprof/ (empty = off)", strOpt(func(c *nodeConfig) *string { return &c.PprofListen }))
	add("max-connections", "concurrent client connections (0 = unlimited)", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxConnections }))
	add("max-packet-size", "largest packet accepted, in bytes", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxPacketSize }))
	add("receive-maximum", "unacknowledged QoS 1/2 publishes a client may send", uintOpt(func(c *nodeConfig) *uint16 { return &c.Broker.ReceiveMaximum }))
	add("max-inflight", "unacknowledged QoS 1/2 messages towards one client", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxInflight }))
	add("max-queued-messages", "messages queued for an offline session; a quarter of it holds publishers back", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxQueuedMessages }))
	add("queue-qos0", "also queue QoS 0 messages for offline persistent sessions", boolOpt(func(c *nodeConfig) *bool { return &c.Broker.QueueQoS0 }))
	add("max-topic-levels", "levels in a topic name or filter (0 = unlimited)", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxTopicLevels }))
	add("max-retained-size", "largest retained payload in bytes (0 = unlimited)", intOpt(func(c *nodeConfig) *int { return &c.Broker.MaxRetainedSize }))
	add("retain-available", "accept retained messages", boolOpt(func(c *nodeConfig) *bool { return &c.Broker.RetainAvailable }))
	add("topic-alias-maximum", "topic aliases a v5 client may use (0 = none)", uintOpt(func(c *nodeConfig) *uint16 { return &c.Broker.TopicAliasMaximum }))
	add("server-keep-alive", "keep alive imposed on v5 clients in seconds (0 = theirs)", uintOpt(func(c *nodeConfig) *uint16 { return &c.Broker.ServerKeepAlive }))
	add("max-keep-alive", "largest keep alive granted to v5 clients in seconds (0 = any)", uintOpt(func(c *nodeConfig) *uint16 { return &c.Broker.MaxKeepAlive }))
	add("max-session-expiry", "cap on session expiry in seconds (4294967295 = never expire)", uintOpt(func(c *nodeConfig) *uint32 { return &c.Broker.MaxSessionExpiry }))
	add("shared-strategy", "shared subscription pick: round-robin, random or hash", strOpt(func(c *nodeConfig) *string { return &c.Broker.SharedStrategy }))
	add("outbound-high-water", "bytes buffered to a client before QoS 0 is dropped", intOpt(func(c *nodeConfig) *int { return &c.Broker.OutboundHighWater }))
	add("connect-timeout", "time allowed between connecting and CONNECT", durOpt(func(c *nodeConfig) *time.Duration { return &c.Broker.ConnectTimeout }))
	add("sys-interval", "period of $SYS updates (0 = off)", durOpt(func(c *nodeConfig) *time.Duration { return &c.Broker.SysInterval }))
	add("max-partial-packet-bytes", "bytes held across all connections for incoming packets not yet complete; past it, the connection whose packet does not fit is closed (v5: 0x89)", intOpt(func(c *nodeConfig) *int { return &c.PartialBytes }))
	add("mailbox-size", "cross-loop deliveries queued per loop before QoS 0 is dropped", intOpt(func(c *nodeConfig) *int { return &c.Broker.MailboxSize }))
	add("slow-consumer-timeout", "time a client may hold publishers back without acknowledging anything, then 0x97 (0 = never)", durOpt(func(c *nodeConfig) *time.Duration { return &c.Broker.SlowConsumerTimeout }))
	add("takeover-timeout", "time a session that reconnects on another node waits for its messages from the node it was on", durOpt(func(c *nodeConfig) *time.Duration { return &c.Broker.TakeoverTimeout }))
	return o
}

func defaultNodeConfig() nodeConfig {
	return nodeConfig{Listen: ":1883", LogLevel: "info", LogFormat: "text", AdminListen: ":8080", WSPath: "/mqtt", TLSClientAuth: "none", TLSUseIdentity: "false",
		AllowAnonymous: "auto", AuthHTTPTimeout: 5 * time.Second, AuthHTTPDown: "deny", Store: "raft", DataDir: "data", RaftBind: "127.0.0.1:7300", Bootstrap: true,
		PartialBytes: eventloop.DefaultMaxPartialPacketBytes, Broker: broker.DefaultConfig(),
		GossipPort: defaultGossipPort, RaftPort: 7300, PeerPort: 7400, DeadGrace: cluster.DefaultDeadGrace,
		QuorumFence: defaultQuorumFence}
}

// loadConfig builds the configuration: defaults, then the config file, then
// FLOCKMQ_* environment variables, then flags.
func loadConfig(args []string, env func(string) string, stderr io.Writer) (nodeConfig, error) {
	cfg := defaultNodeConfig()
	opts := options()
	fs := flag.NewFlagSet("flockmq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", env("FLOCKMQ_CONFIG"), "config file of name = value lines (FLOCKMQ_CONFIG)")
	flagVals := make(map[string]*string, len(opts))
	for _, o := range opts {
		v := new(string)
		flagVals[o.name] = v
		fs.StringVar(v, o.name, "", fmt.Sprintf("%s (default %s; env %s)", o.doc, o.def(&cfg), envName(o.name)))
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	byName := make(map[string]option, len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}
	explicit := make(map[string]bool) // options set by the file, the environment or a flag
	if *configFile != "" {
		if err := applyFile(&cfg, *configFile, byName, explicit); err != nil {
			return cfg, err
		}
	}
	for _, o := range opts {
		if v := env(envName(o.name)); v != "" {
			if err := o.set(&cfg, v); err != nil {
				return cfg, fmt.Errorf("environment %s: %w", envName(o.name), err)
			}
			explicit[o.name] = true
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		if o, ok := byName[f.Name]; ok && ferr == nil {
			if err := o.set(&cfg, *flagVals[f.Name]); err != nil {
				ferr = fmt.Errorf("flag -%s: %w", f.Name, err)
			}
			explicit[f.Name] = true
		}
	})
	if ferr != nil {
		return cfg, ferr
	}
	if err := cfg.Broker.Validate(); err != nil {
		return cfg, err
	}
	if cfg.PartialBytes < 1 {
		return cfg, fmt.Errorf("max partial packet bytes %d must be at least 1", cfg.PartialBytes)
	}
	// A listen address without a port is a configuration mistake (status 2),
	// not a failure to listen (status 1).
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return cfg, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if cfg.PprofListen != "" {
		if _, _, err := net.SplitHostPort(cfg.PprofListen); err != nil {
			return cfg, fmt.Errorf("pprof listen address %q: %w", cfg.PprofListen, err)
		}
	}
	if err := checkAdmin(&cfg); err != nil {
		return cfg, err
	}
	if err := checkSecurity(&cfg); err != nil {
		return cfg, err
	}
	if err := checkCluster(&cfg, explicit); err != nil {
		return cfg, err
	}
	switch cfg.Store {
	case "raft":
		if _, _, err := net.SplitHostPort(cfg.RaftBind); err != nil {
			return cfg, fmt.Errorf("raft bind address %q: %w", cfg.RaftBind, err)
		}
		if cfg.DataDir == "" {
			return cfg, fmt.Errorf("store raft needs a data dir")
		}
		peers, err := cluster.ParsePeers(cfg.RaftPeers)
		if err != nil {
			return cfg, err
		}
		switch {
		case len(peers) > 0: // a static voter list; with join, gossip only carries routes
			if cfg.Expect != 0 && cfg.Expect != len(peers) {
				return cfg, fmt.Errorf("bootstrap-expect %d does not match the %d raft peers", cfg.Expect, len(peers))
			}
		case len(cfg.Join) > 0:
			if cfg.Expect < 1 {
				return cfg, fmt.Errorf("bootstrap-expect %d with -join must be at least 1: the number of nodes that bootstrap raft together through gossip", cfg.Expect)
			}
		case cfg.Expect > 1:
			return cfg, fmt.Errorf("bootstrap-expect %d needs -join (gossip bootstrap) or -raft-peers (a static voter list)", cfg.Expect)
		}
	case "memory":
	default:
		return cfg, fmt.Errorf("store %q is not raft or memory", cfg.Store)
	}
	return cfg, nil
}

// checkCluster checks the cluster options once every source is applied and
// derives raft's addresses from cluster-bind. explicit holds the options the
// user set.
func checkCluster(cfg *nodeConfig, explicit map[string]bool) error {
	if cfg.Expect < 0 {
		return fmt.Errorf("bootstrap-expect %d must not be negative", cfg.Expect)
	}
	if cfg.DeadGrace <= 0 {
		return fmt.Errorf("dead-node-grace %v must be positive", cfg.DeadGrace)
	}
	switch f := cfg.QuorumFence; {
	case f < 0:
		return fmt.Errorf("quorum-fence %v must not be negative (0 turns it off)", f)
	case f > maxQuorumFence:
		return fmt.Errorf("quorum-fence %v must be at most %v: the majority may hand a session over once failure detection declares this node dead (about 4.5 s)", f, maxQuorumFence)
	case f > 0 && f >= cfg.Broker.TakeoverTimeout && cfg.clustered():
		return fmt.Errorf("quorum-fence %v must be below takeover-timeout %v", f, cfg.Broker.TakeoverTimeout)
	}
	ports := []struct {
		name string
		port int
	}{{"gossip-port", cfg.GossipPort}, {"raft-port", cfg.RaftPort}, {"peer-port", cfg.PeerPort}}
	for _, p := range ports {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s %d is outside 0..65535 (0 picks a free port)", p.name, p.port)
		}
	}
	if cfg.ClusterBind != "" {
		if err := checkClusterHost("cluster-bind", cfg.ClusterBind); err != nil {
			return err
		}
	}
	if cfg.ClusterAdvertise != "" {
		if err := checkClusterHost("cluster-advertise", cfg.ClusterAdvertise); err != nil {
			return err
		}
		if ip := net.ParseIP(cfg.ClusterAdvertise); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("cluster-advertise %q is not an address other nodes can dial; set this node's address", cfg.ClusterAdvertise)
		}
	}
	if !cfg.clustered() {
		return nil
	}
	if cfg.ClusterBind == "" {
		return fmt.Errorf("join needs cluster-bind: the address gossip, raft and the peer link bind")
	}
	if cfg.Store != "raft" {
		return fmt.Errorf("cluster-bind %q needs store raft, not %q: a cluster keeps its sessions in raft", cfg.ClusterBind, cfg.Store)
	}
	if ip := net.ParseIP(cfg.ClusterBind); ip != nil && ip.IsUnspecified() && cfg.ClusterAdvertise == "" {
		return fmt.Errorf("cluster-bind %q is every interface, which other nodes cannot dial; set cluster-advertise to this node's address", cfg.ClusterBind)
	}
	for i, a := range ports {
		for _, b := range ports[i+1:] {
			if a.port != 0 && a.port == b.port {
				return fmt.Errorf("%s and %s are both %d; each needs its own port", a.name, b.name, a.port)
			}
		}
	}
	for _, name := range []string{"raft-bind", "raft-advertise"} {
		if explicit[name] {
			return fmt.Errorf("%s cannot be combined with cluster-bind; use raft-port", name)
		}
	}
	cfg.RaftBind = net.JoinHostPort(cfg.ClusterBind, strconv.Itoa(cfg.RaftPort))
	if cfg.ClusterAdvertise != "" {
		if cfg.RaftPort == 0 {
			return fmt.Errorf("raft-port 0 picks a free port, which cluster-advertise %q cannot tell other nodes; set a fixed raft-port", cfg.ClusterAdvertise)
		}
		cfg.RaftAdvertise = net.JoinHostPort(cfg.ClusterAdvertise, strconv.Itoa(cfg.RaftPort))
	}
	return nil
}

// checkAdmin checks the admin and log options and reads the token file.
func checkAdmin(cfg *nodeConfig) error {
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return fmt.Errorf("log-format %q is not text or json", cfg.LogFormat)
	}
	if cfg.AdminListen != "" {
		if _, _, err := net.SplitHostPort(cfg.AdminListen); err != nil {
			return fmt.Errorf("admin listen address %q: %w", cfg.AdminListen, err)
		}
	}
	if cfg.AdminTokenFile != "" {
		if cfg.AdminToken != "" {
			return fmt.Errorf("admin-token and admin-token-file are both set; give one")
		}
		b, err := os.ReadFile(cfg.AdminTokenFile)
		if err != nil {
			return fmt.Errorf("admin token file: %w", err)
		}
		cfg.AdminToken = strings.TrimSpace(string(b))
		if cfg.AdminToken == "" {
			return fmt.Errorf("admin token file %s is empty", cfg.AdminTokenFile)
		}
	}
	if strings.ContainsAny(cfg.AdminToken, " \t\r\n") {
		return fmt.Errorf("admin token must not contain blanks")
	}
	return nil
}

// checkSecurity checks the transport and security options and reads the
// secrets given as files.
func checkSecurity(cfg *nodeConfig) error {
	for _, l := range []struct{ name, addr string }{{"tls-listen", cfg.TLSListen}, {"ws-listen", cfg.WSListen}, {"wss-listen", cfg.WSSListen}} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			return fmt.Errorf("%s address %q: %w", l.name, l.addr, err)
		}
	}
	if !strings.HasPrefix(cfg.WSPath, "/") {
		return fmt.Errorf("ws-path %q must start with /", cfg.WSPath)
	}
	tlsOn := cfg.TLSListen != "" || cfg.WSSListen != ""
	if tlsOn && (cfg.TLSCert == "" || cfg.TLSKey == "") {
		return fmt.Errorf("tls-listen and wss-listen need tls-cert and tls-key")
	}
	switch cfg.TLSClientAuth {
	case "none", "request", "require":
	default:
		return fmt.Errorf("tls-client-auth %q is not none, request or require", cfg.TLSClientAuth)
	}
	if cfg.TLSClientAuth != "none" && cfg.TLSCA == "" {
		return fmt.Errorf("tls-client-auth %s needs tls-ca: the CA client certificates must chain to", cfg.TLSClientAuth)
	}
	switch cfg.TLSUseIdentity {
	case "true":
		cfg.TLSUseIdentity = "cn"
	case "false", "cn", "san":
	default:
		return fmt.Errorf("tls-use-identity %q is not false, cn, san or true", cfg.TLSUseIdentity)
	}
	if cfg.TLSUseIdentity != "false" && cfg.TLSClientAuth == "none" {
		return fmt.Errorf("tls-use-identity %s needs tls-client-auth request or require", cfg.TLSUseIdentity)
	}
	switch cfg.AllowAnonymous {
	case "auto", "true", "false":
	default:
		return fmt.Errorf("allow-anonymous %q is not true, false or auto", cfg.AllowAnonymous)
	}
	switch cfg.AuthHTTPDown {
	case "deny", "ignore":
	default:
		return fmt.Errorf("auth-http-down %q is not deny or ignore", cfg.AuthHTTPDown)
	}
	if cfg.AuthHTTPTimeout <= 0 {
		return fmt.Errorf("auth-http-timeout %v must be positive", cfg.AuthHTTPTimeout)
	}
	if cfg.AuthHTTP != "" {
		if u, err := url.Parse(cfg.AuthHTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("auth-http %q is not an http:// or https:// URL", cfg.AuthHTTP)
		}
	}
	var err error
	if cfg.JWTSecret, err = secretOrFile("jwt-secret", cfg.JWTSecret, cfg.JWTSecretFile); err != nil {
		return err
	}
	if cfg.JWTSecret != "" && cfg.JWTPublicKey != "" {
		return fmt.Errorf("jwt-secret and jwt-public-key are both set; give one")
	}
	if cfg.ClusterKey, err = secretOrFile("cluster-key", cfg.ClusterKey, cfg.ClusterKeyFile); err != nil {
		return err
	}
	if cfg.ClusterKey != "" {
		if _, err := cluster.ParseClusterKey(cfg.ClusterKey); err != nil {
			return err
		}
	}
	return nil
}

// secretOrFile returns value, or the trimmed content of file, named name in
// errors.
func secretOrFile(name, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("%s and %s-file are both set; give one", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s file: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s file %s is empty", name, file)
	}
	return v, nil
}

// anonymousAllowed resolves allow-anonymous: auto is true unless a
// credential source is configured.
func (c *nodeConfig) anonymousAllowed() bool {
	if c.AllowAnonymous == "auto" {
		return c.PasswordFile == "" && c.JWTSecret == "" && c.JWTPublicKey == "" && c.AuthHTTP == ""
	}
	return c.AllowAnonymous == "true"
}

// checkClusterHost checks that v, the value of option name, is an IP address
// or host name without a port.
func checkClusterHost(name, v string) error {
	if _, _, err := net.SplitHostPort(v); err == nil {
		return fmt.Errorf("%s %q must be an address without a port; set the ports with gossip-port, raft-port, peer-port", name, v)
	}
	if !validHost(v) {
		return fmt.Errorf("%s %q is not an IP address or host name (IPv6 goes without brackets)", name, v)
	}
	return nil
}

// validHost rejects what cannot be a host: nothing, brackets, blanks and
// separators of other syntaxes.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "[]/@, \t")
}

// parseSeeds splits join's HOST[:PORT],... into host:port seeds. A seed
// without a port gets defaultGossipPort, not this node's gossip-port: seeds
// are other hosts. An IPv6 seed with a port is written [addr]:port.
func parseSeeds(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var seeds []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%q has an empty seed between commas", s)
		}
		host, port := item, strconv.Itoa(defaultGossipPort)
		if h, p, err := net.SplitHostPort(item); err == nil {
			host, port = h, p
		} else if strings.HasPrefix(item, "[") && strings.HasSuffix(item, "]") {
			host = item[1 : len(item)-1]
		} else if strings.Contains(item, ":") && net.ParseIP(item) == nil {
			return nil, fmt.Errorf("seed %q is not host or host:port", item)
		}
		if !validHost(host) {
			return nil, fmt.Errorf("seed %q has no valid host", item)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("seed %q: port %q is not a number from 1 to 65535", item, port)
		}
		seeds = append(seeds, net.JoinHostPort(host, strconv.Itoa(n)))
	}
	return seeds, nil
}

func envName(name string) string {
	return "FLOCKMQ_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyFile reads name = value lines; blank lines and # comments are skipped.
// The names it sets go into explicit.
func applyFile(cfg *nodeConfig, path string, byName map[string]option, explicit map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("config file %s line %d: expected name = value", path, line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		o, known := byName[name]
		if !known {
			return fmt.Errorf("config file %s line %d: unknown option %q", path, line, name)
		}
		if err := o.set(cfg, value); err != nil {
			return fmt.Errorf("config file %s line %d: %s: %w", path, line, name, err)
		}
		explicit[name] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
