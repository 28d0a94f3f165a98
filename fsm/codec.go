package fsm

import (
	"encoding/binary"
	"fmt"
)

// CommandVersion is the version byte that starts every encoded Batch.
const CommandVersion byte = 1

// MaxBatchOps is the largest number of ops in one Batch: an op's position in
// its batch is the low 16 bits of a claim's epoch.
const MaxBatchOps = 1 << 16

// Flag bits of the encoded fields.
const (
	claimCleanStart = 1 << 0
	claimHasWill    = 1 << 1
	willRetain      = 1 << 0
	willUser        = 1 << 1 // a user name follows the properties
	discKeepWill    = 1 << 0
	subNoLocal      = 1 << 0
	subRAP          = 1 << 1
)

// AppendBatch appends the encoding of b to dst and returns the extended
// slice:
//
//	version(1) node(str) boot(uvarint) seq(uvarint) nops(uvarint)
//	nops × { op(1) bodylen(uvarint) body }
//
// Strings and byte fields are a uvarint length and the bytes; times are
// zig-zag varints; flags are one byte each. A batch of more than
// MaxBatchOps ops encodes, but every replica rejects it. Safe for concurrent
// use (it only reads b).
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, CommandVersion)
	dst = appendString(dst, b.Node)
	dst = binary.AppendUvarint(dst, b.Boot)
	dst = binary.AppendUvarint(dst, b.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(b.Ops)))
	for _, c := range b.Ops {
		dst = append(dst, byte(c.Op()))
		// Reserve one length byte, encode the body, then fix up the length
		// (moving the body when the length needs more bytes).
		at := len(dst)
		dst = append(dst, 0)
		dst = c.appendBody(dst)
		n := len(dst) - at - 1
		if n < 0x80 {
			dst[at] = byte(n)
			continue
		}
		var lb [binary.MaxVarintLen64]byte
		ln := binary.PutUvarint(lb[:], uint64(n))
		dst = append(dst, lb[:ln-1]...)
		copy(dst[at+ln:], dst[at+1:at+1+n])
		copy(dst[at:], lb[:ln])
	}
	return dst
}

// EncodeBatch returns the encoding of b (see AppendBatch).
// Safe for concurrent use.
func EncodeBatch(b *Batch) []byte { return AppendBatch(make([]byte, 0, 32+64*len(b.Ops)), b) }

// DecodeBatch decodes one log entry. Every byte and string field of the
// result is a copy, so p may be reused afterwards. Errors wrap ErrTruncated,
// ErrMalformed, ErrUnsupportedVersion or ErrUnknownOp; DecodeBatch never
// panics. Safe for concurrent use.
func DecodeBatch(p []byte) (*Batch, error) {
	r := &reader{b: p}
	if v := r.byte("version"); r.err == nil && v != CommandVersion {
		return nil, fmt.Errorf("%w: command version %d, want %d", ErrUnsupportedVersion, v, CommandVersion)
	}
	b := &Batch{}
	b.Node = r.string("batch node")
	b.Boot = r.uvarint("batch boot")
	b.Seq = r.uvarint("batch seq")
	n := r.count("op count", 2)
	if n > MaxBatchOps {
		r.fail(ErrMalformed, "more than MaxBatchOps ops")
	}
	if r.err != nil {
		return nil, r.err
	}
	b.Ops = make([]Command, 0, n)
	for i := 0; i < n; i++ {
		op := Op(r.byte("op"))
		body := r.view("op body")
		if r.err != nil {
			return nil, r.err
		}
		c := newCommand(op)
		if c == nil {
			return nil, fmt.Errorf("%w: %d at op %d", ErrUnknownOp, op, i)
		}
		br := &reader{b: body}
		c.decodeBody(br)
		br.end(op.String())
		if br.err != nil {
			return nil, fmt.Errorf("op %d (%s): %w", i, op, br.err)
		}
		b.Ops = append(b.Ops, c)
	}
	r.end("batch")
	if r.err != nil {
		return nil, r.err
	}
	return b, nil
}

