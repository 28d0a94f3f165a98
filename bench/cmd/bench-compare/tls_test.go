package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/bench"
)

// TestMosquittoTLSConf: the configuration of the comparison (Debian's,
// untuned) plus a second listener with certfile and keyfile below it, and
// nothing else: no client certificates, TLS versions and ciphers at their
// defaults.
func TestMosquittoTLSConf(t *testing.T) {
	c := mosquittoTLSConf("18830", "/tmp/d/", "18831", "/o/tls-server.pem", "/o/tls-server.key")
	if !strings.HasPrefix(c, mosquittoConf("18830", "/tmp/d/")) {
		t.Errorf("the TCP part differs from mosquittoConf:\n%s", c)
	}
	if want := "listener 18831 127.0.0.1\ncertfile /o/tls-server.pem\nkeyfile /o/tls-server.key\n"; !strings.HasSuffix(c, want) {
		t.Errorf("config does not end with the TLS listener %q:\n%s", want, c)
	}
	if strings.Count(c, "listener ") != 2 || strings.Index(c, "listener 18830 ") > strings.Index(c, "listener 18831 ") {
		t.Errorf("want the TCP listener, then the TLS one:\n%s", c)
	}
	for _, tuned := range []string{"max_", "set_tcp_nodelay", "cafile", "capath", "require_certificate", "tls_version", "ciphers", "use_identity_as_username"} {
		if strings.Contains(c, tuned) {
			t.Errorf("config sets %q:\n%s", tuned, c)
		}
	}
}

// TestTLSSpecsArgv: FlockMQ's command line is the comparison's plus its TLS
// listener flags; Mosquitto's writes the TLS configuration; mochi has no TLS.
func TestTLSSpecsArgv(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	pki, err := writePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	plain := specs("bin", "/usr/sbin/mosquitto")
	ss := tlsSpecs("bin", "/usr/sbin/mosquitto", pki)
	if len(ss) != 3 || ss[2].Name != "mochi" || ss[2].TLSArgv != nil {
		t.Fatalf("specs %+v", ss)
	}
	argv, err := ss[0].TLSArgv(1883, 8883, dir, data)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := plain[0].Argv(1883, dir, data)
	want := append(base[:5:5], "-tls-listen", "127.0.0.1:8883", "-tls-cert", pki.Cert, "-tls-key", pki.Key)
	// The raft port is picked afresh each time: compare around it.
	if len(argv) != len(base)+6 || strings.Join(argv[:5], " ") != strings.Join(want[:5], " ") ||
		argv[5] != "-raft-bind" || strings.Join(argv[7:9], " ") != "-admin-listen 127.0.0.1:0" ||
		strings.Join(argv[9:], " ") != strings.Join(want[5:], " ") {
		t.Errorf("flockmq argv = %q", argv)
	}
	argv, err = ss[1].TLSArgv(1883, 8883, dir, data)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "mosquitto-1883.conf")
	if strings.Join(argv, " ") != "/usr/sbin/mosquitto -c "+conf {
		t.Errorf("mosquitto argv = %q", argv)
	}
	got, err := os.ReadFile(conf)
	if err != nil || string(got) != mosquittoTLSConf("1883", data+"/", "8883", pki.Cert, pki.Key) {
		t.Errorf("mosquitto config %q, %v", got, err)
	}
}

// TestWritePKI: the server certificate is ECDSA P-256 for 127.0.0.1, chains
// to the CA, and a TLS listener with it negotiates with the tool's client
// defaults (describeTLS).
func TestWritePKI(t *testing.T) {
	pki, err := writePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(pki.Cert, pki.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("server key %T", leaf.PublicKey)
	}
	caPEM, _ := os.ReadFile(pki.CA)
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("the server certificate does not verify for 127.0.0.1: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if got := describeTLS(context.Background(), ln.Addr().String(), pki.CA); !strings.HasPrefix(got, "TLS 1.3, TLS_") {
		t.Fatalf("describeTLS = %q", got)
	}
	other, err := writePKI(t.TempDir()) // another CA: the handshake fails, and says so
	if err != nil {
		t.Fatal(err)
	}
	if got := describeTLS(context.Background(), ln.Addr().String(), other.CA); !strings.Contains(got, "handshake failed") {
		t.Fatalf("describeTLS with a foreign CA = %q", got)
	}
}

