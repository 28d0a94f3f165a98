package eventloop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// Tests of the std server (stdnet.go, tlsconf.go, ws.go): real sockets,
// real clients (paho.golang, mosquitto_pub and mosquitto_sub, raw
// WebSocket frames), certificates made by the tests.

// The std connection is the broker's Transport, and gives the broker its
// verified client certificate.
var _ broker.CertTransport = (*stdConn)(nil)

// ---- certificates ----

// stdCA is a test certificate authority.
type stdCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func stdSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newStdCA(t *testing.T, name string) *stdCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: stdSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &stdCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a certificate for cn signed by ca: a server's (localhost,
// 127.0.0.1, ::1) or a client's (cn.clients.example), valid from nb to na.
func (ca *stdCA) issue(t *testing.T, cn string, server bool, nb, na time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: stdSerial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{cn + ".clients.example"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// stdPKI is a CA, a server certificate and client certificates, in files.
type stdPKI struct {
	dir                  string
	ca, other            *stdCA
	caFile               string
	serverCert           string // files
	serverKey            string
	files                TLSFiles // the server's, with the client CA
	good, expired, alien tls.Certificate
	goodCert, goodKey    string // files of good, for mosquitto
}

func newStdPKI(t *testing.T) *stdPKI {
	t.Helper()
	p := &stdPKI{dir: t.TempDir(), ca: newStdCA(t, "flockmq test CA"), other: newStdCA(t, "another CA")}
	now := time.Now()
	p.caFile = stdWrite(t, p.dir, "ca.pem", p.ca.pem)
	c, k := p.ca.issue(t, "server-1", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.serverCert, p.serverKey = stdWrite(t, p.dir, "server.pem", c), stdWrite(t, p.dir, "server-key.pem", k)
	p.files = TLSFiles{CertFile: p.serverCert, KeyFile: p.serverKey, ClientCAFile: p.caFile}
	c, k = p.ca.issue(t, "client-good", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.goodCert, p.goodKey = stdWrite(t, p.dir, "good.pem", c), stdWrite(t, p.dir, "good-key.pem", k)
	p.good = stdPair(t, c, k)
	c, k = p.ca.issue(t, "client-expired", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	p.expired = stdPair(t, c, k)
	c, k = p.other.issue(t, "client-alien", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.alien = stdPair(t, c, k)
	return p
}

func stdWrite(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func stdPair(t *testing.T, c, k []byte) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// client is a client tls.Config trusting p's CA, with cert if not nil.
func (p *stdPKI) client(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Sent whatever CAs the server names: crypto/tls would not send a
		// certificate of another CA's on its own.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg
}

// serverTLS is p's server tls.Config for the client auth mode.
func (p *stdPKI) serverTLS(t *testing.T, mode string) (*tls.Config, *CertStore) {
	t.Helper()
	cfg, store, err := LoadServerTLS(p.files, mode)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, store
}

// ---- a broker with both servers ----

// stdSeen is what the authenticator saw of one CONNECT.
type stdSeen struct {
	transport, remote string
	peer              *x509.Certificate
}

// stdAuth accepts every client and records what it saw.
type stdAuth struct {
	mu   sync.Mutex
	seen map[string]stdSeen
}

func (a *stdAuth) Authenticate(info *broker.ConnectInfo) codec.ReasonCode {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[info.ClientID] = stdSeen{transport: info.Transport, remote: info.RemoteAddr, peer: info.PeerCert}
	return codec.Success
}

func (a *stdAuth) get(id string) (stdSeen, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.seen[id]
	return s, ok
}

// stdEnv is a broker with a gnet TCP server and a std server.
type stdEnv struct {
	b    *broker.Broker
	tcp  string // the gnet server's address
	srv  *StdServer
	auth *stdAuth
}

// startStdEnv starts a broker (config changed by mutate) with a gnet TCP
// listener and a std server with opts (no listener yet). Cleanup shuts the
// broker down, then stops both servers in main's order, and fails the test
// if the std server does not stop cleanly: every goroutine of its gone.
func startStdEnv(t *testing.T, mutate func(*broker.Config), opts StdOptions) *stdEnv {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := &stdAuth{seen: map[string]stdSeen{}}
	b, err := broker.New(cfg, broker.WithLogger(log), broker.WithAuthenticator(auth))
	if err != nil {
		t.Fatal(err)
	}
	tcp := NewServer(b, "127.0.0.1:0", Options{Loops: 1, Logger: log})
	if err := tcp.Start(); err != nil {
		t.Fatal(err)
	}
	if opts.Loops == 0 {
		opts.Loops = 2
	}
	opts.Logger = log
	srv := NewStdServer(b, opts)
	t.Cleanup(func() {
		_ = b.Shutdown(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tcp.Stop(ctx)
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("std server stop: %v", err)
		}
		if n := srv.Open(); n != 0 {
			t.Errorf("%d connections open after Stop", n)
		}
	})
	return &stdEnv{b: b, tcp: tcp.Addr().String(), srv: srv, auth: auth}
}

func (e *stdEnv) listenTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	a, err := e.srv.ListenTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

func (e *stdEnv) listenWS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	a, err := e.srv.ListenWS("127.0.0.1:0", "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

// stdWaitFor polls cond until it holds or timeout passes.
func stdWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- clients ----

// stdV5 is a paho.golang client over any net.Conn.
type stdV5 struct {
	*paho.Client
	msgs chan *paho.Publish
	gate chan struct{} // if not nil, received messages wait for it to close
}

// stdDialV5 connects a v5 client over conn.
func stdDialV5(t *testing.T, conn net.Conn, id string, gate chan struct{}) *stdV5 {
	t.Helper()
	vc := &stdV5{msgs: make(chan *paho.Publish, 10000), gate: gate}
	vc.Client = paho.NewClient(paho.ClientConfig{
		Conn:          packets.NewThreadSafeConn(conn),
		PacketTimeout: time.Minute,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if vc.gate != nil {
				<-vc.gate
			}
			vc.msgs <- pr.Packet
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Keep alive 0: paho.golang writes a packet in several Writes, and over
	// TLS or WebSocket its pinger's PINGREQ can land between them.
	if _, err := vc.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 0}); err != nil {
		_ = conn.Close()
		t.Fatalf("v5 connect %q: %v", id, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return vc
}

func (c *stdV5) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
}

func (c *stdV5) pub(t *testing.T, topic, payload string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// want waits for the next message and checks its topic and payload.
func (c *stdV5) want(t *testing.T, topic, payload string) {
	t.Helper()
	select {
	case p := <-c.msgs:
		if p.Topic != topic || string(p.Payload) != payload {
			t.Fatalf("got %q on %q, want %q on %q", p.Payload, p.Topic, payload, topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %q within 10 s", topic)
	}
}

// stdDialTLS dials addr over TLS with cfg; the handshake must succeed.
func stdDialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	return c
}

// stdDialWS opens a WebSocket to url offering protos.
func stdDialWS(t *testing.T, url string, hc *http.Client, protos ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: protos})
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v", url, err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// stdWSConn is a WebSocket to url with subprotocol mqtt as a net.Conn.
func stdWSConn(t *testing.T, url string, hc *http.Client) net.Conn {
	t.Helper()
	return websocket.NetConn(context.Background(), stdDialWS(t, url, hc, "mqtt"), websocket.MessageBinary)
}

// stdConnect is a CONNECT of version v.
func stdConnect(v codec.Version, id string, keepAlive uint16) []byte {
	cp := codec.ConnectPacket{Version: v, CleanStart: true, ClientID: []byte(id), KeepAlive: keepAlive}
	return codec.AppendConnect(nil, &cp)
}

// stdPackets decodes packets of version v from a byte stream.
type stdPackets struct {
	v    codec.Version
	read func([]byte) (int, error)
	buf  []byte
}

// stdGot is a decoded packet's type and what the tests check of it.
type stdGot struct {
	typ     codec.PacketType
	reason  codec.ReasonCode // DISCONNECT's
	topic   string           // PUBLISH's
	payload string
}

// next returns the next packet, or the read's error (io.EOF: closed).
func (p *stdPackets) next() (stdGot, error) {
	tmp := make([]byte, 64<<10)
	for {
		var pk codec.Packet
		n, err := codec.Decode(p.buf, p.v, 0, &pk)
		if err == nil {
			g := stdGot{typ: pk.Type}
			switch pk.Type {
			case codec.Disconnect:
				g.reason = pk.Disconnect.Reason
			case codec.Publish:
				g.topic, g.payload = string(pk.Publish.Topic), string(pk.Publish.Payload)
			}
			p.buf = p.buf[n:]
			return g, nil
		}
		if err != codec.ErrIncomplete {
			return stdGot{}, err
		}
		m, rerr := p.read(tmp)
		p.buf = append(p.buf, tmp[:m]...)
		if rerr != nil && m == 0 {
			return stdGot{}, rerr
		}
	}
}

// stdNetPackets reads packets from c, failing the test after timeout.
func stdNetPackets(c net.Conn, v codec.Version, timeout time.Duration) *stdPackets {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	return &stdPackets{v: v, read: c.Read}
}

// stdExpect reads the next packet and checks its type.
func stdExpect(t *testing.T, p *stdPackets, want codec.PacketType) stdGot {
	t.Helper()
	g, err := p.next()
	if err != nil {
		t.Fatalf("reading a packet (want type %d): %v", want, err)
	}
	if g.typ != want {
		t.Fatalf("got packet type %d, want %d", g.typ, want)
	}
	return g
}

// stdClosed reads until the connection ends and returns the packets read
// before; a read timeout fails the test.
func stdClosed(t *testing.T, p *stdPackets) []stdGot {
	t.Helper()
	var got []stdGot
	for {
		g, err := p.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection not closed (read %v)", got)
			}
			return got
		}
		got = append(got, g)
	}
}

// ---- tests ----

// TestStdTLSPubSub: paho v5 clients over TLS publish and subscribe, and
// share messages both ways with a client of the gnet TCP listener on the
// same broker.
func TestStdTLSPubSub(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)

	tlsSub := stdDialV5(t, stdDialTLS(t, addr, p.client(nil)), "tls-sub", nil)
	tlsSub.sub(t, "cross/#", 1)
	tlsPub := stdDialV5(t, stdDialTLS(t, addr, p.client(nil)), "tls-pub", nil)
	tcpConn, err := net.Dial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	tcp := stdDialV5(t, tcpConn, "tcp-client", nil)
	tcp.sub(t, "back/#", 1)

	tlsPub.pub(t, "cross/a", "tls to tls", 1)
	tlsSub.want(t, "cross/a", "tls to tls")
	tcp.pub(t, "cross/b", "tcp to tls", 1)
	tlsSub.want(t, "cross/b", "tcp to tls")
	tlsPub.pub(t, "back/c", "tls to tcp", 0)
	tcp.want(t, "back/c", "tls to tcp")

	s, ok := e.auth.get("tls-pub")
	if !ok || s.transport != "tls" || s.peer != nil || !strings.HasPrefix(s.remote, "127.0.0.1:") {
		t.Fatalf("authenticator saw %+v (ok %v), want transport tls, no certificate, a 127.0.0.1 address", s, ok)
	}
	if s, _ := e.auth.get("tcp-client"); s.transport != "tcp" {
		t.Fatalf("the gnet client's transport is %q, want tcp", s.transport)
	}
}

// TestStdTLSMosquitto: mosquitto_sub over TLS (--cafile) gets what
// mosquitto_pub sends over mTLS (--cert, --key), in both versions; without
// a client certificate mosquitto_pub is refused.
func TestStdTLSMosquitto(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (%v): install the Debian package mosquitto-clients", tool, err)
		}
	}
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	plainCfg, _ := p.serverTLS(t, "none")
	mtlsCfg, _ := p.serverTLS(t, "require")
	_, plainPort, _ := net.SplitHostPort(e.listenTLS(t, plainCfg))
	_, mtlsPort, _ := net.SplitHostPort(e.listenTLS(t, mtlsCfg))
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			topic := "mosq/tls/" + v
			payload := "over TLS " + v
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", "localhost", "-p", plainPort, "--cafile", p.caFile,
				"-V", v, "-i", "msub-"+v, "-t", topic, "-q", "1", "-C", "1", "-W", "15")
			var out bytes.Buffer
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- sub.Wait() }()
			stdWaitFor(t, 10*time.Second, "mosquitto_sub's subscription", func() bool {
				return e.b.SubscriptionCount() >= 1
			})
			refused, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "localhost", "-p", mtlsPort,
				"--cafile", p.caFile, "-V", v, "-i", "mpub-nocert-"+v, "-t", topic, "-q", "1", "-m", "must not arrive").CombinedOutput()
			if err == nil {
				t.Fatalf("mosquitto_pub without a client certificate was not refused: %s", refused)
			}
			if out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "localhost", "-p", mtlsPort,
				"--cafile", p.caFile, "--cert", p.goodCert, "--key", p.goodKey,
				"-V", v, "-i", "mpub-"+v, "-t", topic, "-q", "1", "-m", payload).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_pub over mTLS: %v\n%s", err, out)
			}
			if err := <-done; err != nil {
				t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
			}
			if got := strings.TrimSpace(out.String()); got != payload {
				t.Fatalf("mosquitto_sub printed %q, want %q", got, payload)
			}
			if s, ok := e.auth.get("mpub-" + v); !ok || s.peer == nil || s.peer.Subject.CommonName != "client-good" {
				t.Fatalf("the authenticator saw %+v for mosquitto_pub, want the certificate of client-good", s)
			}
			stdWaitFor(t, 10*time.Second, "mosquitto_sub's session gone", func() bool {
				return e.b.SubscriptionCount() == 0
			})
		})
	}
}

