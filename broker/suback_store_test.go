package broker

import (
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// heldSubStore is a MemoryStore whose subscription writes complete only when
// the test releases them.
type heldSubStore struct {
	*MemoryStore
	held []func(error)
}

func (h *heldSubStore) Subscribe(_ string, _ uint64, _ PersistedSub, done func(error)) {
	h.held = append(h.held, done)
}

// TestPersistentSubackWaitsForStore: a persistent session's SUBACK is sent
// once every filter is stored, with each outcome at its filter's position,
// even though the loop decoded other packets (into the same packet buffer)
// meanwhile; a filter the store failed to keep gets 0x80.
func TestPersistentSubackWaitsForStore(t *testing.T) {
	hs := &heldSubStore{MemoryStore: NewMemoryStore()}
	ip := newInproc(t, 1, WithStore(hs))
	b, l := ip.b, ip.loops[0]
	rt := &recordingTransport{}
	c := l.Open(rt)
	cp := codec.ConnectPacket{Version: codec.V5, ClientID: []byte("keeper")}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(codec.PropSessionExpiry)
	sp := codec.SubscribePacket{PacketID: 7, Subscriptions: []codec.Subscription{
		{Filter: []byte("a/kept"), QoS: 1},
		{Filter: []byte("a/lost"), QoS: 2},
		{Filter: []byte("bad/#/x"), QoS: 0}, // invalid: refused at once [MQTT-4.7.1-1]
	}}
	in := codec.AppendConnect(nil, &cp)
	in = codec.AppendSubscribe(in, &sp, codec.V5)
	l.Input(c, in)
	l.Flush()
	ip.run()
	if len(hs.held) != 2 {
		t.Fatalf("%d subscription writes in flight, want 2", len(hs.held))
	}
	// Another SUBSCRIBE is decoded into the loop's packet while the first
	// waits (its own write is held too), and a PINGREQ is answered.
	other := codec.SubscribePacket{PacketID: 8, Subscriptions: []codec.Subscription{{Filter: []byte("zzzzzz"), QoS: 0}}}
	in = codec.AppendSubscribe(nil, &other, codec.V5)
	in = append(in, byte(codec.Pingreq)<<4, 0)
	l.Input(c, in)
	l.Flush()
	if got := subacks(t, rt.buf); len(got) != 0 {
		t.Fatalf("SUBACKs %v before the store answered", got)
	}
	hs.held[0](nil)
	hs.held[1](errors.New("disk full"))
	l.Flush()
	ip.run()
	got := subacks(t, rt.buf)
	want := []codec.ReasonCode{codec.GrantedQoS1, codec.UnspecifiedError, codec.TopicFilterInvalid}
	if len(got) != 1 || got[7] == nil || len(got[7]) != len(want) {
		t.Fatalf("SUBACKs %v, want packet 7 with %v", got, want)
	}
	for i := range want {
		if got[7][i] != want[i] {
			t.Fatalf("SUBACK 7 reasons %v, want %v", got[7], want)
		}
	}
	if b.stats.StoreFailures.Load() != 1 {
		t.Fatalf("StoreFailures %d, want 1", b.stats.StoreFailures.Load())
	}
}

// subacks decodes the v5 SUBACKs in out by packet identifier.
func subacks(t *testing.T, out []byte) map[uint16][]codec.ReasonCode {
	t.Helper()
	got := map[uint16][]codec.ReasonCode{}
	var pk codec.Packet
	for len(out) > 0 {
		n, err := codec.Decode(out, codec.V5, 0, &pk)
		if err != nil {
			t.Fatalf("decode broker output: %v", err)
		}
		if pk.Type == codec.Suback {
			got[pk.Suback.PacketID] = append([]codec.ReasonCode(nil), pk.Suback.Reasons...)
		}
		out = out[n:]
	}
	return got
}
