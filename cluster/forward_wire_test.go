package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// forwardTestNow is the sender's clock in the forward wire tests.
const forwardTestNow = int64(1_700_000_000_123_456_789)

type forwardCase struct {
	name   string
	msg    *broker.Message
	groups []broker.SharedTarget
}

// forwardTestProps returns properties with every kind of PUBLISH property a
// broker message keeps.
func forwardTestProps() codec.Properties {
	var p codec.Properties
	p.Set(codec.PropPayloadFormat)
	p.PayloadFormat = 1
	p.Set(codec.PropMessageExpiry)
	p.MessageExpiry = 60
	p.Set(codec.PropContentType)
	p.ContentType = []byte("application/json")
	p.Set(codec.PropResponseTopic)
	p.ResponseTopic = []byte("reply/to/me")
	p.Set(codec.PropCorrelationData)
	p.CorrelationData = []byte{0, 1, 2, 0xff}
	p.User = append(p.User,
		codec.UserProperty{Key: []byte("k"), Value: []byte("v1")},
		codec.UserProperty{Key: []byte("k"), Value: []byte("v2")},
		codec.UserProperty{Key: []byte(""), Value: []byte("")},
	)
	return p
}

// forwardCases are the round-trip cases; small ones (under 4 KiB encoded)
// also seed the truncation test and the fuzzer.
func forwardCases() []forwardCase {
	props := forwardTestProps()
	var userOnly codec.Properties
	userOnly.User = append(userOnly.User, codec.UserProperty{Key: []byte("trace"), Value: []byte("abc")})
	var emptyCT codec.Properties
	emptyCT.Set(codec.PropContentType)
	emptyCT.ContentType = []byte{}

	many := make([]broker.SharedTarget, maxForwardGroups)
	for i := range many {
		many[i] = broker.SharedTarget{Group: fmt.Sprintf("g%d", i), Filter: fmt.Sprintf("t/%d/#", i)}
	}
	return []forwardCase{
		{name: "minimal", msg: &broker.Message{Topic: []byte("a")}},
		{name: "empty payload retained", msg: &broker.Message{Topic: []byte("a/b"), Payload: []byte{}, QoS: 1, Retain: true, Publisher: "c1", ID: 1}},
		{name: "props", msg: &broker.Message{
			Topic: []byte("sensors/1/temp"), Payload: []byte(`{"t":21.5}`), QoS: 2, Props: props,
			ExpiresAt: forwardTestNow + 60*int64(time.Second) - 123_457, Publisher: "publisher-1", ID: 0x8000_0000_0000_0001,
		}},
		{name: "max id", msg: &broker.Message{Topic: []byte("id"), Payload: []byte("x"), QoS: 1, ID: ^uint64(0)}},
		{name: "user props only", msg: &broker.Message{Topic: []byte("x"), Payload: []byte("p"), QoS: 1, Props: userOnly}},
		{name: "empty content type", msg: &broker.Message{Topic: []byte("x"), Payload: []byte("p"), Props: emptyCT}},
		{name: "groups", msg: &broker.Message{Topic: []byte("jobs/7"), Payload: []byte("work"), QoS: 1, Publisher: "", ID: 42},
			groups: []broker.SharedTarget{{Group: "workers", Filter: "jobs/+"}, {Group: "audit", Filter: "#"}, {Group: "q", Filter: "jobs/7"}}},
		{name: "groups and props", msg: &broker.Message{Topic: []byte("a/b/c"), Payload: []byte{1, 2, 3}, QoS: 2, Retain: true, Props: props,
			ExpiresAt: forwardTestNow + int64(time.Millisecond), Publisher: "p", ID: 0x0123_4567_89ab_cdef},
			groups: []broker.SharedTarget{{Group: "g", Filter: "a/+/c"}}},
		{name: "expired", msg: &broker.Message{Topic: []byte("old"), Payload: []byte("stale"), ExpiresAt: forwardTestNow - 5*int64(time.Second)}},
		{name: "expires now", msg: &broker.Message{Topic: []byte("old"), ExpiresAt: forwardTestNow}},
		{name: "long lifetime", msg: &broker.Message{Topic: []byte("t"), ExpiresAt: forwardTestNow + int64(^uint32(0))*int64(time.Second)}},
		{name: "max lengths", msg: &broker.Message{
			Topic: bytes.Repeat([]byte("t"), codec.MaxStringLength), Payload: bytes.Repeat([]byte{7}, 70_000), QoS: 1,
			Publisher: strings.Repeat("p", codec.MaxStringLength),
		}, groups: []broker.SharedTarget{{Group: strings.Repeat("g", codec.MaxStringLength), Filter: strings.Repeat("f", codec.MaxStringLength)}}},
		{name: "max groups", msg: &broker.Message{Topic: []byte("t/1/x"), Payload: []byte("m")}, groups: many},
	}
}

