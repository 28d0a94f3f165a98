package cluster

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// Session state frames (integers big-endian, of fixed width) carry a
// broker.SessionState: frameHandover the state of a session, sent by the
// node it leaves to the node that took it over; frameMoved messages that
// reached the old node after the handover.
//
//	kind:u8 version:u8 epoch:u64 clientIDLen:u16 clientID
//	inQoS2Count:u16 {packetID:u16}*inQoS2Count
//	messageCount:u32 {moved}*messageCount
//
//	moved: flags:u8 packetID:u16 subIDCount:u16 {subID:u32}*subIDCount
//	       groupLen:u16 group filterLen:u16 filter
//	       [message]
//
// kind is frameHandover or frameMoved, version handoverWireVersion. The
// client id is 1 to 65535 bytes; the inbound QoS 2 packet ids are non-zero.
// There are at most maxHandoverMessages moved messages. A moved message's
// flags hold its QoS in bits 0-1, Retain in bit 2, Released in bit 3 and,
// in bit 4, whether the message follows (forward_wire.go's message); the
// other bits are zero. A Released message has no message and a packet id;
// every other one has its message. There are at most maxMovedSubIDs
// subscription identifiers, each 1 to 268435455. group and filter name the
// shared group the message came through, both empty for a plain
// subscription, else a non-empty share name and a valid topic filter.
//
// decodeSessionState never panics on peer input; every error it returns
// wraps ErrHandoverWire.
const (
	frameHandover byte = 2 // a session's state, sent by its previous node to its new one
	frameMoved    byte = 3 // messages that reached a moved session's old node after the handover
)

const (
	handoverWireVersion = 1

	movedFlagQoS      = 0x03
	movedFlagRetain   = 0x04
	movedFlagReleased = 0x08
	movedFlagMessage  = 0x10

	// handoverFixedLen is the length of a session state frame without
	// its variable parts: kind, version, epoch and the three counts and
	// lengths.
	handoverFixedLen = 1 + 1 + 8 + 2 + 2 + 4
	// movedMin is the length of the smallest moved message (a Released
	// one without subscription ids or group).
	movedMin = 1 + 2 + 2 + 2 + 2

	maxHandoverMessages = 1 << 20
	maxMovedSubIDs      = 1024
)

// ErrHandoverWire is wrapped by every error decoding a session state frame.
var ErrHandoverWire = errors.New("cluster: malformed session state frame")

// appendSessionState appends a frame of kind (frameHandover or frameMoved)
// carrying st, at now (unix nanoseconds), to dst. The messages' lifetimes
// are taken at now. st must be within the bounds of the format (client id 1
// to 65535 bytes, non-zero inbound packet ids, at most maxHandoverMessages
// messages, each valid as the format says, Released ones with a nil Msg and
// the others with a valid one); anything else is a bug and panics. Safe for
// concurrent use.
func appendSessionState(dst []byte, kind byte, st *broker.SessionState, now int64) []byte {
	if kind != frameHandover && kind != frameMoved {
		panic("BUG: cluster: session state frame of an unknown kind")
	}
	if len(st.ClientID) == 0 || len(st.ClientID) > codec.MaxStringLength {
		panic("BUG: cluster: session state with a client id of invalid length")
	}
	if len(st.InQoS2) > math.MaxUint16 {
		panic("BUG: cluster: session state with too many inbound QoS 2 packet ids")
	}
	if len(st.Messages) > maxHandoverMessages {
		panic("BUG: cluster: session state with too many messages")
	}
	size := handoverFixedLen + len(st.ClientID) + 2*len(st.InQoS2)
	for i := range st.Messages {
		size += movedMessageBound(&st.Messages[i])
	}
	dst = slices.Grow(dst, size)

	dst = append(dst, kind, handoverWireVersion)
	dst = binary.BigEndian.AppendUint64(dst, st.Epoch)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(st.ClientID)))
	dst = append(dst, st.ClientID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(st.InQoS2)))
	for _, id := range st.InQoS2 {
		if id == 0 {
			panic("BUG: cluster: session state with inbound QoS 2 packet id 0")
		}
		dst = binary.BigEndian.AppendUint16(dst, id)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(st.Messages)))
	for i := range st.Messages {
		dst = appendMovedMessage(dst, &st.Messages[i], now)
	}
	return dst
}

// movedMessageBound checks that mm can be encoded (panicking on a bug) and
// returns an upper bound of its encoded length.
func movedMessageBound(mm *broker.MovedMessage) int {
	if mm.QoS > 2 {
		panic("BUG: cluster: moved message with QoS 3")
	}
	if mm.Released != (mm.Msg == nil) {
		panic("BUG: cluster: moved message: Released and a message, or neither")
	}
	if mm.Released && mm.PacketID == 0 {
		panic("BUG: cluster: released moved message without a packet id")
	}
	if len(mm.SubIDs) > maxMovedSubIDs {
		panic("BUG: cluster: moved message with too many subscription ids")
	}
	for _, id := range mm.SubIDs {
		if id == 0 || id > codec.MaxSubscriptionID {
			panic("BUG: cluster: moved message with an invalid subscription id")
		}
	}
	if (len(mm.Group) == 0) != (len(mm.Filter) == 0) || len(mm.Group) > codec.MaxStringLength || len(mm.Filter) > codec.MaxStringLength {
		panic("BUG: cluster: moved message with a shared group name or filter of invalid length")
	}
	n := movedMin + 4*len(mm.SubIDs) + len(mm.Group) + len(mm.Filter)
	if mm.Msg != nil {
		n += wireMessageBound(mm.Msg)
	}
	return n
}

