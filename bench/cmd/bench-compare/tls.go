package main

// The -tls mode: fan-in at QoS 1 and the connect rate over TLS next to the
// same rows over TCP, in one run, FlockMQ and Mosquitto each serving both
// (mochi on TCP only: bench/peers/mochi has no TLS listener); written to
// the "TLS next to TCP" section of docs/benchmarks.md.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tlsTitle is the heading the -tls mode owns in docs/benchmarks.md.
const tlsTitle = "## TLS next to TCP"

// pkiFiles are the run's throwaway CA and server certificate, PEM files.
type pkiFiles struct {
	CA, Cert, Key string
}

// writePKI makes a CA and a server certificate signed by it for 127.0.0.1
// and localhost, both ECDSA P-256 and valid for a day, into dir as
// tls-ca.pem, tls-server.pem and tls-server.key.
func writePKI(dir string) (pkiFiles, error) {
	f := pkiFiles{CA: filepath.Join(dir, "tls-ca.pem"), Cert: filepath.Join(dir, "tls-server.pem"),
		Key: filepath.Join(dir, "tls-server.key")}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-compare throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bench-compare"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		path, typ string
		der       []byte
	}{{f.CA, "CERTIFICATE", caDER}, {f.Cert, "CERTIFICATE", der}, {f.Key, "PRIVATE KEY", kder}} {
		if err := os.WriteFile(w.path, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// tlsSpecs are the brokers of specs, FlockMQ and Mosquitto each with a TLS
// listener besides its TCP one, using pki's server certificate; mochi as it
// is (bench/peers/mochi has no TLS listener).
func tlsSpecs(binDir, mosquittoBin string, pki pkiFiles) []brokerSpec {
	ss := specs(binDir, mosquittoBin)
	for i := range ss {
		s := &ss[i]
		switch s.Name {
		case "flockmq":
			plain := s.Argv
			s.TLSArgv = func(port, tlsPort int, dir, data string) ([]string, error) {
				argv, err := plain(port, dir, data)
				return append(argv, flockmqTLSFlags(tlsPort, pki)...), err
			}
		case "mosquitto":
			s.TLSArgv = func(port, tlsPort int, dir, data string) ([]string, error) {
				if err := mosquittoOwn(data); err != nil {
					return nil, err
				}
				// Mosquitto reads the key after it has dropped to its user,
				// as Debian's packaging expects of /etc/mosquitto/certs.
				for _, f := range []string{pki.Cert, pki.Key} {
					if err := mosquittoOwn(f); err != nil {
						return nil, err
					}
				}
				conf := filepath.Join(dir, "mosquitto-"+strconv.Itoa(port)+".conf")
				text := mosquittoTLSConf(strconv.Itoa(port), data+"/", strconv.Itoa(tlsPort), pki.Cert, pki.Key)
				if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
					return nil, err
				}
				return []string{mosquittoBin, "-c", conf}, nil
			}
		}
	}
	return ss
}

// flockmqTLSFlags add FlockMQ's TLS listener (cmd/node: -tls-listen,
// -tls-cert, -tls-key; no client certificates asked for).
func flockmqTLSFlags(tlsPort int, pki pkiFiles) []string {
	return []string{"-tls-listen", loopback(tlsPort), "-tls-cert", pki.Cert, "-tls-key", pki.Key}
}

// mosquittoTLSConf is mosquittoConf plus a second loopback listener that
// speaks TLS with the given server certificate (mosquitto.conf(5): certfile
// and keyfile belong to the listener above them). No cafile: no client
// certificates are asked for. TLS versions and ciphers stay at their
// defaults.
func mosquittoTLSConf(port, data, tlsPort, cert, key string) string {
	return mosquittoConf(port, data) + fmt.Sprintf(`listener %s 127.0.0.1
certfile %s
keyfile %s
`, tlsPort, cert, key)
}

// tlsRows are the -tls table: each row over TCP, then over TLS (64-byte
// payloads, MQTT 5). The connect rows hold the connections for a second.
func tlsRows(p plan) []row {
	fanin := []string{"-c", "8", "--qos", "1", "--mqtt", "5", "--size", "64",
		"--duration", p.Duration.String(), "--drain", p.Drain.String()}
	conns := strconv.Itoa(p.Conns)
	n := thousands(int64(p.Conns))
	connect := []string{"-c", conns, "--duration", "1s"}
	latency := []extraFigure{{Name: "connack_p50_us", Label: "p50"}, {Name: "connack_p99_us", Label: "p99"}}
	return []row{
		{ID: "fanin-qos1-tcp", Title: "fan-in 8 → 1, QoS 1, MQTT 5, TCP", Scenario: "fanin",
			Args: fanin, Figure: figDelivered, Unit: "msg/s", Higher: true},
		{ID: "fanin-qos1-tls", Title: "fan-in 8 → 1, QoS 1, MQTT 5, TLS", Scenario: "fanin",
			Args: fanin, Figure: figDelivered, Unit: "msg/s", Higher: true, TLS: true, Base: "fanin-qos1-tcp"},
		{ID: "connect-tcp", Title: "connect " + n + " clients at full speed, TCP", Scenario: "conn",
			Args: connect, Figure: figConnect, Unit: "clients/s", Higher: true, Extra: latency},
		{ID: "connect-tls", Title: "connect " + n + " clients at full speed, TLS", Scenario: "conn",
			Args: connect, Figure: figConnect, Unit: "clients/s", Higher: true, Extra: latency, TLS: true, Base: "connect-tcp"},
	}
}

// describeTLS makes one TLS handshake with addr as the load tool makes
// them (crypto/tls defaults, the run's CA) and says what it negotiated.
func describeTLS(ctx context.Context, addr, caFile string) string {
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return err.Error()
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	host, _, _ := net.SplitHostPort(addr)
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: host}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "handshake failed: " + err.Error()
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	return fmt.Sprintf("%s, %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID)
}

// runTLS is bench-compare -tls.
func runTLS(args []string, bin, out, doc string, quick bool, rounds int, mosq, only, makeCmd string, stdout, stderr io.Writer) int {
	pl := fullPlan()
	if quick {
		pl = quickPlan()
	}
	if rounds > 0 {
		pl.Rounds = rounds
	}
	if out == "" {
		out = filepath.Join(bin, "bench-tls.out")
	}
	mosquittoBin, err := findMosquitto(mosq)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	for _, b := range []string{"flockmq", "flockmq-bench", "mochi"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			fmt.Fprintf(stderr, "bench-compare: %v (run `make build peers`)\n", err)
			return 2
		}
	}
	selected, err := selectRows(tlsRows(pl), only)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	if err := cleanOut(out); err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	pki, err := writePKI(out)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: certificates: %v\n", err)
		return 1
	}
	if makeCmd == "" {
		makeCmd = "bench-compare " + strings.Join(args, " ")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	negotiated := map[string]string{}
	h := &harness{bin: bin, out: out, plan: pl, specs: tlsSpecs(bin, mosquittoBin, pki), progress: stderr, caFile: pki.CA}
	h.onStart = func(b *broker) {
		if b.TLSPort != 0 && negotiated[b.Name] == "" {
			negotiated[b.Name] = describeTLS(ctx, b.TLSAddr(), pki.CA)
			fmt.Fprintf(stderr, "bench-compare: %s TLS on %s: %s\n", b.Name, b.TLSAddr(), negotiated[b.Name])
		}
	}
	for _, s := range h.specs {
		h.names = append(h.names, s.Name)
	}
	e := gatherEnv(ctx, bin, mosquittoBin, out)
	e.Rounds, e.Quick, e.MakeCommand = pl.Rounds, quick, makeCmd
	e.MosqConf = mosquittoTLSConf("PORT", "DATA_DIR/", "TLS_PORT", pki.Cert, pki.Key)
	fmt.Fprintf(stderr, "bench-compare -tls: %d rows x up to %d brokers x %d rounds; %d CPUs, nothing pinned; load %s\n",
		len(selected), len(h.specs), pl.Rounds, e.NProc, e.LoadStart)
	var results []rowResult
	for i, r := range selected {
		fmt.Fprintf(stderr, "\n=== bench-compare -tls row %d/%d: %s\n", i+1, len(selected), r.Title)
		results = append(results, h.runRow(ctx, r))
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench-compare: interrupted; the brokers are stopped, no section written")
			return 130
		}
	}
	e.LoadEnd = uptime(ctx)
	e.Brokers = h.brokerCmds
	section := renderTLS(e, results, h.names, negotiated, pki)
	return publishSection(out, doc, tlsTitle, section, stdout, stderr)
}