// wantForwardExpiry is the ExpiresAt the receiver should rebuild, at
// receiver time recvNow, for a message sent at forwardTestNow, give or take
// the rounding of the lifetime to whole milliseconds (up, by less than 1 ms).
func checkForwardExpiry(t *testing.T, got, sent, recvNow int64) {
	t.Helper()
	switch {
	case sent == 0:
		if got != 0 {
			t.Fatalf("ExpiresAt %d, want 0 (no expiry)", got)
		}
	case sent <= forwardTestNow:
		if want := recvNow + int64(time.Millisecond); got != want {
			t.Fatalf("expired message: ExpiresAt %d, want %d (1 ms after receipt)", got, want)
		}
	default:
		want := sent + (recvNow - forwardTestNow)
		if d := got - want; d < 0 || d >= int64(time.Millisecond) {
			t.Fatalf("ExpiresAt %d is %d ns after the expected %d, want [0, 1ms)", got, d, want)
		}
	}
}

func forwardPropsBytes(p *codec.Properties) []byte {
	return codec.AppendMessageProperties(nil, p)
}

// checkForwardMessage compares every field but ExpiresAt.
func checkForwardMessage(t *testing.T, got, want *broker.Message) {
	t.Helper()
	if !bytes.Equal(got.Topic, want.Topic) {
		t.Fatalf("topic %.40q, want %.40q", got.Topic, want.Topic)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("payload of %d bytes differs from the %d sent", len(got.Payload), len(want.Payload))
	}
	if got.QoS != want.QoS || got.Retain != want.Retain {
		t.Fatalf("QoS %d retain %v, want %d %v", got.QoS, got.Retain, want.QoS, want.Retain)
	}
	if got.Publisher != want.Publisher {
		t.Fatalf("publisher %.40q, want %.40q", got.Publisher, want.Publisher)
	}
	if got.ID != want.ID {
		t.Fatalf("ID %#x, want %#x", got.ID, want.ID)
	}
	if g, w := forwardPropsBytes(&got.Props), forwardPropsBytes(&want.Props); !bytes.Equal(g, w) {
		t.Fatalf("props encode to %x, want %x", g, w)
	}
}

