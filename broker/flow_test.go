package broker

import (
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Flow control, driven in process: loops run only when the test says, and
// the fake transport's OutboundBuffered is set by the test.

// flowConfig: congestion at 100 queued (low mark 50), an inflight window of
// 10, and a slow-consumer timeout far away unless a test moves the clock.
func flowConfig(c *Config) {
	c.MaxQueuedMessages = 400
	c.MaxInflight = 10
	c.SlowConsumerTimeout = time.Hour
}

// publishes is n QoS 1 publishes to topic in one buffer.
func publishes(topic string, n int) []byte {
	var b []byte
	for i := range n {
		p := codec.PublishPacket{Topic: []byte(topic), QoS: 1, PacketID: uint16(i%65535 + 1), Payload: []byte("x")}
		b = codec.AppendPublish(b, &p, codec.V311)
	}
	return b
}

// acks is PUBACKs for packet ids first..first+n-1.
func acks(first, n int) []byte {
	var b []byte
	for i := range n {
		b = codec.AppendAck(b, codec.Puback, &codec.AckPacket{PacketID: uint16(first + i)}, codec.V311)
	}
	return b
}

// TestFlowCountsMailbox: deliveries waiting in another loop's mailbox hold
// the publisher back before that loop has drained anything. Before, only the
// session queue counted, and a publisher on another loop ran on until the
// subscriber was disconnected with everything in the mailbox.
func TestFlowCountsMailbox(t *testing.T) {
	ip := newInprocConfig(t, 2, flowConfig)
	ip.subQoS = 1
	sub, subT := ip.connect(t, 1, "sub", "t")
	pub, pubT := ip.connect(t, 0, "pub")
	l0 := ip.loops[0]
	buf := publishes("t", 1000)
	n := l0.Input(pub, buf)
	l0.Flush()
	mark := ip.b.congestAt()
	if !pub.paused || n >= len(buf) {
		t.Fatalf("publisher not held: consumed %d of %d bytes, paused %v", n, len(buf), pub.paused)
	}
	s := sub.s
	// The publish that found the mark reached is routed, then its
	// publisher held.
	if got := s.mailed.Load(); got != mark+1 {
		t.Fatalf("mailed %d when the publisher was held, want the mark %d and one", got, mark)
	}
	// The subscriber's loop drains: 10 inflight, 91 queued, still above
	// the low mark.
	ip.run()
	if got, want := s.queueLen(), int(mark)+1-10; got != want || s.mailed.Load() != 0 || !pub.paused {
		t.Fatalf("after the drain: queued %d (want %d), mailed %d, publisher paused %v", got, want, s.mailed.Load(), pub.paused)
	}
	// Acknowledgements drain the queue below the low mark: the publisher
	// is woken.
	l1 := ip.loops[1]
	resumed := pubT.resumed
	for first := 1; pubT.resumed == resumed; first += 10 {
		if first > 200 {
			t.Fatalf("publisher never woken; queue %d", s.queueLen())
		}
		l1.Input(sub, acks(first, 10))
		l1.Flush()
		ip.run()
	}
	if pub.paused || s.queueLen() > int(mark/2) {
		t.Fatalf("woken with paused %v and queue %d", pub.paused, s.queueLen())
	}
	if subT.closed || ip.b.stats.SlowConsumerKicks.Load() != 0 {
		t.Fatal("the subscriber was disconnected")
	}
}

// TestFlowNoTimeLimit: a publisher stays held for as long as the subscriber
// is congested; Ticks do not let it through (before, every 500 ms).
func TestFlowNoTimeLimit(t *testing.T) {
	ip := newInprocConfig(t, 1, flowConfig)
	ip.subQoS = 1
	sub, _ := ip.connect(t, 0, "sub", "t")
	pub, pubT := ip.connect(t, 0, "pub")
	l := ip.loops[0]
	l.Input(pub, publishes("t", 500))
	l.Flush()
	if !pub.paused {
		t.Fatal("publisher not held")
	}
	queued := sub.s.queueLen()
	// Pretend a long time passed without a wake-up.
	for range 5 {
		l.Tick()
		ip.run()
	}
	if !pub.paused || pubT.resumed != 0 || sub.s.queueLen() != queued {
		t.Fatalf("after Ticks: paused %v, resumed %d, queue %d (was %d)", pub.paused, pubT.resumed, sub.s.queueLen(), queued)
	}
}

// TestFlowStuckSubscriber: a subscriber that holds publishers back without
// progress for SlowConsumerTimeout is disconnected with 0x97 and counted,
// and its publishers resume; one that made progress within it is kept.
func TestFlowStuckSubscriber(t *testing.T) {
	ip := newInprocConfig(t, 1, flowConfig)
	ip.subQoS = 1
	sub, subT := ip.connect(t, 0, "sub", "t")
	pub, pubT := ip.connect(t, 0, "pub")
	l := ip.loops[0]
	l.Input(pub, publishes("t", 500))
	l.Flush()
	s := sub.s
	if !pub.paused || !s.f.holding {
		t.Fatalf("publisher paused %v, subscriber holding %v", pub.paused, s.f.holding)
	}
	// Held for two hours, but an acknowledgement ten minutes ago: kept.
	now := time.Now().UnixNano()
	s.f.holdSince = now - int64(2*time.Hour)
	s.f.progressAt = now - int64(10*time.Minute)
	l.Tick()
	if subT.closed {
		t.Fatal("a subscriber that made progress within the timeout was disconnected")
	}
	// No progress for two hours: disconnected, and the publisher resumes.
	s.f.progressAt = now - int64(2*time.Hour)
	l.Tick()
	ip.run()
	if !subT.closed || ip.b.stats.SlowConsumerKicks.Load() != 1 {
		t.Fatalf("stuck subscriber: closed %v, kicks %d", subT.closed, ip.b.stats.SlowConsumerKicks.Load())
	}
	if pub.paused || pubT.resumed == 0 {
		t.Fatalf("publisher still held after the subscriber went: paused %v", pub.paused)
	}
}

// TestFlowHighWater: a subscriber whose socket does not drain keeps QoS 1 in
// its queue (holding the publisher) and loses QoS 0, counted.
func TestFlowHighWater(t *testing.T) {
	ip := newInprocConfig(t, 1, flowConfig)
	ip.subQoS = 1
	sub, subT := ip.connect(t, 0, "sub", "t")
	pub, _ := ip.connect(t, 0, "pub")
	subT.buffered = int32(ip.b.cfg.OutboundHighWater + 1)
	l := ip.loops[0]
	var q0 []byte
	for range 20 {
		q0 = append(q0, publishBytes("t", 0, 10)...)
	}
	l.Input(pub, q0)
	if got := ip.b.stats.DroppedQoS0.Load(); got != 20 {
		t.Fatalf("QoS 0 over the high-water mark: %d dropped, want 20", got)
	}
	l.Input(pub, publishes("t", 500))
	l.Flush()
	if !pub.paused || len(sub.s.inflightMsgs()) != 0 || sub.s.queueLen() < int(ip.b.congestAt()) {
		t.Fatalf("paused %v, inflight %d, queued %d", pub.paused, len(sub.s.inflightMsgs()), sub.s.queueLen())
	}
	// The socket drains: Ticks pump the queue into the window.
	subT.buffered = 0
	l.Tick()
	if len(sub.s.inflightMsgs()) != 10 {
		t.Fatalf("after the socket drained: inflight %d, want the window of 10", len(sub.s.inflightMsgs()))
	}
}

// TestFlowCycle: two clients that publish to each other and are each
// congested do not hold each other for good: a client whose own queue is
// congested is read, so that its acknowledgements drain it.
func TestFlowCycle(t *testing.T) {
	ip := newInprocConfig(t, 1, flowConfig)
	ip.subQoS = 1
	a, _ := ip.connect(t, 0, "a", "to/a")
	b, _ := ip.connect(t, 0, "b", "to/b")
	l := ip.loops[0]
	l.Input(a, publishes("to/b", 500))
	l.Flush()
	if !a.paused {
		t.Fatal("a not held by b's queue")
	}
	l.Input(b, publishes("to/a", 500))
	l.Flush()
	ip.run()
	if a.paused {
		t.Fatal("a is still held while its own queue is congested: nobody can drain it")
	}
	if b.paused {
		t.Fatal("b is held while its own queue is congested")
	}
	// Both acknowledge everything they were sent: no kicks, queues drain.
	for range 60 {
		for _, c := range []*Client{a, b} {
			var ids []byte
			for _, m := range c.s.inflightMsgs() {
				ids = codec.AppendAck(ids, codec.Puback, &codec.AckPacket{PacketID: m.id}, codec.V311)
			}
			l.Input(c, ids)
		}
		l.Flush()
		ip.run()
	}
	if a.s.queueLen() != 0 || b.s.queueLen() != 0 || ip.b.stats.SlowConsumerKicks.Load() != 0 {
		t.Fatalf("queues %d and %d, kicks %d", a.s.queueLen(), b.s.queueLen(), ip.b.stats.SlowConsumerKicks.Load())
	}
}

// TestFlowOfflineHoldsNobody: an offline persistent session's queue is
// bounded and drops the newest, counted; it never holds a publisher.
func TestFlowOfflineHoldsNobody(t *testing.T) {
	ip := newInprocConfig(t, 1, flowConfig)
	l := ip.loops[0]
	ft := &fakeTransport{}
	c := l.Open(ft)
	cp := codec.ConnectPacket{Version: codec.V311, ClientID: []byte("persistent")}
	buf := codec.AppendConnect(nil, &cp)
	buf = codec.AppendSubscribe(buf, &codec.SubscribePacket{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: []byte("t"), QoS: 1}}}, codec.V311)
	buf = codec.AppendDisconnect(buf, &codec.DisconnectPacket{}, codec.V311)
	for n := 0; n < len(buf); {
		n += l.Input(c, buf[n:])
		ip.run()
	}
	pub, _ := ip.connect(t, 0, "pub")
	msgs := publishes("t", 500)
	if n := l.Input(pub, msgs); n != len(msgs) || pub.paused {
		t.Fatalf("publisher held by an offline session: consumed %d of %d", n, len(msgs))
	}
	if got := ip.b.stats.DroppedQueueFull.Load(); got != 100 {
		t.Fatalf("dropped %d, want the 100 past max-queued-messages", got)
	}
}
