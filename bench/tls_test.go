package bench

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

func TestTLSFlags(t *testing.T) {
	ca := nodetest.NewCA(t, "flags")
	now := time.Now()
	cert, key := ca.Issue(t, "client", false, now.Add(-time.Hour), now.Add(time.Hour))
	for _, ok := range [][]string{
		{"--tls", "--cafile", ca.File},
		{"--tls", "--insecure"},
		{"--tls", "--cafile", ca.File, "--cert", cert, "--key", key, "--tls-server-name", "broker.example"},
	} {
		cfg, err := ParseFlags("fanin", ok, io.Discard)
		if err != nil || !cfg.TLS || cfg.tlsConf == nil {
			t.Errorf("%v: %v", ok, err)
			continue
		}
		if c := cfg.tlsConf; c.InsecureSkipVerify != cfg.Insecure || (cfg.CAFile != "") != (c.RootCAs != nil) ||
			len(c.Certificates) != map[bool]int{true: 1}[cfg.CertFile != ""] || c.ServerName != cfg.TLSServerName {
			t.Errorf("%v: tls config %+v", ok, c)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls"}, "--tls needs --cafile FILE"}, // no silent skipping of the verification
		{[]string{"--cafile", ca.File}, "need --tls"},
		{[]string{"--insecure"}, "need --tls"},
		{[]string{"--tls", "--cafile", ca.File, "--insecure"}, "give one of them"},
		{[]string{"--tls", "--insecure", "--cert", cert}, "--cert and --key go together"},
		{[]string{"--tls", "--cafile", ca.File + ".missing"}, "--cafile"},
		{[]string{"--tls", "--cafile", key}, "no PEM certificate"},
		{[]string{"--tls", "--insecure", "--cert", cert, "--key", cert}, "--cert/--key"},
	} {
		_, err := ParseFlags("fanin", bad.args, io.Discard)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want ErrConfig with %q", bad.args, err, bad.want)
		}
	}
}

// nopConn accepts writes, for tests of the protocol code without a socket.
type nopConn struct{ n int }

func (c *nopConn) Write(b []byte) (int, error) { c.n += len(b); return len(b), nil }
func (c *nopConn) Close() error                { return nil }
func (c *nopConn) OutboundBuffered() int       { return 0 }

// TestDecodeAllocs budgets the receive path both transports share: decoding
// a batch of QoS 1 deliveries, tracking them and writing the PUBACKs must
// not allocate.
func TestDecodeAllocs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario = "sub"
	r := &Runner{cfg: &cfg, clk: newClock(), runID: 9, errs: map[string]int{}}
	l := newLoopState(r, nil)
	conn := &nopConn{}
	c := &client{r: r, idx: 0, tracker: NewTracker(), subs: []codec.Subscription{{Filter: []byte("t/#"), QoS: 1}}}
	c.opened(l, conn, r.clk.now())
	c.state = stateReady
	payload := NewPayload(64)
	var batch []byte
	var seq uint64
	fill := func() {
		batch = batch[:0]
		for i := range 16 {
			Stamp(payload, 9, 1, seq, r.clk.now())
			seq++
			batch = codec.AppendPublish(batch, &codec.PublishPacket{QoS: 1, PacketID: uint16(1 + i), Topic: []byte("t/1"), Payload: payload}, cfg.Version)
		}
	}
	steps := 0
	step := func() {
		steps++
		fill()
		now := r.clk.now()
		off, out, keep := c.decode(batch[:len(batch)-3], l.wbuf[:0], now) // the last packet is incomplete
		if !keep || off == 0 || off == len(batch) {
			t.Fatalf("decode: off %d of %d, keep %v", off, len(batch), keep)
		}
		c.answer(out, now, keep)
	}
	step() // creates the stream and sizes the buffers
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Fatalf("the receive path allocates %.1f times per batch", n)
	}
	if st := l.st.recv.Load(); st != int64(steps*15) || conn.n == 0 || l.st.protoErr.Load() != 0 {
		t.Fatalf("received %d, wrote %d bytes, %d protocol errors", st, conn.n, l.st.protoErr.Load())
	}
}