func checkForwardGroups(t *testing.T, got, want []broker.SharedTarget) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("group %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

func TestForwardRoundTrip(t *testing.T) {
	for _, tc := range forwardCases() {
		t.Run(tc.name, func(t *testing.T) {
			frame := appendForward([]byte("prefix"), tc.msg, tc.groups, forwardTestNow)
			if string(frame[:6]) != "prefix" {
				t.Fatal("appendForward overwrote dst")
			}
			frame = frame[6:]
			// The receiver's clock: the same, behind and ahead.
			for _, skew := range []int64{0, -3*int64(time.Hour) + 17, 2*int64(time.Second) + 999_999} {
				recvNow := forwardTestNow + skew
				m, groups, err := decodeForward(frame, recvNow)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				checkForwardMessage(t, m, tc.msg)
				checkForwardExpiry(t, m.ExpiresAt, tc.msg.ExpiresAt, recvNow)
				checkForwardGroups(t, groups, tc.groups)
			}
		})
	}
}

// TestForwardGolden pins the wire format.
func TestForwardGolden(t *testing.T) {
	var p codec.Properties
	p.User = append(p.User, codec.UserProperty{Key: []byte("k"), Value: []byte("v")})
	m := &broker.Message{Topic: []byte("a/b"), Payload: []byte("hi"), QoS: 1, Retain: true, Props: p,
		ExpiresAt: forwardTestNow + 1500*int64(time.Millisecond) + 1, Publisher: "c", ID: 0x0123_4567_89ab_cdef}
	got := appendForward(nil, m, []broker.SharedTarget{{Group: "g", Filter: "a/+"}}, forwardTestNow)
	want := []byte{
		0x01, 0x01, // kind, version
		0, 1, 0, 1, 'g', 0, 3, 'a', '/', '+', // one group
		0x05,                         // flags (QoS 1, retain)
		0, 0, 0, 0, 0, 0, 0x05, 0xdd, // lifetime 1501 ms (1500 ms and 1 ns, rounded up)
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // id
		0, 3, 'a', '/', 'b', // topic
		0, 1, 'c', // publisher
		0, 0, 0, 2, 'h', 'i', // payload
		7, 0x26, 0, 1, 'k', 0, 1, 'v', // property block
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n%x, want\n%x", got, want)
	}
}

// validForwardFrames returns the encodings of the small round-trip cases.
func validForwardFrames() [][]byte {
	var frames [][]byte
	for _, tc := range forwardCases() {
		if f := appendForward(nil, tc.msg, tc.groups, forwardTestNow); len(f) <= 4096 {
			frames = append(frames, f)
		}
	}
	return frames
}

func checkForwardRejected(t *testing.T, frame []byte, what string) {
	t.Helper()
	m, groups, err := decodeForward(frame, forwardTestNow)
	if err == nil {
		t.Fatalf("%s: decoded, want an error", what)
	}
	if !errors.Is(err, ErrForwardWire) {
		t.Fatalf("%s: error %v does not wrap ErrForwardWire", what, err)
	}
	if m != nil || groups != nil {
		t.Fatalf("%s: error with a result", what)
	}
}

func TestForwardTruncated(t *testing.T) {
	frames := validForwardFrames()
	if len(frames) < 8 {
		t.Fatalf("only %d small frames", len(frames))
	}
	for k, frame := range frames {
		for i := range len(frame) {
			checkForwardRejected(t, frame[:i], fmt.Sprintf("frame %d cut to %d of %d bytes", k, i, len(frame)))
		}
		checkForwardRejected(t, append(bytes.Clone(frame), 0), fmt.Sprintf("frame %d with a trailing byte", k))
	}
}

// rawForward builds a forward frame field by field, with no checks, for
// frames appendForward refuses to write.
type rawForward struct {
	kind, version    byte
	groupCount       int // len(groups) when -1
	groups           []broker.SharedTarget
	flags            byte
	life, id         uint64
	topic, publisher string
	payloadLen       int // len(payload) when -1
	payload          string
	props            []byte
}

func validRawForward() rawForward {
	return rawForward{kind: frameForward, version: forwardWireVersion, flags: 1, life: 1000, id: 7, topic: "a/b",
		publisher: "c", groupCount: -1, groups: []broker.SharedTarget{{Group: "g", Filter: "a/#"}},
		payloadLen: -1, payload: "hi", props: []byte{0}}
}

func (f rawForward) bytes() []byte {
	b := []byte{f.kind, f.version}
	n := f.groupCount
	if n < 0 {
		n = len(f.groups)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, g := range f.groups {
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Group)))
		b = append(b, g.Group...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Filter)))
		b = append(b, g.Filter...)
	}
	b = append(b, f.flags)
	b = binary.BigEndian.AppendUint64(b, f.life)
	b = binary.BigEndian.AppendUint64(b, f.id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.topic)))
	b = append(b, f.topic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.publisher)))
	b = append(b, f.publisher...)
	n = f.payloadLen
	if n < 0 {
		n = len(f.payload)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, f.payload...)
	return append(b, f.props...)
}