// stdTryMQTT dials addr over TLS with cfg, sends a v5 CONNECT and reads the
// answer: nil for a CONNACK, else why not. (In TLS 1.3 the client's
// handshake ends before the server has checked its certificate: a refusal
// shows at the first read.)
func stdTryMQTT(addr string, cfg *tls.Config, id string) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(stdConnect(codec.V5, id, 30)); err != nil {
		return err
	}
	g, err := stdNetPackets(c, codec.V5, 10*time.Second).next()
	if err != nil {
		return err
	}
	if g.typ != codec.Connack {
		return fmt.Errorf("packet type %d instead of CONNACK", g.typ)
	}
	return nil
}

// TestStdTLSClientAuth: with client authentication required, a client
// without a certificate, with an expired one or with one from another CA
// is refused in the handshake; a good one connects, and the broker sees
// its certificate (Subject CN, SANs). With "request", a client without a
// certificate connects too.
func TestStdTLSClientAuth(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	requireCfg, _ := p.serverTLS(t, "require")
	requestCfg, _ := p.serverTLS(t, "request")
	require := e.listenTLS(t, requireCfg)
	request := e.listenTLS(t, requestCfg)

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want string // in the client's error
	}{
		{"no certificate", nil, "certificate required"},
		{"expired", &p.expired, "expired certificate"},
		{"other CA", &p.alien, "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.srv.HandshakeFailures()
			err := stdTryMQTT(require, p.client(tc.cert), "refused")
			if err == nil {
				t.Fatal("connected; want the handshake refused")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %v; want an error with %q", err, tc.want)
			}
			stdWaitFor(t, 5*time.Second, "the failure counted", func() bool { return e.srv.HandshakeFailures() > before })
		})
	}
	if _, ok := e.auth.get("refused"); ok {
		t.Fatal("a refused client reached the authenticator")
	}
	if err := stdTryMQTT(require, p.client(&p.good), "good"); err != nil {
		t.Fatalf("good certificate: %v", err)
	}
	s, ok := e.auth.get("good")
	if !ok || s.peer == nil {
		t.Fatalf("the authenticator saw %+v, want a peer certificate", s)
	}
	if s.peer.Subject.CommonName != "client-good" || len(s.peer.DNSNames) != 1 || s.peer.DNSNames[0] != "client-good.clients.example" {
		t.Fatalf("peer certificate CN %q SANs %v", s.peer.Subject.CommonName, s.peer.DNSNames)
	}
	if err := stdTryMQTT(request, p.client(nil), "request-none"); err != nil {
		t.Fatalf("request mode, no certificate: %v", err)
	}
	if s, _ := e.auth.get("request-none"); s.peer != nil {
		t.Fatalf("request mode without a certificate: peer %v", s.peer.Subject)
	}
	if err := stdTryMQTT(request, p.client(&p.good), "request-good"); err != nil {
		t.Fatalf("request mode, good certificate: %v", err)
	}
	if s, _ := e.auth.get("request-good"); s.peer == nil || s.peer.Subject.CommonName != "client-good" {
		t.Fatalf("request mode with a certificate: %+v", s)
	}
	if err := stdTryMQTT(request, p.client(&p.alien), "request-alien"); err == nil {
		t.Fatal("request mode accepted a certificate from another CA")
	}
}

