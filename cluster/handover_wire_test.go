package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

type sessionCase struct {
	name string
	kind byte
	st   *broker.SessionState
}

// sessionCases are the round-trip cases; small ones (under 8 KiB encoded)
// also seed the truncation test and the fuzzer.
func sessionCases() []sessionCase {
	props := forwardTestProps()
	fc := forwardCases()
	full := &broker.SessionState{
		ClientID: "client-1",
		Epoch:    0x0102_0304_0506_0708,
		Messages: []broker.MovedMessage{
			// inflight: QoS 1, QoS 2 not yet received, QoS 2 released, QoS 0
			{Msg: fc[2].msg, QoS: 1, PacketID: 1, SubIDs: []uint32{1, codec.MaxSubscriptionID}},
			{Msg: &broker.Message{Topic: []byte("a/b"), Payload: []byte("two"), QoS: 2, Retain: true, Props: props, ID: 9,
				ExpiresAt: forwardTestNow + 5*int64(time.Second)}, QoS: 2, Retain: true, PacketID: 65535},
			{QoS: 2, PacketID: 7, Released: true},
			{Msg: fc[0].msg, QoS: 0, PacketID: 0},
			// queued, some through shared groups
			{Msg: fc[6].msg, QoS: 1, Group: "workers", Filter: "jobs/+", SubIDs: []uint32{5}},
			{Msg: fc[6].msg, QoS: 1, Group: "workers", Filter: "jobs/+"},
			{Msg: fc[7].msg, QoS: 2, Retain: true, Group: "g", Filter: "a/+/c", SubIDs: []uint32{3, 2, 1}},
			{Msg: &broker.Message{Topic: []byte("old"), Payload: []byte("stale"), QoS: 1, ExpiresAt: forwardTestNow - int64(time.Second)}, QoS: 1},
		},
		InQoS2: []uint16{1, 2, 65535, 300},
	}
	released := &broker.SessionState{ClientID: "r", Epoch: 1, Messages: []broker.MovedMessage{{QoS: 2, PacketID: 1, Released: true}}}
	many := &broker.SessionState{ClientID: "many", Epoch: 3}
	for i := range 5000 {
		m := &broker.Message{Topic: fmt.Appendf(nil, "t/%d", i), Payload: fmt.Appendf(nil, "payload %d", i), QoS: byte(i % 3), ID: uint64(i) + 1}
		mm := broker.MovedMessage{Msg: m, QoS: m.QoS}
		if i%3 != 0 && i < 100 {
			mm.PacketID = uint16(i)
		}
		if i%7 == 0 {
			mm.Group, mm.Filter = fmt.Sprintf("g%d", i%2), "t/+"
		}
		if i%5 == 0 {
			mm.SubIDs = []uint32{uint32(i) + 1}
		}
		many.Messages = append(many.Messages, mm)
	}
	maxSubIDs := make([]uint32, maxMovedSubIDs)
	for i := range maxSubIDs {
		maxSubIDs[i] = uint32(i + 1)
	}
	inAll := make([]uint16, 65535)
	for i := range inAll {
		inAll[i] = uint16(i + 1)
	}
	big := &broker.SessionState{
		ClientID: strings.Repeat("c", codec.MaxStringLength),
		Epoch:    ^uint64(0),
		Messages: []broker.MovedMessage{{Msg: fc[len(fc)-2].msg, QoS: 1, SubIDs: maxSubIDs,
			Group: strings.Repeat("g", codec.MaxStringLength), Filter: strings.Repeat("f", codec.MaxStringLength)}},
		InQoS2: inAll,
	}
	return []sessionCase{
		{name: "empty", kind: frameHandover, st: &broker.SessionState{ClientID: "c"}},
		{name: "empty moved", kind: frameMoved, st: &broker.SessionState{ClientID: "c", Epoch: 2, Messages: []broker.MovedMessage{}, InQoS2: []uint16{}}},
		{name: "inqos2 only", kind: frameHandover, st: &broker.SessionState{ClientID: "c", InQoS2: []uint16{42}}},
		{name: "released only", kind: frameHandover, st: released},
		{name: "full", kind: frameHandover, st: full},
		{name: "full moved", kind: frameMoved, st: full},
		{name: "many", kind: frameHandover, st: many},
		{name: "max lengths", kind: frameMoved, st: big},
	}
}

