package cluster

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// Frame bodies of the peer link (peerlink_wire.go frames, numbers and acks
// them as opaque bytes). The first byte of a body is its kind: frameForward
// here, frameHandover and frameMoved in handover_wire.go.
//
// A forwarded publish (integers big-endian, of fixed width):
//
//	0x01 version:u8
//	     groupCount:u16 {groupLen:u16 group filterLen:u16 filter}*groupCount
//	     message
//
// version is forwardWireVersion. The groups are the shared subscription
// groups the receiver is to serve, at most maxForwardGroups, each a
// non-empty share name and a valid topic filter. The message ends the frame.
//
// A message (the part of a broker.Message that travels; handover frames
// carry it too):
//
//	flags:u8 lifetime:u64 id:u64
//	topicLen:u16 topic pubLen:u16 publisher
//	payloadLen:u32 payload
//	props
//
// flags holds the QoS in bits 0-1 and Retain in bit 2, the other bits zero.
// lifetime is the time the message has left in milliseconds, 0 for no
// expiry: the receiver rebuilds ExpiresAt from its own clock, so the clocks
// of the two nodes need not agree. id is the message's cluster-wide ID (0
// for none). The topic is 1 to 65535 bytes without wildcards; the publisher
// (a client id, maybe empty) at most 65535 bytes. props is the message's v5
// property block as codec.AppendMessageProperties writes it (a varint length
// and the properties); a decoder reads its length first, so it knows the
// size of everything it copies before it copies.
//
// decodeForward never panics on peer input; every error it returns wraps
// ErrForwardWire.
const (
	frameForward byte = 1 // a publish forwarded to this node's subscribers
)

const (
	forwardWireVersion = 1

	wireMsgQoS    = 0x03
	wireMsgRetain = 0x04

	// wireMessageFixedLen is the length of an encoded message without its
	// variable parts: flags, lifetime, id, the three lengths and the
	// smallest property block.
	wireMessageFixedLen = 1 + 8 + 8 + 2 + 2 + 4 + 1
	// forwardFixedLen is the length of a forward frame without its
	// variable parts: kind, version, group count and the message.
	forwardFixedLen = 1 + 1 + 2 + wireMessageFixedLen
	forwardGroupMin = 2 + 1 + 2 + 1 // the smallest encoded group

	maxForwardGroups = 4096
	// maxForwardLifetime (milliseconds) covers the longest Message Expiry
	// Interval, 2^32-1 seconds, rounded up.
	maxForwardLifetime = (1 << 32) * 1000
)

// ErrForwardWire is wrapped by every error decoding a forwarded publish.
var ErrForwardWire = errors.New("cluster: malformed forwarded publish")

// wireError is a decoding error: "cluster: forward: truncated". sentinel is
// the error it wraps for errors.Is (ErrForwardWire or ErrHandoverWire); err,
// when set, is the codec error behind it (a bad property block).
type wireError struct {
	sentinel error
	msg      string
	err      error
}

func (e *wireError) Error() string {
	s := "cluster: forward: "
	if e.sentinel == ErrHandoverWire {
		s = "cluster: handover: "
	}
	s += e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}
func (e *wireError) Is(target error) bool { return target == e.sentinel }
func (e *wireError) Unwrap() error        { return e.err }

// appendForward appends the frame of m, forwarded to a node that is to serve
// groups (shared subscription groups it picks one local member of), at now
// (unix nanoseconds), to dst. m must be a valid broker message (topic 1 to
// 65535 bytes, QoS 0 to 2, publisher and group names within bounds); anything
// else is a bug and panics. Safe for concurrent use.
func appendForward(dst []byte, m *broker.Message, groups []broker.SharedTarget, now int64) []byte {
	if len(groups) > maxForwardGroups {
		panic("BUG: cluster: forwarded message with too many groups")
	}
	size := 1 + 1 + 2 + wireMessageBound(m)
	for i := range groups {
		g, f := groups[i].Group, groups[i].Filter
		if len(g) == 0 || len(g) > codec.MaxStringLength || len(f) == 0 || len(f) > codec.MaxStringLength {
			panic("BUG: cluster: forwarded shared group with a name or filter of invalid length")
		}
		size += 4 + len(g) + len(f)
	}
	dst = slices.Grow(dst, size)

	dst = append(dst, frameForward, forwardWireVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(groups)))
	for i := range groups {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(groups[i].Group)))
		dst = append(dst, groups[i].Group...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(groups[i].Filter)))
		dst = append(dst, groups[i].Filter...)
	}
	return appendWireMessage(dst, m, now)
}

