package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// allOps has one of every command, with every optional part set.
func allOps() []Command {
	return []Command{
		&SessionClaim{ClientID: "c1", Node: "n1", Boot: 7, CleanStart: true, Expiry: ExpiryNever, ProtocolVersion: 5, Now: 1700000000000,
			Will: &Will{Topic: "w/t", Payload: []byte("bye"), QoS: 2, Retain: true, Delay: 30, Props: []byte{1, 2, 3}}},
		&SessionClaim{ClientID: "c2", Node: "n2", Boot: 1, Expiry: 0, ProtocolVersion: 4, Now: -5},
		&SessionDisconnected{ClientID: "c1", Epoch: 1 << 40, At: 1700000001000, Expiry: 60, KeepWill: true},
		&SessionExpired{ClientID: "c1", Epoch: 3},
		&SessionRelease{ClientID: "c1", Epoch: 4},
		&Subscribe{ClientID: "c1", Epoch: 5, Filter: "a/+/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubscriptionID: 268435455},
		&Unsubscribe{ClientID: "c1", Epoch: 6, Filter: "a/b"},
		&RetainedSet{Topic: "x/y", Payload: []byte("hello"), QoS: 1, Props: []byte{9}, ExpiresAt: 1700000060000, Now: 1700000000000},
		&RetainedDelete{Topic: "x/y", ExpiredBy: 1700000060000},
		&NodeDown{Node: "n2", Boot: 99, At: 1700000002000},
		&WillDone{ClientID: "c1", Epoch: 8},
		&NodeUp{Node: "n2", Boot: 99},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	b := &Batch{Node: "node-1", Boot: 123456789, Seq: 42, Ops: allOps()}
	enc := EncodeBatch(b)
	got, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
	}
	if enc[0] != CommandVersion {
		t.Fatalf("first byte %d, want version %d", enc[0], CommandVersion)
	}
	// AppendBatch appends.
	pre := []byte("prefix")
	if out := AppendBatch(pre, b); !bytes.Equal(out[len(pre):], enc) || string(out[:len(pre)]) != "prefix" {
		t.Fatal("AppendBatch does not append the same encoding")
	}
}

// TestCommandLargeBodies covers op bodies whose length takes 1, 2 and 3
// varint bytes (AppendBatch moves the body after reserving one byte).
func TestCommandLargeBodies(t *testing.T) {
	for _, n := range []int{0, 100, 127, 128, 200, 16383, 16384, 70000} {
		b := &Batch{Node: "n", Boot: 1, Seq: 1, Ops: []Command{
			&RetainedSet{Topic: "t", Payload: bytes.Repeat([]byte{'p'}, n), Now: 1},
			&Unsubscribe{ClientID: strings.Repeat("c", n), Epoch: 1, Filter: "f"},
		}}
		got, err := DecodeBatch(EncodeBatch(b))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if n == 0 {
			b.Ops[0].(*RetainedSet).Payload = nil // empty decodes as nil
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestDecodeBatchCopies(t *testing.T) {
	enc := EncodeBatch(&Batch{Node: "n", Seq: 1, Ops: []Command{&RetainedSet{Topic: "t", Payload: []byte("abc"), Now: 1}}})
	b, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xEE
	}
	if p := b.Ops[0].(*RetainedSet).Payload; string(p) != "abc" {
		t.Fatalf("payload aliases the input: %q", p)
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	good := EncodeBatch(&Batch{Node: "n1", Boot: 1, Seq: 1, Ops: allOps()})
	// Every strict prefix is truncated.
	for i := 0; i < len(good); i++ {
		if _, err := DecodeBatch(good[:i]); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d/%d: err %v, want truncated", i, len(good), err)
		}
	}
	one := func(op Op, body ...byte) []byte {
		p := []byte{CommandVersion, 1, 'n', 1, 1, 1, byte(op), byte(len(body))}
		return append(p, body...)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version", append([]byte{2}, good[1:]...), ErrUnsupportedVersion},
		{"trailing", append(append([]byte{}, good...), 0), ErrMalformed},
		{"unknown op", one(99), ErrUnknownOp},
		{"op zero", one(0), ErrUnknownOp},
		{"body trailing", one(OpWillDone, 1, 'c', 1, 0), ErrMalformed},
		{"body short", one(OpWillDone, 1, 'c'), ErrTruncated},
		{"claim flags", one(OpSessionClaim, 1, 'c', 1, 'n', 1, 0x80, 0, 5, 0), ErrMalformed},
		{"expiry > 32 bits", one(OpSessionDisconnected, 1, 'c', 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0), ErrMalformed},
		{"qos 3", one(OpRetainedSet, 1, 't', 1, 'p', 3, 0, 0, 0), ErrMalformed},
		{"retain handling 3", one(OpSubscribe, 1, 'c', 1, 1, 'f', 0, 0, 3, 0), ErrMalformed},
		{"varint overflow", []byte{CommandVersion, 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"huge count", []byte{CommandVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrTruncated},
		{"string past end", []byte{CommandVersion, 50, 'n'}, ErrTruncated},
	}
	for _, c := range cases {
		if _, err := DecodeBatch(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestOpAndCodeStrings(t *testing.T) {
	for _, c := range allOps() {
		if s := c.Op().String(); strings.HasPrefix(s, "Op(") {
			t.Errorf("op %d has no name", c.Op())
		}
	}
	if Op(77).String() != "Op(77)" || Code(200).String() != "Code(200)" || CodeStale.String() != "Stale" {
		t.Fatal("String fallbacks")
	}
}