func checkSessionState(t *testing.T, got, want *broker.SessionState, recvNow int64, exactExpiry bool) {
	t.Helper()
	if got.ClientID != want.ClientID || got.Epoch != want.Epoch {
		t.Fatalf("client %.40q epoch %#x, want %.40q %#x", got.ClientID, got.Epoch, want.ClientID, want.Epoch)
	}
	if !slices.Equal(got.InQoS2, want.InQoS2) {
		t.Fatalf("InQoS2 %v, want %v", got.InQoS2, want.InQoS2)
	}
	if len(got.Messages) != len(want.Messages) {
		t.Fatalf("%d messages, want %d", len(got.Messages), len(want.Messages))
	}
	for i := range got.Messages {
		g, w := &got.Messages[i], &want.Messages[i]
		if g.QoS != w.QoS || g.Retain != w.Retain || g.PacketID != w.PacketID || g.Released != w.Released ||
			g.Group != w.Group || g.Filter != w.Filter || !slices.Equal(g.SubIDs, w.SubIDs) {
			t.Fatalf("message %d: %+v, want %+v", i, *g, *w)
		}
		if (g.Msg == nil) != (w.Msg == nil) {
			t.Fatalf("message %d: Msg %v, want %v", i, g.Msg, w.Msg)
		}
		if g.Msg == nil {
			continue
		}
		checkForwardMessage(t, g.Msg, w.Msg)
		if exactExpiry {
			if g.Msg.ExpiresAt != w.Msg.ExpiresAt {
				t.Fatalf("message %d: ExpiresAt %d, want %d", i, g.Msg.ExpiresAt, w.Msg.ExpiresAt)
			}
		} else {
			checkForwardExpiry(t, g.Msg.ExpiresAt, w.Msg.ExpiresAt, recvNow)
		}
	}
}

func TestHandoverRoundTrip(t *testing.T) {
	for _, tc := range sessionCases() {
		t.Run(tc.name, func(t *testing.T) {
			frame := appendSessionState([]byte("prefix"), tc.kind, tc.st, forwardTestNow)
			if string(frame[:6]) != "prefix" {
				t.Fatal("appendSessionState overwrote dst")
			}
			frame = frame[6:]
			for _, skew := range []int64{0, -3*int64(time.Hour) + 17, 2*int64(time.Second) + 999_999} {
				recvNow := forwardTestNow + skew
				kind, st, err := decodeSessionState(frame, recvNow)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if kind != tc.kind {
					t.Fatalf("kind %d, want %d", kind, tc.kind)
				}
				checkSessionState(t, st, tc.st, recvNow, false)
			}
		})
	}
}

// TestHandoverGolden pins the wire format.
func TestHandoverGolden(t *testing.T) {
	st := &broker.SessionState{
		ClientID: "c1",
		Epoch:    5,
		Messages: []broker.MovedMessage{
			{QoS: 2, PacketID: 0x0102, Released: true},
			{Msg: &broker.Message{Topic: []byte("a"), Payload: []byte("p"), QoS: 2, ID: 3, ExpiresAt: forwardTestNow + 2*int64(time.Millisecond)},
				QoS: 1, Retain: true, SubIDs: []uint32{0x0a0b0c}, Group: "g", Filter: "#"},
		},
		InQoS2: []uint16{9},
	}
	got := appendSessionState(nil, frameMoved, st, forwardTestNow)
	want := []byte{
		0x03, 0x01, // kind, version
		0, 0, 0, 0, 0, 0, 0, 5, // epoch
		0, 2, 'c', '1', // client id
		0, 1, 0, 9, // inbound QoS 2 packet ids
		0, 0, 0, 2, // message count
		0x0a, 0x01, 0x02, 0, 0, 0, 0, 0, 0, // released QoS 2, packet id 0x0102, no sub ids, no group
		0x15, 0, 0, 0, 1, 0, 0x0a, 0x0b, 0x0c, 0, 1, 'g', 0, 1, '#', // message, retain, QoS 1, queued, a sub id, a group
		0x02,                   // message flags: QoS 2
		0, 0, 0, 0, 0, 0, 0, 2, // lifetime 2 ms
		0, 0, 0, 0, 0, 0, 0, 3, // id
		0, 1, 'a', // topic
		0, 0, // publisher
		0, 0, 0, 1, 'p', // payload
		0, // property block
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n%x, want\n%x", got, want)
	}
}

// validSessionFrames returns the encodings of the small round-trip cases.
func validSessionFrames() [][]byte {
	var frames [][]byte
	for _, tc := range sessionCases() {
		if f := appendSessionState(nil, tc.kind, tc.st, forwardTestNow); len(f) <= 8192 {
			frames = append(frames, f)
		}
	}
	return frames
}