// renderTLS builds the -tls markdown section: the table, TLS over TCP per
// broker, the runs and the commands.
func renderTLS(e env, results []rowResult, names []string, negotiated map[string]string, pki pkiFiles) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("%s", tlsTitle)
	p("")
	p("Written by `%s` (bench/cmd/bench-compare -tls) on %s. The numbers are not edited by hand; rerun the target to refresh them.",
		e.MakeCommand, e.Date.UTC().Format("2006-01-02 15:04 MST"))
	if e.Quick {
		p("**QUICK smoke run**: 1 round, short durations, fewer connections; not a measurement.")
	}
	p("")
	p("- Machine: %d CPUs (`nproc`), %s; kernel %s", e.NProc, e.CPUModel, e.Kernel)
	p("- Software: %s; Mosquitto %s (Debian package); mochi-mqtt %s (bench/peers/mochi); FlockMQ %s",
		e.GoVersion, e.Mosquitto, e.Mochi, e.FlockMQ)
	p("- Load (`uptime`), a shared and noisy machine: at start `%s`; at end `%s`", e.LoadStart, e.LoadEnd)
	p("- Brokers as in the broker comparison above (each as its users run it; command lines under Commands), each serving TCP and TLS at once, in every row:")
	p("  - FlockMQ as bench-compare starts it, plus `-tls-listen 127.0.0.1:TLS_PORT -tls-cert -tls-key` (its TLS listener runs on the standard library's network stack, not gnet).")
	p("  - Mosquitto with the generated Debian-like configuration below, plus a second loopback listener with `certfile` and `keyfile`; TLS versions and ciphers at their defaults.")
	p("  - mochi-mqtt: **not in the TLS rows**. bench/peers/mochi serves TCP only (mochi-mqtt itself can listen with a `tls.Config`; the peer binary has no flag for it), so its TLS cells read n/a; its TCP rows are there for scale.")
	p("- Certificates: a throwaway CA and server certificate, ECDSA P-256, for 127.0.0.1 and localhost, generated for the run (`%s`, `%s`); the load tool verifies the server with `--tls --cafile`. No client certificates.",
		filepath.Base(pki.CA), filepath.Base(pki.Cert))
	var neg []string
	for _, n := range names {
		if v, ok := negotiated[n]; ok {
			neg = append(neg, fmt.Sprintf("%s %s", n, v))
		}
	}
	p("- Negotiated with Go's crypto/tls client defaults (what the tool offers): %s.", orUnknown(strings.Join(neg, "; ")))
	p("- Load tool over TLS: `flockmq-bench --tls` runs a crypto/tls connection per client, with a reader and a writer goroutine each, instead of gnet's event loops; a full handshake on every connection (no session resumption). Its CPU per message is higher than over TCP (load tool cores under Runs). The connect latency (p50/p99 in the connect cells) runs from the start of the TLS handshake to the CONNACK; over TCP, from the established TCP connection to the CONNACK.")
	p("- CPU: nothing is pinned; the brokers and the tool share all %d CPUs, as in the broker comparison.", e.NProc)
	p("- Method: every row starts the brokers afresh (FlockMQ and Mosquitto with both listeners, mochi for TCP rows only); `flockmq-bench compare` runs the scenario %d time(s) per broker, alternating brokers; the table shows medians. 64-byte payloads, MQTT 5.", e.Rounds)
	p("")
	writeTable(&b, results, names)
	p("")
	writeTLSRatios(&b, results, names)
	p("Ratio: FlockMQ's median over the best peer's (on TLS rows, Mosquitto's); above 1 means FlockMQ leads on these ↑ rows.")
	p("QoS 1/2 column: lost, duplicated and reordered messages, as the load tool's sequence checks count them, summed over every run of each broker. Mosquitto at its defaults drops outgoing QoS 1/2 messages to a client that already has 1000 queued (`max_queued_messages`): loss there is that documented policy of the default configuration.")
	p("")
	writeRuns(&b, results)
	writeCommands(&b, e, results, "brokers, as started for the first row (every row starts them afresh on free loopback ports, with fresh data directories)")
	p("Generated Mosquitto configuration (PORT, TLS_PORT and DATA_DIR are the broker's own at each start):")
	p("")
	p("```")
	p("%s", strings.TrimSpace(e.MosqConf))
	p("```")
	return b.String()
}

