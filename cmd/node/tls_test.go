//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
)

// loggedAddr waits for a log line msg="<msg>" listen=ADDR and returns ADDR.
func loggedAddr(t *testing.T, p *node, msg string) string {
	t.Helper()
	key := `msg="` + msg + `" listen=`
	var addr string
	waitFor(t, msg, 10*time.Second, func() bool {
		log := p.Log.String()
		i := strings.Index(log, key)
		if i < 0 {
			return false
		}
		rest := log[i+len(key):]
		addr = rest[:strings.IndexAny(rest, " \n")]
		return true
	})
	return addr
}

// TestSecurityTLSAndWebSocket: a node with TLS (mTLS requested, the
// certificate's CN as the user name), WebSocket and secure WebSocket
// listeners and an ACL; mosquitto_pub/sub over TLS with certificates, paho
// over ws and wss, refusals of an expired and a foreign certificate, and a
// certificate reloaded on SIGHUP.
func TestSecurityTLSAndWebSocket(t *testing.T) {
	bin := nodetest.Build(t)
	ca := nodetest.NewCA(t, "test")
	other := nodetest.NewCA(t, "other")
	now := time.Now()
	srvCert, srvKey := ca.Issue(t, "server", true, now.Add(-time.Hour), now.Add(time.Hour))
	devCert, devKey := ca.Issue(t, "dev-1", false, now.Add(-time.Hour), now.Add(time.Hour))
	oldCert, oldKey := ca.Issue(t, "dev-1", false, now.Add(-2*time.Hour), now.Add(-time.Hour))
	alienCert, alienKey := other.Issue(t, "dev-1", false, now.Add(-time.Hour), now.Add(time.Hour))
	dir := t.TempDir()
	liveCert, liveKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	copyFile(t, srvCert, liveCert)
	copyFile(t, srvKey, liveKey)
	acl := filepath.Join(dir, "acl")
	writeFile(t, acl, "topic readwrite open/#\nuser dev-1\ntopic readwrite dev/1/#\ntopic read open/#\n")

	p := nodetest.Start(t, bin, "-store", "memory", "-sys-interval", "0", "-tls-listen", "127.0.0.1:0",
		"-ws-listen", "127.0.0.1:0", "-wss-listen", "127.0.0.1:0", "-tls-cert", liveCert, "-tls-key", liveKey,
		"-tls-ca", ca.File, "-tls-client-auth", "request", "-tls-use-identity", "cn", "-acl-file", acl)
	tlsAddr := loggedAddr(t, p, "flockmq serving MQTT over TLS")
	wsAddr := loggedAddr(t, p, "flockmq serving MQTT over WebSocket")
	wssAddr := loggedAddr(t, p, "flockmq serving MQTT over secure WebSocket")
	th, tp := hostPort(tlsAddr)
	tlsArgs := func(cert, key string) []string {
		a := []string{"-h", th, "-p", tp, "--cafile", ca.File}
		if cert != "" {
			a = append(a, "--cert", cert, "--key", key)
		}
		return a
	}

	// mosquitto_sub over TLS with dev-1's certificate: its CN is its user
	// name, so the ACL gives it dev/1/#.
	sub := exec.Command("mosquitto_sub", append(tlsArgs(devCert, devKey), "-i", "dev-1-sub", "-t", "dev/1/#", "-t", "open/#", "-v")...)
	var subOut syncBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
	waitFor(t, "a message over TLS", 10*time.Second, func() bool {
		mosq(t, "mosquitto_pub", append(tlsArgs(devCert, devKey), "-t", "dev/1/temp", "-m", "21.5")...)
		return strings.Contains(subOut.String(), "dev/1/temp 21.5")
	})
	// An expired certificate and one from another CA fail the handshake.
	for name, c := range map[string][2]string{"expired": {oldCert, oldKey}, "foreign": {alienCert, alienKey}} {
		if code, out := mosq(t, "mosquitto_pub", append(tlsArgs(c[0], c[1]), "-t", "dev/1/x", "-m", name)...); code == 0 {
			t.Errorf("%s certificate accepted: %s", name, out)
		}
	}
	// Without a certificate the client is anonymous: open/# only.
	if _, out := mosq(t, "mosquitto_pub", append(tlsArgs("", ""), "-t", "dev/1/x", "-m", "anon-denied", "-q", "1", "-V", "mqttv5")...); !strings.Contains(out, "Not authorized") {
		t.Errorf("anonymous TLS publish to dev/1/x not refused: %q", out)
	}

	// WebSocket (paho over a websocket net.Conn) to and from TLS.
	wsURL := "ws://" + wsAddr + "/mqtt"
	ws := dialWS(t, wsURL, nil, "ws-anon")
	mosq(t, "mosquitto_pub", append(tlsArgs("", ""), "-t", "open/news", "-m", "over-tls")...)
	select {
	case m := <-ws.msgs:
		if string(m.Payload) != "over-tls" {
			t.Fatalf("ws got %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing over WebSocket")
	}
	ws.pubWait(t, "open/from-ws", "hello-from-ws")
	waitFor(t, "the ws publish at the TLS subscriber", 10*time.Second, func() bool { return strings.Contains(subOut.String(), "open/from-ws hello-from-ws") })
	// Secure WebSocket with the test CA.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(caPEM)
	wss := dialWS(t, "wss://"+wssAddr+"/mqtt", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, "wss-anon")
	mosq(t, "mosquitto_pub", append(tlsArgs("", ""), "-t", "open/news", "-m", "to-wss")...)
	select {
	case m := <-wss.msgs:
		if string(m.Payload) != "to-wss" {
			t.Fatalf("wss got %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing over secure WebSocket")
	}

	// SIGHUP with a new server certificate: new handshakes see it, the
	// connected subscriber stays.
	newCert, newKey := ca.Issue(t, "server-2", true, now.Add(-time.Hour), now.Add(time.Hour))
	copyFile(t, newCert, liveCert)
	copyFile(t, newKey, liveKey)
	_ = p.Cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the new certificate served", 10*time.Second, func() bool {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName == "server-2"
	})
	mosq(t, "mosquitto_pub", append(tlsArgs(devCert, devKey), "-t", "dev/1/after", "-m", "reloaded")...)
	waitFor(t, "the old TLS subscriber still served", 10*time.Second, func() bool { return strings.Contains(subOut.String(), "dev/1/after reloaded") })
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// wsClient is a paho v5 client over WebSocket, subscribed to open/#.
type wsClient struct {
	*paho.Client
	msgs chan *paho.Publish
}

func dialWS(t *testing.T, url string, tcfg *tls.Config, id string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{"mqtt"}}
	if tcfg != nil {
		opts.HTTPClient = httpsClient(tcfg)
	}
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	conn := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	t.Cleanup(func() { conn.Close() })
	w := &wsClient{msgs: make(chan *paho.Publish, 100)}
	w.Client = paho.NewClient(paho.ClientConfig{Conn: conn, OnClientError: func(error) {},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			w.msgs <- pr.Packet
			return true, nil
		}}})
	// Keep alive 0: paho.golang writes one packet in several Writes, which
	// a WebSocket net.Conn sends as several messages, and its pinger's
	// PINGREQ can land between them (the broker then rightly closes the
	// connection for a malformed packet).
	if _, err := w.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 0}); err != nil {
		t.Fatalf("connect over %s: %v", url, err)
	}
	if _, err := w.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "open/#", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe over %s: %v", url, err)
	}
	return w
}

func (w *wsClient) pubWait(t *testing.T, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish over WebSocket: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}