func checkSessionRejected(t *testing.T, frame []byte, what string) {
	t.Helper()
	kind, st, err := decodeSessionState(frame, forwardTestNow)
	if err == nil {
		t.Fatalf("%s: decoded, want an error", what)
	}
	if !errors.Is(err, ErrHandoverWire) {
		t.Fatalf("%s: error %v does not wrap ErrHandoverWire", what, err)
	}
	if errors.Is(err, ErrForwardWire) {
		t.Fatalf("%s: error %v wraps ErrForwardWire", what, err)
	}
	if kind != 0 || st != nil {
		t.Fatalf("%s: error with a result", what)
	}
}

func TestHandoverTruncated(t *testing.T) {
	frames := validSessionFrames()
	if len(frames) < 6 {
		t.Fatalf("only %d small frames", len(frames))
	}
	for k, frame := range frames {
		for i := range len(frame) {
			checkSessionRejected(t, frame[:i], fmt.Sprintf("frame %d cut to %d of %d bytes", k, i, len(frame)))
		}
		checkSessionRejected(t, append(bytes.Clone(frame), 0), fmt.Sprintf("frame %d with a trailing byte", k))
	}
}

// rawSession builds a session state frame field by field, with no checks,
// for frames appendSessionState refuses to write.
type rawSession struct {
	kind, version byte
	epoch         uint64
	clientID      string
	inCount       int // len(inQoS2) when -1
	inQoS2        []uint16
	msgCount      int // len(msgs) when -1
	msgs          []rawMoved
}

type rawMoved struct {
	flags         byte
	packetID      uint16
	subIDCount    int // len(subIDs) when -1
	subIDs        []uint32
	group, filter string
	msg           []byte // a wire message, or anything
}

func validRawSession() rawSession {
	msg := appendWireMessage(nil, &broker.Message{Topic: []byte("a/b"), Payload: []byte("hi"), QoS: 1, ID: 4}, forwardTestNow)
	return rawSession{kind: frameHandover, version: handoverWireVersion, epoch: 1, clientID: "c", inCount: -1, inQoS2: []uint16{5},
		msgCount: -1, msgs: []rawMoved{
			{flags: 0x01 | movedFlagMessage, packetID: 3, subIDCount: -1, subIDs: []uint32{1}, group: "g", filter: "a/+", msg: msg},
			{flags: 0x02 | movedFlagReleased, packetID: 4, subIDCount: -1},
		}}
}

func (s rawSession) bytes() []byte {
	b := []byte{s.kind, s.version}
	b = binary.BigEndian.AppendUint64(b, s.epoch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.clientID)))
	b = append(b, s.clientID...)
	n := s.inCount
	if n < 0 {
		n = len(s.inQoS2)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, id := range s.inQoS2 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	n = s.msgCount
	if n < 0 {
		n = len(s.msgs)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, m := range s.msgs {
		b = append(b, m.flags)
		b = binary.BigEndian.AppendUint16(b, m.packetID)
		n := m.subIDCount
		if n < 0 {
			n = len(m.subIDs)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		for _, id := range m.subIDs {
			b = binary.BigEndian.AppendUint32(b, id)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.group)))
		b = append(b, m.group...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.filter)))
		b = append(b, m.filter...)
		b = append(b, m.msg...)
	}
	return b
}