// writeTLSRatios writes, for every TLS row with a TCP twin, each broker's
// median over TLS divided by its median over TCP.
func writeTLSRatios(b *strings.Builder, results []rowResult, names []string) {
	byID := map[string]rowResult{}
	for _, rr := range results {
		byID[rr.Row.ID] = rr
	}
	header, sep := "| TLS ÷ TCP, same broker |", "|---|"
	for _, n := range names {
		header += " " + n + " |"
		sep += "---:|"
	}
	var lines []string
	for _, rr := range results {
		base, ok := byID[rr.Row.Base]
		if !ok {
			continue
		}
		line := fmt.Sprintf("| %s, %s |", rr.Row.Title, rr.Row.Unit)
		for i := range names {
			c := "n/a"
			if i < len(rr.Targets) && i < len(base.Targets) {
				tls, tcp := rr.Targets[i], base.Targets[i]
				if tls.Skipped == "" && tls.HasData() && tcp.HasData() && tcp.Median > 0 {
					c = fmt.Sprintf("%.2f", tls.Median/tcp.Median)
				}
			}
			line += " " + c + " |"
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(b, header)
	fmt.Fprintln(b, sep)
	for _, l := range lines {
		fmt.Fprintln(b, l)
	}
	fmt.Fprintln(b)
}
