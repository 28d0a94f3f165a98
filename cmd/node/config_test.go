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
	"pprof-listen":             "127.0.0.1:6060",
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
		sources := map[string]struct {
			args []string
			env  func(string) string
		}{
			"flag": {[]string{"-" + o.name, v}, envOf()},
			"env":  {nil, envOf(envName(o.name), v)},
			"file": {[]string{"-config", writeConfig(t, o.name+" = "+v+"\n")}, envOf()},
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
	{name: "expect without peers", args: []string{"-bootstrap-expect", "3"}, want: "bootstrap-expect 3 needs raft-peers"},
	{name: "expect not matching peers", args: []string{"-raft-peers", "a@h:1,b@h:2", "-bootstrap-expect", "3"}, want: "bootstrap-expect 3 does not match the 2 raft peers"},
	{name: "raft bind without port", file: "raft-bind = localhost\n", want: `raft bind address "localhost"`},
	{name: "raft store without data dir", file: "data-dir =\n", want: `store raft needs a data dir`},
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