func TestHandoverRejects(t *testing.T) {
	if _, _, err := decodeSessionState(validRawSession().bytes(), forwardTestNow); err != nil {
		t.Fatalf("the valid raw frame: %v", err)
	}
	badTopic := appendWireMessage(nil, &broker.Message{Topic: []byte("a/#")}, forwardTestNow)
	badProps := appendWireMessage(nil, &broker.Message{Topic: []byte("a")}, forwardTestNow)
	badProps[len(badProps)-1] = 2 // a property block that runs past the frame
	for _, tc := range []struct {
		name string
		edit func(*rawSession)
	}{
		{"forward kind", func(s *rawSession) { s.kind = frameForward }},
		{"kind 0", func(s *rawSession) { s.kind = 0 }},
		{"kind 4", func(s *rawSession) { s.kind = 4 }},
		{"version 0", func(s *rawSession) { s.version = 0 }},
		{"version 2", func(s *rawSession) { s.version = 2 }},
		{"empty client id", func(s *rawSession) { s.clientID = "" }},
		{"inbound packet id 0", func(s *rawSession) { s.inQoS2 = []uint16{1, 0} }},
		{"inbound count over the bytes", func(s *rawSession) { s.inCount = 65535 }},
		{"inbound count short", func(s *rawSession) { s.inCount = 0 }},
		{"message count over the limit", func(s *rawSession) { s.msgCount = maxHandoverMessages + 1 }},
		{"message count max uint32", func(s *rawSession) { s.msgCount = int(^uint32(0)) }},
		{"message count over the bytes", func(s *rawSession) { s.msgCount = 1000 }},
		{"message count short", func(s *rawSession) { s.msgCount = 1 }},
		{"unknown moved flag", func(s *rawSession) { s.msgs[0].flags |= 0x20 }},
		{"moved QoS 3", func(s *rawSession) { s.msgs[0].flags |= 0x03 }},
		{"no message", func(s *rawSession) { s.msgs[0].flags &^= movedFlagMessage }},
		{"released with a message", func(s *rawSession) { s.msgs[0].flags |= movedFlagReleased }},
		{"released with message flag", func(s *rawSession) { s.msgs[1].flags |= movedFlagMessage }},
		{"released without packet id", func(s *rawSession) { s.msgs[1].packetID = 0 }},
		{"sub id 0", func(s *rawSession) { s.msgs[0].subIDs = []uint32{1, 0} }},
		{"sub id too large", func(s *rawSession) { s.msgs[0].subIDs = []uint32{codec.MaxSubscriptionID + 1} }},
		{"sub id count over the limit", func(s *rawSession) { s.msgs[0].subIDs = make([]uint32, maxMovedSubIDs+1); s.msgs[0].subIDs[0] = 1 }},
		{"sub id count over the bytes", func(s *rawSession) { s.msgs[1].subIDCount = 1000 }},
		{"group without filter", func(s *rawSession) { s.msgs[0].filter = "" }},
		{"filter without group", func(s *rawSession) { s.msgs[0].group = "" }},
		{"invalid filter", func(s *rawSession) { s.msgs[0].filter = "a/#/b" }},
		{"invalid topic", func(s *rawSession) { s.msgs[0].msg = badTopic }},
		{"bad properties", func(s *rawSession) { s.msgs[0].msg = badProps }},
		{"message cut short", func(s *rawSession) { s.msgs[0].msg = s.msgs[0].msg[:10] }},
		{"message flags", func(s *rawSession) { s.msgs[0].msg = append([]byte{0x08}, s.msgs[0].msg[1:]...) }},
	} {
		s := validRawSession()
		tc.edit(&s)
		checkSessionRejected(t, s.bytes(), tc.name)
	}
	checkSessionRejected(t, nil, "nil frame")
	checkSessionRejected(t, []byte{}, "empty frame")
	checkSessionRejected(t, appendForward(nil, &broker.Message{Topic: []byte("t")}, nil, forwardTestNow), "a forward frame")
	if _, _, err := decodeForward(appendSessionState(nil, frameHandover, &broker.SessionState{ClientID: "c"}, forwardTestNow), forwardTestNow); !errors.Is(err, ErrForwardWire) {
		t.Fatalf("decodeForward of a handover frame: %v, want ErrForwardWire", err)
	}
}

func TestHandoverBadPropsErrorWrapsCodec(t *testing.T) {
	s := validRawSession()
	msg := appendWireMessage(nil, &broker.Message{Topic: []byte("a")}, forwardTestNow)
	s.msgs[0].msg = append(msg[:len(msg)-1], 2, 0x7f, 0)
	_, _, err := decodeSessionState(s.bytes(), forwardTestNow)
	if !errors.Is(err, ErrHandoverWire) || !errors.Is(err, codec.ErrUnknownProperty) {
		t.Fatalf("error %v, want ErrHandoverWire wrapping codec.ErrUnknownProperty", err)
	}
	if !strings.HasPrefix(err.Error(), "cluster: handover: ") {
		t.Fatalf("error %q", err)
	}
}

