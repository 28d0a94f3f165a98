package codec_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// fuzzVersion maps a fuzzed byte to a connection version, unknown ones (0, 1,
// 2) included.
func fuzzVersion(v byte) codec.Version { return codec.Version(v % 6) }

// FuzzDecode decodes any bytes at any version. It must not panic; an error
// must be ErrIncomplete only when the input is short, and an *Error
// otherwise; a packet it accepts must encode to bytes that decode to the
// same packet and encode again to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, c := range golden(true) {
		f.Add(c.Bytes, byte(c.Version))
	}
	for _, c := range decodeErrorCases() {
		f.Add(c.in, byte(c.v))
	}
	f.Fuzz(func(t *testing.T, data []byte, vb byte) {
		v := fuzzVersion(vb)
		var pk codec.Packet
		n, err := codec.Decode(data, v, 0, &pk)
		h, herr := codec.ReadFixedHeader(data, 0)
		switch {
		case errors.Is(err, codec.ErrIncomplete):
			if n != 0 || (herr == nil && h.Len() <= len(data)) {
				t.Fatalf("ErrIncomplete with n=%d for a whole packet of %d bytes", n, h.Len())
			}
			return
		case err != nil:
			var ce *codec.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *codec.Error", err)
			}
			if n != 0 && (herr != nil || n != h.Len()) {
				t.Fatalf("n=%d after %v", n, err)
			}
			return
		}
		if herr != nil || n != h.Len() || n > len(data) {
			t.Fatalf("n=%d, header %+v, %v", n, h, herr)
		}
		want := describe(&pk)
		ev := encodeVersion(&pk, v)
		enc := codec.Append(nil, &pk, ev)

		var again codec.Packet
		m, err := codec.Decode(enc, v, 0, &again)
		if err != nil || m != len(enc) {
			t.Fatalf("re-encoded %s as % x: n=%d err=%v", want, head(enc), m, err)
		}
		if got := describe(&again); got != want {
			t.Fatalf("re-decoded\n got %s\nwant %s", got, want)
		}
		if enc2 := codec.Append(nil, &again, ev); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable:\n% x\n% x", head(enc), head(enc2))
		}
		if _, err := codec.Decode(enc, v, len(enc)-1, &again); !errors.Is(err, codec.ErrPacketTooLarge) {
			t.Fatalf("maxSize one below the packet: %v", err)
		}
	})
}

// FuzzRoundTrip takes a packet the decoder accepts, encodes it twice into a
// stream and feeds that stream in chunks cut where the fuzzer says, as reads
// from a socket would: Decode must ask for more until a packet is whole, then
// return the same packet.
func FuzzRoundTrip(f *testing.F) {
	for i, c := range golden(true) {
		cuts := []byte{byte(i), 0, byte(i * 7), 3}
		f.Add(c.Bytes, byte(c.Version), cuts)
	}
	f.Fuzz(func(t *testing.T, data []byte, vb byte, cuts []byte) {
		v := fuzzVersion(vb)
		var pk codec.Packet
		if _, err := codec.Decode(data, v, 0, &pk); err != nil {
			return
		}
		want := describe(&pk)
		enc := codec.Append(nil, &pk, encodeVersion(&pk, v))
		stream := append(bytes.Clone(enc), enc...)

		var buf []byte
		var out codec.Packet
		decoded := 0
		for pos, ci := 0, 0; pos < len(stream); ci++ {
			size := len(stream) - pos
			if len(cuts) > 0 {
				size = min(size, 1+int(cuts[ci%len(cuts)]))
			}
			buf = append(buf, stream[pos:pos+size]...)
			pos += size
			for {
				n, err := codec.Decode(buf, v, 0, &out)
				if errors.Is(err, codec.ErrIncomplete) {
					if n != 0 {
						t.Fatalf("ErrIncomplete with n=%d", n)
					}
					break
				}
				if err != nil || n != len(enc) {
					t.Fatalf("after %d of %d bytes: n=%d err=%v", pos, len(stream), n, err)
				}
				if got := describe(&out); got != want {
					t.Fatalf("packet %d from chunks\n got %s\nwant %s", decoded, got, want)
				}
				decoded++
				buf = buf[n:]
			}
		}
		if decoded != 2 || len(buf) != 0 {
			t.Fatalf("decoded %d packets, %d bytes left", decoded, len(buf))
		}
	})
}
