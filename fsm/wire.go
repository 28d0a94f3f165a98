package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Decoding errors. Every error returned by DecodeBatch and Restore wraps one
// of these, so callers can tell a bad input from a bug with errors.Is.
var (
	// ErrTruncated: the input ended inside a field or record.
	ErrTruncated = errors.New("fsm: truncated input")
	// ErrMalformed: a field holds a value the format does not allow
	// (overlong varint, unknown flag bit, QoS 3, trailing bytes, ...).
	ErrMalformed = errors.New("fsm: malformed input")
	// ErrUnsupportedVersion: the command or snapshot format version is newer
	// (or older) than this build understands.
	ErrUnsupportedVersion = errors.New("fsm: unsupported format version")
	// ErrUnknownOp: a command carries an op code this build does not know.
	ErrUnknownOp = errors.New("fsm: unknown op")
	// ErrBadMagic: the snapshot does not start with the FlockMQ magic.
	ErrBadMagic = errors.New("fsm: bad snapshot magic")
	// ErrChecksum: the snapshot checksum does not match its contents.
	ErrChecksum = errors.New("fsm: snapshot checksum mismatch")
)

// appendString appends a uvarint length and the bytes of s.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendBytes appends a uvarint length and b.
func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// reader decodes the primitives of the command and snapshot formats from a
// byte slice. The first error sticks: later calls return zero values, so a
// decoder reads all its fields and checks r.err once.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error, what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at offset %d", err, what, r.off)
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(ErrTruncated, what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint(what string) uint64 { return r.uvarintOf(what, "") }

// uvarintOf reads a uvarint; what+suffix names it in an error (concatenated
// only then).
func (r *reader) uvarintOf(what, suffix string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail(ErrTruncated, what+suffix)
		return 0
	case n < 0:
		r.fail(ErrMalformed, what+suffix+" (varint overflow)")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail(ErrTruncated, what)
		return 0
	case n < 0:
		r.fail(ErrMalformed, what+" (varint overflow)")
		return 0
	}
	r.off += n
	return v
}

// uint32 reads a uvarint that must fit in 32 bits.
func (r *reader) uint32(what string) uint32 {
	v := r.uvarint(what)
	if v > 0xFFFFFFFF {
		r.fail(ErrMalformed, what+" exceeds 32 bits")
		return 0
	}
	return uint32(v)
}

// view reads a length-prefixed field and returns a view of the input.
func (r *reader) view(what string) []byte {
	n := r.uvarintOf(what, " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(r.remaining()) {
		r.fail(ErrTruncated, what)
		return nil
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}

// bytes reads a length-prefixed field into a fresh slice; an empty field
// yields nil.
func (r *reader) bytes(what string) []byte {
	v := r.view(what)
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (r *reader) string(what string) string { return string(r.view(what)) }

// qos reads a QoS byte (0, 1 or 2).
func (r *reader) qos(what string) byte {
	q := r.byte(what)
	if q > 2 {
		r.fail(ErrMalformed, what+" > 2")
		return 0
	}
	return q
}

// flags reads a flag byte whose bits outside allowed must be zero.
func (r *reader) flags(what string, allowed byte) byte {
	f := r.byte(what)
	if f&^allowed != 0 {
		r.fail(ErrMalformed, what+": unknown flag bits")
		return 0
	}
	return f
}

// count reads an element count and checks that count elements of at least
// minSize bytes each can still follow, so a corrupt count never drives a
// large allocation.
func (r *reader) count(what string, minSize int) int {
	n := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(r.remaining()/minSize) {
		r.fail(ErrTruncated, what+" larger than the input")
		return 0
	}
	return int(n)
}

// end fails unless the whole input was consumed.
func (r *reader) end(what string) {
	if r.err == nil && r.off != len(r.b) {
		r.fail(ErrMalformed, fmt.Sprintf("%d trailing bytes after %s", len(r.b)-r.off, what))
	}
}
