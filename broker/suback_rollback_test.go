package broker

import (
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/routing"
)

// TestFailedSubscribeIsUndone: a persistent session's subscription that the
// store fails to keep is answered 0x80 and is not in force afterwards
// [MQTT-3.9.3-1]: a new filter is removed from the trie and from the
// session; one that replaced an existing subscription [MQTT-3.8.4-3] gives
// way to the old one again, with its options. A failure that comes after an
// UNSUBSCRIBE or a later SUBSCRIBE of the same filter undoes nothing.
func TestFailedSubscribeIsUndone(t *testing.T) {
	hs := &heldSubStore{MemoryStore: NewMemoryStore()}
	ip := newInproc(t, 1, WithStore(hs))
	b, l := ip.b, ip.loops[0]
	rt := &recordingTransport{}
	c := l.Open(rt)
	cp := codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("undo")}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(codec.PropSessionExpiry)
	input := func(in []byte) {
		t.Helper()
		if n := l.Input(c, in); n != len(in) {
			t.Fatalf("input: %d of %d bytes consumed", n, len(in))
		}
		l.Flush()
		ip.run()
	}
	input(codec.AppendConnect(nil, &cp))
	s := c.s
	var id uint16
	// subscribe sends one SUBSCRIBE and returns the store write it waits on.
	subscribe := func(filter string, qos byte) func(error) {
		t.Helper()
		id++
		sp := codec.SubscribePacket{PacketID: id, Subscriptions: []codec.Subscription{{Filter: []byte(filter), QoS: qos}}}
		input(codec.AppendSubscribe(nil, &sp, codec.V5))
		done := hs.held[len(hs.held)-1]
		return func(err error) { done(err); l.Flush(); ip.run() }
	}
	// reason is the SUBACK answer to packet pid.
	reason := func(pid uint16) codec.ReasonCode {
		t.Helper()
		got := subacks(t, rt.buf)[pid]
		if len(got) != 1 {
			t.Fatalf("SUBACK %d: %v", pid, got)
		}
		return got[0]
	}
	// inForce returns the trie's and the session's subscription of s to
	// filter (QoS 0xFF when there is none), failing if they disagree.
	inForce := func(filter, topic string) byte {
		t.Helper()
		var res routing.Result
		b.trie.Match([]byte(topic), "", &res)
		trieQoS := byte(0xFF)
		for _, sub := range res.Subs {
			if sub.ID == s.id {
				trieQoS = sub.QoS
			}
		}
		sessQoS := byte(0xFF)
		if i := s.subs.find(filter); i >= 0 {
			sessQoS = s.subs.list[i].qos
		}
		if trieQoS != sessQoS {
			t.Fatalf("%s: trie has QoS %#x, the session %#x", filter, trieQoS, sessQoS)
		}
		return trieQoS
	}
	disk := errors.New("disk full")

	// A new filter the store fails to keep: gone.
	subscribe("new/x", 1)(disk)
	if rc := reason(id); rc != codec.UnspecifiedError {
		t.Fatalf("SUBACK %v, want 0x80", rc)
	}
	if q := inForce("new/x", "new/x"); q != 0xFF {
		t.Fatalf("failed subscription in force at QoS %d", q)
	}

	// A replacement the store fails to keep: the old subscription is back.
	subscribe("old/x", 1)(nil)
	subscribe("old/x", 2)(disk)
	if rc := reason(id); rc != codec.UnspecifiedError {
		t.Fatalf("SUBACK %v, want 0x80", rc)
	}
	if q := inForce("old/x", "old/x"); q != 1 {
		t.Fatalf("after a failed replacement QoS %#x is in force, want the old 1", q)
	}

	// Unsubscribed before the failure arrives: it stays unsubscribed.
	fail := subscribe("gone/x", 2)
	un := codec.UnsubscribePacket{PacketID: 100, Filters: [][]byte{[]byte("gone/x")}}
	input(codec.AppendUnsubscribe(nil, &un, codec.V5))
	fail(disk)
	if q := inForce("gone/x", "gone/x"); q != 0xFF {
		t.Fatalf("unsubscribed filter back at QoS %d", q)
	}

	// A later SUBSCRIBE of the filter, with the same options, that the
	// store keeps: the earlier one's failure leaves it in force.
	first := subscribe("twice/x", 1)
	second := subscribe("twice/x", 1)
	first(disk)
	second(nil)
	if q := inForce("twice/x", "twice/x"); q != 1 {
		t.Fatalf("the later subscription undone: QoS %#x in force", q)
	}
	if rc := reason(id); rc != codec.GrantedQoS1 {
		t.Fatalf("second SUBACK %v, want QoS 1", rc)
	}
	if n := b.stats.StoreFailures.Load(); n != 4 {
		t.Fatalf("StoreFailures %d, want 4", n)
	}
}

// TestFailedSubscribeUndoneAfterMove: the store's failure reaches the loop
// of the SUBSCRIBE's connection after the session moved to another loop
// (its client reconnected there): the subscription is undone by the
// session's new owner.
func TestFailedSubscribeUndoneAfterMove(t *testing.T) {
	hs := &heldSubStore{MemoryStore: NewMemoryStore()}
	ip := newInproc(t, 2, WithStore(hs))
	b := ip.b
	connect := func(loop int, clean bool) *Client {
		l := ip.loops[loop]
		c := l.Open(&recordingTransport{})
		cp := codec.ConnectPacket{Version: codec.V5, CleanStart: clean, ClientID: []byte("mover")}
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(codec.PropSessionExpiry)
		l.Input(c, codec.AppendConnect(nil, &cp))
		l.Flush()
		ip.run()
		return c
	}
	c0 := connect(0, true)
	s := c0.s
	sp := codec.SubscribePacket{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: []byte("m/x"), QoS: 1}}}
	ip.loops[0].Input(c0, codec.AppendSubscribe(nil, &sp, codec.V5))
	ip.run()
	c1 := connect(1, false)
	if c1.s != s || s.loop.Load() != ip.loops[1] {
		t.Fatal("the session did not move to loop 1")
	}
	hs.held[0](errors.New("disk full"))
	ip.run()
	if s.subs.find("m/x") >= 0 || b.trie.Subscriptions() != 0 {
		t.Fatalf("failed subscription still in force: session %v, trie %d", s.subs.filters(), b.trie.Subscriptions())
	}
}
