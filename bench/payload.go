package bench

import (
	"encoding/binary"
	"errors"
)

// HeaderSize is the length of the header stamped at the start of every
// payload; --size may not be smaller.
const HeaderSize = 36

// headerMagic marks a payload written by this tool (version 1 of the layout).
const headerMagic = 0x464d5131 // "FMQ1"

// Header is the fixed header carried by every benchmark payload:
//
//	0..3   magic "FMQ1"
//	4..7   run id: tells this run's messages from a previous run's
//	       leftovers (retained, queued or still in flight)
//	8..11  publisher id
//	12..15 payload length, so that truncation is detected
//	16..23 sequence number on (publisher, topic), starting at 0
//	24..31 send time, CLOCK_MONOTONIC nanoseconds (comparable across
//	       processes on one host)
//	32..35 FNV-1a of bytes 0..31
//
// All integers are big endian.
type Header struct {
	Run       uint32
	Publisher uint32
	Length    uint32
	Seq       uint64
	SendNs    int64
}

// Errors of ParseHeader.
var (
	ErrNotBench    = errors.New("bench: payload has no benchmark header")
	ErrBadChecksum = errors.New("bench: payload header checksum mismatch")
	ErrTruncated   = errors.New("bench: payload length differs from its header")
)

// Stamp writes the header at the start of p, which must be at least
// HeaderSize long; the rest of p (padding) is left as it is. It does not
// allocate.
func Stamp(p []byte, run, pub uint32, seq uint64, sendNs int64) {
	_ = p[HeaderSize-1]
	binary.BigEndian.PutUint32(p[0:], headerMagic)
	binary.BigEndian.PutUint32(p[4:], run)
	binary.BigEndian.PutUint32(p[8:], pub)
	binary.BigEndian.PutUint32(p[12:], uint32(len(p)))
	binary.BigEndian.PutUint64(p[16:], seq)
	binary.BigEndian.PutUint64(p[24:], uint64(sendNs))
	binary.BigEndian.PutUint32(p[32:], fnv32(p[:32]))
}

// ParseHeader reads the header at the start of p. It does not allocate.
func ParseHeader(p []byte) (Header, error) {
	if len(p) < HeaderSize || binary.BigEndian.Uint32(p) != headerMagic {
		return Header{}, ErrNotBench
	}
	if binary.BigEndian.Uint32(p[32:]) != fnv32(p[:32]) {
		return Header{}, ErrBadChecksum
	}
	h := Header{
		Run:       binary.BigEndian.Uint32(p[4:]),
		Publisher: binary.BigEndian.Uint32(p[8:]),
		Length:    binary.BigEndian.Uint32(p[12:]),
		Seq:       binary.BigEndian.Uint64(p[16:]),
		SendNs:    int64(binary.BigEndian.Uint64(p[24:])),
	}
	if int(h.Length) != len(p) {
		return h, ErrTruncated
	}
	return h, nil
}

// NewPayload returns a payload buffer of size bytes (at least HeaderSize),
// padded with a recognisable pattern after the header.
func NewPayload(size int) []byte {
	size = max(size, HeaderSize)
	p := make([]byte, size)
	for i := HeaderSize; i < size; i++ {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// fnv64 hashes a topic into a stream key.
func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