// appendMovedMessage appends mm, which passed movedMessageBound.
func appendMovedMessage(dst []byte, mm *broker.MovedMessage, now int64) []byte {
	flags := mm.QoS
	if mm.Retain {
		flags |= movedFlagRetain
	}
	if mm.Released {
		flags |= movedFlagReleased
	}
	if mm.Msg != nil {
		flags |= movedFlagMessage
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, mm.PacketID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(mm.SubIDs)))
	for _, id := range mm.SubIDs {
		dst = binary.BigEndian.AppendUint32(dst, id)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(mm.Group)))
	dst = append(dst, mm.Group...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(mm.Filter)))
	dst = append(dst, mm.Filter...)
	if mm.Msg != nil {
		dst = appendWireMessage(dst, mm.Msg, now)
	}
	return dst
}

// decodeSessionState decodes a frameHandover or frameMoved body (kind byte
// included) and returns its kind and state. frame is borrowed: the state
// owns copies of everything (each message's topic, payload and property
// values share one new block; messages of the same group share its name
// strings). Messages' ExpiresAt are rebuilt from the remaining lifetimes the
// sender sent, relative to now. Every count is checked against the bytes
// left before anything is allocated for it. It returns an error wrapping
// ErrHandoverWire, never panics, on any malformed input. Safe for
// concurrent use.
func decodeSessionState(frame []byte, now int64) (kind byte, st *broker.SessionState, err error) {
	r := wireReader{b: frame, sentinel: ErrHandoverWire}
	kind = r.u8()
	if r.err == nil && kind != frameHandover && kind != frameMoved {
		r.fail("not a session state frame")
	}
	if v := r.u8(); r.err == nil && v != handoverWireVersion {
		r.fail("unknown version")
	}
	epoch := r.u64()
	clientID := r.bytes16()
	if r.err == nil && len(clientID) == 0 {
		r.fail("empty client id")
	}
	st = &broker.SessionState{Epoch: epoch}
	st.InQoS2 = r.packetIDs()
	count := r.u32()
	if r.err == nil && count > maxHandoverMessages {
		r.fail("too many messages")
	}
	if r.err == nil && count > uint64(r.left()/movedMin) {
		r.fail("truncated") // before allocating anything for count
	}
	if r.err == nil && count > 0 {
		st.Messages = make([]broker.MovedMessage, count)
		var group, filter string
		for i := range st.Messages {
			if !r.moved(&st.Messages[i], now, &group, &filter) {
				break
			}
		}
	}
	if r.err == nil && r.off != len(r.b) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return 0, nil, r.err
	}
	st.ClientID = string(clientID)
	return kind, st, nil
}

// packetIDs reads the inbound QoS 2 packet ids, nil for none.
func (r *wireReader) packetIDs() []uint16 {
	n := r.u16()
	b := r.take(2 * n) // checks n against the bytes left
	if r.err != nil || n == 0 {
		return nil
	}
	for i := 0; i < len(b); i += 2 {
		if b[i] == 0 && b[i+1] == 0 {
			r.fail("inbound QoS 2 packet id 0") // [MQTT-2.2.1-3]
			return nil
		}
	}
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return ids
}

// moved reads one moved message into mm and reports whether it did.
// group and filter are the names of the previous shared message, reused
// (and updated) so that messages of one group share one string each.
func (r *wireReader) moved(mm *broker.MovedMessage, now int64, group, filter *string) bool {
	flags := r.u8()
	if r.err == nil && flags&^(movedFlagQoS|movedFlagRetain|movedFlagReleased|movedFlagMessage) != 0 {
		r.fail("unknown moved message flags")
	}
	qos := flags & movedFlagQoS
	if r.err == nil && qos > 2 {
		r.fail("moved message with QoS 3")
	}
	released := flags&movedFlagReleased != 0
	hasMsg := flags&movedFlagMessage != 0
	if r.err == nil && released == hasMsg {
		r.fail("moved message: released with a message, or neither")
	}
	packetID := uint16(r.u16())
	if r.err == nil && released && packetID == 0 {
		r.fail("released message without a packet id") // [MQTT-2.2.1-3]
	}
	n := r.u16()
	ids := r.take(4 * n) // checks n against the bytes left
	if r.err == nil && n > maxMovedSubIDs {
		r.fail("too many subscription ids")
	}
	for i := 0; r.err == nil && i < len(ids); i += 4 {
		if id := binary.BigEndian.Uint32(ids[i:]); id == 0 || id > codec.MaxSubscriptionID {
			r.fail("invalid subscription id") // [MQTT-3.3.4-3]
		}
	}
	g := r.bytes16()
	f := r.bytes16()
	if r.err == nil && (len(g) == 0) != (len(f) == 0) {
		r.fail("shared group without a filter, or a filter without a group")
	}
	if r.err == nil && len(f) != 0 && codec.ValidFilterLevels(f) != nil {
		r.fail("invalid group filter") // [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]
	}
	var m *broker.Message
	if hasMsg {
		m = r.message(now)
	}
	if r.err != nil {
		return false
	}

	*mm = broker.MovedMessage{Msg: m, QoS: qos, Retain: flags&movedFlagRetain != 0, PacketID: packetID, Released: released}
	if n > 0 {
		mm.SubIDs = make([]uint32, n)
		for i := range mm.SubIDs {
			mm.SubIDs[i] = binary.BigEndian.Uint32(ids[4*i:])
		}
	}
	if len(g) != 0 {
		if string(g) != *group {
			*group = string(g)
		}
		if string(f) != *filter {
			*filter = string(f)
		}
		mm.Group, mm.Filter = *group, *filter
	}
	return true
}
