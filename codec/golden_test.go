package codec_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/codec/codectest"
)

// TestGoldenDecode decodes every golden packet into a fresh Packet.
func TestGoldenDecode(t *testing.T) {
	for _, c := range codectest.Golden() {
		t.Run(c.Name, func(t *testing.T) {
			pk := mustDecode(t, c.Bytes, c.Version)
			if got, want := describe(pk), describe(&c.Packet); got != want {
				t.Fatalf("decoded\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestGoldenDecodeWarm decodes the whole table, twice over, into one Packet:
// nothing of a previous packet may leak into the next.
func TestGoldenDecodeWarm(t *testing.T) {
	var pk codec.Packet
	cs := golden(true)
	for round := 0; round < 2; round++ {
		for _, c := range cs {
			if _, err := codec.Decode(c.Bytes, c.Version, 0, &pk); err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if got, want := describe(&pk), describe(&c.Packet); got != want {
				t.Fatalf("%s: decoded into a warm Packet\n got %s\nwant %s", c.Name, got, want)
			}
		}
	}
}

// TestGoldenEncode encodes every golden packet and expects its exact bytes.
func TestGoldenEncode(t *testing.T) {
	for _, c := range codectest.Golden() {
		if c.DecodeOnly {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			got := codec.Append(nil, &c.Packet, encodeVersion(&c.Packet, c.Version))
			if !bytes.Equal(got, c.Bytes) {
				t.Fatalf("encoded\n got % x\nwant % x", head(got), head(c.Bytes))
			}
			// Appending keeps what dst held.
			prefix := []byte("prefix")
			got = codec.Append(prefix, &c.Packet, encodeVersion(&c.Packet, c.Version))
			if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[6:], c.Bytes) {
				t.Fatalf("Append to a non-empty dst: % x", head(got))
			}
		})
	}
}

// TestGoldenRoundTrip decodes, encodes and decodes again every golden packet,
// the DecodeOnly ones included: the packet must survive unchanged.
func TestGoldenRoundTrip(t *testing.T) {
	for _, c := range codectest.Golden() {
		t.Run(c.Name, func(t *testing.T) {
			first := mustDecode(t, c.Bytes, c.Version)
			enc := codec.Append(nil, first, encodeVersion(first, c.Version))
			second := mustDecode(t, enc, c.Version)
			if got, want := describe(second), describe(first); got != want {
				t.Fatalf("round trip\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestGoldenPrefixes feeds every strict prefix of each packet: the decoder
// must ask for more bytes and not touch anything else.
func TestGoldenPrefixes(t *testing.T) {
	for _, c := range golden(true) {
		var pk codec.Packet
		for i := 0; i < len(c.Bytes); i++ {
			n, err := codec.Decode(c.Bytes[:i], c.Version, 0, &pk)
			if !errors.Is(err, codec.ErrIncomplete) || n != 0 {
				t.Fatalf("%s: prefix of %d bytes: n=%d err=%v, want 0, ErrIncomplete", c.Name, i, n, err)
			}
		}
	}
}

// TestGoldenConcatenated decodes the table written as one stream.
func TestGoldenConcatenated(t *testing.T) {
	for _, v := range []codec.Version{codec.V31, codec.V311, codec.V5} {
		var stream []byte
		var want []codectest.Case
		for _, c := range golden(true) {
			if c.Version == v {
				stream = append(stream, c.Bytes...)
				want = append(want, c)
			}
		}
		var pk codec.Packet
		for i, c := range want {
			n, err := codec.Decode(stream, v, 0, &pk)
			if err != nil || n != len(c.Bytes) {
				t.Fatalf("%v packet %d (%s): n=%d err=%v", v, i, c.Name, n, err)
			}
			if got, want := describe(&pk), describe(&c.Packet); got != want {
				t.Fatalf("%s in a stream\n got %s\nwant %s", c.Name, got, want)
			}
			stream = stream[n:]
		}
		if len(stream) != 0 {
			t.Fatalf("%v: %d bytes left", v, len(stream))
		}
	}
}

// TestDecodedViewsAreCapped checks that a decoded payload cannot be appended
// to over the bytes of the packet that follows it in the read buffer.
func TestDecodedViewsAreCapped(t *testing.T) {
	stream := []byte{0x30, 5, 0, 1, 't', 'a', 'b', 0xC0, 0}
	var pk codec.Packet
	n, err := codec.Decode(stream, codec.V311, 0, &pk)
	if err != nil || n != 7 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if cap(pk.Publish.Payload) != len(pk.Publish.Payload) || cap(pk.Publish.Topic) != len(pk.Publish.Topic) {
		t.Fatalf("payload cap %d len %d, topic cap %d len %d", cap(pk.Publish.Payload), len(pk.Publish.Payload),
			cap(pk.Publish.Topic), len(pk.Publish.Topic))
	}
	_ = append(pk.Publish.Payload, 'X')
	if stream[7] != 0xC0 {
		t.Fatal("appending to the payload overwrote the next packet")
	}
}

// TestPublishSizeAndHeader checks PublishSize and AppendPublishHeader against
// AppendPublish for every golden PUBLISH.
func TestPublishSizeAndHeader(t *testing.T) {
	for _, c := range codectest.Golden() {
		if c.Packet.Type != codec.Publish {
			continue
		}
		p := &c.Packet.Publish
		full := codec.AppendPublish(nil, p, c.Version)
		if got := codec.PublishSize(p, c.Version); got != len(full) {
			t.Errorf("%s: PublishSize %d, encoded %d", c.Name, got, len(full))
		}
		hdr := codec.AppendPublishHeader(nil, p, c.Version)
		if !bytes.Equal(append(hdr, p.Payload...), full) {
			t.Errorf("%s: header + payload differs from AppendPublish", c.Name)
		}
	}
}

// TestMaxSize checks the maximum packet size at its boundary.
func TestMaxSize(t *testing.T) {
	for _, c := range golden(true) {
		var pk codec.Packet
		if _, err := codec.Decode(c.Bytes, c.Version, len(c.Bytes), &pk); err != nil {
			t.Fatalf("%s: maxSize = its length: %v", c.Name, err)
		}
		if _, err := codec.Decode(c.Bytes, c.Version, len(c.Bytes)-1, &pk); !errors.Is(err, codec.ErrPacketTooLarge) {
			t.Fatalf("%s: maxSize one below its length: %v", c.Name, err)
		}
	}
}

// TestPacketClone checks that a cloned packet shares nothing with its input.
func TestPacketClone(t *testing.T) {
	for _, c := range golden(true) {
		in := bytes.Clone(c.Bytes)
		pk := mustDecode(t, in, c.Version)
		want := describe(pk)
		cl, err := pk.Clone(c.Version)
		if err != nil {
			t.Fatalf("%s: Clone: %v", c.Name, err)
		}
		for i := range in {
			in[i] = 0xEE
		}
		if got := describe(cl); got != want {
			t.Fatalf("%s: clone changed with its input\n got %s\nwant %s", c.Name, got, want)
		}
	}
}

// TestPublishClone checks PublishPacket.Clone, properties included.
func TestPublishClone(t *testing.T) {
	for _, c := range golden(true) {
		if c.Packet.Type != codec.Publish {
			continue
		}
		in := bytes.Clone(c.Bytes)
		pk := mustDecode(t, in, c.Version)
		want := describe(pk)
		cl := codec.Packet{Type: codec.Publish, Flags: pk.Flags, Publish: pk.Publish.Clone()}
		for i := range in {
			in[i] = 0xEE
		}
		pk.Publish.Props.SubscriptionIDs = append(pk.Publish.Props.SubscriptionIDs[:0], 99)
		if got := describe(&cl); got != want {
			t.Fatalf("%s: clone changed with its input\n got %s\nwant %s", c.Name, got, want)
		}
	}
}

// TestGoldenCoverage keeps the table complete: every packet type at every
// protocol version that has it.
func TestGoldenCoverage(t *testing.T) {
	have := map[codec.PacketType]map[codec.Version]bool{}
	for _, c := range codectest.Golden() {
		v := encodeVersion(&c.Packet, c.Version)
		if have[c.Packet.Type] == nil {
			have[c.Packet.Type] = map[codec.Version]bool{}
		}
		have[c.Packet.Type][v] = true
	}
	for typ := codec.Connect; typ <= codec.Auth; typ++ {
		for _, v := range []codec.Version{codec.V31, codec.V311, codec.V5} {
			if typ == codec.Auth && v != codec.V5 {
				continue
			}
			if !have[typ][v] {
				t.Errorf("no golden %v for %v", typ, v)
			}
		}
	}
}