func (c *SessionClaim) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.ClientID)
	dst = appendString(dst, c.Node)
	dst = binary.AppendUvarint(dst, c.Boot)
	var f byte
	if c.CleanStart {
		f |= claimCleanStart
	}
	if c.Will != nil {
		f |= claimHasWill
	}
	dst = append(dst, f)
	dst = binary.AppendUvarint(dst, uint64(c.Expiry))
	dst = append(dst, c.ProtocolVersion)
	dst = binary.AppendVarint(dst, c.Now)
	if c.Will != nil {
		dst = appendWill(dst, c.Will)
	}
	return dst
}

func (c *SessionClaim) decodeBody(r *reader) {
	c.ClientID = r.string("client id")
	c.Node = r.string("node")
	c.Boot = r.uvarint("boot")
	f := r.flags("claim flags", claimCleanStart|claimHasWill)
	c.CleanStart = f&claimCleanStart != 0
	c.Expiry = r.uint32("expiry")
	c.ProtocolVersion = r.byte("protocol version")
	c.Now = r.varint("now")
	if f&claimHasWill != 0 {
		c.Will = readWill(r)
	}
}

func appendWill(dst []byte, w *Will) []byte {
	dst = appendString(dst, w.Topic)
	dst = appendBytes(dst, w.Payload)
	dst = append(dst, w.QoS)
	var f byte
	if w.Retain {
		f |= willRetain
	}
	if w.Username != "" {
		f |= willUser
	}
	dst = append(dst, f)
	dst = binary.AppendUvarint(dst, uint64(w.Delay))
	dst = appendBytes(dst, w.Props)
	if w.Username != "" {
		dst = appendString(dst, w.Username)
	}
	return dst
}

func readWill(r *reader) *Will {
	w := &Will{}
	w.Topic = r.string("will topic")
	w.Payload = r.bytes("will payload")
	w.QoS = r.qos("will qos")
	flags := r.flags("will flags", willRetain|willUser)
	w.Retain = flags&willRetain != 0
	w.Delay = r.uint32("will delay")
	w.Props = r.bytes("will props")
	if flags&willUser != 0 {
		w.Username = r.string("will user name")
	}
	return w
}

func (c *SessionDisconnected) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.ClientID)
	dst = binary.AppendUvarint(dst, c.Epoch)
	dst = binary.AppendVarint(dst, c.At)
	dst = binary.AppendUvarint(dst, uint64(c.Expiry))
	if c.KeepWill {
		return append(dst, discKeepWill)
	}
	return append(dst, 0)
}

func (c *SessionDisconnected) decodeBody(r *reader) {
	c.ClientID = r.string("client id")
	c.Epoch = r.uvarint("epoch")
	c.At = r.varint("at")
	c.Expiry = r.uint32("expiry")
	c.KeepWill = r.flags("disconnect flags", discKeepWill) != 0
}

func appendIDEpoch(dst []byte, id string, epoch uint64) []byte {
	dst = appendString(dst, id)
	return binary.AppendUvarint(dst, epoch)
}

func (c *SessionExpired) appendBody(dst []byte) []byte {
	return appendIDEpoch(dst, c.ClientID, c.Epoch)
}
func (c *SessionRelease) appendBody(dst []byte) []byte {
	return appendIDEpoch(dst, c.ClientID, c.Epoch)
}
func (c *WillDone) appendBody(dst []byte) []byte { return appendIDEpoch(dst, c.ClientID, c.Epoch) }

func (c *SessionExpired) decodeBody(r *reader) {
	c.ClientID, c.Epoch = r.string("client id"), r.uvarint("epoch")
}

func (c *SessionRelease) decodeBody(r *reader) {
	c.ClientID, c.Epoch = r.string("client id"), r.uvarint("epoch")
}

