package broker

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// syncExec is a loop's exec that is safe for concurrent use (the pacer's
// timer calls it from its own goroutine): closures wait until run.
type syncExec struct {
	mu sync.Mutex
	q  []func()
}

func (s *syncExec) exec(f func()) bool {
	s.mu.Lock()
	s.q = append(s.q, f)
	s.mu.Unlock()
	return true
}

// run executes the queued closures on the calling goroutine.
func (s *syncExec) run() {
	for {
		s.mu.Lock()
		q := s.q
		s.q = nil
		s.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, f := range q {
			f()
		}
	}
}

// sent is one PUBLISH a recordingTransport received.
type sent struct {
	topic, payload string
	retain         bool
}

// publishes decodes the 3.1.1 PUBLISH packets written to r so far.
func (r *recordingTransport) publishes(t *testing.T) []sent {
	t.Helper()
	var out []sent
	var pk codec.Packet
	for b := r.buf; len(b) > 0; {
		n, err := codec.Decode(b, codec.V311, 0, &pk)
		if err != nil {
			t.Fatalf("decode broker output: %v", err)
		}
		if pk.Type == codec.Publish {
			out = append(out, sent{string(pk.Publish.Topic), string(pk.Publish.Payload), pk.Publish.Retain})
		}
		b = b[n:]
	}
	return out
}

// TestRetainedBacklogPacedAndOrdered: retained messages a socket past the
// high-water mark cannot take wait in the connection's backlog; the loop's
// pacer sends them once the socket drains, with no other traffic to prompt
// it; a live QoS 0 message never overtakes them (it sends the backlog
// first, and is dropped as before while the socket stays full); and once
// sent, nothing of the backlog is left on the connection or the loop.
func TestRetainedBacklogPacedAndOrdered(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	cfg.OutboundHighWater = 4096
	b, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	var ex syncExec
	l := b.NewLoop(ex.exec)
	input := func(c *Client, pk []byte) {
		t.Helper()
		if n := l.Input(c, pk); n != len(pk) {
			t.Fatalf("input: %d of %d bytes consumed", n, len(pk))
		}
		l.Flush()
		ex.run()
	}
	connect := func(id string, tr Transport) *Client {
		c := l.Open(tr)
		cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte(id)}
		input(c, codec.AppendConnect(nil, &cp))
		return c
	}
	publish := func(c *Client, topic, payload string, retain bool) {
		p := codec.PublishPacket{Topic: []byte(topic), Payload: []byte(payload), Retain: retain}
		input(c, codec.AppendPublish(nil, &p, codec.V311))
	}
	subscribe := func(c *Client) {
		sp := codec.SubscribePacket{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: []byte("r/#")}}}
		input(c, codec.AppendSubscribe(nil, &sp, codec.V311))
	}
	// settle runs loop closures (the pacer's rounds) until cond holds.
	settle := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for ex.run(); !cond(); ex.run() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	pub := connect("pub", &fakeTransport{})
	for _, topic := range []string{"r/0", "r/1", "r/2"} {
		publish(pub, topic, "old", true)
	}
	rt := &recordingTransport{}
	sub := connect("sub", rt)

	// The socket is full: the retained messages wait, a live one is dropped.
	rt.buffered = 5000
	subscribe(sub)
	if got := rt.publishes(t); len(got) != 0 {
		t.Fatalf("%d messages written past the high-water mark", len(got))
	}
	if q := sub.ext.retained; q == nil || len(q.runs) != 1 || len(q.runs[0].msgs) != 3 {
		t.Fatalf("retained backlog %+v, want one run of 3", q)
	}
	publish(pub, "r/1", "new", false)
	if d := b.stats.DroppedQoS0.Load(); d != 1 {
		t.Fatalf("DroppedQoS0 %d, want 1 (the live message)", d)
	}
	// It drains: the pacer alone sends the backlog.
	rt.buffered = 0
	settle("the retained messages", func() bool { return len(rt.publishes(t)) == 3 })
	for _, p := range rt.publishes(t) {
		if p.payload != "old" || !p.retain {
			t.Fatalf("sent %+v, want the retained messages", p)
		}
	}
	settle("the pacer to stop", func() bool { return len(l.pace.clients) == 0 && !l.pace.armed })
	if sub.retainedPending() {
		t.Fatal("backlog kept after it was sent")
	}

	// Again, and a live message once the socket drained: the backlog first.
	rt.buf = nil
	rt.buffered = 5000
	subscribe(sub) // Retain Handling 0: sent again [MQTT-3.3.1-9]
	rt.buffered = 0
	publish(pub, "r/2", "live", false)
	got := rt.publishes(t)
	if len(got) != 4 || got[3] != (sent{"r/2", "live", false}) {
		t.Fatalf("sent %+v, want the 3 retained messages then the live one", got)
	}
	settle("the pacer to stop", func() bool { return len(l.pace.clients) == 0 && !l.pace.armed })
}
