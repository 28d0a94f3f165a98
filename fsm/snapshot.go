package fsm

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sort"

	"github.com/hashicorp/raft"
)

// Snapshot format, version 1:
//
//	magic "FLKMQSNP" (8 bytes)
//	version (1 byte)
//	sessions, retained, boots (3 uvarint counts)
//	records: kind (1 byte: 'S' session, 'R' retained, 'B' boot)
//	         body length (uvarint) and body; all S, then all R, then all B
//	'E'
//	CRC-32C (Castagnoli) of everything before it (4 bytes, big endian)
//
// Bodies use the field encoding of commands (codec.go). Derived indexes are
// not written; Restore rebuilds them.
const (
	snapshotMagic   = "FLKMQSNP"
	SnapshotVersion = 1
	maxRecordSize   = 64 << 20
)

const (
	recSession  byte = 'S'
	recRetained byte = 'R'
	recBoot     byte = 'B'
	recEnd      byte = 'E'
)

// Flag bits of the session record.
const (
	snapCleanStart = 1 << 0
	snapConnected  = 1 << 1
	snapOwnerDown  = 1 << 2
	snapHasWill    = 1 << 3
	snapBootDown   = 1 << 0
	slotHasCodes   = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshot is an immutable state; Persist may run concurrently with Apply.
type snapshot struct{ st *state }

// Persist writes the snapshot to sink and closes it, or cancels the sink and
// returns the error. Safe for concurrent use with the FSM's methods.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.st.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release does nothing: the state is garbage collected when unreferenced.
// Safe for concurrent use.
func (s *snapshot) Release() {}

type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// writeTo streams st in the snapshot format.
func (st *state) writeTo(w io.Writer) error {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	hdr := append([]byte(snapshotMagic), SnapshotVersion)
	hdr = binary.AppendUvarint(hdr, uint64(st.sessions.Len()))
	hdr = binary.AppendUvarint(hdr, uint64(st.retained.Len()))
	hdr = binary.AppendUvarint(hdr, uint64(len(st.boots)))
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	var body, head []byte
	var err error
	record := func(kind byte) {
		head = binary.AppendUvarint(append(head[:0], kind), uint64(len(body)))
		if _, err = bw.Write(head); err == nil {
			_, err = bw.Write(body)
		}
	}
	walk(st.sessions, func(_ string, s *Session) bool {
		body = appendSessionRecord(body[:0], s)
		record(recSession)
		return err == nil
	})
	if err != nil {
		return err
	}
	walk(st.retained, func(_ string, m *Retained) bool {
		body = appendRetainedRecord(body[:0], m)
		record(recRetained)
		return err == nil
	})
	if err != nil {
		return err
	}
	keys := make([]bootKey, 0, len(st.boots))
	for k := range st.boots {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].node != keys[j].node {
			return keys[i].node < keys[j].node
		}
		return keys[i].boot < keys[j].boot
	})
	for _, k := range keys {
		body = appendBootRecord(body[:0], k, st.boots[k])
		if record(recBoot); err != nil {
			return err
		}
	}
	if err := bw.WriteByte(recEnd); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = w.Write(binary.BigEndian.AppendUint32(nil, cw.crc))
	return err
}

func appendSessionRecord(dst []byte, s *Session) []byte {
	dst = appendString(dst, s.ClientID)
	dst = appendString(dst, s.Node)
	dst = binary.AppendUvarint(dst, s.Boot)
	dst = binary.AppendUvarint(dst, s.Epoch)
	var f byte
	if s.CleanStart {
		f |= snapCleanStart
	}
	if s.Connected {
		f |= snapConnected
	}
	if s.OwnerDown {
		f |= snapOwnerDown
	}
	if s.Will != nil {
		f |= snapHasWill
	}
	dst = append(dst, s.ProtocolVersion, f)
	dst = binary.AppendUvarint(dst, uint64(s.Expiry))
	dst = binary.AppendVarint(dst, s.ConnectedAt)
	dst = binary.AppendVarint(dst, s.DisconnectedAt)
	if s.Will != nil {
		dst = appendWill(dst, s.Will)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Subscriptions)))
	for _, sub := range s.Subscriptions {
		dst = appendSubscription(dst, sub)
	}
	return dst
}

