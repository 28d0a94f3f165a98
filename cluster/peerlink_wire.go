package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// Wire format of the peer link (peerlink.go). Integers are big-endian and of
// fixed width, so every header has a fixed length and a stream reader needs
// no look-ahead.
//
// Sender to receiver, once at the start of a connection, then frames:
//
//	hello: 0x01 "FPL1" boot:u64 session:u64 firstSeq:u64 nodeLen:u8 node
//	frame: 0x02 seq:u64 len:u32 body[len]
//
// Receiver to sender, any number of times (the first right after the hello):
//
//	ack:   0x03 upto:u64      (every frame with seq <= upto was delivered)
//
// boot is the sender node's boot id (it grows with every start), session a
// random id per PeerLink value, firstSeq the sequence number of the first
// frame the sender is about to send (its oldest unacknowledged frame, or the
// next new one). Sequence numbers start at 1 in every session.
//
// Decoders never panic on peer input; they return io.ErrUnexpectedEOF when
// the input is too short and errors wrapping ErrPeerWire when it is wrong.
const (
	peerMsgHello = 0x01
	peerMsgFrame = 0x02
	peerMsgAck   = 0x03

	peerMagic = "FPL1"

	peerHelloFixedLen  = 1 + 4 + 8 + 8 + 8 + 1 // up to and including nodeLen
	peerFrameHeaderLen = 1 + 8 + 4
	peerAckLen         = 1 + 8

	maxPeerNodeID = 255
)

// ErrPeerWire is wrapped by every peer link decoding error.
var ErrPeerWire = errors.New("cluster: malformed peer link message")

type peerWireError struct{ msg string }

func (e *peerWireError) Error() string        { return "cluster: peer link: " + e.msg }
func (e *peerWireError) Is(target error) bool { return target == ErrPeerWire }

// peerHello opens a peer link connection.
type peerHello struct {
	Node     string
	Boot     uint64
	Session  uint64
	FirstSeq uint64
}

// appendPeerHello appends the encoding of h to dst. h.Node must be 1 to 255
// bytes long (NewPeerLink checks it).
func appendPeerHello(dst []byte, h peerHello) []byte {
	if len(h.Node) == 0 || len(h.Node) > maxPeerNodeID {
		panic("BUG: peer link node id of invalid length")
	}
	dst = append(dst, peerMsgHello)
	dst = append(dst, peerMagic...)
	dst = binary.BigEndian.AppendUint64(dst, h.Boot)
	dst = binary.BigEndian.AppendUint64(dst, h.Session)
	dst = binary.BigEndian.AppendUint64(dst, h.FirstSeq)
	dst = append(dst, byte(len(h.Node)))
	return append(dst, h.Node...)
}

// decodePeerHello decodes a hello from the start of b and returns it with the
// number of bytes it took.
func decodePeerHello(b []byte) (peerHello, int, error) {
	if len(b) < peerHelloFixedLen {
		return peerHello{}, 0, io.ErrUnexpectedEOF
	}
	if b[0] != peerMsgHello {
		return peerHello{}, 0, &peerWireError{msg: "hello: wrong message type"}
	}
	if string(b[1:5]) != peerMagic {
		return peerHello{}, 0, &peerWireError{msg: "hello: wrong magic"}
	}
	h := peerHello{
		Boot:     binary.BigEndian.Uint64(b[5:]),
		Session:  binary.BigEndian.Uint64(b[13:]),
		FirstSeq: binary.BigEndian.Uint64(b[21:]),
	}
	if h.FirstSeq == 0 {
		return peerHello{}, 0, &peerWireError{msg: "hello: first seq 0"}
	}
	n := int(b[29])
	if n == 0 {
		return peerHello{}, 0, &peerWireError{msg: "hello: empty node id"}
	}
	if len(b) < peerHelloFixedLen+n {
		return peerHello{}, 0, io.ErrUnexpectedEOF
	}
	h.Node = string(b[peerHelloFixedLen : peerHelloFixedLen+n])
	return h, peerHelloFixedLen + n, nil
}

// appendPeerFrameHeader appends the header of a frame of n bytes (0 <= n <
// 2^32) with sequence number seq.
func appendPeerFrameHeader(dst []byte, seq uint64, n int) []byte {
	dst = append(dst, peerMsgFrame)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// decodePeerFrameHeader decodes a frame header from the start of b (which
// takes peerFrameHeaderLen bytes) and returns the frame's seq and length.
func decodePeerFrameHeader(b []byte) (seq uint64, n int, err error) {
	if len(b) < peerFrameHeaderLen {
		return 0, 0, io.ErrUnexpectedEOF
	}
	if b[0] != peerMsgFrame {
		return 0, 0, &peerWireError{msg: "frame: wrong message type"}
	}
	seq = binary.BigEndian.Uint64(b[1:])
	if seq == 0 {
		return 0, 0, &peerWireError{msg: "frame: seq 0"}
	}
	return seq, int(binary.BigEndian.Uint32(b[9:])), nil
}

// appendPeerAck appends an ack of every frame up to and including upto.
func appendPeerAck(dst []byte, upto uint64) []byte {
	dst = append(dst, peerMsgAck)
	return binary.BigEndian.AppendUint64(dst, upto)
}

// decodePeerAck decodes an ack from the start of b (peerAckLen bytes).
func decodePeerAck(b []byte) (uint64, error) {
	if len(b) < peerAckLen {
		return 0, io.ErrUnexpectedEOF
	}
	if b[0] != peerMsgAck {
		return 0, &peerWireError{msg: "ack: wrong message type"}
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// readPeerHello reads a hello from r.
func readPeerHello(r *bufio.Reader) (peerHello, error) {
	var buf [peerHelloFixedLen + maxPeerNodeID]byte
	if _, err := io.ReadFull(r, buf[:peerHelloFixedLen]); err != nil {
		return peerHello{}, err
	}
	if _, _, err := decodePeerHello(buf[:peerHelloFixedLen]); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return peerHello{}, err
	}
	n := peerHelloFixedLen + int(buf[peerHelloFixedLen-1])
	if _, err := io.ReadFull(r, buf[peerHelloFixedLen:n]); err != nil {
		return peerHello{}, err
	}
	h, _, err := decodePeerHello(buf[:n])
	return h, err
}

// readPeerFrame reads one frame from r into buf (grown when too small) and
// returns its seq and body, a view of buf. A frame longer than maxFrame is
// an error wrapping ErrPeerWire; its body is not read.
func readPeerFrame(r *bufio.Reader, buf []byte, maxFrame int) (seq uint64, body, newBuf []byte, err error) {
	var hdr [peerFrameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	seq, n, err := decodePeerFrameHeader(hdr[:])
	if err != nil {
		return 0, nil, buf, err
	}
	if n > maxFrame {
		return 0, nil, buf, &peerWireError{msg: "frame: longer than the limit"}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return seq, body, buf, nil
}
