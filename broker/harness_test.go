package broker_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/eventloop"
)

// testBroker is a broker serving real TCP on a loopback port.
type testBroker struct {
	B    *broker.Broker
	Srv  *eventloop.Server
	Addr string
}

// startBroker starts a broker with the default config as changed by mutate,
// on 127.0.0.1 with a free port and two event loops, stopped at cleanup.
func startBroker(t testing.TB, mutate func(*broker.Config), opts ...broker.Option) *testBroker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(cfg, append([]broker.Option{broker.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := eventloop.NewServer(b, "127.0.0.1:0", eventloop.Options{Loops: 2, Logger: log})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Shutdown(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return &testBroker{B: b, Srv: srv, Addr: srv.Addr().String()}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// v5Client is a paho.golang client with its received messages.
type v5Client struct {
	*paho.Client
	msgs         chan *paho.Publish
	disconnected chan *paho.Disconnect
	conn         net.Conn
}

// dialV5 connects a v5 client; cp may be nil for a clean session with the
// given client id.
func dialV5(t testing.TB, addr, clientID string, cp *paho.Connect) (*v5Client, *paho.Connack) {
	t.Helper()
	c, ca, err := tryDialV5(addr, clientID, cp)
	if err != nil {
		t.Fatalf("v5 connect %q: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.conn.Close() })
	return c, ca
}

func tryDialV5(addr, clientID string, cp *paho.Connect) (*v5Client, *paho.Connack, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	vc := &v5Client{msgs: make(chan *paho.Publish, 10000), disconnected: make(chan *paho.Disconnect, 1), conn: conn}
	vc.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			vc.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case vc.disconnected <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	if cp == nil {
		cp = &paho.Connect{CleanStart: true, KeepAlive: 30}
	}
	cp.ClientID = clientID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := vc.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	return vc, ca, nil
}

// next returns the next received message or fails after timeout.
func (c *v5Client) next(t testing.TB, timeout time.Duration) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.msgs:
		return p
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return nil
	}
}

// none asserts that no message arrives within d.
func (c *v5Client) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case p := <-c.msgs:
		t.Fatalf("unexpected message on %q: %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}

func (c *v5Client) sub(t testing.TB, opts ...paho.SubscribeOptions) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sa
}

func (c *v5Client) pub(t testing.TB, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return r
}

// v3Client is a paho.mqtt.golang (3.1.1) client with its received messages.
type v3Client struct {
	mqtt.Client
	msgs chan mqtt.Message
}

// dialV3 connects a 3.1.1 client; mutate may adjust the options.
func dialV3(t testing.TB, addr, clientID string, mutate func(*mqtt.ClientOptions)) *v3Client {
	t.Helper()
	vc := &v3Client{msgs: make(chan mqtt.Message, 10000)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { vc.msgs <- m })
	if mutate != nil {
		mutate(o)
	}
	vc.Client = mqtt.NewClient(o)
	tok := vc.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("v3 connect %q: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { vc.Disconnect(0) })
	return vc
}

func (c *v3Client) next(t testing.TB, timeout time.Duration) mqtt.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return nil
	}
}

// wait waits for a paho.mqtt.golang token.
func wait(t testing.TB, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

// rawClient speaks MQTT bytes directly, for malformed input and protocol
// violations.
type rawClient struct {
	net.Conn
	t   testing.TB
	v   codec.Version
	buf []byte
	pk  codec.Packet
}

func dialRaw(t testing.TB, addr string, v codec.Version) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{Conn: c, t: t, v: v}
}

// send writes raw bytes.
func (r *rawClient) send(b []byte) {
	r.t.Helper()
	if _, err := r.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// connect sends a clean CONNECT for clientID and expects a successful CONNACK.
func (r *rawClient) connect(clientID string) {
	r.t.Helper()
	cp := codec.ConnectPacket{Version: r.v, CleanStart: true, KeepAlive: 30, ClientID: []byte(clientID)}
	r.send(codec.AppendConnect(nil, &cp))
	pk := r.read(5 * time.Second)
	if pk == nil || pk.Type != codec.Connack || pk.Connack.Reason != codec.Success {
		r.t.Fatalf("raw connect: got %+v", pk)
	}
}

// read returns the next packet, or nil if the connection closed or nothing
// arrived within timeout.
func (r *rawClient) read(timeout time.Duration) *codec.Packet {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	tmp := make([]byte, 4096)
	for {
		n, err := codec.Decode(r.buf, r.v, 0, &r.pk)
		if err == nil {
			r.buf = r.buf[n:]
			return &r.pk
		}
		if err != codec.ErrIncomplete {
			r.t.Fatalf("raw decode: %v", err)
		}
		_ = r.SetReadDeadline(deadline)
		m, err := r.Conn.Read(tmp)
		r.buf = append(r.buf, tmp[:m]...)
		if err != nil {
			if m > 0 {
				continue
			}
			return nil
		}
	}
}

// closed reports whether the broker closed the connection within timeout,
// skipping any packets it sent first (a DISCONNECT, say); it returns the last
// packet seen.
func (r *rawClient) closed(timeout time.Duration) (bool, *codec.Packet) {
	r.t.Helper()
	var last *codec.Packet
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pk := r.read(time.Until(deadline))
		if pk == nil {
			// read returns nil on EOF or timeout; tell them apart.
			_ = r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			var one [1]byte
			_, err := r.Conn.Read(one[:])
			if err == io.EOF || (err != nil && !isTimeout(err)) {
				return true, last
			}
			return false, last
		}
		cp := *pk
		last = &cp
	}
	return false, last
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
