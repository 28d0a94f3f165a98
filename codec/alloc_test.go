package codec_test

import (
	"fmt"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// Allocation budgets. They are failing tests, not benchmarks: a change that
// makes the hot path allocate breaks the build.

// publishes returns PUBLISH packets at QoS 0, 1 and 2 for 3.1.1 and, with
// properties including user properties and subscription identifiers, for 5.0.
func publishes() map[string][]byte {
	out := map[string][]byte{}
	for qos := byte(0); qos <= 2; qos++ {
		p := codec.PublishPacket{QoS: qos, Topic: []byte("sensors/room1/temp"), Payload: []byte("21.5")}
		if qos > 0 {
			p.PacketID = 42
		}
		out[fmt.Sprint("3.1.1 QoS ", qos)] = codec.AppendPublish(nil, &p, codec.V311)
		p.Props.Set(codec.PropMessageExpiry)
		p.Props.MessageExpiry = 60
		p.Props.Set(codec.PropContentType)
		p.Props.ContentType = []byte("text/plain")
		p.Props.SubscriptionIDs = []uint32{1, 300, 70000}
		p.Props.User = []codec.UserProperty{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")},
			{Key: []byte("c"), Value: []byte("3")}}
		out[fmt.Sprint("5.0 QoS ", qos)] = codec.AppendPublish(nil, &p, codec.V5)
	}
	return out
}

func decodeAllocs(t *testing.T, b []byte, v codec.Version) float64 {
	t.Helper()
	var pk codec.Packet
	if _, err := codec.Decode(b, v, 0, &pk); err != nil { // warm up
		t.Fatal(err)
	}
	return testing.AllocsPerRun(100, func() {
		if _, err := codec.Decode(b, v, 0, &pk); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAllocsDecodePublish(t *testing.T) {
	for name, b := range publishes() {
		v := codec.V311
		if name[0] == '5' {
			v = codec.V5
		}
		if n := decodeAllocs(t, b, v); n != 0 {
			t.Errorf("decoding PUBLISH %s into a warm Packet: %v allocations, want 0", name, n)
		}
	}
}

func TestAllocsDecodeSubscribe(t *testing.T) {
	for _, c := range golden(true) {
		if c.Packet.Type != codec.Subscribe {
			continue
		}
		if n := decodeAllocs(t, c.Bytes, c.Version); n != 0 {
			t.Errorf("decoding %s into a warm Packet: %v allocations, want 0", c.Name, n)
		}
	}
}

// TestAllocsDecodeGolden extends the budget to every packet type.
func TestAllocsDecodeGolden(t *testing.T) {
	for _, c := range golden(true) {
		if n := decodeAllocs(t, c.Bytes, c.Version); n != 0 {
			t.Errorf("decoding %s into a warm Packet: %v allocations, want 0", c.Name, n)
		}
	}
}

func TestAllocsEncode(t *testing.T) {
	for _, c := range golden(false) {
		v := encodeVersion(&c.Packet, c.Version)
		buf := make([]byte, 0, len(c.Bytes)+16)
		n := testing.AllocsPerRun(20, func() {
			buf = codec.Append(buf[:0], &c.Packet, v)
		})
		if n != 0 {
			t.Errorf("encoding %s into a buffer with room: %v allocations, want 0", c.Name, n)
		}
	}
	p := codec.PublishPacket{QoS: 1, PacketID: 1, Topic: []byte("a/b"), Payload: make([]byte, 1024)}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = codec.AppendPublishHeader(buf[:0], &p, codec.V5) }); n != 0 {
		t.Errorf("AppendPublishHeader: %v allocations, want 0", n)
	}
}

func TestAllocsPublishClone(t *testing.T) {
	p := codec.PublishPacket{QoS: 1, PacketID: 9, Topic: []byte("a/b/c"), Payload: []byte("payload")}
	p.Props.Set(codec.PropContentType)
	p.Props.ContentType = []byte("text/plain")
	p.Props.Set(codec.PropCorrelationData)
	p.Props.CorrelationData = []byte{1, 2, 3}
	if n := testing.AllocsPerRun(100, func() { _ = p.Clone() }); n > 1 {
		t.Errorf("Clone without user properties or subscription ids: %v allocations, want at most 1", n)
	}
	p.Props.User = []codec.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
	p.Props.SubscriptionIDs = []uint32{4}
	if n := testing.AllocsPerRun(100, func() { _ = p.Clone() }); n > 3 {
		t.Errorf("Clone with both lists: %v allocations, want at most 3", n)
	}
}