// wireMessageBound checks that m can be encoded (topic 1 to 65535 bytes, QoS
// 0 to 2, publisher at most 65535 bytes, payload under 4 GiB; anything else
// is a bug and panics) and returns an upper bound of its encoded length.
func wireMessageBound(m *broker.Message) int {
	if len(m.Topic) == 0 || len(m.Topic) > codec.MaxStringLength {
		panic("BUG: cluster: message with a topic of invalid length")
	}
	if len(m.Publisher) > codec.MaxStringLength {
		panic("BUG: cluster: message with a publisher id too long")
	}
	if m.QoS > 2 {
		panic("BUG: cluster: message with QoS 3")
	}
	if uint64(len(m.Payload)) > math.MaxUint32 {
		panic("BUG: cluster: message payload over 4 GiB")
	}
	return wireMessageFixedLen - 1 + len(m.Topic) + len(m.Publisher) + len(m.Payload) + wirePropsBound(&m.Props)
}

// appendWireMessage appends the message part of a frame: m, whose lifetime
// is taken at now (unix nanoseconds). m must have passed wireMessageBound.
func appendWireMessage(dst []byte, m *broker.Message, now int64) []byte {
	flags := m.QoS
	if m.Retain {
		flags |= wireMsgRetain
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, forwardLifetime(m.ExpiresAt, now))
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Publisher)))
	dst = append(dst, m.Publisher...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Payload)))
	dst = append(dst, m.Payload...)
	return codec.AppendMessageProperties(dst, &m.Props)
}

// forwardLifetime is the lifetime to send for a message expiring at
// expiresAt, at now: 0 for never, else the milliseconds left rounded up, at
// least 1 (an expired message is sent with 1 ms, so the receiver drops it
// almost at once), at most maxForwardLifetime.
func forwardLifetime(expiresAt, now int64) uint64 {
	if expiresAt == 0 {
		return 0
	}
	if expiresAt <= now {
		return 1
	}
	left := uint64(expiresAt) - uint64(now) // exact even where expiresAt-now overflows int64
	ms := left/uint64(time.Millisecond) + min(left%uint64(time.Millisecond), 1)
	return min(ms, maxForwardLifetime)
}

// wirePropsBound is an upper bound of the length of the property block of a
// message (PUBLISH properties only), to grow the buffer once; a message with
// other properties is still encoded right, with one more growth.
func wirePropsBound(p *codec.Properties) int {
	n := 4 + // property length
		2 + 5 + 3 + // payload format, message expiry, topic alias
		3 + len(p.ContentType) + 3 + len(p.ResponseTopic) + 3 + len(p.CorrelationData) +
		5*len(p.SubscriptionIDs)
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n
}

// decodeForward decodes a frameForward body (kind byte included). frame is
// borrowed: the returned Message and targets own copies of everything (the
// topic, payload and property values share one new block). The Message's
// ExpiresAt is rebuilt from the remaining lifetime the sender sent, relative
// to now, so that clocks of the two nodes need not agree. It returns an error
// wrapping ErrForwardWire, never panics, on any malformed input. Safe for
// concurrent use.
func decodeForward(frame []byte, now int64) (*broker.Message, []broker.SharedTarget, error) {
	r := wireReader{b: frame, sentinel: ErrForwardWire}
	if k := r.u8(); r.err == nil && k != frameForward {
		r.fail("not a forward frame")
	}
	if v := r.u8(); r.err == nil && v != forwardWireVersion {
		r.fail("unknown version")
	}
	groups := r.groups()
	m := r.message(now)
	if r.err == nil && r.off != len(r.b) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return m, groups, nil
}

// wireReader reads a frame; the first error sticks and later reads return
// zero values. Its errors wrap sentinel.
type wireReader struct {
	b        []byte
	off      int
	err      error
	sentinel error
}

func (r *wireReader) fail(msg string) {
	if r.err == nil {
		r.err = &wireError{sentinel: r.sentinel, msg: msg}
	}
}

