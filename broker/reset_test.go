package broker_test

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// Connections closed while their own input is still being handled: a
// DISCONNECT or a protocol error after packets that queued an answer, a
// takeover, a write that fails because the peer reset the connection. Each
// case runs many times (the reset races the broker's read), and the node
// must keep serving the bystanders and never recover a panic.

// resetClose closes c with a TCP reset (SO_LINGER 0) rather than a FIN.
func resetClose(t testing.TB, c net.Conn) {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("%T is not a TCP connection", c)
	}
	if err := tc.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = tc.Close()
}

// connectRaw dials addr and completes a clean CONNECT of version v.
func connectRaw(t testing.TB, addr string, v codec.Version, id string) *rawClient {
	t.Helper()
	r := dialRaw(t, addr, v)
	r.connect(id)
	return r
}

// checkServing has the bystanders exchange messages and checks that no
// panic was recovered.
func checkServing(t *testing.T, tb *testBroker, by *malBystanders, after string) {
	t.Helper()
	by.check(t, after)
	if n := tb.B.Stats().Panics.Load(); n != 0 {
		t.Fatalf("after %s: %d panics recovered", after, n)
	}
}

func TestCloseWhileReading(t *testing.T) {
	const rounds = 50
	tb := startBroker(t, nil)
	by := newMalBystanders(t, tb.Addr)

	for _, v := range []codec.Version{codec.V311, codec.V5} {
		for _, qos := range []byte{1, 2} {
			name := fmt.Sprintf("publish qos %d, disconnect, reset v%d", qos, v)
			t.Run(name, func(t *testing.T) {
				// The sequence: the PUBACK/PUBREC is still unwritten
				// when DISCONNECT closes the connection, and its write fails.
				for i := range rounds {
					r := connectRaw(t, tb.Addr, v, fmt.Sprintf("rst-%d-%d-%d", v, qos, i))
					p := codec.PublishPacket{Topic: []byte("rst/x"), Payload: []byte("p"), QoS: qos, PacketID: 7}
					b := codec.AppendPublish(nil, &p, v)
					b = codec.AppendDisconnect(b, &codec.DisconnectPacket{}, v)
					r.send(b)
					resetClose(t, r.Conn)
				}
				checkServing(t, tb, by, name)
			})
		}
		name := fmt.Sprintf("publish, protocol error, reset v%d", v)
		t.Run(name, func(t *testing.T) {
			for i := range rounds {
				r := connectRaw(t, tb.Addr, v, fmt.Sprintf("perr-%d-%d", v, i))
				p := codec.PublishPacket{Topic: []byte("rst/x"), Payload: []byte("p"), QoS: 1, PacketID: 9}
				b := codec.AppendPublish(nil, &p, v)
				// A second CONNECT is a protocol error [MQTT-3.1.0-2]: v5
				// gets DISCONNECT 0x82 written after the PUBACK.
				b = codec.AppendConnect(b, &codec.ConnectPacket{Version: v, CleanStart: true, ClientID: []byte("again")})
				r.send(b)
				resetClose(t, r.Conn)
			}
			checkServing(t, tb, by, name)
		})
		name = fmt.Sprintf("reset while a subscriber's delivery is written v%d", v)
		t.Run(name, func(t *testing.T) {
			// The subscriber resets while a publish is being delivered to it:
			// the failing write happens in the publisher's event, or in a
			// drain, and closes the subscriber from within.
			pub := connectRaw(t, tb.Addr, codec.V5, fmt.Sprintf("wpub-%d", v))
			for i := range rounds {
				sub := connectRaw(t, tb.Addr, v, fmt.Sprintf("wsub-%d-%d", v, i))
				sub.send(codec.AppendSubscribe(nil, &codec.SubscribePacket{PacketID: 1,
					Subscriptions: []codec.Subscription{{Filter: []byte("w/#"), QoS: 1}}}, v))
				if pk := sub.read(5 * time.Second); pk == nil || pk.Type != codec.Suback {
					t.Fatalf("no SUBACK: %+v", pk)
				}
				var burst []byte
				for k := range 20 {
					p := codec.PublishPacket{Topic: []byte("w/t"), Payload: make([]byte, 512), QoS: byte(k % 3), PacketID: uint16(k + 1)}
					burst = codec.AppendPublish(burst, &p, codec.V5)
				}
				resetClose(t, sub.Conn)
				pub.send(burst)
			}
			checkServing(t, tb, by, name)
		})
		name = fmt.Sprintf("takeover of a connection that reset v%d", v)
		t.Run(name, func(t *testing.T) {
			// The old connection resets as the new one takes its client id
			// over: the old one is closed from within the new one's CONNECT,
			// and its DISCONNECT 0x8E (v5) fails to write.
			for i := range rounds {
				id := fmt.Sprintf("take-%d-%d", v, i)
				old := connectRaw(t, tb.Addr, v, id)
				nw := dialRaw(t, tb.Addr, v)
				resetClose(t, old.Conn)
				nw.connect(id)
				nw.Close()
			}
			checkServing(t, tb, by, name)
		})
		name = fmt.Sprintf("reset inside a partial packet v%d", v)
		t.Run(name, func(t *testing.T) {
			for i := range rounds {
				r := connectRaw(t, tb.Addr, v, fmt.Sprintf("part-%d-%d", v, i))
				p := codec.PublishPacket{Topic: []byte("rst/x"), Payload: make([]byte, 4000), QoS: 1, PacketID: 3}
				b := codec.AppendPublish(nil, &p, v)
				r.send(b[:len(b)/2])
				resetClose(t, r.Conn)
			}
			checkServing(t, tb, by, name)
		})
	}
	waitFor(t, 5*time.Second, "only the bystanders connected", func() bool {
		return tb.B.Stats().ConnectionsOpen.Load() == 2
	})
}