func TestForwardRejects(t *testing.T) {
	if _, _, err := decodeForward(validRawForward().bytes(), forwardTestNow); err != nil {
		t.Fatalf("the valid raw frame: %v", err)
	}
	manyGroups := make([]broker.SharedTarget, maxForwardGroups+1)
	for i := range manyGroups {
		manyGroups[i] = broker.SharedTarget{Group: "g", Filter: "f"}
	}
	for _, tc := range []struct {
		name string
		edit func(*rawForward)
	}{
		{"wrong kind", func(f *rawForward) { f.kind = 2 }},
		{"version 0", func(f *rawForward) { f.version = 0 }},
		{"version 2", func(f *rawForward) { f.version = 2 }},
		{"QoS 3", func(f *rawForward) { f.flags = 3 }},
		{"QoS 3 retained", func(f *rawForward) { f.flags = 7 }},
		{"unknown flag", func(f *rawForward) { f.flags = 0x09 }},
		{"lifetime too long", func(f *rawForward) { f.life = maxForwardLifetime + 1 }},
		{"lifetime max uint64", func(f *rawForward) { f.life = ^uint64(0) }},
		{"empty topic", func(f *rawForward) { f.topic = "" }},
		{"wildcard topic", func(f *rawForward) { f.topic = "a/+" }},
		{"multi-level wildcard topic", func(f *rawForward) { f.topic = "#" }},
		{"empty group name", func(f *rawForward) { f.groups[0].Group = "" }},
		{"empty filter", func(f *rawForward) { f.groups[0].Filter = "" }},
		{"invalid filter", func(f *rawForward) { f.groups[0].Filter = "a/#/b" }},
		{"group count over the bytes", func(f *rawForward) { f.groupCount = 1000 }},
		{"group count over the limit", func(f *rawForward) { f.groups = manyGroups }},
		{"group count short", func(f *rawForward) { f.groupCount = 0 }},
		{"payload length over the frame", func(f *rawForward) { f.payloadLen = 1 << 31 }},
		{"payload length max uint32", func(f *rawForward) { f.payloadLen = int(^uint32(0)) }},
		{"payload length short", func(f *rawForward) { f.payloadLen = 1 }},
		{"no property block", func(f *rawForward) { f.props = nil }},
		{"property block too long", func(f *rawForward) { f.props = []byte{5, 0x01, 1} }},
		{"connect property", func(f *rawForward) { f.props = []byte{5, 0x11, 0, 0, 0, 1} }},
		{"unknown property", func(f *rawForward) { f.props = []byte{2, 0x7f, 0} }},
		{"duplicate property", func(f *rawForward) { f.props = []byte{4, 0x01, 1, 0x01, 1} }},
		{"bad response topic", func(f *rawForward) { f.props = []byte{4, 0x08, 0, 1, '#'} }},
		{"trailing byte", func(f *rawForward) { f.props = []byte{0, 0} }},
		{"bad varint", func(f *rawForward) { f.props = []byte{0x80, 0x80, 0x80, 0x80, 0x01} }},
		{"varint cut short", func(f *rawForward) { f.props = []byte{0x80} }},
		{"trailing bytes after properties", func(f *rawForward) { f.props = []byte{2, 0x01, 1, 0} }},
	} {
		f := validRawForward()
		tc.edit(&f)
		checkForwardRejected(t, f.bytes(), tc.name)
	}
	checkForwardRejected(t, nil, "nil frame")
	checkForwardRejected(t, []byte{}, "empty frame")
}

func TestForwardBadPropsErrorWrapsCodec(t *testing.T) {
	f := validRawForward()
	f.props = []byte{2, 0x7f, 0}
	_, _, err := decodeForward(f.bytes(), forwardTestNow)
	if !errors.Is(err, ErrForwardWire) || !errors.Is(err, codec.ErrUnknownProperty) {
		t.Fatalf("error %v, want ErrForwardWire wrapping codec.ErrUnknownProperty", err)
	}
}

func TestForwardEncodeBugsPanic(t *testing.T) {
	ok := &broker.Message{Topic: []byte("t")}
	for _, tc := range []struct {
		name   string
		msg    *broker.Message
		groups []broker.SharedTarget
	}{
		{"empty topic", &broker.Message{}, nil},
		{"topic too long", &broker.Message{Topic: make([]byte, codec.MaxStringLength+1)}, nil},
		{"publisher too long", &broker.Message{Topic: []byte("t"), Publisher: strings.Repeat("p", codec.MaxStringLength+1)}, nil},
		{"QoS 3", &broker.Message{Topic: []byte("t"), QoS: 3}, nil},
		{"too many groups", ok, make([]broker.SharedTarget, maxForwardGroups+1)},
		{"empty group", ok, []broker.SharedTarget{{Filter: "f"}}},
		{"empty filter", ok, []broker.SharedTarget{{Group: "g"}}},
		{"group too long", ok, []broker.SharedTarget{{Group: strings.Repeat("g", codec.MaxStringLength+1), Filter: "f"}}},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: appendForward did not panic", tc.name)
				}
			}()
			appendForward(nil, tc.msg, tc.groups, forwardTestNow)
		}()
	}
}

