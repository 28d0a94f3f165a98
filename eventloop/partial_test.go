package eventloop

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// waitPartial polls until the server holds want bytes of partial packets.
func waitPartial(t *testing.T, srv *Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.PartialBytes() != want {
		if time.Now().After(deadline) {
			t.Fatalf("PartialBytes() = %d, want %d", srv.PartialBytes(), want)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// TestPartialPacketBudget: partial packets are charged their full length
// against MaxPartialPacketBytes; the connection whose packet does not fit
// is closed (v5: DISCONNECT 0x89, then EOF) and counted; a packet that
// completes, or a connection that closes, gives its bytes back.
func TestPartialPacketBudget(t *testing.T) {
	const size = 300_000 // three fit in 1 MiB, not four
	srv := startServer(t, Options{Loops: 1, MaxPartialPacketBytes: 1 << 20})
	addr := srv.Addr().String()
	if got := srv.MaxPartialPacketBytes(); got != 1<<20 {
		t.Fatalf("MaxPartialPacketBytes() = %d", got)
	}
	pub := codec.PublishPacket{Topic: []byte("budget"), QoS: 1, PacketID: 1}
	pub.Payload = make([]byte, size-codec.PublishSize(&pub, codec.V5)-2)
	pkt := codec.AppendPublish(nil, &pub, codec.V5)
	if len(pkt) != size {
		t.Fatalf("packet of %d bytes, want %d", len(pkt), size)
	}
	head, last := pkt[:size-1000], pkt[size-1000:]

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 3 {
		c := connectV5(t, addr, fmt.Sprintf("held-%d", i))
		held = append(held, c)
		if _, err := c.Write(head); err != nil {
			t.Fatal(err)
		}
		waitPartial(t, srv, int64(size*(i+1)))
	}

	// The fourth does not fit.
	c := connectV5(t, addr, "over")
	defer c.Close()
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(head); wrote <- err }()
	pks, err := readToEnd(t, c)
	<-wrote
	if len(pks) != 1 || pks[0].Type != codec.Disconnect || pks[0].Disconnect.Reason != codec.ServerBusy || err != io.EOF {
		t.Fatalf("over the budget: read %d packets (%+v), then %v; want DISCONNECT 0x89 and EOF", len(pks), pks, err)
	}
	if n := srv.PartialKicks(); n != 1 {
		t.Fatalf("PartialKicks() = %d, want 1", n)
	}
	if got := srv.PartialBytes(); got != 3*size {
		t.Fatalf("PartialBytes() = %d after the kick, want %d", got, 3*size)
	}

	// A packet that completes is handled and gives its bytes back.
	if _, err := held[0].Write(last); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, held[0]); p != codec.Puback {
		t.Fatalf("completed packet answered with %v, want PUBACK", p)
	}
	waitPartial(t, srv, 2*size)
	// Closed connections give theirs back.
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitPartial(t, srv, 0)
}

// TestRandomSplits: a stream of packets of every size, from a few bytes to
// several reads long, written in pieces of random length (a header split
// anywhere, a packet's end and the next one's start in one read), comes
// back intact and in order.
func TestRandomSplits(t *testing.T) {
	srv := startServer(t, Options{Loops: 1})
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 100, 126, 127, 128, 5000, 16383, 16384, 65535, 65536, 70000, 150000}
	const n = 100
	stream := codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("splits")})
	stream = codec.AppendSubscribe(stream, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("r/#"), QoS: 0}}}, codec.V311)
	payloads := make([][]byte, n)
	for i := range payloads {
		p := make([]byte, sizes[rng.IntN(len(sizes))])
		for j := range p {
			p[j] = byte(i + j)
		}
		payloads[i] = p
		stream = codec.AppendPublish(stream, &codec.PublishPacket{Topic: []byte("r/x"), Payload: p}, codec.V311)
		if rng.IntN(4) == 0 {
			stream = append(stream, byte(codec.Pingreq)<<4, 0)
		}
	}
	go func() {
		pieces := []int{1, 2, 3, 5, 1000, 4096, 65536, 100000}
		for off := 0; off < len(stream); {
			k := min(pieces[rng.IntN(len(pieces))], len(stream)-off)
			if _, err := conn.Write(stream[off : off+k]); err != nil {
				return
			}
			off += k
			if k < 10 {
				time.Sleep(100 * time.Microsecond) // let a few bytes arrive alone
			}
		}
	}()

	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var buf []byte
	tmp := make([]byte, 64<<10)
	got := 0
	for got < n {
		var pk codec.Packet
		k, err := codec.Decode(buf, codec.V311, 0, &pk)
		if err == codec.ErrIncomplete {
			m, rerr := conn.Read(tmp)
			if rerr != nil {
				t.Fatalf("after %d of %d publishes: %v", got, n, rerr)
			}
			buf = append(buf, tmp[:m]...)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if pk.Type == codec.Publish {
			if !bytes.Equal(pk.Publish.Payload, payloads[got]) {
				t.Fatalf("publish %d: payload of %d bytes differs from the %d sent", got, len(pk.Publish.Payload), len(payloads[got]))
			}
			got++
		}
		buf = buf[k:]
	}
	waitPartial(t, srv, 0)
}
