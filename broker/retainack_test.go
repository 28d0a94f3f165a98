package broker

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// heldStore is a MemoryStore whose retained writes complete only when the
// test releases them.
type heldStore struct {
	*MemoryStore
	held []func()
}

func (h *heldStore) Retain(m *Message, done func(error)) {
	h.held = append(h.held, func() { h.MemoryStore.Retain(m, done) })
}

// recordingTransport keeps what the broker writes.
type recordingTransport struct {
	fakeTransport
	buf []byte
}

func (r *recordingTransport) Write(b []byte) error { r.buf = append(r.buf, b...); return nil }

// acks decodes the PUBACKs written so far, in order.
func (r *recordingTransport) acks(t *testing.T) []uint16 {
	t.Helper()
	var ids []uint16
	var pk codec.Packet
	for b := r.buf; len(b) > 0; {
		n, err := codec.Decode(b, codec.V311, 0, &pk)
		if err != nil {
			t.Fatalf("decode broker output: %v", err)
		}
		if pk.Type == codec.Puback {
			ids = append(ids, pk.Ack.PacketID)
		}
		b = b[n:]
	}
	return ids
}

// TestRetainedAckWaitsForCommit: the PUBACK of a retained QoS 1 publish is
// sent only once the store has committed it, and a later publish's PUBACK
// waits behind it [MQTT-4.6.0-2]. A failed commit closes a 3.1.1 client
// without the PUBACK, so that it publishes again.
func TestRetainedAckWaitsForCommit(t *testing.T) {
	hs := &heldStore{MemoryStore: NewMemoryStore()}
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	b, err := New(cfg, WithStore(hs), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ip := &inproc{b: b}
	ip.loops = append(ip.loops, b.NewLoop(func(f func()) bool { ip.queue = append(ip.queue, f); return true }))
	l := ip.loops[0]
	rt := &recordingTransport{}
	c := l.Open(rt)
	cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("pub")}
	l.Input(c, codec.AppendConnect(nil, &cp))
	ip.run()
	l.Flush()

	retained := codec.PublishPacket{Topic: []byte("r"), Payload: []byte("v"), QoS: 1, PacketID: 1, Retain: true}
	plain := codec.PublishPacket{Topic: []byte("p"), Payload: []byte("v"), QoS: 1, PacketID: 2}
	in := codec.AppendPublish(nil, &retained, codec.V311)
	in = codec.AppendPublish(in, &plain, codec.V311)
	l.Input(c, in)
	l.Flush()
	ip.run()
	if got := rt.acks(t); len(got) != 0 {
		t.Fatalf("PUBACKs %v before the retained message was committed", got)
	}
	if len(hs.held) != 1 {
		t.Fatalf("%d retained writes held, want 1", len(hs.held))
	}
	hs.held[0]()
	ip.run()
	if got := rt.acks(t); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("PUBACKs %v after the commit, want [1 2]", got)
	}
	if b.RetainedCount() != 1 {
		t.Fatalf("retained count %d, want 1", b.RetainedCount())
	}

	// A failed commit: no PUBACK, and the 3.1.1 connection closes.
	fail := &failingStore{MemoryStore: NewMemoryStore()}
	b2, _ := New(cfg, WithStore(fail), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ip2 := &inproc{b: b2}
	ip2.loops = append(ip2.loops, b2.NewLoop(func(f func()) bool { ip2.queue = append(ip2.queue, f); return true }))
	l2 := ip2.loops[0]
	rt2 := &recordingTransport{}
	c2 := l2.Open(rt2)
	l2.Input(c2, codec.AppendConnect(nil, &cp))
	ip2.run()
	l2.Input(c2, codec.AppendPublish(nil, &retained, codec.V311))
	l2.Flush()
	ip2.run()
	if got := rt2.acks(t); len(got) != 0 || !rt2.closed {
		t.Fatalf("after a failed commit: PUBACKs %v, closed %v; want none and closed", got, rt2.closed)
	}
}

type failingStore struct{ *MemoryStore }

func (f *failingStore) Retain(_ *Message, done func(error)) { done(errors.New("disk full")) }