// TestStdTLSVersion: a TLS 1.1 client is refused, a TLS 1.2 one served.
func TestStdTLSVersion(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)
	old := p.client(nil)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	err := stdTryMQTT(addr, old, "tls11")
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 client: %v; want a protocol version error", err)
	}
	v12 := p.client(nil)
	v12.MaxVersion = tls.VersionTLS12
	if err := stdTryMQTT(addr, v12, "tls12"); err != nil {
		t.Fatalf("TLS 1.2 client: %v", err)
	}
	if v := cfg.MinVersion; v != tls.VersionTLS12 {
		t.Fatalf("server config MinVersion %x", v)
	}
}

// TestStdTLSReload: new certificate files take effect for new handshakes
// on Reload, a connection made before keeps working, and a broken file
// leaves the previous certificate in use, with an error naming the file.
func TestStdTLSReload(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, store := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)
	peerCN := func() (string, *big.Int) {
		c := stdDialTLS(t, addr, p.client(nil))
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		return leaf.Subject.CommonName, leaf.SerialNumber
	}
	cn1, serial1 := peerCN()
	if cn1 != "server-1" {
		t.Fatalf("first certificate CN %q", cn1)
	}
	old := stdDialV5(t, stdDialTLS(t, addr, p.client(nil)), "before-reload", nil)
	old.sub(t, "reload/#", 1)

	now := time.Now()
	c, k := p.ca.issue(t, "server-2", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	stdWrite(t, p.dir, "server.pem", c)
	stdWrite(t, p.dir, "server-key.pem", k)
	if err := store.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	cn2, serial2 := peerCN()
	if cn2 != "server-2" || serial2.Cmp(serial1) == 0 {
		t.Fatalf("after reload: CN %q serial %v (before: %v)", cn2, serial2, serial1)
	}
	if store.Leaf().Subject.CommonName != "server-2" {
		t.Fatalf("store leaf %q", store.Leaf().Subject.CommonName)
	}
	old.pub(t, "reload/x", "still here", 1)
	old.want(t, "reload/x", "still here")

	// A broken certificate file, then a key that does not go with the
	// certificate: each refused, naming its file; the server keeps server-2.
	stdWrite(t, p.dir, "server.pem", []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"))
	err := store.Reload()
	if err == nil || !strings.Contains(err.Error(), p.serverCert) {
		t.Fatalf("reload of a broken certificate: %v; want an error naming %s", err, p.serverCert)
	}
	stdWrite(t, p.dir, "server.pem", c)
	_, otherKey := p.ca.issue(t, "server-3", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	stdWrite(t, p.dir, "server-key.pem", otherKey)
	if err := store.Reload(); err == nil || !strings.Contains(err.Error(), p.serverKey) {
		t.Fatalf("reload with a mismatched key: %v; want an error naming %s", err, p.serverKey)
	}
	if err := os.Remove(p.serverKey); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err == nil || !strings.Contains(err.Error(), p.serverKey) {
		t.Fatalf("reload with the key missing: %v; want an error naming %s", err, p.serverKey)
	}
	if cn, serial := peerCN(); cn != "server-2" || serial.Cmp(serial2) != 0 {
		t.Fatalf("after failed reloads the server presents %q", cn)
	}
	old.pub(t, "reload/y", "and still", 1)
	old.want(t, "reload/y", "and still")
}

// TestStdTLSConfigErrors: the TLS helpers refuse what they cannot use,
// saying what.
func TestStdTLSConfigErrors(t *testing.T) {
	p := newStdPKI(t)
	for mode, want := range map[string]tls.ClientAuthType{"": tls.NoClientCert, "none": tls.NoClientCert,
		"request": tls.VerifyClientCertIfGiven, "Require": tls.RequireAndVerifyClientCert} {
		if got, err := ParseClientAuth(mode); err != nil || got != want {
			t.Fatalf("ParseClientAuth(%q) = %v, %v", mode, got, err)
		}
	}
	if _, err := ParseClientAuth("optional"); err == nil || !strings.Contains(err.Error(), "optional") {
		t.Fatalf("ParseClientAuth(optional): %v", err)
	}
	noCA := p.files
	noCA.ClientCAFile = ""
	if _, _, err := LoadServerTLS(noCA, "require"); err == nil || !strings.Contains(err.Error(), "client CA") {
		t.Fatalf("require without a client CA: %v", err)
	}
	if _, _, err := LoadServerTLS(noCA, "none"); err != nil {
		t.Fatalf("none without a client CA: %v", err)
	}
	badCA := p.files
	badCA.ClientCAFile = p.serverKey
	if _, _, err := LoadServerTLS(badCA, "require"); err == nil || !strings.Contains(err.Error(), p.serverKey) {
		t.Fatalf("a key as client CA file: %v", err)
	}
	if _, err := NewCertStore(TLSFiles{CertFile: p.serverCert}); err == nil {
		t.Fatal("a store without a key file")
	}
	e := startStdEnv(t, nil, StdOptions{})
	if _, err := e.srv.ListenTLS("127.0.0.1:0", &tls.Config{}); err == nil {
		t.Fatal("ListenTLS with a config without a certificate")
	}
	if _, err := e.srv.ListenWS("127.0.0.1:0", "mqtt", nil); err == nil {
		t.Fatal("ListenWS with a path without /")
	}
}

// TestStdWSPubSub: paho v5 over WebSocket (subprotocol mqtt) and a gnet TCP
// client exchange messages; a client offering only mqttv3.1 is accepted
// with it.
func TestStdWSPubSub(t *testing.T) {
	e := startStdEnv(t, nil, StdOptions{})
	url := "ws://" + e.listenWS(t, nil) + "/mqtt"
	ws := stdDialV5(t, stdWSConn(t, url, nil), "ws-client", nil)
	tcpConn, err := net.Dial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	tcp := stdDialV5(t, tcpConn, "tcp-client", nil)
	ws.sub(t, "to-ws/#", 1)
	tcp.sub(t, "to-tcp/#", 1)
	tcp.pub(t, "to-ws/1", "hello websocket", 1)
	ws.want(t, "to-ws/1", "hello websocket")
	ws.pub(t, "to-tcp/1", "hello tcp", 1)
	tcp.want(t, "to-tcp/1", "hello tcp")
	if s, _ := e.auth.get("ws-client"); s.transport != "ws" || !strings.HasPrefix(s.remote, "127.0.0.1:") {
		t.Fatalf("authenticator saw %+v, want transport ws from 127.0.0.1", s)
	}

	old := stdDialWS(t, url, nil, "mqttv3.1")
	if sp := old.Subprotocol(); sp != "mqttv3.1" {
		t.Fatalf("subprotocol %q, want mqttv3.1", sp)
	}
	nc := websocket.NetConn(context.Background(), old, websocket.MessageBinary)
	if _, err := nc.Write(stdConnect(codec.V311, "ws-311", 30)); err != nil {
		t.Fatal(err)
	}
	stdExpect(t, stdNetPackets(nc, codec.V311, 10*time.Second), codec.Connack)
}

// TestStdWSFraming: a packet split across WebSocket messages and several
// packets in one message are read as one byte stream; a text message
// closes the connection [MQTT-6.0.0-1].
func TestStdWSFraming(t *testing.T) {
	e := startStdEnv(t, nil, StdOptions{})
	url := "ws://" + e.listenWS(t, nil) + "/mqtt"
	ws := stdDialWS(t, url, nil, "mqtt")
	if ws.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := stdConnect(codec.V5, "ws-frames", 30)
	for _, part := range [][]byte{connect[:5], connect[5:]} {
		if err := ws.Write(ctx, websocket.MessageBinary, part); err != nil {
			t.Fatal(err)
		}
	}
	sub := codec.AppendSubscribe(nil, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("frames/#"), QoS: 0}}}, codec.V5)
	pub := codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("frames/a"), Payload: []byte("two in one")}, codec.V5)
	// SUBSCRIBE and PUBLISH in one message, then a PUBLISH split in three.
	if err := ws.Write(ctx, websocket.MessageBinary, append(sub, pub...)); err != nil {
		t.Fatal(err)
	}
	split := codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("frames/b"), Payload: []byte("split in three")}, codec.V5)
	for _, part := range [][]byte{split[:1], split[1:7], split[7:]} {
		if err := ws.Write(ctx, websocket.MessageBinary, part); err != nil {
			t.Fatal(err)
		}
	}
	pk := &stdPackets{v: codec.V5, read: func(b []byte) (int, error) {
		_, m, err := ws.Read(ctx)
		return copy(b, m), err
	}}
	stdExpect(t, pk, codec.Connack)
	stdExpect(t, pk, codec.Suback)
	if g := stdExpect(t, pk, codec.Publish); g.topic != "frames/a" || g.payload != "two in one" {
		t.Fatalf("got %+v", g)
	}
	if g := stdExpect(t, pk, codec.Publish); g.topic != "frames/b" || g.payload != "split in three" {
		t.Fatalf("got %+v", g)
	}
	// A text message: the server closes (StatusUnsupportedData).
	if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("after a text message: %v; want close status %v", err, websocket.StatusUnsupportedData)
	}
	stdWaitFor(t, 10*time.Second, "the connection gone", func() bool { return e.srv.Open() == 0 })
}