// take returns the next n bytes, a view of b, or nil and an error when fewer
// are left.
func (r *wireReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.fail("truncated")
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

// left is the number of bytes not read yet.
func (r *wireReader) left() int { return len(r.b) - r.off }

func (r *wireReader) u8() byte {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *wireReader) u16() int {
	if s := r.take(2); s != nil {
		return int(binary.BigEndian.Uint16(s))
	}
	return 0
}

func (r *wireReader) u32() uint64 {
	if s := r.take(4); s != nil {
		return uint64(binary.BigEndian.Uint32(s))
	}
	return 0
}

func (r *wireReader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// bytes16 reads a string with a u16 length, as a view of b.
func (r *wireReader) bytes16() []byte {
	return r.take(r.u16())
}

// bytes32 reads bytes with a u32 length, as a view of b; the length is
// checked against the bytes left before anything else is done with it.
func (r *wireReader) bytes32() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.fail("truncated")
		return nil
	}
	return r.take(int(n))
}

// propBlock returns the next property block (its varint length and the
// properties), as a view of b, without decoding the properties.
func (r *wireReader) propBlock() []byte {
	if r.err != nil {
		return nil
	}
	plen, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			r.fail("property length over four bytes") // section 1.5.5
			return nil
		}
		if i >= r.left() {
			r.fail("truncated")
			return nil
		}
		c := r.b[r.off+i]
		plen += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return r.take(i + 1 + plen) // plen < 2^28: no overflow
		}
		mult <<= 7
	}
}

// message reads a message (see the format above): its flags, lifetime and
// topic are checked first, then topic, payload and the property block are
// copied into one new block and the properties decoded from there, so that
// their values are views of it. ExpiresAt is rebuilt relative to now.
func (r *wireReader) message(now int64) *broker.Message {
	flags := r.u8()
	if r.err == nil && flags&^(wireMsgQoS|wireMsgRetain) != 0 {
		r.fail("unknown message flags")
	}
	qos := flags & wireMsgQoS
	if r.err == nil && qos > 2 {
		r.fail("QoS 3") // [MQTT-3.3.1-4]
	}
	life := r.u64()
	if r.err == nil && life > maxForwardLifetime {
		r.fail("lifetime too long")
	}
	id := r.u64()
	topic := r.bytes16()
	if r.err == nil && codec.ValidateTopicName(topic) != nil {
		r.fail("invalid topic") // [MQTT-4.7.3-1] [MQTT-3.3.2-2]
	}
	publisher := r.bytes16()
	payload := r.bytes32()
	props := r.propBlock()
	if r.err != nil {
		return nil
	}

	block := make([]byte, len(topic)+len(payload)+len(props))
	t := copy(block, topic)
	p := t + copy(block[t:], payload)
	copy(block[p:], props)
	m := &broker.Message{
		Topic:     block[:t:t],
		Payload:   block[t:p:p],
		QoS:       qos,
		Retain:    flags&wireMsgRetain != 0,
		Publisher: string(publisher),
		ID:        id,
	}
	n, err := codec.DecodeMessageProperties(block[p:], &m.Props)
	if err != nil {
		r.err = &wireError{sentinel: r.sentinel, msg: "bad properties", err: err}
		return nil
	}
	if n != len(props) {
		r.fail("bad property block length") // propBlock took exactly the block
		return nil
	}
	if life != 0 {
		add := int64(life) * int64(time.Millisecond) // at most about 4.3e18: no overflow
		if now > math.MaxInt64-add {
			m.ExpiresAt = math.MaxInt64
		} else {
			m.ExpiresAt = now + add
		}
	}
	return m
}

// groups reads the group list. The names are checked first, then copied
// into one string that the targets' names are slices of.
func (r *wireReader) groups() []broker.SharedTarget {
	n := r.u16()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > maxForwardGroups {
		r.fail("too many groups")
		return nil
	}
	if n > r.left()/forwardGroupMin {
		r.fail("truncated") // before allocating anything for n
		return nil
	}
	start := r.off
	for i := 0; i < n && r.err == nil; i++ {
		if g := r.bytes16(); r.err == nil && len(g) == 0 {
			r.fail("empty group name")
		}
		if f := r.bytes16(); r.err == nil && codec.ValidFilterLevels(f) != nil {
			r.fail("invalid group filter") // [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]
		}
	}
	if r.err != nil {
		return nil
	}
	s := string(r.b[start:r.off])
	out := make([]broker.SharedTarget, n)
	off := 0
	next := func() string {
		l := int(s[off])<<8 | int(s[off+1])
		v := s[off+2 : off+2+l]
		off += 2 + l
		return v
	}
	for i := range out {
		out[i].Group = next()
		out[i].Filter = next()
	}
	return out
}