// loggedTLSAddr is the address a flockmq process logged it serves MQTT over
// TLS on (it listens on port 0).
func loggedTLSAddr(t *testing.T, p *nodetest.Process) string {
	t.Helper()
	const key = `msg="flockmq serving MQTT over TLS" listen=`
	deadline := time.Now().Add(10 * time.Second)
	tk := time.NewTicker(10 * time.Millisecond) // polling the child's log for a line
	defer tk.Stop()
	for {
		log := p.Log.String()
		if i := strings.Index(log, key); i >= 0 {
			rest := log[i+len(key):]
			if j := strings.IndexAny(rest, " \n"); j > 0 {
				return rest[:j]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS listener logged:\n%s", log)
		}
		<-tk.C
	}
}

// TestE2ETLSFlockMQ runs the std-net transport against the flockmq binary's
// TLS listener, which requires a client certificate from the test CA: a
// fan-in at QoS 1 with nothing lost, the conn probe over many connections,
// a broker certificate from another CA, and no client certificate.
func TestE2ETLSFlockMQ(t *testing.T) {
	ca := nodetest.NewCA(t, "bench")
	other := nodetest.NewCA(t, "other")
	now := time.Now()
	srvCert, srvKey := ca.Issue(t, "server", true, now.Add(-time.Hour), now.Add(time.Hour))
	cliCert, cliKey := ca.Issue(t, "bench-client", false, now.Add(-time.Hour), now.Add(time.Hour))
	p := nodetest.Start(t, nodetest.Build(t), "-store", "memory", "-sys-interval", "0", "-loops", "1",
		"-tls-listen", "127.0.0.1:0", "-tls-cert", srvCert, "-tls-key", srvKey,
		"-tls-ca", ca.File, "-tls-client-auth", "require")
	addr := loggedTLSAddr(t, p)
	tlsConfig := func(scenario string) Config {
		cfg := e2eConfig(addr, scenario)
		cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile = true, ca.File, cliCert, cliKey
		return cfg
	}

	t.Run("fanin-qos1", func(t *testing.T) {
		cfg := tlsConfig("fanin")
		cfg.QoS, cfg.Rate = 1, 0 // as fast as the window allows
		sum := runOK(t, cfg)
		if sum.Pub.Sent != 900 || sum.Pub.Delivered != 900 || sum.Pub.Acked != 900 || sum.Seq.Lost != 0 ||
			sum.Seq.Duplicated != 0 || sum.Seq.Reordered != 0 || sum.Seq.Streams != 3 {
			t.Fatalf("publish %+v, sequence %+v", sum.Pub, sum.Seq)
		}
		tl := sum.TLS
		if tl == nil || tl.Handshakes != 4 || tl.Version != "TLS 1.3" || tl.Cipher == "" || tl.Handshake.Count != 4 {
			t.Fatalf("tls figures %+v", tl)
		}
		// The CONNACK latency runs from the start of the handshake.
		if c := sum.Conn.Connack; c.Count != 4 || c.Min < tl.Handshake.Min {
			t.Fatalf("connack %+v, handshake %+v", c, tl.Handshake)
		}
	})

	t.Run("conn-probe", func(t *testing.T) {
		cfg := tlsConfig("conn")
		cfg.Clients, cfg.Probe, cfg.Count, cfg.Duration, cfg.QoS = 200, 20, 0, 50*time.Millisecond, 1
		sum := runOK(t, cfg)
		if pr := sum.Probe; pr == nil || pr.Received != 20 || pr.Lost != 0 || pr.Duplicated != 0 || pr.Misdelivered != 0 {
			t.Fatalf("probe %+v", sum.Probe)
		}
		if sum.Conn.Connected != 201 || sum.TLS.Handshakes != 201 || sum.Conn.Rate <= 0 {
			t.Fatalf("connections %+v, tls %+v", sum.Conn, sum.TLS)
		}
	})

	t.Run("wrong-ca", func(t *testing.T) {
		cfg := tlsConfig("conn")
		cfg.CAFile, cfg.Count, cfg.Duration = other.File, 0, time.Second
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		sum, err := Run(context.Background(), cfg)
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "none of 3 connected") ||
			!strings.Contains(err.Error(), "tls handshake: tls: failed to verify certificate: x509: certificate signed by unknown authority") {
			t.Fatalf("want ErrConnect naming the verification failure, got %v", err)
		}
		if sum.Conn.Failed != 3 || sum.TLS.Handshakes != 0 || len(sum.Errors) != 1 {
			t.Fatalf("connections %+v, tls %+v, errors %q", sum.Conn, sum.TLS, sum.Errors)
		}
	})

	t.Run("no-client-cert", func(t *testing.T) {
		cfg := tlsConfig("conn")
		cfg.CertFile, cfg.KeyFile, cfg.Count, cfg.Duration = "", "", 0, time.Second
		_, err := Run(context.Background(), cfg)
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("want ErrConnect naming the missing certificate, got %v", err)
		}
	})
}