// TestForwardNoAlias checks that a decoded message and its groups own their
// bytes: the peer link reuses its read buffer.
func TestForwardNoAlias(t *testing.T) {
	for _, tc := range forwardCases() {
		frame := appendForward(nil, tc.msg, tc.groups, forwardTestNow)
		m, groups, err := decodeForward(frame, forwardTestNow)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range frame {
			frame[i] ^= 0xa5
		}
		checkForwardMessage(t, m, tc.msg)
		checkForwardGroups(t, groups, tc.groups)
	}
}

// TestForwardDecodedSlicesCapped checks that appending to a decoded topic or
// payload cannot write over the bytes after it in the shared block.
func TestForwardDecodedSlicesCapped(t *testing.T) {
	m := forwardCases()[2].msg
	got, _, err := decodeForward(appendForward(nil, m, nil, forwardTestNow), forwardTestNow)
	if err != nil {
		t.Fatal(err)
	}
	if cap(got.Topic) != len(got.Topic) || cap(got.Payload) != len(got.Payload) {
		t.Fatalf("topic cap %d len %d, payload cap %d len %d", cap(got.Topic), len(got.Topic), cap(got.Payload), len(got.Payload))
	}
}

func TestForwardLifetime(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		expiresAt, now int64
		want           uint64
	}{
		{0, 5, 0},
		{10, 10, 1},
		{10, 11, 1},
		{10 + ms, 10, 1},
		{10 + ms + 1, 10, 2},
		{10 + 1, 10, 1},
		{1 << 62, -(1 << 62), maxForwardLifetime},
		{int64(^uint64(0) >> 1), -int64(^uint64(0) >> 1), maxForwardLifetime},
	} {
		if got := forwardLifetime(tc.expiresAt, tc.now); got != tc.want {
			t.Errorf("forwardLifetime(%d, %d) = %d, want %d", tc.expiresAt, tc.now, got, tc.want)
		}
	}
}

func TestForwardExpiryClamped(t *testing.T) {
	f := validRawForward()
	f.life = maxForwardLifetime
	m, _, err := decodeForward(f.bytes(), int64(^uint64(0)>>1)-5)
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpiresAt != int64(^uint64(0)>>1) {
		t.Fatalf("ExpiresAt %d, want the largest int64", m.ExpiresAt)
	}
}

func TestForwardAllocs(t *testing.T) {
	tc := forwardCases()[7] // groups and props
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(200, func() {
		buf = appendForward(buf[:0], tc.msg, tc.groups, forwardTestNow)
	})
	if allocs != 0 {
		t.Fatalf("appendForward into a buffer with room: %v allocations, want 0", allocs)
	}

	// Decoding: the message, one block for topic, payload and property
	// values, the user property list (3 entries: grown three times), the
	// group names and the group list. The publisher is a one-byte string,
	// which Go converts without allocating.
	frame := appendForward(nil, tc.msg, tc.groups, forwardTestNow)
	allocs = testing.AllocsPerRun(200, func() {
		if _, _, err := decodeForward(frame, forwardTestNow); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 7 {
		t.Fatalf("decodeForward: %v allocations, want at most 7", allocs)
	}
}

func FuzzForwardWire(f *testing.F) {
	for _, frame := range validForwardFrames() {
		f.Add(frame)
	}
	f.Add(validRawForward().bytes())
	f.Add([]byte{frameForward, forwardWireVersion})
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, groups, err := decodeForward(frame, forwardTestNow)
		if err != nil {
			if !errors.Is(err, ErrForwardWire) {
				t.Fatalf("error %v does not wrap ErrForwardWire", err)
			}
			if m != nil || groups != nil {
				t.Fatal("error with a result")
			}
			return
		}
		again := appendForward(nil, m, groups, forwardTestNow)
		m2, groups2, err := decodeForward(again, forwardTestNow)
		if err != nil {
			t.Fatalf("re-encoded frame: %v", err)
		}
		checkForwardMessage(t, m2, m)
		if m2.ExpiresAt != m.ExpiresAt {
			t.Fatalf("ExpiresAt %d after a second round trip, want %d", m2.ExpiresAt, m.ExpiresAt)
		}
		checkForwardGroups(t, groups2, groups)
	})
}