func readSessionRecord(r *reader) *Session {
	s := &Session{}
	s.ClientID = r.string("client id")
	s.Node = r.string("node")
	s.Boot = r.uvarint("boot")
	s.Epoch = r.uvarint("epoch")
	s.ProtocolVersion = r.byte("protocol version")
	f := r.flags("session flags", snapCleanStart|snapConnected|snapOwnerDown|snapHasWill)
	s.CleanStart, s.Connected = f&snapCleanStart != 0, f&snapConnected != 0
	s.OwnerDown = f&snapOwnerDown != 0
	s.Expiry = r.uint32("expiry")
	s.ConnectedAt = r.varint("connected at")
	s.DisconnectedAt = r.varint("disconnected at")
	if f&snapHasWill != 0 {
		s.Will = readWill(r)
	}
	if n := r.count("subscriptions", 5); n > 0 {
		s.Subscriptions = make([]Subscription, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			sub := readSubscription(r)
			if i > 0 && sub.Filter <= s.Subscriptions[i-1].Filter {
				r.fail(ErrMalformed, "subscriptions not sorted")
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
	}
	if s.ClientID == "" {
		r.fail(ErrMalformed, "empty client id")
	}
	return s
}

func appendRetainedRecord(dst []byte, m *Retained) []byte {
	dst = appendString(dst, m.Topic)
	dst = appendBytes(dst, m.Payload)
	dst = append(dst, m.QoS)
	dst = appendBytes(dst, m.Props)
	dst = binary.AppendVarint(dst, m.ExpiresAt)
	return binary.AppendVarint(dst, m.StoredAt)
}

func readRetainedRecord(r *reader) *Retained {
	m := &Retained{}
	m.Topic = r.string("topic")
	m.Payload = r.bytes("payload")
	m.QoS = r.qos("qos")
	m.Props = r.bytes("props")
	m.ExpiresAt = r.varint("expires at")
	m.StoredAt = r.varint("stored at")
	if !validRetainedTopic(m.Topic) || len(m.Payload) == 0 {
		r.fail(ErrMalformed, "invalid retained topic or empty payload")
	}
	return m
}

func appendBootRecord(dst []byte, k bootKey, e *bootEntry) []byte {
	dst = appendString(dst, k.node)
	dst = binary.AppendUvarint(dst, k.boot)
	dst = binary.AppendUvarint(dst, e.lastSeq)
	var f byte
	if e.down {
		f |= snapBootDown
	}
	dst = append(dst, f)
	dst = binary.AppendVarint(dst, e.downAt)
	n := 0
	for i := range e.window {
		if e.window[i] != nil {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for _, w := range e.window {
		if w == nil {
			continue
		}
		dst = binary.AppendUvarint(dst, w.seq)
		dst = binary.AppendUvarint(dst, uint64(w.n))
		if w.codes == nil {
			dst = append(dst, 0)
		} else {
			dst = append(dst, slotHasCodes)
			for _, c := range w.codes {
				dst = append(dst, byte(c))
			}
		}
		// Rich results in position order, the claim epochs a slot keeps as
		// bits written out in full: the format does not depend on how a
		// slot is held in memory.
		rich := w.rich
		if w.epoch != nil {
			rich = nil
			for i, r := range w.results() {
				if !plainResult(&r) {
					rich = append(rich, indexedResult{i, r})
				}
			}
		}
		dst = binary.AppendUvarint(dst, uint64(len(rich)))
		for _, x := range rich {
			dst = binary.AppendUvarint(dst, uint64(x.i))
			dst = appendResult(dst, &x.r)
		}
	}
	return dst
}

func readBootRecord(r *reader) (bootKey, *bootEntry) {
	var k bootKey
	e := &bootEntry{}
	k.node = r.string("node")
	k.boot = r.uvarint("boot")
	e.lastSeq = r.uvarint("last seq")
	e.down = r.flags("boot flags", snapBootDown) != 0
	e.downAt = r.varint("down at")
	n := r.count("window slots", 2)
	if n > DedupWindow {
		r.fail(ErrMalformed, "more window slots than DedupWindow")
	}
	for i := 0; i < n && r.err == nil; i++ {
		s := &windowSlot{seq: r.uvarint("slot seq")}
		if n := r.uvarint("slot ops"); n > MaxBatchOps {
			r.fail(ErrMalformed, "slot ops > MaxBatchOps")
		} else {
			s.n = int(n)
		}
		if r.flags("slot flags", slotHasCodes) != 0 {
			if s.n > r.remaining() {
				r.fail(ErrTruncated, "slot codes")
			}
			s.codes = make([]Code, 0, min(s.n, r.remaining()))
			for j := 0; j < s.n && r.err == nil; j++ {
				c := Code(r.byte("slot code"))
				if c > CodeFenced {
					r.fail(ErrMalformed, "unknown result code")
				}
				s.codes = append(s.codes, c)
			}
		}
		nrich := r.count("slot rich results", 9)
		for j := 0; j < nrich && r.err == nil; j++ {
			x := indexedResult{i: int(r.uint32("rich result position"))}
			x.r = readResult(r)
			if x.i >= s.n || (j > 0 && x.i <= s.rich[j-1].i) || (s.codes != nil && x.r.Code != s.codes[x.i]) ||
				(s.codes == nil && x.r.Code != CodeOK) {
				r.fail(ErrMalformed, "bad rich result")
			}
			s.rich = append(s.rich, x)
		}
		w := &e.window[s.seq%DedupWindow]
		if r.err == nil && (s.seq == 0 || *w != nil || s.seq > e.lastSeq) {
			r.fail(ErrMalformed, "bad window slot")
		}
		*w = s
	}
	return k, e
}
