package bench

import (
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, size := range []int{HeaderSize, 64, 1024} {
		p := NewPayload(size)
		Stamp(p, 0xdeadbeef, 7, 1<<40+3, -5)
		h, err := ParseHeader(p)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := Header{Run: 0xdeadbeef, Publisher: 7, Length: uint32(size), Seq: 1<<40 + 3, SendNs: -5}
		if h != want {
			t.Fatalf("size %d: got %+v want %+v", size, h, want)
		}
	}
}

func TestHeaderRejects(t *testing.T) {
	p := NewPayload(64)
	Stamp(p, 1, 2, 3, 4)
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrNotBench},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, ErrNotBench},
		{"bitflip", func(b []byte) []byte { b[20] ^= 0x10; return b }, ErrBadChecksum},
		{"truncated", func(b []byte) []byte { return b[:60] }, ErrTruncated},
		{"foreign", func([]byte) []byte { return []byte("hello, this is not a benchmark payload at all") }, ErrNotBench},
	}
	for _, c := range cases {
		b := c.mod(append([]byte(nil), p...))
		if _, err := ParseHeader(b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
	}
}

// TestHotPathAllocs budgets the per-message path: stamp, encode, decode,
// parse, sequence tracking and latency recording must not allocate.
func TestHotPathAllocs(t *testing.T) {
	payload := NewPayload(128)
	topic := []byte("flockmq-bench/pairs/0")
	buf := make([]byte, 0, 4096)
	var pk codec.Packet
	pp := codec.PublishPacket{QoS: 1, Topic: topic, Payload: payload}
	tr := NewTracker()
	h := newHist()
	var w pubWindow
	w.init(64)
	var seq uint64
	step := func() {
		id, ok := w.take(int64(seq) + 1)
		if !ok {
			t.Fatal("window full")
		}
		pp.PacketID = id
		Stamp(payload, 9, 3, seq, int64(seq))
		buf = codec.AppendPublish(buf[:0], &pp, codec.V5)
		if _, err := codec.Decode(buf, codec.V5, 0, &pk); err != nil {
			t.Fatal(err)
		}
		hd, err := ParseHeader(pk.Publish.Payload)
		if err != nil {
			t.Fatal(err)
		}
		tr.Observe(StreamKey{Run: hd.Run, Publisher: hd.Publisher, Topic: fnv64(pk.Publish.Topic)}, hd.Seq)
		record(h, 50_000)
		if _, ok := w.free(id); !ok {
			t.Fatal("free")
		}
		seq++
	}
	step() // creates the stream
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("hot path allocates %.1f times per message", n)
	}
	if c := tr.Counts(nil); c.Lost != 0 || c.Unique != seq {
		t.Fatalf("counts %+v after %d", c, seq)
	}
}

func BenchmarkStampParse(b *testing.B) {
	p := NewPayload(64)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		Stamp(p, 1, 2, uint64(i), int64(i))
		if _, err := ParseHeader(p); err != nil {
			b.Fatal(err)
		}
	}
}