// TestTLSRowsParse: every row is a valid tool command line (TLS rows with
// the flags runRow adds), each TLS row repeats its TCP twin, and the tool's
// compare command line targets the TLS listeners of TLS rows only.
func TestTLSRowsParse(t *testing.T) {
	for _, p := range []plan{fullPlan(), quickPlan()} {
		rs := tlsRows(p)
		byID := map[string]row{}
		for _, r := range rs {
			byID[r.ID] = r
		}
		for _, r := range rs {
			args := r.Args
			if r.TLS {
				args = append(append([]string(nil), args...), "--tls", "--cafile", "/dev/null")
				base, ok := byID[r.Base]
				if !ok || base.TLS || base.Scenario != r.Scenario || strings.Join(base.Args, " ") != strings.Join(r.Args, " ") {
					t.Errorf("%s: no TCP twin like it (%q)", r.ID, r.Base)
				}
			}
			cfg, err := bench.ParseFlags(r.Scenario, args, io.Discard)
			if r.TLS { // /dev/null holds no certificate: the only complaint
				if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
					t.Errorf("%s: %v", r.ID, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %q: %v", r.ID, args, err)
			}
			if r.Scenario == "conn" && cfg.Clients != p.Conns {
				t.Errorf("%s: -c %d", r.ID, cfg.Clients)
			}
		}
	}
	rs := tlsRows(fullPlan())
	brokers := []*broker{{Name: "flockmq", Port: 1, TLSPort: 2}, {Name: "mosquitto", Port: 3, TLSPort: 4}}
	if got, want := strings.Join(compareArgs(rs[1], brokers, 3, "/o/tls-ca.pem"), " "),
		"compare --target flockmq=127.0.0.1:2 --target mosquitto=127.0.0.1:4 --rounds 3 --json -- fanin "+
			"-c 8 --qos 1 --mqtt 5 --size 64 --duration 10s --drain 5s --tls --cafile /o/tls-ca.pem"; got != want {
		t.Errorf("TLS row:\ngot  %s\nwant %s", got, want)
	}
	if got, want := strings.Join(compareArgs(rs[2], brokers, 3, "/o/tls-ca.pem"), " "),
		"compare --target flockmq=127.0.0.1:1 --target mosquitto=127.0.0.1:3 --rounds 3 --json -- conn -c 10000 --duration 1s"; got != want {
		t.Errorf("TCP row:\ngot  %s\nwant %s", got, want)
	}
}

// TestStartBrokerTLSPort: a spec with TLSArgv gets a second port, distinct
// from the first, and counts as ready once both accept.
func TestStartBrokerTLSPort(t *testing.T) {
	dir := t.TempDir()
	spec := fakeSpec()
	spec.TLSArgv = func(port, tlsPort int, _, _ string) ([]string, error) {
		return []string{os.Args[0], loopback(port), loopback(tlsPort)}, nil
	}
	b, err := startBroker(context.Background(), spec, dir, filepath.Join(dir, "fake"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(5 * time.Second)
	if b.TLSPort == 0 || b.TLSPort == b.Port || !accepts(b.TLSAddr()) {
		t.Fatalf("ports %d and %d", b.Port, b.TLSPort)
	}
	if plain, err := startBroker(context.Background(), fakeSpec(), dir, filepath.Join(dir, "plain")); err != nil || plain.TLSAddr() != "" {
		t.Fatalf("a spec without TLSArgv: %v, TLS address %q", err, plain.TLSAddr())
	} else {
		_ = plain.Stop(5 * time.Second)
	}
}

func TestRenderTLS(t *testing.T) {
	rs := tlsRows(fullPlan())
	res := mustParse(t) // delivered_per_s for three targets
	skip := map[string]string{"mochi": "no TLS listener"}
	conn := &bench.CompareResult{Scenario: "conn", Targets: []bench.TargetFigures{
		{Name: "flockmq", Runs: map[string][]float64{"connect_per_s": {9000}, "connack_p50_us": {1500}, "connack_p99_us": {12000}}},
		{Name: "mosquitto", Runs: map[string][]float64{"connect_per_s": {800}, "connack_p50_us": {600}, "connack_p99_us": {0}}},
		{Name: "mochi", Runs: map[string][]float64{"connect_per_s": {4000}, "connack_p50_us": {900}, "connack_p99_us": {3000}}}}}
	connTLS := &bench.CompareResult{Scenario: "conn", Targets: []bench.TargetFigures{
		{Name: "flockmq", Runs: map[string][]float64{"connect_per_s": {1800}, "connack_p50_us": {30000}, "connack_p99_us": {81000}}},
		{Name: "mosquitto", Runs: map[string][]float64{"connect_per_s": {400}, "connack_p50_us": {90000}, "connack_p99_us": {160000}}}}}
	results := []rowResult{
		{Row: rs[0], Targets: collect(rs[0], res, names, nil)},
		{Row: rs[1], Targets: markSkipped(collect(rs[1], res, names, nil), skip)},
		{Row: rs[2], Targets: collect(rs[2], conn, names, nil)},
		{Row: rs[3], Targets: markSkipped(collect(rs[3], connTLS, names, nil), skip)},
	}
	e := testEnv()
	e.MakeCommand = "make bench-tls"
	e.MosqConf = mosquittoTLSConf("PORT", "DATA_DIR/", "TLS_PORT", "bin/bench-tls.out/tls-server.pem", "bin/bench-tls.out/tls-server.key")
	neg := map[string]string{"flockmq": "TLS 1.3, TLS_AES_128_GCM_SHA256, X25519MLKEM768", "mosquitto": "TLS 1.3, TLS_AES_256_GCM_SHA384, X25519"}
	md := renderTLS(e, results, names, neg, pkiFiles{CA: "o/tls-ca.pem", Cert: "o/tls-server.pem", Key: "o/tls-server.key"})
	for _, want := range []string{
		"## TLS next to TCP\n",
		"`make bench-tls`",
		"mochi-mqtt: **not in the TLS rows**",
		"ECDSA P-256, for 127.0.0.1 and localhost",
		"flockmq TLS 1.3, TLS_AES_128_GCM_SHA256, X25519MLKEM768; mosquitto TLS 1.3, TLS_AES_256_GCM_SHA384, X25519.",
		"from the start of the TLS handshake to the CONNACK",
		"| fan-in 8 → 1, QoS 1, MQTT 5, TCP | msg/s, ↑ higher is better | 90,000 | 130,000 | 60,000 | 0.69 (vs mosquitto) |",
		"| fan-in 8 → 1, QoS 1, MQTT 5, TLS | msg/s, ↑ higher is better | 90,000 | 130,000 | n/a | 0.69 (vs mosquitto) |",
		"| flockmq 0/1/0, mosquitto 2/0/5 |",
		"| connect 10,000 clients at full speed, TCP | clients/s, ↑ higher is better | 9,000 (p50 1.5 ms, p99 12 ms) | 800 (p50 600 µs) | 4,000 (p50 900 µs, p99 3 ms) | 2.25 (vs mochi) |",
		"| connect 10,000 clients at full speed, TLS | clients/s, ↑ higher is better | 1,800 (p50 30 ms, p99 81 ms) | 400 (p50 90 ms, p99 160 ms) | n/a | 4.50 (vs mosquitto) |",
		"| TLS ÷ TCP, same broker | flockmq | mosquitto | mochi |",
		"| fan-in 8 → 1, QoS 1, MQTT 5, TLS, msg/s | 1.00 | 1.00 | n/a |",
		"| connect 10,000 clients at full speed, TLS, clients/s | 0.20 | 0.50 | n/a |",
		"  - mochi: not run (no TLS listener)",
		"```sh\nmake bench-tls\n",
		"listener TLS_PORT 127.0.0.1\ncertfile bin/bench-tls.out/tls-server.pem\nkeyfile bin/bench-tls.out/tls-server.key\n```",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "\n## ") != 0 {
		t.Errorf("the section must hold no other level-2 heading")
	}
}