// TestStdWSRefused: an upgrade offering another subprotocol, or none, is
// refused with 400 and the reason; another path gets 404; a message past
// the read limit closes the connection.
func TestStdWSRefused(t *testing.T) {
	e := startStdEnv(t, func(c *broker.Config) { c.MaxPacketSize = 4096 }, StdOptions{})
	base := "ws://" + e.listenWS(t, nil)
	for _, tc := range []struct {
		name   string
		path   string
		protos []string
		status int
		body   string
	}{
		{"wrong subprotocol", "/mqtt", []string{"chat"}, http.StatusBadRequest, `subprotocol "mqtt" required`},
		{"no subprotocol", "/mqtt", nil, http.StatusBadRequest, `subprotocol "mqtt" required`},
		{"wrong path", "/other", []string{"mqtt"}, http.StatusNotFound, "no MQTT WebSocket endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, base+tc.path, &websocket.DialOptions{Subprotocols: tc.protos})
			if err == nil {
				_ = ws.CloseNow()
				t.Fatal("upgraded")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("refused with %v (response %v), want status %d", err, resp, tc.status)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if !strings.Contains(string(body), tc.body) {
				t.Fatalf("body %q, want it to contain %q", body, tc.body)
			}
		})
	}
	// One message of valid packets past the limit: a CONNECT, then
	// publishes nobody subscribed to.
	ws := stdDialWS(t, base+"/mqtt", nil, "mqtt")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := stdConnect(codec.V5, "too-big", 30)
	for len(msg) <= 4096+wsReadSlack {
		msg = codec.AppendPublish(msg, &codec.PublishPacket{Topic: []byte("nobody"), Payload: make([]byte, 1000)}, codec.V5)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
	for {
		// What the broker answered before the limit was reached: CONNACK.
		if _, _, err := ws.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Fatalf("after an oversized message: %v; want close status %v", err, websocket.StatusMessageTooBig)
			}
			break
		}
	}
	stdWaitFor(t, 10*time.Second, "the connection gone", func() bool { return e.srv.Open() == 0 })
}