func TestHandoverEncodeBugsPanic(t *testing.T) {
	msg := &broker.Message{Topic: []byte("t")}
	state := func(mm broker.MovedMessage) *broker.SessionState {
		return &broker.SessionState{ClientID: "c", Messages: []broker.MovedMessage{mm}}
	}
	for _, tc := range []struct {
		name string
		kind byte
		st   *broker.SessionState
	}{
		{"forward kind", frameForward, &broker.SessionState{ClientID: "c"}},
		{"empty client id", frameHandover, &broker.SessionState{}},
		{"client id too long", frameHandover, &broker.SessionState{ClientID: strings.Repeat("c", codec.MaxStringLength+1)}},
		{"inbound id 0", frameHandover, &broker.SessionState{ClientID: "c", InQoS2: []uint16{0}}},
		{"too many inbound ids", frameHandover, &broker.SessionState{ClientID: "c", InQoS2: make([]uint16, 65536)}},
		{"too many messages", frameHandover, &broker.SessionState{ClientID: "c", Messages: make([]broker.MovedMessage, maxHandoverMessages+1)}},
		{"QoS 3", frameHandover, state(broker.MovedMessage{Msg: msg, QoS: 3})},
		{"no message", frameHandover, state(broker.MovedMessage{QoS: 1})},
		{"released with a message", frameHandover, state(broker.MovedMessage{Msg: msg, QoS: 2, PacketID: 1, Released: true})},
		{"released without packet id", frameHandover, state(broker.MovedMessage{QoS: 2, Released: true})},
		{"sub id 0", frameHandover, state(broker.MovedMessage{Msg: msg, SubIDs: []uint32{0}})},
		{"sub id too large", frameHandover, state(broker.MovedMessage{Msg: msg, SubIDs: []uint32{codec.MaxSubscriptionID + 1}})},
		{"too many sub ids", frameHandover, state(broker.MovedMessage{Msg: msg, SubIDs: make([]uint32, maxMovedSubIDs+1)})},
		{"group without filter", frameHandover, state(broker.MovedMessage{Msg: msg, Group: "g"})},
		{"filter without group", frameHandover, state(broker.MovedMessage{Msg: msg, Filter: "f"})},
		{"bad message", frameHandover, state(broker.MovedMessage{Msg: &broker.Message{}})},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: appendSessionState did not panic", tc.name)
				}
			}()
			appendSessionState(nil, tc.kind, tc.st, forwardTestNow)
		}()
	}
}

// TestHandoverNoAlias checks that a decoded state owns its bytes: the peer
// link reuses its read buffer.
func TestHandoverNoAlias(t *testing.T) {
	for _, tc := range sessionCases() {
		frame := appendSessionState(nil, tc.kind, tc.st, forwardTestNow)
		_, st, err := decodeSessionState(frame, forwardTestNow)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range frame {
			frame[i] ^= 0xa5
		}
		checkSessionState(t, st, tc.st, forwardTestNow, false)
	}
}

// TestHandoverDecodedSlicesCapped checks that appending to a decoded
// message's topic or payload, or to its subscription ids, cannot write over
// what follows them.
func TestHandoverDecodedSlicesCapped(t *testing.T) {
	tc := sessionCases()[4] // full
	_, st, err := decodeSessionState(appendSessionState(nil, tc.kind, tc.st, forwardTestNow), forwardTestNow)
	if err != nil {
		t.Fatal(err)
	}
	for i, mm := range st.Messages {
		if cap(mm.SubIDs) != len(mm.SubIDs) {
			t.Fatalf("message %d: sub ids cap %d len %d", i, cap(mm.SubIDs), len(mm.SubIDs))
		}
		if m := mm.Msg; m != nil && (cap(m.Topic) != len(m.Topic) || cap(m.Payload) != len(m.Payload)) {
			t.Fatalf("message %d: topic cap %d len %d, payload cap %d len %d", i, cap(m.Topic), len(m.Topic), cap(m.Payload), len(m.Payload))
		}
	}
}

func TestHandoverAllocs(t *testing.T) {
	tc := sessionCases()[4] // full
	buf := make([]byte, 0, 8192)
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendSessionState(buf[:0], tc.kind, tc.st, forwardTestNow)
	})
	if allocs != 0 {
		t.Fatalf("appendSessionState into a buffer with room: %v allocations, want 0", allocs)
	}
}

func FuzzSessionStateWire(f *testing.F) {
	for _, frame := range validSessionFrames() {
		f.Add(frame)
	}
	f.Add(validRawSession().bytes())
	f.Add([]byte{frameHandover, handoverWireVersion})
	f.Fuzz(func(t *testing.T, frame []byte) {
		kind, st, err := decodeSessionState(frame, forwardTestNow)
		if err != nil {
			if !errors.Is(err, ErrHandoverWire) {
				t.Fatalf("error %v does not wrap ErrHandoverWire", err)
			}
			if kind != 0 || st != nil {
				t.Fatal("error with a result")
			}
			return
		}
		again := appendSessionState(nil, kind, st, forwardTestNow)
		kind2, st2, err := decodeSessionState(again, forwardTestNow)
		if err != nil {
			t.Fatalf("re-encoded frame: %v", err)
		}
		if kind2 != kind {
			t.Fatalf("kind %d after a second round trip, want %d", kind2, kind)
		}
		checkSessionState(t, st2, st, forwardTestNow, true)
		if third := appendSessionState(nil, kind2, st2, forwardTestNow); !bytes.Equal(third, again) {
			t.Fatalf("re-encoding is not stable:\n%x\n%x", third, again)
		}
	})
}
