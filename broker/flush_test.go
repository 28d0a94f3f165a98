package broker

import (
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// reentrantTransport fails its Write and, like gnet on a broken socket,
// closes the connection synchronously: the loop is told at once and flushes.
type reentrantTransport struct {
	fakeTransport
	l *Loop
	c *Client
}

func (r *reentrantTransport) Write([]byte) error {
	r.l.Closed(r.c)
	r.l.Flush()
	return errors.New("broken pipe")
}

// TestFlushReentrant: a write that fails and closes its connection from
// inside Flush neither panics nor loses the other connections' output.
func TestFlushReentrant(t *testing.T) {
	ip := newInproc(t, 1)
	l := ip.loops[0]
	_, good := ip.connect(t, 0, "good", "t")
	rt := &reentrantTransport{l: l}
	rt.c = l.Open(rt)
	cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("bad")}
	sp := codec.SubscribePacket{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: []byte("t")}}}
	in := codec.AppendSubscribe(codec.AppendConnect(nil, &cp), &sp, codec.V311)
	l.Input(rt.c, in) // CONNACK and SUBACK wait in its buffer: its Write will fail
	ip.run()
	before := good.packets
	pub, _ := ip.connect(t, 0, "pub2")
	l.Input(pub, publishBytes("t", 0, 8))
	l.Flush() // must not panic
	ip.run()
	if good.packets == before {
		t.Fatal("the healthy subscriber got nothing")
	}
	if !rt.c.closed {
		t.Fatal("the failing connection is not closed")
	}
}