// TestStdWSS: MQTT over WebSocket over TLS, with the test CA, and with a
// client certificate that the broker sees.
func TestStdWSS(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "request")
	url := "wss://" + e.listenWS(t, cfg) + "/mqtt"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.client(&p.good)}}
	a := stdDialV5(t, stdWSConn(t, url, hc), "wss-a", nil)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: p.client(nil)}}
	b := stdDialV5(t, stdWSConn(t, url, anon), "wss-b", nil)
	a.sub(t, "wss/#", 1)
	b.pub(t, "wss/1", "secure websocket", 1)
	a.want(t, "wss/1", "secure websocket")
	if s, _ := e.auth.get("wss-a"); s.transport != "wss" || s.peer == nil || s.peer.Subject.CommonName != "client-good" {
		t.Fatalf("authenticator saw %+v for wss-a", s)
	}
	if s, _ := e.auth.get("wss-b"); s.transport != "wss" || s.peer != nil {
		t.Fatalf("authenticator saw %+v for wss-b", s)
	}
	// A client that does not trust the server's CA is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"mqtt"}}); err == nil {
		_ = ws.CloseNow()
		t.Fatal("a client without the test CA connected")
	}
}

// TestStdTLSToWSFlow: a QoS 1 publisher over TLS sends 5,000 messages to a
// subscriber over WebSocket that stops reading at first: the broker holds
// the publisher back (its reader stops reading until Resume), and once the
// subscriber reads again every message arrives, in order, once.
func TestStdTLSToWSFlow(t *testing.T) {
	const n = 5000
	p := newStdPKI(t)
	e := startStdEnv(t, func(c *broker.Config) { c.MaxQueuedMessages = 200 }, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	tlsAddr := e.listenTLS(t, cfg)
	url := "ws://" + e.listenWS(t, nil) + "/mqtt"
	gate := make(chan struct{})
	sub := stdDialV5(t, stdWSConn(t, url, nil), "flow-sub", gate)
	sub.sub(t, "flow", 1)
	pub := stdDialV5(t, stdDialTLS(t, tlsAddr, p.client(nil)), "flow-pub", nil)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range n {
			_, err := pub.PublishWithOptions(ctx, &paho.Publish{Topic: "flow", QoS: 1, Payload: []byte(strconv.Itoa(i))},
				paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
			if err != nil {
				errc <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	stdWaitFor(t, 30*time.Second, "the publisher held back", func() bool {
		return e.b.Stats().PublisherPauses.Load() > 0
	})
	close(gate)
	deadline := time.After(2 * time.Minute)
	pubDone := errc
	for i := 0; i < n; {
		select {
		case m := <-sub.msgs:
			if string(m.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d is %q (dup %v)", i, m.Payload, m.Duplicate())
			}
			i++
		case err := <-pubDone:
			if err != nil {
				t.Fatal(err)
			}
			pubDone = nil
		case <-deadline:
			t.Fatalf("only %d of %d messages arrived", i, n)
		}
	}
	if pubDone != nil {
		if err := <-pubDone; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.b.Stats().PublishReceived[1].Load(); got != n {
		t.Fatalf("the broker received %d QoS 1 publishes, want %d", got, n)
	}
	select {
	case m := <-sub.msgs:
		t.Fatalf("message %q arrived twice", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestStdKeepalive: a client over TLS that stops sending is disconnected
// (v5: DISCONNECT 0x8D) once one and a half keepalives have passed: the
// loops tick.
func TestStdKeepalive(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)
	c := stdDialTLS(t, addr, p.client(nil))
	defer c.Close()
	if _, err := c.Write(stdConnect(codec.V5, "sleepy", 1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pk := stdNetPackets(c, codec.V5, 10*time.Second)
	stdExpect(t, pk, codec.Connack)
	got := stdClosed(t, pk)
	took := time.Since(start)
	if len(got) != 1 || got[0].typ != codec.Disconnect || got[0].reason != codec.KeepAliveTimeout {
		t.Fatalf("read %+v before the close, want DISCONNECT 0x8D", got)
	}
	if took < 1400*time.Millisecond || took > 5*time.Second {
		t.Fatalf("disconnected after %v; want about 1.5 s (to 2.5 s: ticks are a second apart)", took)
	}
	if e.b.Stats().KeepaliveTimeouts.Load() != 1 {
		t.Fatalf("keepalive timeouts %d", e.b.Stats().KeepaliveTimeouts.Load())
	}
}

// TestStdTLSGarbage: garbage instead of MQTT over TLS, and bytes that are
// not TLS at all, get their connections closed; the server goes on serving
// the others.
func TestStdTLSGarbage(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)
	good := stdDialV5(t, stdDialTLS(t, addr, p.client(nil)), "bystander", nil)
	good.sub(t, "still/#", 0)

	junk := make([]byte, 64<<10)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	junk[0], junk[1] = 0x10, 100 // a CONNECT of 100 bytes of nonsense, then more
	for name, stream := range map[string][]byte{
		"random":          junk,
		"no CONNECT":      {0x30, 0x05, 0x00, 0x01, 'a', 'b', 'c'},
		"huge length":     {0x10, 0xff, 0xff, 0xff, 0x7f},
		"bad length":      {0x10, 0xff, 0xff, 0xff, 0xff, 0x01},
		"CONNECT garbage": append(stdConnect(codec.V5, "junk", 30), 0xf0, 0x00, 0x00),
	} {
		t.Run(name, func(t *testing.T) {
			c := stdDialTLS(t, addr, p.client(nil))
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Write(stream) // may fail: the server closes early
			got := stdClosed(t, stdNetPackets(c, codec.V5, 10*time.Second))
			for _, g := range got {
				if g.typ != codec.Connack && g.typ != codec.Disconnect {
					t.Fatalf("read %+v before the close", got)
				}
			}
		})
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	before := e.srv.HandshakeFailures()
	_, _ = raw.Write(stdConnect(codec.V311, "plaintext", 30))
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a plain TCP client of the TLS listener was not closed")
		}
	}
	_ = raw.Close()
	stdWaitFor(t, 5*time.Second, "the handshake failure counted", func() bool { return e.srv.HandshakeFailures() > before })
	good.pub(t, "still/here", "served", 0)
	good.want(t, "still/here", "served")
	stdWaitFor(t, 10*time.Second, "only the bystander open", func() bool { return e.srv.Open() == 1 })
}

// TestStdLimits: past MaxConns a connection is closed at accept (and a
// WebSocket upgrade refused with 503); a connection with more than
// MaxOutboundBytes unsent is closed and counted.
func TestStdLimits(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{MaxConns: 1, MaxOutboundBytes: 64 << 10})
	cfg, _ := p.serverTLS(t, "none")
	addr := e.listenTLS(t, cfg)
	wsAddr := e.listenWS(t, nil)
	first := stdDialV5(t, stdDialTLS(t, addr, p.client(nil)), "first", nil)
	if err := stdTryMQTT(addr, p.client(nil), "second"); err == nil {
		t.Fatal("a second connection past MaxConns 1 was served")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+wsAddr+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket past MaxConns: %v (response %v), want 503", err, resp)
	}
	if e.srv.Refused() != 2 {
		t.Fatalf("refused %d, want 2", e.srv.Refused())
	}
	// A retained message larger than MaxOutboundBytes, sent to the next
	// subscriber: the write is refused and its connection closed.
	big := &paho.Publish{Topic: "big/retained", QoS: 1, Retain: true, Payload: make([]byte, 100<<10)}
	if _, err := first.Publish(ctx, big); err != nil {
		t.Fatal(err)
	}
	if err := first.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	stdWaitFor(t, 10*time.Second, "the first connection gone", func() bool { return e.srv.Open() == 0 })
	c := stdDialTLS(t, addr, p.client(nil))
	defer c.Close()
	stream := stdConnect(codec.V5, "slow-reader", 30)
	stream = codec.AppendSubscribe(stream, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("big/#"), QoS: 1}}}, codec.V5)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	got := stdClosed(t, stdNetPackets(c, codec.V5, 10*time.Second))
	for _, g := range got {
		if g.typ == codec.Publish {
			t.Fatalf("the retained message was sent past the outbound limit (read %+v)", got)
		}
	}
	if k := e.srv.OutboundKicks(); k != 1 {
		t.Fatalf("outbound kicks %d, want 1", k)
	}
}

// TestStdStop: in main's order, the broker's Shutdown sends DISCONNECT
// 0x8B to TLS and WebSocket clients through the loops, and Stop then
// closes what is left and stops the loops, which refuse work from then on.
// Stop without a Shutdown first closes the connections too.
func TestStdStop(t *testing.T) {
	p := newStdPKI(t)
	cfg, _ := p.serverTLS(t, "none")
	for _, shutdown := range []bool{true, false} {
		t.Run(fmt.Sprintf("shutdown first %v", shutdown), func(t *testing.T) {
			e := startStdEnv(t, nil, StdOptions{})
			addr := e.listenTLS(t, cfg)
			url := "ws://" + e.listenWS(t, nil) + "/mqtt"
			conns := []net.Conn{stdDialTLS(t, addr, p.client(nil)), stdWSConn(t, url, nil)}
			var readers []*stdPackets
			for i, c := range conns {
				defer c.Close()
				if _, err := c.Write(stdConnect(codec.V5, fmt.Sprint("stop-", i), 30)); err != nil {
					t.Fatal(err)
				}
				pk := stdNetPackets(c, codec.V5, 10*time.Second)
				stdExpect(t, pk, codec.Connack)
				readers = append(readers, pk)
			}
			if shutdown {
				if err := e.b.Shutdown(5 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := e.srv.Stop(ctx); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if took := time.Since(start); took > lingerTime+time.Second {
				t.Fatalf("stop took %v", took)
			}
			for i, pk := range readers {
				got := stdClosed(t, pk)
				if shutdown && (len(got) != 1 || got[0].typ != codec.Disconnect || got[0].reason != codec.ServerShuttingDown) {
					t.Fatalf("client %d read %+v before the close, want DISCONNECT 0x8B", i, got)
				}
				if !shutdown && len(got) != 0 {
					t.Fatalf("client %d read %+v before the close, want nothing", i, got)
				}
			}
			if n := e.srv.Open(); n != 0 {
				t.Fatalf("%d connections open after Stop", n)
			}
			for _, l := range e.srv.loops {
				if l.exec(func() {}) {
					t.Fatal("a loop took work after Stop")
				}
			}
			if _, err := e.srv.ListenTLS("127.0.0.1:0", cfg); !errors.Is(err, errStdStopped) {
				t.Fatalf("ListenTLS after Stop: %v", err)
			}
			if err := stdTryMQTT(addr, p.client(nil), "after-stop"); err == nil {
				t.Fatal("served a connection after Stop")
			}
		})
	}
}

// TestStdGracefulDisconnect: a client over TLS or WebSocket that is still
// sending when the broker disconnects it for a protocol error reads the
// DISCONNECT and then a clean end (TLS close_notify, WebSocket close
// frame), not a reset; a client that then stays silent without closing is
// closed after lingerTime.
func TestStdGracefulDisconnect(t *testing.T) {
	p := newStdPKI(t)
	e := startStdEnv(t, nil, StdOptions{})
	cfg, _ := p.serverTLS(t, "none")
	tlsAddr := e.listenTLS(t, cfg)
	url := "ws://" + e.listenWS(t, nil) + "/mqtt"
	burst := codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("g/q1"), QoS: 1, PacketID: 1, Payload: []byte("x")}, codec.V5)
	burst = codec.AppendConnect(burst, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("again")}) // [MQTT-3.1.0-2]
	for len(burst) < 256<<10 {
		burst = codec.AppendPublish(burst, &codec.PublishPacket{Topic: []byte("g/t"), Payload: make([]byte, 1000)}, codec.V5)
	}
	dial := map[string]func() net.Conn{
		"tls": func() net.Conn { return stdDialTLS(t, tlsAddr, p.client(nil)) },
		"ws":  func() net.Conn { return stdWSConn(t, url, nil) },
	}
	for _, kind := range []string{"tls", "ws"} {
		t.Run(kind, func(t *testing.T) {
			for i := range 5 {
				c := dial[kind]()
				if _, err := c.Write(stdConnect(codec.V5, fmt.Sprintf("graceful-%s-%d", kind, i), 30)); err != nil {
					t.Fatal(err)
				}
				pk := stdNetPackets(c, codec.V5, 10*time.Second)
				stdExpect(t, pk, codec.Connack)
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(burst)
					wrote <- err
				}()
				var got []stdGot
				var err error
				for {
					var g stdGot
					if g, err = pk.next(); err != nil {
						break
					}
					got = append(got, g)
				}
				_ = c.Close()
				<-wrote // it may fail: the server closes while it runs
				if len(got) == 0 || got[len(got)-1].typ != codec.Disconnect || got[len(got)-1].reason != codec.ProtocolError {
					t.Fatalf("round %d: read %+v, want a DISCONNECT 0x82 last", i, got)
				}
				if err != io.EOF {
					t.Fatalf("round %d: after the DISCONNECT: %v, want EOF", i, err)
				}
			}
			stdWaitFor(t, lingerTime+5*time.Second, "the connections gone", func() bool { return e.srv.Open() == 0 })
		})
	}
	t.Run("silent", func(t *testing.T) {
		c := stdDialTLS(t, tlsAddr, p.client(nil))
		defer c.Close()
		again := stdConnect(codec.V5, "silent", 30)
		if _, err := c.Write(append(stdConnect(codec.V5, "silent", 30), again...)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		pk := stdNetPackets(c, codec.V5, 10*time.Second)
		stdExpect(t, pk, codec.Connack)
		if g := stdExpect(t, pk, codec.Disconnect); g.reason != codec.ProtocolError {
			t.Fatalf("DISCONNECT %#x", g.reason)
		}
		if _, err := pk.next(); err != io.EOF {
			t.Fatalf("after the DISCONNECT: %v, want EOF", err)
		}
		if e.srv.Open() != 1 {
			t.Fatal("closed at once: want it to linger")
		}
		stdWaitFor(t, lingerTime+2*time.Second, "the lingering connection closed", func() bool { return e.srv.Open() == 0 })
		if d := time.Since(start); d < lingerTime-100*time.Millisecond {
			t.Fatalf("closed after %v, before lingerTime", d)
		}
	})
	t.Run("silent ws", func(t *testing.T) {
		// A WebSocket client that does not answer the closing handshake.
		ws := stdDialWS(t, url, nil, "mqtt")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		twice := append(stdConnect(codec.V5, "silent-ws", 30), stdConnect(codec.V5, "silent-ws", 30)...)
		if err := ws.Write(ctx, websocket.MessageBinary, twice); err != nil {
			t.Fatal(err)
		}
		stdWaitFor(t, 5*time.Second, "the connection closing", func() bool { return e.b.Stats().ProtocolErrors.Load() > 0 })
		if e.srv.Open() != 1 {
			t.Fatal("closed at once: want it to wait for the closing handshake")
		}
		stdWaitFor(t, lingerTime+2*time.Second, "the unanswered closing handshake ended", func() bool { return e.srv.Open() == 0 })
		if d := time.Since(start); d < lingerTime-100*time.Millisecond {
			t.Fatalf("closed after %v, before lingerTime", d)
		}
	})
}
