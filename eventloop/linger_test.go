package eventloop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// connectV5 dials addr, sends a v5 CONNECT and reads the CONNACK.
func connectV5(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cp := codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
	if _, err := c.Write(codec.AppendConnect(nil, &cp)); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, c); p != codec.Connack {
		t.Fatalf("%s: got %v, want CONNACK", id, p)
	}
	return c
}

// readToEnd reads c until an error (10 s at most) and returns the v5
// packets read and that error.
func readToEnd(t *testing.T, c net.Conn) ([]codec.Packet, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	tmp := make([]byte, 64<<10)
	var rerr error
	for rerr == nil {
		var n int
		n, rerr = c.Read(tmp)
		buf = append(buf, tmp[:n]...)
	}
	var ne net.Error
	if errors.As(rerr, &ne) && ne.Timeout() {
		t.Fatal("not closed within 10 s")
	}
	var pks []codec.Packet
	for len(buf) > 0 {
		var pk codec.Packet
		n, err := codec.Decode(buf, codec.V5, 0, &pk)
		if err != nil {
			t.Fatalf("after %d packets: %v", len(pks), err)
		}
		pks = append(pks, pk)
		buf = buf[n:]
	}
	return pks, rerr
}

// waitOpen polls until the server has no connection open (lingering ones
// included) or timeout passes.
func waitOpen(t *testing.T, srv *Server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for srv.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after %v", srv.open.Load(), timeout)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// TestGracefulDisconnect: a v5 client the server disconnects with a reason
// code while it is still sending (a burst past Receive Maximum, packets
// after a protocol error) reads the DISCONNECT and then EOF, not a TCP
// reset. (Closing a socket with unread bytes makes the kernel send a reset,
// which loses what the client has not read yet and turns its EOF into
// ECONNRESET.)
func TestGracefulDisconnect(t *testing.T) {
	const rounds = 10
	srv := startServerCfg(t, Options{Loops: 1}, func(c *broker.Config) { c.ReceiveMaximum = 4 })
	// tail is what a busy client has sent after the packet the server
	// disconnects for: 256 KB of QoS 0 publishes, more than one read.
	var tail []byte
	for len(tail) < 256<<10 {
		tail = codec.AppendPublish(tail, &codec.PublishPacket{Topic: []byte("g/t"), Payload: make([]byte, 1000)}, codec.V5)
	}
	cases := []struct {
		name  string
		burst []byte
		want  codec.ReasonCode
	}{
		{"receive maximum exceeded", func() []byte {
			var b []byte
			for i := range 20 {
				b = codec.AppendPublish(b, &codec.PublishPacket{Topic: []byte("g/q2"), QoS: 2, PacketID: uint16(i + 1), Payload: []byte("x")}, codec.V5)
			}
			return append(b, tail...)
		}(), codec.ReceiveMaximumExceeded},
		{"protocol error", func() []byte {
			b := codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("g/q1"), QoS: 1, PacketID: 1, Payload: []byte("x")}, codec.V5)
			b = codec.AppendConnect(b, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("again")}) // [MQTT-3.1.0-2]
			return append(b, tail...)
		}(), codec.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range rounds {
				c := connectV5(t, srv.Addr().String(), fmt.Sprintf("graceful-%d", i))
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(tc.burst)
					wrote <- err
				}()
				pks, err := readToEnd(t, c)
				c.Close()
				<-wrote // the write may fail: the server closes while it runs
				var got *codec.Packet
				for i := range pks {
					if pks[i].Type == codec.Disconnect {
						got = &pks[i]
					}
				}
				if got == nil {
					t.Fatalf("round %d: no DISCONNECT among %d packets; then %v", i, len(pks), err)
				}
				if got.Disconnect.Reason != tc.want {
					t.Fatalf("round %d: DISCONNECT %#x, want %#x", i, got.Disconnect.Reason, tc.want)
				}
				if err != io.EOF {
					t.Fatalf("round %d: after the DISCONNECT: %v, want EOF (ECONNRESET: the server reset the connection)", i, err)
				}
			}
			waitOpen(t, srv, 10*time.Second)
		})
	}
}

// TestClientDisconnectClosesAtOnce: a connection whose client sent
// DISCONNECT is closed at once, without lingering, even if the client
// neither reads nor closes its side.
func TestClientDisconnectClosesAtOnce(t *testing.T) {
	srv := startServer(t, Options{Loops: 1})
	c := connectV5(t, srv.Addr().String(), "leaving")
	defer c.Close()
	b := codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("l/q1"), QoS: 1, PacketID: 1, Payload: []byte("x")}, codec.V5)
	b = codec.AppendDisconnect(b, &codec.DisconnectPacket{}, codec.V5)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	// Under lingerTime: a lingering connection would still be open.
	waitOpen(t, srv, time.Second)
}

// TestLingerEnds: a lingering connection whose client never closes is
// closed by the server all the same, in a bounded time, whether the client
// stays silent (the loop's tick closes it), keeps sending at its own pace,
// or floods (closed after lingerMaxBytes); the lingering count goes back to
// zero.
func TestLingerEnds(t *testing.T) {
	srv := startServer(t, Options{Loops: 1})
	t.Run("silent", func(t *testing.T) {
		c := connectV5(t, srv.Addr().String(), "silent")
		defer c.Close()
		start := time.Now()
		if _, err := c.Write(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("x")})); err != nil {
			t.Fatal(err)
		}
		if pks, err := readToEnd(t, c); len(pks) != 1 || pks[0].Disconnect.Reason != codec.ProtocolError || err != io.EOF {
			t.Fatalf("read %+v, then %v; want DISCONNECT 0x82 and EOF", pks, err)
		}
		if n := srv.Lingering(); n != 1 {
			t.Fatalf("Lingering() = %d, want 1", n)
		}
		waitOpen(t, srv, lingerTime+2*time.Second)
		if d := time.Since(start); d < lingerTime {
			t.Fatalf("closed after %v, before lingerTime", d)
		}
		if n := srv.Lingering(); n != 0 {
			t.Fatalf("Lingering() = %d after the close", n)
		}
	})
	for _, rate := range []string{"slow", "flood"} {
		t.Run(rate, func(t *testing.T) {
			c := connectV5(t, srv.Addr().String(), "stubborn-"+rate)
			defer c.Close()
			// A second CONNECT: DISCONNECT 0x82, and the connection lingers.
			if _, err := c.Write(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("x")})); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			junk := make([]byte, 64<<10)
			if rate == "slow" {
				junk = junk[:100]
			}
			var err error
			for err == nil && time.Since(start) < 10*time.Second {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write(junk)
				if rate == "slow" {
					time.Sleep(10 * time.Millisecond) // a client sending at its own pace
				}
			}
			t.Logf("%s: writes ended after %v: %v", rate, time.Since(start), err)
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("writes ended with %v, want the connection closed by the server", err)
			}
			// Closed at the time limit, or sooner for a flood (lingerMaxBytes).
			if d := time.Since(start); d > lingerTime+2*time.Second {
				t.Fatalf("closed after %v, want within %v", d, lingerTime+2*time.Second)
			}
			waitOpen(t, srv, 5*time.Second)
			if n := srv.Lingering(); n != 0 {
				t.Fatalf("Lingering() = %d after the close", n)
			}
		})
	}
}
