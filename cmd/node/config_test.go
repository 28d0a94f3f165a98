package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf turns name=value pairs into the env function loadConfig takes.
func envOf(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// writeConfig writes a config file into a temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flockmq.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := loadConfig(nil, envOf(), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultNodeConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Broker.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// validValues holds a valid value, different from the default, for every
// option; TestConfigEveryOption fails when an option is missing here.
var validValues = map[string]string{
	"listen":                   "127.0.0.1:2883",
	"loops":                    "3",
	"log-level":                "debug",
	"store":                    "memory",
	"data-dir":                 "/var/lib/flockmq",
	"node-id":                  "node-a",
	"raft-bind":                "0.0.0.0:7301",
	"raft-advertise":           "10.0.0.5:7301",
	"raft-peers":               "a@10.0.0.1:7300,b@10.0.0.2:7300,c@10.0.0.3:7300",
	"bootstrap-expect":         "1",
	"bootstrap":                "false",
	"max-connections":          "500",
	"max-packet-size":          "65536",
	"receive-maximum":          "100",
	"max-inflight":             "64",
	"max-queued-messages":      "5000",
	"queue-qos0":               "true",
	"max-topic-levels":         "16",
	"max-retained-size":        "1024",
	"retain-available":         "false",
	"topic-alias-maximum":      "10",
	"server-keep-alive":        "30",
	"max-keep-alive":           "600",
	"max-session-expiry":       "3600",
	"shared-strategy":          "hash",
	"outbound-high-water":      "65536",
	"connect-timeout":          "3s",
	"sys-interval":             "1m0s",
	"mailbox-size":             "4096",
	"max-partial-packet-bytes": "1048576",
	"slow-consumer-timeout":    "1m0s",
	"takeover-timeout":         "4s",
	"pprof-listen":             "127.0.0.1:6060",
	"cluster-bind":             "10.0.0.5",
	"cluster-advertise":        "203.0.113.5",
	"gossip-port":              "8946",
	"raft-port":                "8300",
	"peer-port":                "8400",
	"join":                     "10.0.0.1:7946,node-b:8946,[fd00::3]:7946",
	"dead-node-grace":          "1m0s",
	"quorum-fence":             "1.5s",
	"netsplit-clean-sessions":  "true",
	"log-format":               "json",
	"admin-listen":             "127.0.0.1:9090",
	"admin-token":              "s3cret",
	"admin-token-file":         "testdata/admin-token",
	"admin-pprof":              "true",
	"tls-listen":               ":8883",
	"ws-listen":                ":8083",
	"wss-listen":               ":8084",
	"ws-path":                  "/ws",
	"tls-cert":                 "server.pem",
	"tls-key":                  "server.key",
	"tls-ca":                   "ca.pem",
	"tls-client-auth":          "require",
	"tls-use-identity":         "san",
	"proxy-protocol":           "true",
	"password-file":            "passwd",
	"acl-file":                 "acl",
	"allow-anonymous":          "false",
	"jwt-secret":               "0123456789abcdef0123456789abcdef",
	"jwt-secret-file":          "testdata/jwt-secret",
	"jwt-public-key":           "jwt.pem",
	"auth-http":                "http://auth.local/check",
	"auth-http-timeout":        "2s",
	"auth-http-down":           "ignore",
	"cluster-key":              "c2VjcmV0LWtleS0xNi1ieQ==",
	"cluster-key-file":         "testdata/cluster-key",
}

// companions are the other options an option in validValues needs to be
// valid, set from the same source.
var companions = map[string][]string{
	"join":             {"cluster-bind", "10.0.0.5", "bootstrap-expect", "3"},
	"tls-listen":       {"tls-cert", "server.pem", "tls-key", "server.key"},
	"wss-listen":       {"tls-cert", "server.pem", "tls-key", "server.key"},
	"tls-client-auth":  {"tls-ca", "ca.pem"},
	"tls-use-identity": {"tls-client-auth", "request", "tls-ca", "ca.pem"},
}

// TestConfigEveryOption sets every option from each source alone and reads
// it back.
func TestConfigEveryOption(t *testing.T) {
	def := defaultNodeConfig()
	for _, o := range options() {
		v, ok := validValues[o.name]
		if !ok {
			t.Errorf("option %q has no test value in validValues", o.name)
			continue
		}
		if v == o.def(&def) {
			t.Errorf("option %q: test value %q is the default", o.name, v)
		}
		kv := append([]string{o.name, v}, companions[o.name]...)
		var args, env []string
		var file string
		for i := 0; i+1 < len(kv); i += 2 {
			args = append(args, "-"+kv[i], kv[i+1])
			env = append(env, envName(kv[i]), kv[i+1])
			file += kv[i] + " = " + kv[i+1] + "\n"
		}
		sources := map[string]struct {
			args []string
			env  func(string) string
		}{
			"flag": {args, envOf()},
			"env":  {nil, envOf(env...)},
			"file": {[]string{"-config", writeConfig(t, file)}, envOf()},
		}
		for src, in := range sources {
			var stderr bytes.Buffer
			cfg, err := loadConfig(in.args, in.env, &stderr)
			if err != nil {
				t.Errorf("%s %s=%s: %v", src, o.name, v, err)
				continue
			}
			if got := o.def(&cfg); got != v {
				t.Errorf("%s %s=%s: read back %q", src, o.name, v, got)
			}
		}
	}
	if n := len(options()); len(validValues) != n {
		t.Errorf("validValues has %d entries for %d options", len(validValues), n)
	}
}

// TestConfigPrecedence checks flag > environment > file > default, option by
// option.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "# test file\n\nmax-inflight = 10\nconnect-timeout = 1s\nshared-strategy = random\nlisten = 127.0.0.1:1000\n")
	env := envOf(
		"FLOCKMQ_CONFIG", file,
		"FLOCKMQ_CONNECT_TIMEOUT", "2s",
		"FLOCKMQ_SHARED_STRATEGY", "hash",
		"FLOCKMQ_MAILBOX_SIZE", "77",
		"FLOCKMQ_MAX_INFLIGHT", "", // empty: as if unset
	)
	args := []string{"-shared-strategy", "round-robin", "-loops", "5"}
	var stderr bytes.Buffer
	cfg, err := loadConfig(args, env, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	def := defaultNodeConfig()
	checks := []struct {
		name      string
		got, want any
	}{
		{"file only", cfg.Broker.MaxInflight, 10},
		{"file only (string)", cfg.Listen, "127.0.0.1:1000"},
		{"env over file", cfg.Broker.ConnectTimeout, 2 * time.Second},
		{"flag over env and file", cfg.Broker.SharedStrategy, "round-robin"},
		{"env only", cfg.Broker.MailboxSize, 77},
		{"flag only", cfg.Loops, 5},
		{"default", cfg.Broker.MaxPacketSize, def.Broker.MaxPacketSize},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}

	// -config beats FLOCKMQ_CONFIG; later lines of a file beat earlier ones;
	// CRLF line ends and blanks around '=' are fine.
	other := writeConfig(t, "max-inflight=20\r\n  max-inflight   =   30  \r\n")
	cfg, err = loadConfig([]string{"-config", other}, envOf("FLOCKMQ_CONFIG", file), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Broker.MaxInflight != 30 || cfg.Broker.ConnectTimeout != def.Broker.ConnectTimeout {
		t.Errorf("-config over FLOCKMQ_CONFIG: max-inflight %d, connect-timeout %v", cfg.Broker.MaxInflight, cfg.Broker.ConnectTimeout)
	}
}

// badInputs are configurations that must be refused, with a part of the
// error message that tells the user what to fix. file, when set, is written
// and passed with -config.
var badInputs = []struct {
	name string
	args []string
	env  []string
	file string
	want string
}{
	{name: "unknown option in file", file: "# comment\n\nmax-inflight = 5\nmax-inflite = 6\n", want: `line 4: unknown option "max-inflite"`},
	{name: "line without =", file: "max-inflight 5\n", want: "line 1: expected name = value"},
	{name: "bad number in file", file: "\nmax-inflight = ten\n", want: `line 2: max-inflight: not a whole number: "ten"`},
	{name: "bad duration in file", file: "connect-timeout = 5\n", want: `line 1: connect-timeout: not a duration like 10s: "5"`},
	{name: "bad bool in file", file: "queue-qos0 = yes please\n", want: `line 1: queue-qos0: not true or false: "yes please"`},
	{name: "missing config file", args: []string{"-config", "/nonexistent/flockmq.conf"}, want: "config file: open /nonexistent/flockmq.conf"},
	{name: "bad number in env", env: []string{"FLOCKMQ_MAX_INFLIGHT", "1.5"}, want: `environment FLOCKMQ_MAX_INFLIGHT: not a whole number: "1.5"`},
	{name: "bad duration in env", env: []string{"FLOCKMQ_SYS_INTERVAL", "often"}, want: `environment FLOCKMQ_SYS_INTERVAL: not a duration like 10s: "often"`},
	{name: "bad number in flag", args: []string{"-max-packet-size", "1MB"}, want: `flag -max-packet-size: not a whole number: "1MB"`},
	{name: "uint16 too large", args: []string{"-receive-maximum", "70000"}, want: `flag -receive-maximum: not a whole number from 0 to 65535: "70000"`},
	{name: "uint16 negative", args: []string{"-topic-alias-maximum", "-1"}, want: "not a whole number from 0 to 65535"},
	{name: "uint32 too large", args: []string{"-max-session-expiry", "4294967296"}, want: "not a whole number from 0 to 4294967295"},
	{name: "bad duration in flag", args: []string{"-connect-timeout", "10"}, want: `flag -connect-timeout: not a duration like 10s: "10"`},
	{name: "unknown flag", args: []string{"-max-inflite", "5"}, want: "flag provided but not defined: -max-inflite"},
	{name: "flag without value", args: []string{"-max-inflight"}, want: "flag needs an argument"},
	{name: "stray argument", args: []string{"serve"}, want: `unexpected argument "serve"`},
	// Out of range: broker.Config.Validate.
	{name: "max packet size below 64", args: []string{"-max-packet-size", "10"}, want: "max packet size 10 is outside 64..268435460"},
	{name: "max packet size above the protocol limit", file: "max-packet-size = 300000000\n", want: "max packet size 300000000 is outside"},
	{name: "receive maximum 0", env: []string{"FLOCKMQ_RECEIVE_MAXIMUM", "0"}, want: "receive maximum must be at least 1"},
	{name: "max inflight 0", args: []string{"-max-inflight", "0"}, want: "max inflight 0 is outside 1..65535"},
	{name: "max inflight too large", args: []string{"-max-inflight", "65536"}, want: "max inflight 65536 is outside 1..65535"},
	{name: "negative max connections", args: []string{"-max-connections", "-1"}, want: "max connections must not be negative"},
	{name: "negative max queued", args: []string{"-max-queued-messages", "-5"}, want: "max queued messages must not be negative"},
	{name: "negative topic levels", args: []string{"-max-topic-levels", "-1"}, want: "max topic levels must not be negative"},
	{name: "negative retained size", args: []string{"-max-retained-size", "-1"}, want: "max retained size must not be negative"},
	{name: "outbound high water too small", args: []string{"-outbound-high-water", "100"}, want: "outbound high water 100 is below 4096 bytes"},
	{name: "connect timeout 0", args: []string{"-connect-timeout", "0s"}, want: "connect timeout must be positive"},
	{name: "negative sys interval", args: []string{"-sys-interval", "-1s"}, want: "sys interval must not be negative"},
	{name: "mailbox size 0", args: []string{"-mailbox-size", "0"}, want: "mailbox size must be at least 1"},
	{name: "unknown shared strategy", file: "shared-strategy = fifo\n", want: `shared strategy "fifo" is not round-robin, random or hash`},
	{name: "unknown store", file: "store = disk\n", want: `store "disk" is not raft or memory`},
	{name: "peer without id", args: []string{"-raft-peers", "10.0.0.1:7300"}, want: `peer "10.0.0.1:7300" is not id@host:port`},
	{name: "expect without peers or join", args: []string{"-bootstrap-expect", "3"}, want: "bootstrap-expect 3 needs -join (gossip bootstrap) or -raft-peers (a static voter list)"},
	{name: "negative expect", args: []string{"-bootstrap-expect", "-1"}, want: "bootstrap-expect -1 must not be negative"},
	{name: "expect not matching peers", args: []string{"-raft-peers", "a@h:1,b@h:2", "-bootstrap-expect", "3"}, want: "bootstrap-expect 3 does not match the 2 raft peers"},
	{name: "raft bind without port", file: "raft-bind = localhost\n", want: `raft bind address "localhost"`},
	{name: "raft store without data dir", file: "data-dir =\n", want: `store raft needs a data dir`},
	// Cluster options (issue 11).
	{name: "join without cluster bind", args: []string{"-join", "10.0.0.1", "-bootstrap-expect", "3"}, want: "join needs cluster-bind: the address gossip, raft and the peer link bind"},
	{name: "join without expect", args: []string{"-cluster-bind", "10.0.0.5", "-join", "10.0.0.1"}, want: "bootstrap-expect 0 with -join must be at least 1"},
	{name: "join and peers, expect not matching", args: []string{"-cluster-bind", "10.0.0.5", "-join", "10.0.0.1", "-raft-peers", "a@h:1,b@h:2", "-bootstrap-expect", "3"}, want: "bootstrap-expect 3 does not match the 2 raft peers"},
	{name: "cluster bind with memory store", args: []string{"-cluster-bind", "10.0.0.5", "-store", "memory"}, want: `cluster-bind "10.0.0.5" needs store raft, not "memory"`},
	{name: "join with memory store", env: []string{"FLOCKMQ_CLUSTER_BIND", "10.0.0.5", "FLOCKMQ_JOIN", "10.0.0.1", "FLOCKMQ_STORE", "memory"}, want: `cluster-bind "10.0.0.5" needs store raft`},
	{name: "raft bind flag with cluster bind", args: []string{"-cluster-bind", "10.0.0.5", "-raft-bind", "10.0.0.5:7301"}, want: "raft-bind cannot be combined with cluster-bind; use raft-port"},
	{name: "raft bind in file with cluster bind", file: "raft-bind = 127.0.0.1:7300\n", args: []string{"-cluster-bind", "10.0.0.5"}, want: "raft-bind cannot be combined with cluster-bind; use raft-port"},
	{name: "raft advertise in env with cluster bind", env: []string{"FLOCKMQ_RAFT_ADVERTISE", "10.0.0.5:7300", "FLOCKMQ_CLUSTER_BIND", "10.0.0.5"}, want: "raft-advertise cannot be combined with cluster-bind; use raft-port"},
	{name: "cluster bind with port", args: []string{"-cluster-bind", "1.2.3.4:7946"}, want: `cluster-bind "1.2.3.4:7946" must be an address without a port; set the ports with gossip-port, raft-port, peer-port`},
	{name: "cluster advertise with port", file: "cluster-bind = 10.0.0.5\ncluster-advertise = [::1]:7946\n", want: `cluster-advertise "[::1]:7946" must be an address without a port`},
	{name: "cluster bind in brackets", args: []string{"-cluster-bind", "[::1]"}, want: `cluster-bind "[::1]" is not an IP address or host name`},
	{name: "cluster bind with a blank", args: []string{"-cluster-bind", "node a"}, want: `cluster-bind "node a" is not an IP address or host name`},
	{name: "cluster bind on every interface", args: []string{"-cluster-bind", "0.0.0.0"}, want: `cluster-bind "0.0.0.0" is every interface, which other nodes cannot dial; set cluster-advertise`},
	{name: "cluster advertise unspecified", args: []string{"-cluster-bind", "0.0.0.0", "-cluster-advertise", "::"}, want: `cluster-advertise "::" is not an address other nodes can dial`},
	{name: "gossip port too large", args: []string{"-gossip-port", "70000"}, want: "gossip-port 70000 is outside 0..65535"},
	{name: "raft port negative", env: []string{"FLOCKMQ_RAFT_PORT", "-1"}, want: "raft-port -1 is outside 0..65535"},
	{name: "peer port too large", file: "peer-port = 65536\n", want: "peer-port 65536 is outside 0..65535"},
	{name: "gossip and raft on one port", args: []string{"-cluster-bind", "10.0.0.5", "-gossip-port", "7300"}, want: "gossip-port and raft-port are both 7300; each needs its own port"},
	{name: "raft port 0 with cluster advertise", args: []string{"-cluster-bind", "10.0.0.5", "-cluster-advertise", "203.0.113.5", "-raft-port", "0"}, want: `raft-port 0 picks a free port, which cluster-advertise "203.0.113.5" cannot tell other nodes`},
	{name: "join seed port 0", args: []string{"-join", "10.0.0.1:0"}, want: `flag -join: seed "10.0.0.1:0": port "0" is not a number from 1 to 65535`},
	{name: "join seed port too large", env: []string{"FLOCKMQ_JOIN", "a:7946,b:70000"}, want: `environment FLOCKMQ_JOIN: seed "b:70000": port "70000" is not a number from 1 to 65535`},
	{name: "join seed named port", file: "join = a:gossip\n", want: `line 1: join: seed "a:gossip": port "gossip" is not a number from 1 to 65535`},
	{name: "join seed empty port", args: []string{"-join", "a:"}, want: `seed "a:": port "" is not a number`},
	{name: "join seed without host", args: []string{"-join", ":7946"}, want: `seed ":7946" has no valid host`},
	{name: "join empty seed", args: []string{"-join", "a,,b"}, want: `"a,,b" has an empty seed between commas`},
	{name: "join seed with two colons", args: []string{"-join", "a:1:2"}, want: `seed "a:1:2" is not host or host:port`},
	{name: "dead node grace 0", args: []string{"-dead-node-grace", "0s"}, want: "dead-node-grace 0s must be positive"},
	{name: "dead node grace negative", file: "dead-node-grace = -5s\n", want: "dead-node-grace -5s must be positive"},
	{name: "quorum fence negative", args: []string{"-quorum-fence", "-1s"}, want: "quorum-fence -1s must not be negative"},
	{name: "quorum fence past detection", env: []string{"FLOCKMQ_QUORUM_FENCE", "5s"}, want: "quorum-fence 5s must be at most 4s"},
	{name: "quorum fence past takeover", args: []string{"-cluster-bind", "10.0.0.5", "-quorum-fence", "3s", "-takeover-timeout", "2s"}, want: "quorum-fence 3s must be below takeover-timeout 2s"},
	{name: "dead node grace not a duration", args: []string{"-dead-node-grace", "30"}, want: `flag -dead-node-grace: not a duration like 10s: "30"`},
	{name: "log format unknown", args: []string{"-log-format", "xml"}, want: `log-format "xml" is not text or json`},
	{name: "admin listen without port", args: []string{"-admin-listen", "localhost"}, want: `admin listen address "localhost"`},
	{name: "admin token file missing", args: []string{"-admin-token-file", "testdata/none"}, want: "admin token file: open testdata/none"},
	{name: "admin token and file", args: []string{"-admin-token", "a", "-admin-token-file", "testdata/admin-token"}, want: "admin-token and admin-token-file are both set"},
	{name: "admin token with a blank", env: []string{"FLOCKMQ_ADMIN_TOKEN", "a b"}, want: "admin token must not contain blanks"},
	{name: "admin pprof not a bool", args: []string{"-admin-pprof", "yes please"}, want: `flag -admin-pprof: not true or false`},
	{name: "tls without a cert", args: []string{"-tls-listen", ":8883"}, want: "tls-listen and wss-listen need tls-cert and tls-key"},
	{name: "tls listen without port", args: []string{"-tls-listen", "0.0.0.0", "-tls-cert", "a", "-tls-key", "b"}, want: `tls-listen address "0.0.0.0"`},
	{name: "tls client auth unknown", args: []string{"-tls-client-auth", "maybe"}, want: `tls-client-auth "maybe" is not none, request or require`},
	{name: "tls client auth without ca", args: []string{"-tls-client-auth", "require"}, want: "tls-client-auth require needs tls-ca"},
	{name: "tls identity without client auth", args: []string{"-tls-use-identity", "cn"}, want: "tls-use-identity cn needs tls-client-auth"},
	{name: "tls identity unknown", args: []string{"-tls-use-identity", "ou"}, want: `tls-use-identity "ou" is not false, cn, san or true`},
	{name: "ws path without slash", args: []string{"-ws-path", "mqtt"}, want: `ws-path "mqtt" must start with /`},
	{name: "allow anonymous unknown", args: []string{"-allow-anonymous", "sometimes"}, want: `allow-anonymous "sometimes" is not true, false or auto`},
	{name: "auth http not a url", args: []string{"-auth-http", "auth.local/check"}, want: `auth-http "auth.local/check" is not an http:// or https:// URL`},
	{name: "auth http down unknown", args: []string{"-auth-http-down", "allow"}, want: `auth-http-down "allow" is not deny or ignore`},
	{name: "jwt secret and key", args: []string{"-jwt-secret", "s", "-jwt-public-key", "k.pem"}, want: "jwt-secret and jwt-public-key are both set"},
	{name: "jwt secret and file", args: []string{"-jwt-secret", "s", "-jwt-secret-file", "testdata/jwt-secret"}, want: "jwt-secret and jwt-secret-file are both set"},
	{name: "cluster key not base64", args: []string{"-cluster-key", "not base64!"}, want: "base64"},
	{name: "cluster key too short", args: []string{"-cluster-key", "c2hvcnQ="}, want: "16, 24 or 32"},
	{name: "cluster key file missing", args: []string{"-cluster-key-file", "testdata/none"}, want: "cluster-key file: open testdata/none"},
	{name: "netsplit clean sessions not a bool", env: []string{"FLOCKMQ_NETSPLIT_CLEAN_SESSIONS", "sometimes"}, want: `environment FLOCKMQ_NETSPLIT_CLEAN_SESSIONS: not true or false: "sometimes"`},
}

func TestConfigErrors(t *testing.T) {
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append([]string{"-config", writeConfig(t, c.file)}, args...)
			}
			var stderr bytes.Buffer
			_, err := loadConfig(args, envOf(c.env...), &stderr)
			if err == nil {
				t.Fatalf("accepted %v %v %q", args, c.env, c.file)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestRunBadConfig calls run itself: every bad configuration ends with status
// 2 and the reason on stderr, before anything listens.
func TestRunBadConfig(t *testing.T) {
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append([]string{"-config", writeConfig(t, c.file)}, args...)
			}
			var stderr bytes.Buffer
			if code := run(args, envOf(c.env...), &stderr); code != 2 {
				t.Fatalf("run returned %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("stderr lacks %q:\n%s", c.want, stderr.String())
			}
		})
	}
	t.Run("bad log level", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run([]string{"-log-level", "loud"}, envOf(), &stderr); code != 2 {
			t.Fatalf("run returned %d, want 2", code)
		}
		if want := `log level "loud" is not debug, info, warn or error`; !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	})
	t.Run("bad listen address", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run([]string{"-listen", "localhost"}, envOf(), &stderr); code != 2 {
			t.Fatalf("run returned %d, want 2; stderr:\n%s", code, stderr.String())
		}
		if want := `listen address "localhost"`; !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	})
	t.Run("port in use", func(t *testing.T) {
		// Not a configuration error: status 1.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var stderr bytes.Buffer
		if code := run([]string{"-listen", ln.Addr().String(), "-sys-interval", "1s", "-store", "memory"}, envOf(), &stderr); code != 1 {
			t.Fatalf("run returned %d, want 1; stderr:\n%s", code, stderr.String())
		}
		if want := "flockmq: eventloop: listen on " + ln.Addr().String(); !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	})
	for _, help := range []string{"-h", "-help", "--help"} {
		t.Run("help "+help, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run([]string{help}, envOf(), &stderr); code != 0 {
				t.Fatalf("run %s returned %d, want 0", help, code)
			}
			for _, o := range options() {
				if !strings.Contains(stderr.String(), "-"+o.name) || !strings.Contains(stderr.String(), envName(o.name)) {
					t.Errorf("usage lacks -%s or %s", o.name, envName(o.name))
				}
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run([]string{"-no-such-flag"}, envOf(), &stderr); code != 2 {
			t.Fatalf("run -no-such-flag returned %d, want 2", code)
		}
	})
}