// panicAuth panics for one client id, as a buggy embedder's hook would.
type panicAuth struct{}

func (panicAuth) Authenticate(info *broker.ConnectInfo) codec.ReasonCode {
	if info.ClientID == "boom" {
		panic("authenticator bug")
	}
	return codec.Success
}

// TestPanicClosesOnlyItsConnection: a panic on a loop closes the connection
// whose event raised it, is logged with its stack and counted, and every
// other connection of the loop goes on being served.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	var logged nodetest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	tb := startBroker(t, nil, broker.WithAuthenticator(panicAuth{}), broker.WithLogger(log))
	by := newMalBystanders(t, tb.Addr)
	for i := range 3 {
		r := dialRaw(t, tb.Addr, codec.V311)
		r.send(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("boom")}))
		if closed, last := r.closed(5 * time.Second); !closed || last != nil {
			t.Fatalf("round %d: the panicking connection: closed %v, last packet %+v", i, closed, last)
		}
		by.check(t, fmt.Sprintf("panic %d", i))
	}
	if n := tb.B.Stats().Panics.Load(); n != 3 {
		t.Fatalf("Panics = %d, want 3", n)
	}
	out := logged.String()
	for _, want := range []string{"panic on an event loop recovered", "authenticator bug", "reset_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	waitFor(t, 5*time.Second, "only the bystanders connected", func() bool {
		return tb.B.Stats().ConnectionsOpen.Load() == 2
	})
}

// TestStuckSubscriberReleasesPublishers is the hostile-client probe of issue
// 10: a v5 client subscribes to # at QoS 1 and never reads its socket. The
// publishers it holds back go on at full speed once it is disconnected with
// 0x97 after SlowConsumerTimeout without progress; before, it held every
// matching publisher to one PUBACK a second for as long as it stayed.
func TestStuckSubscriberReleasesPublishers(t *testing.T) {
	tb := startBroker(t, func(c *broker.Config) {
		c.SlowConsumerTimeout = 300 * time.Millisecond
		c.MaxQueuedMessages = 200
	})
	stuck := dialRaw(t, tb.Addr, codec.V5)
	stuck.connect("stuck")
	stuck.send(codec.AppendSubscribe(nil, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("#"), QoS: 1}}}, codec.V5))
	if pk := stuck.read(5 * time.Second); pk == nil || pk.Type != codec.Suback {
		t.Fatalf("SUBACK: %+v", pk)
	}
	// From here on the stuck client reads nothing.
	const n = 2000
	pub, _ := dialV5(t, tb.Addr, "pub", nil)
	start := time.Now()
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: fmt.Sprintf("any/%d", i%7), QoS: 1, Payload: []byte("m")})
	}
	elapsed := time.Since(start)
	st := tb.B.Stats()
	if st.SlowConsumerKicks.Load() != 1 || st.PublisherPauses.Load() == 0 {
		t.Fatalf("kicks %d, pauses %d; want the stuck subscriber disconnected once after holding the publisher",
			st.SlowConsumerKicks.Load(), st.PublisherPauses.Load())
	}
	// 300 ms without progress, noticed at the next one-second Tick; held
	// at one PUBACK a second, as before, they would take over half an hour.
	if elapsed > time.Minute {
		t.Fatalf("%d publishes took %v", n, elapsed)
	}
	closed, last := stuck.closed(10 * time.Second)
	if !closed || last == nil || last.Type != codec.Disconnect || last.Disconnect.Reason != codec.QuotaExceeded {
		t.Fatalf("stuck subscriber: closed %v, last packet %+v; want DISCONNECT 0x97", closed, last)
	}
}
