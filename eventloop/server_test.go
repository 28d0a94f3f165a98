package eventloop

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/flockmq/flockmq/codec"
)

// TestPacketsSplitAcrossReads: packets that arrive a few bytes at a time, and
// a large one in pieces, are reassembled, not dropped. (gnet's Discard(0)
// empties the whole buffer; the loop must not call it when nothing was
// consumed.)
func TestPacketsSplitAcrossReads(t *testing.T) {
	srv := startServer(t, Options{Loops: 1})
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("split")}
	sp := codec.SubscribePacket{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: []byte("big"), QoS: 1}}}
	big := codec.PublishPacket{Topic: []byte("big"), QoS: 1, PacketID: 2, Payload: make([]byte, 200<<10)}
	for i := range big.Payload {
		big.Payload[i] = byte(i)
	}
	stream := codec.AppendConnect(nil, &cp)
	stream = codec.AppendSubscribe(stream, &sp, codec.V311)
	stream = codec.AppendPublish(stream, &big, codec.V311)
	// Dribble the first packets, then the big one in uneven chunks, each a
	// separate write that the server reads on its own.
	for off := 0; off < len(stream); {
		n := 3
		if off > 40 {
			n = 7919
		}
		n = min(n, len(stream)-off)
		if _, err := conn.Write(stream[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
		time.Sleep(time.Millisecond) // let each piece arrive as its own read
	}
	// Expect CONNACK, SUBACK, the echoed PUBLISH (we subscribed to it) and PUBACK.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []codec.PacketType
	var pk codec.Packet
	var buf []byte
	tmp := make([]byte, 64<<10)
	for len(got) < 4 {
		n, err := codec.Decode(buf, codec.V311, 0, &pk)
		if err == nil {
			got = append(got, pk.Type)
			if pk.Type == codec.Publish && len(pk.Publish.Payload) != len(big.Payload) {
				t.Fatalf("echoed payload of %d bytes, want %d", len(pk.Publish.Payload), len(big.Payload))
			}
			buf = buf[n:]
			continue
		}
		if err != codec.ErrIncomplete {
			t.Fatal(err)
		}
		m, rerr := conn.Read(tmp)
		if rerr != nil {
			t.Fatalf("after %v: %v", got, rerr)
		}
		buf = append(buf, tmp[:m]...)
	}
	seen := map[codec.PacketType]bool{}
	for _, p := range got {
		seen[p] = true
	}
	for _, want := range []codec.PacketType{codec.Connack, codec.Suback, codec.Publish, codec.Puback} {
		if !seen[want] {
			t.Fatalf("got %v, missing %v", got, want)
		}
	}
}

// TestCloseFromInput: a connection the broker closes while reading it (a
// DISCONNECT, a malformed packet) is closed by OnTraffic's return: the
// client reads what was written before it (the CONNACK, for the malformed
// case a v5 DISCONNECT) and then EOF, and the server counts no open
// connection afterwards.
func TestCloseFromInput(t *testing.T) {
	srv := startServer(t, Options{Loops: 1})
	v5 := codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("bye")}
	cases := []struct {
		name string
		tail []byte // sent after the CONNECT
		want []codec.PacketType
	}{
		{"disconnect", codec.AppendDisconnect(nil, &codec.DisconnectPacket{}, codec.V5), []codec.PacketType{codec.Connack}},
		{"malformed", []byte{0x30, 0x02, 0xff, 0xff}, []codec.PacketType{codec.Connack, codec.Disconnect}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream := append(codec.AppendConnect(nil, &v5), tc.tail...)
			if _, err := conn.Write(stream); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var got []codec.PacketType
			var pk codec.Packet
			var buf []byte
			tmp := make([]byte, 4096)
			for {
				m, rerr := conn.Read(tmp)
				buf = append(buf, tmp[:m]...)
				if rerr != nil {
					if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
						t.Fatalf("not closed: read %v", got)
					}
					break // EOF or reset: closed
				}
			}
			for len(buf) > 0 {
				n, err := codec.Decode(buf, codec.V5, 0, &pk)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, pk.Type)
				buf = buf[n:]
			}
			if len(got) != len(tc.want) {
				t.Fatalf("read %v before the close, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("read %v before the close, want %v", got, tc.want)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for srv.open.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections still open", srv.open.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestConnSize keeps a connection's own allocation (the broker Client and
// its gnet handle) in the 96-byte size class: every idle connection pays it.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 96 {
		t.Fatalf("conn is %d bytes, over the 96-byte size class", n)
	}
}