// TestConfigCluster checks what loadConfig derives from the cluster options.
func TestConfigCluster(t *testing.T) {
	def := defaultNodeConfig()
	if def.clustered() {
		t.Fatal("the default config is clustered")
	}
	cases := []struct {
		name                    string
		args                    []string
		raftBind, raftAdvertise string
		join                    []string
	}{
		{name: "bind and advertise", args: []string{"-cluster-bind", "10.0.0.5", "-cluster-advertise", "203.0.113.5", "-raft-port", "8300"},
			raftBind: "10.0.0.5:8300", raftAdvertise: "203.0.113.5:8300"},
		{name: "bind only", args: []string{"-cluster-bind", "node-a.example"},
			raftBind: "node-a.example:7300"},
		{name: "IPv6 bind", args: []string{"-cluster-bind", "::1", "-raft-port", "0"},
			raftBind: "[::1]:0"},
		{name: "every interface, advertised", args: []string{"-cluster-bind", "0.0.0.0", "-cluster-advertise", "10.0.0.5"},
			raftBind: "0.0.0.0:7300", raftAdvertise: "10.0.0.5:7300"},
		// Seeds without a port get gossip's default port, not this node's
		// gossip-port.
		{name: "join", args: []string{"-cluster-bind", "10.0.0.5", "-gossip-port", "9000", "-bootstrap-expect", "3",
			"-join", " 10.0.0.1, node-b:8000 ,::1,[fd00::2],[fd00::3]:9000"},
			raftBind: "10.0.0.5:7300", join: []string{"10.0.0.1:7946", "node-b:8000", "[::1]:7946", "[fd00::2]:7946", "[fd00::3]:9000"}},
		// A static voter list with gossip for the routes.
		{name: "join and raft peers", args: []string{"-cluster-bind", "10.0.0.5", "-join", "10.0.0.1",
			"-raft-peers", "a@10.0.0.1:7300,b@10.0.0.5:7300"},
			raftBind: "10.0.0.5:7300", join: []string{"10.0.0.1:7946"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := loadConfig(c.args, envOf(), &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.clustered() {
				t.Error("not clustered")
			}
			if cfg.RaftBind != c.raftBind || cfg.RaftAdvertise != c.raftAdvertise {
				t.Errorf("raft bind %q advertise %q, want %q and %q", cfg.RaftBind, cfg.RaftAdvertise, c.raftBind, c.raftAdvertise)
			}
			if !reflect.DeepEqual(cfg.Join, c.join) {
				t.Errorf("join %q, want %q", cfg.Join, c.join)
			}
		})
	}

	// Without cluster-bind, raft-bind and raft-advertise are used as given
	// and the ports are not used.
	var stderr bytes.Buffer
	cfg, err := loadConfig([]string{"-raft-bind", "10.0.0.5:7301", "-raft-advertise", "203.0.113.5:7301", "-raft-port", "9300", "-cluster-advertise", "203.0.113.5"}, envOf(), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.clustered() || cfg.RaftBind != "10.0.0.5:7301" || cfg.RaftAdvertise != "203.0.113.5:7301" {
		t.Errorf("clustered %v, raft bind %q advertise %q", cfg.clustered(), cfg.RaftBind, cfg.RaftAdvertise)
	}
	// An empty -join is no seeds: nil, as in the defaults.
	cfg, err = loadConfig([]string{"-join", ""}, envOf(), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Join != nil || cfg.clustered() {
		t.Errorf("empty join: %q, clustered %v", cfg.Join, cfg.clustered())
	}
}

// TestConfigAdminTokenFile: the token is the file's content, trimmed.
func TestConfigAdminTokenFile(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := loadConfig([]string{"-admin-token-file", "testdata/admin-token"}, envOf(), &stderr)
	if err != nil || cfg.AdminToken != "from-file" {
		t.Fatalf("token %q, err %v", cfg.AdminToken, err)
	}
}
