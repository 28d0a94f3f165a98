package routing

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/flockmq/flockmq/codec"
)

// Wire format of route messages (all integers are uvarints, strings a
// uvarint length and the bytes):
//
//	delta batch: 0x01 node boot from count {op filter}*count   (op 1 add, 0 remove)
//	snapshot:    0x02 node boot version count {filter}*count   (filters sorted, unique)
//
// A batch's deltas take the table from version from to from+count, one
// version each, so versions are not repeated per delta. Node names are 1 to
// MaxRouteNodeName bytes; filters are 1 to 65535 bytes and follow the
// wildcard rules of section 4.7.1. Counts are bounded by the bytes left, so a decoder never
// allocates more than the input justifies.
const (
	routeDeltasTag   = 0x01
	routeSnapshotTag = 0x02
)

// MaxRouteNodeName is the longest node name the route wire format carries.
const MaxRouteNodeName = 255

// ErrRouteWire is wrapped by every route message decoding error.
var ErrRouteWire = errors.New("routing: malformed route message")

// routeWireError is a decoding error: "routing: route delta: truncated".
type routeWireError struct{ msg string }

func (e *routeWireError) Error() string        { return "routing: " + e.msg }
func (e *routeWireError) Is(target error) bool { return target == ErrRouteWire }

// RouteDeltaBatch is a decoded delta batch: Deltas take Node's table in boot
// Boot from version From to From+len(Deltas).
type RouteDeltaBatch struct {
	Node   string
	Boot   uint64
	From   uint64
	Deltas []RouteDelta
}

// AppendRouteDeltas appends the encoding of deltas, which take node's table
// in boot boot from version from on: deltas[i].Version must be from+1+i
// (what LocalRoutes.DeltasSince returns); anything else is a bug and panics.
// Safe for concurrent use.
func AppendRouteDeltas(dst []byte, node string, boot, from uint64, deltas []RouteDelta) []byte {
	dst = append(dst, routeDeltasTag)
	dst = appendRouteString(dst, node)
	dst = binary.AppendUvarint(dst, boot)
	dst = binary.AppendUvarint(dst, from)
	dst = binary.AppendUvarint(dst, uint64(len(deltas)))
	for i := range deltas {
		d := &deltas[i]
		if d.Version != from+1+uint64(i) {
			panic("BUG: routing: AppendRouteDeltas: deltas are not contiguous from the batch's version")
		}
		op := byte(0)
		if d.Add {
			op = 1
		}
		dst = append(dst, op)
		dst = appendRouteString(dst, d.Filter)
	}
	return dst
}

// DecodeRouteDeltas decodes what AppendRouteDeltas wrote. Errors wrap
// ErrRouteWire; bad input never panics. The strings are copies: the result
// does not alias b. Safe for concurrent use.
func DecodeRouteDeltas(b []byte) (RouteDeltaBatch, error) {
	r := routeReader{b: b, what: "route delta"}
	if tag := r.byte(); r.err == nil && tag != routeDeltasTag {
		r.fail("not a delta batch")
	}
	var out RouteDeltaBatch
	out.Node = r.node()
	out.Boot = r.uvarint()
	out.From = r.uvarint()
	n := r.count(3) // op, length, one byte of filter
	if r.err == nil && uint64(n) > math.MaxUint64-out.From {
		r.fail("version overflow")
	}
	if r.err == nil && n > 0 {
		out.Deltas = make([]RouteDelta, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			op := r.byte()
			if r.err == nil && op > 1 {
				r.fail("unknown op")
			}
			f := r.filter()
			out.Deltas = append(out.Deltas, RouteDelta{Filter: f, Add: op == 1, Version: out.From + 1 + uint64(i)})
		}
	}
	r.end()
	if r.err != nil {
		return RouteDeltaBatch{}, r.err
	}
	return out, nil
}

// AppendRouteSnapshot appends the encoding of s; s.Filters must be sorted
// and unique (what LocalRoutes.Snapshot returns), or the decoder rejects it.
// Safe for concurrent use.
func AppendRouteSnapshot(dst []byte, s *RouteSnapshot) []byte {
	dst = append(dst, routeSnapshotTag)
	dst = appendRouteString(dst, s.Node)
	dst = binary.AppendUvarint(dst, s.Boot)
	dst = binary.AppendUvarint(dst, s.Version)
	dst = binary.AppendUvarint(dst, uint64(len(s.Filters)))
	for _, f := range s.Filters {
		dst = appendRouteString(dst, f)
	}
	return dst
}

// DecodeRouteSnapshot decodes what AppendRouteSnapshot wrote, checking that
// the filters are valid, sorted and unique. Errors wrap ErrRouteWire; bad
// input never panics. The result does not alias b. Safe for concurrent use.
func DecodeRouteSnapshot(b []byte) (RouteSnapshot, error) {
	r := routeReader{b: b, what: "route snapshot"}
	if tag := r.byte(); r.err == nil && tag != routeSnapshotTag {
		r.fail("not a snapshot")
	}
	var out RouteSnapshot
	out.Node = r.node()
	out.Boot = r.uvarint()
	out.Version = r.uvarint()
	n := r.count(2) // length, one byte of filter
	if r.err == nil {
		out.Filters = make([]string, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			f := r.filter()
			if r.err == nil && i > 0 && f <= out.Filters[i-1] {
				r.fail("filters not sorted and unique")
			}
			out.Filters = append(out.Filters, f)
		}
	}
	r.end()
	if r.err != nil {
		return RouteSnapshot{}, r.err
	}
	return out, nil
}

func appendRouteString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// routeReader reads a route message; the first error sticks and later reads
// return zero values.
type routeReader struct {
	b    []byte
	off  int
	what string // "route delta" or "route snapshot", for errors
	err  error
}

func (r *routeReader) fail(msg string) {
	if r.err == nil {
		r.err = &routeWireError{msg: r.what + ": " + msg}
	}
}

func (r *routeReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *routeReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n == 0 {
		r.fail("truncated")
		return 0
	}
	if n < 0 {
		r.fail("varint overflows 64 bits")
		return 0
	}
	r.off += n
	return v
}

// count reads an element count, each element taking at least min bytes.
func (r *routeReader) count(min int) int {
	v := r.uvarint()
	if r.err != nil {
		return 0
	}
	if v > uint64((len(r.b)-r.off)/min) {
		r.fail("count exceeds the bytes left")
		return 0
	}
	return int(v)
}

// bytes reads a length-prefixed string of at most max bytes, as a view of b.
func (r *routeReader) bytes(max int, name string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail(name + " too long")
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("truncated")
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *routeReader) node() string {
	s := r.bytes(MaxRouteNodeName, "node name")
	if r.err == nil && len(s) == 0 {
		r.fail("empty node name")
	}
	return string(s)
}

func (r *routeReader) filter() string {
	s := r.bytes(codec.MaxStringLength, "filter")
	if r.err != nil {
		return ""
	}
	// The wildcard rules of a topic filter; a share prefix is not parsed:
	// a route filter is the topic part of a subscription.
	if codec.ValidFilterLevels(s) != nil {
		r.fail("invalid filter")
		return ""
	}
	return string(s)
}

func (r *routeReader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("trailing bytes")
	}
}