func (c *WillDone) decodeBody(r *reader) {
	c.ClientID, c.Epoch = r.string("client id"), r.uvarint("epoch")
}

func (c *Subscribe) appendBody(dst []byte) []byte {
	dst = appendIDEpoch(dst, c.ClientID, c.Epoch)
	return appendSubscription(dst, c.subscription())
}

func (c *Subscribe) decodeBody(r *reader) {
	c.ClientID = r.string("client id")
	c.Epoch = r.uvarint("epoch")
	s := readSubscription(r)
	c.Filter, c.QoS, c.NoLocal, c.RetainAsPublished = s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished
	c.RetainHandling, c.SubscriptionID = s.RetainHandling, s.SubscriptionID
}

func (c *Subscribe) subscription() Subscription {
	return Subscription{
		Filter: c.Filter, QoS: c.QoS, NoLocal: c.NoLocal, RetainAsPublished: c.RetainAsPublished,
		RetainHandling: c.RetainHandling, SubscriptionID: c.SubscriptionID,
	}
}

func appendSubscription(dst []byte, s Subscription) []byte {
	dst = appendString(dst, s.Filter)
	dst = append(dst, s.QoS)
	var f byte
	if s.NoLocal {
		f |= subNoLocal
	}
	if s.RetainAsPublished {
		f |= subRAP
	}
	dst = append(dst, f, s.RetainHandling)
	return binary.AppendUvarint(dst, uint64(s.SubscriptionID))
}

func readSubscription(r *reader) Subscription {
	var s Subscription
	s.Filter = r.string("filter")
	s.QoS = r.qos("subscription qos")
	f := r.flags("subscription flags", subNoLocal|subRAP)
	s.NoLocal, s.RetainAsPublished = f&subNoLocal != 0, f&subRAP != 0
	s.RetainHandling = r.byte("retain handling")
	if s.RetainHandling > 2 {
		r.fail(ErrMalformed, "retain handling > 2")
	}
	s.SubscriptionID = r.uint32("subscription id")
	return s
}

func (c *Unsubscribe) appendBody(dst []byte) []byte {
	dst = appendIDEpoch(dst, c.ClientID, c.Epoch)
	return appendString(dst, c.Filter)
}

func (c *Unsubscribe) decodeBody(r *reader) {
	c.ClientID = r.string("client id")
	c.Epoch = r.uvarint("epoch")
	c.Filter = r.string("filter")
}

func (c *RetainedSet) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.Topic)
	dst = appendBytes(dst, c.Payload)
	dst = append(dst, c.QoS)
	dst = appendBytes(dst, c.Props)
	dst = binary.AppendVarint(dst, c.ExpiresAt)
	return binary.AppendVarint(dst, c.Now)
}

func (c *RetainedSet) decodeBody(r *reader) {
	c.Topic = r.string("topic")
	c.Payload = r.bytes("payload")
	c.QoS = r.qos("retained qos")
	c.Props = r.bytes("props")
	c.ExpiresAt = r.varint("expires at")
	c.Now = r.varint("now")
}

func (c *RetainedDelete) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.Topic)
	return binary.AppendVarint(dst, c.ExpiredBy)
}

func (c *RetainedDelete) decodeBody(r *reader) {
	c.Topic = r.string("topic")
	c.ExpiredBy = r.varint("expired by")
}

func (c *NodeDown) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.Node)
	dst = binary.AppendUvarint(dst, c.Boot)
	return binary.AppendVarint(dst, c.At)
}

func (c *NodeUp) appendBody(dst []byte) []byte {
	dst = appendString(dst, c.Node)
	return binary.AppendUvarint(dst, c.Boot)
}

func (c *NodeUp) decodeBody(r *reader) {
	c.Node = r.string("node")
	c.Boot = r.uvarint("boot")
}

func (c *NodeDown) decodeBody(r *reader) {
	c.Node = r.string("node")
	c.Boot = r.uvarint("boot")
	c.At = r.varint("at")
}
