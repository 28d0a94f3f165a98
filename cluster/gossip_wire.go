package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/hashicorp/memberlist"
)

// Wire format of the gossip layer's own messages. Route messages use the
// routing package's encoding (tags 0x01 delta batch, 0x02 snapshot); the
// control messages below use tags the routing package does not:
//
//	pull:  0x10 node              (node asks the receiver for its snapshot)
//	leave: 0x11 node boot         (node, in boot, is leaving gracefully)
//
// Node meta (memberlist's per-node metadata, at most memberlist.MetaMaxSize
// bytes):
//
//	meta:  0x01 raftAddr peerAddr boot version
//
// Integers are uvarints, strings a uvarint length and the bytes. Decoders
// never panic on peer input and return errors wrapping ErrGossipWire.
const (
	gossipPullTag  = 0x10
	gossipLeaveTag = 0x11

	nodeMetaVersion = 0x01

	maxMetaString = 255 // RaftAddr, PeerAddr, Version
)

// ErrGossipWire is wrapped by every gossip decoding and meta encoding error.
var ErrGossipWire = errors.New("cluster: malformed gossip message")

type gossipWireError struct{ msg string }

func (e *gossipWireError) Error() string        { return "cluster: " + e.msg }
func (e *gossipWireError) Is(target error) bool { return target == ErrGossipWire }

// metaInRaft is NodeMeta.InRaft in the flags byte.
const metaInRaft = 1

// NodeMeta is what a node tells the others about itself through memberlist:
// where its raft and peer-link listeners are, its boot id (which grows with
// every start, so a restarted node is told apart), its software version, and
// whether it is already part of a raft cluster (InRaft: it has raft state or
// is in a configuration), which keeps a new node from bootstrapping a second
// cluster next to a running one.
type NodeMeta struct {
	RaftAddr string
	PeerAddr string
	Boot     uint64
	Version  string
	InRaft   bool
	// Clients is the number of clients connected to the node, refreshed
	// every few seconds, for cluster-wide counts.
	Clients uint64
	// AdminAddr is the node's admin endpoint, host:port ("" = none).
	AdminAddr string
}

// EncodeNodeMeta returns the encoding of m; it fails when a string is longer
// than 255 bytes or the whole exceeds memberlist.MetaMaxSize.
func EncodeNodeMeta(m NodeMeta) ([]byte, error) {
	for _, s := range []string{m.RaftAddr, m.PeerAddr, m.Version, m.AdminAddr} {
		if len(s) > maxMetaString {
			return nil, &gossipWireError{msg: "node meta: string too long"}
		}
	}
	b := []byte{nodeMetaVersion}
	b = appendGossipString(b, m.RaftAddr)
	b = appendGossipString(b, m.PeerAddr)
	b = binary.AppendUvarint(b, m.Boot)
	b = appendGossipString(b, m.Version)
	flags := byte(0)
	if m.InRaft {
		flags |= metaInRaft
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.Clients)
	b = appendGossipString(b, m.AdminAddr)
	if len(b) > memberlist.MetaMaxSize {
		return nil, &gossipWireError{msg: "node meta: too long"}
	}
	return b, nil
}

// DecodeNodeMeta decodes what EncodeNodeMeta wrote. Bad input returns an
// error wrapping ErrGossipWire and never panics; the result does not alias b.
func DecodeNodeMeta(b []byte) (NodeMeta, error) {
	r := gossipReader{b: b, what: "node meta"}
	if len(b) > memberlist.MetaMaxSize {
		r.fail("too long")
	}
	if v := r.byte(); r.err == nil && v != nodeMetaVersion {
		r.fail("unknown version")
	}
	var m NodeMeta
	m.RaftAddr = r.str(maxMetaString)
	m.PeerAddr = r.str(maxMetaString)
	m.Boot = r.uvarint()
	m.Version = r.str(maxMetaString)
	flags := r.byte()
	if flags&^metaInRaft != 0 {
		r.fail("unknown flags")
	}
	m.InRaft = flags&metaInRaft != 0
	m.Clients = r.uvarint()
	m.AdminAddr = r.str(maxMetaString)
	r.end()
	if r.err != nil {
		return NodeMeta{}, r.err
	}
	return m, nil
}

// appendPull appends a pull request from node.
func appendPull(dst []byte, node string) []byte {
	dst = append(dst, gossipPullTag)
	return appendGossipString(dst, node)
}

// decodePull returns the requesting node of a pull request.
func decodePull(b []byte) (string, error) {
	r := gossipReader{b: b, what: "pull"}
	if t := r.byte(); r.err == nil && t != gossipPullTag {
		r.fail("not a pull")
	}
	node := r.node()
	r.end()
	return node, r.err
}

// appendLeave appends a leave notice of node in boot boot.
func appendLeave(dst []byte, node string, boot uint64) []byte {
	dst = append(dst, gossipLeaveTag)
	dst = appendGossipString(dst, node)
	return binary.AppendUvarint(dst, boot)
}

// decodeLeave decodes a leave notice.
func decodeLeave(b []byte) (node string, boot uint64, err error) {
	r := gossipReader{b: b, what: "leave"}
	if t := r.byte(); r.err == nil && t != gossipLeaveTag {
		r.fail("not a leave")
	}
	node = r.node()
	boot = r.uvarint()
	r.end()
	if r.err != nil {
		return "", 0, r.err
	}
	return node, boot, nil
}

func appendGossipString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// gossipReader reads a gossip message; the first error sticks and later
// reads return zero values.
type gossipReader struct {
	b    []byte
	off  int
	what string
	err  error
}

func (r *gossipReader) fail(msg string) {
	if r.err == nil {
		r.err = &gossipWireError{msg: r.what + ": " + msg}
	}
}

func (r *gossipReader) byte() byte {
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

func (r *gossipReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

func (r *gossipReader) str(max int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(max) {
		r.fail("string too long")
		return ""
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("truncated")
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *gossipReader) node() string {
	s := r.str(maxMetaString)
	if r.err == nil && s == "" {
		r.fail("empty node name")
	}
	return s
}

func (r *gossipReader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("trailing bytes")
	}
}
