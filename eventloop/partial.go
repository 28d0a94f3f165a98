package eventloop

import (
	"syscall"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Partial packets: the bytes of an incoming packet that has not arrived
// whole.
//
// Left to gnet, they would wait in the connection's inbound ring, which
// doubles as it fills (its buffers come from a pool of power-of-two slices),
// while every read that completes nothing copies the ring and the new bytes
// into a further pooled slice for Peek. A 1 MB packet arriving 64 KB at a time
// cost about 4 MB that way, and the rings went back to gnet's pool, not to the
// system, when their connections closed: 100 connections each 1,000 bytes
// short of a 1 MB PUBLISH took a broker from 11 MB to 419 MB of resident
// memory, and it stayed there.
//
// So the connection keeps the packet itself: once the fixed header is in,
// it allocates exactly the packet's length, charged to the server's budget
// (Options.MaxPartialPacketBytes), and copies into it only the bytes of that
// packet; the packets after it in the same read are decoded in place as
// before. A PUBLISH of mapMin bytes or more gets pages of its own from mmap:
// only the bytes that arrived are resident, and munmap gives them back to the
// system as soon as the packet has been handled or its connection closes,
// without waiting for a garbage collection. The broker keeps no view of a
// PUBLISH past Input (it copies it once into a Message; docs/threads.md); a
// view kept by mistake would now fault instead of reading reused bytes.
// Other packets, rarely large, take the Go heap: a CONNECT or AUTH passes
// its authentication data to the enhanced authenticator, whose reply the
// broker may keep while the session is claimed, and the hook may return a
// view of what it was given.
//
// One connection holds at most one partial packet, of at most the broker's
// MaxPacketSize (a larger one is refused when its header arrives). Past the
// budget, the connection whose packet does not fit is closed: a v5 client
// gets DISCONNECT 0x89 (Server busy); it is logged (once a second at most)
// and counted (PartialKicks).

// mapMin is the packet length from which a partial packet gets its own
// mapping rather than a slice of the Go heap.
const mapMin = 64 << 10

// partial is a connection's packet in progress.
type partial struct {
	hdr     [5]byte // the fixed header while incomplete (b == nil)
	nh      int     // bytes in hdr
	bad     bool    // hdr[:nh] is a header Input refuses: it gets those bytes alone
	b       []byte  // the packet: cap(b) is its length, len(b) what arrived
	mapping []byte  // the whole mapping b lies in, nil for a heap slice
	charged int64   // bytes charged to Server.partBytes
}

// complete reports whether p holds a whole packet (or a bad header) for
// Input.
func (p *partial) complete() bool {
	return p.bad || (p.b != nil && len(p.b) == cap(p.b))
}

// packet is what p hands to Input once complete.
func (p *partial) packet() []byte {
	if p.bad {
		return p.hdr[:p.nh]
	}
	return p.b
}

// startPartial is called when Input stopped short of the end of t's bytes,
// rest being what it left. If rest begins with a packet that has not arrived
// whole, startPartial moves rest into t's partial packet and reports true
// (rest then holds nothing but the start of that packet). Otherwise rest
// begins with whole packets the client is not read for now (flow control, a
// CONNECT in flight), which stay in gnet; or with a header Input refuses
// when it gets there.
func (s *Server) startPartial(t *conn, rest []byte) bool {
	h, err := codec.ReadFixedHeader(rest, 0)
	if err == nil && h.Len() <= len(rest) || err != nil && err != codec.ErrIncomplete {
		return false
	}
	x := t.ext()
	x.part = &partial{}
	s.fill(t, x, rest)
	return true
}

// fill adds to t's partial packet the bytes at the start of b that belong to
// it and returns how many it took. A connection closed because the packet
// does not fit the budget has none left, and all of b is reported taken.
func (s *Server) fill(t *conn, x *connExt, b []byte) int {
	p := x.part
	used := 0
	if p.b == nil && !p.bad {
		k := copy(p.hdr[p.nh:], b)
		h, err := codec.ReadFixedHeader(p.hdr[:p.nh+k], s.maxPacket)
		if err == codec.ErrIncomplete {
			p.nh += k
			return k
		}
		if err != nil {
			p.nh += k
			p.bad = true
			return k
		}
		total := h.Len()
		used = h.HeaderLen - p.nh
		p.nh = h.HeaderLen
		if !s.alloc(t, x, p, total, h.Type == codec.Publish) {
			return len(b)
		}
		p.b = append(p.b, p.hdr[:h.HeaderLen]...)
		b = b[used:]
	}
	if p.b != nil {
		k := copy(p.b[len(p.b):cap(p.b)], b)
		p.b = p.b[:len(p.b)+k]
		used += k
	}
	return used
}

// alloc gives p a buffer of exactly total bytes, charged to the budget, and
// mapped if mappable and at least mapMin bytes. A packet that does not fit
// closes its connection and alloc reports false.
func (s *Server) alloc(t *conn, x *connExt, p *partial, total int, mappable bool) bool {
	n := int64(total)
	if s.partBytes.Add(n) > s.partLimit {
		s.partBytes.Add(-n)
		s.overBudget(t, x, total)
		return false
	}
	p.charged = n
	if mappable && total >= mapMin {
		size := (total + s.pageSize - 1) / s.pageSize * s.pageSize
		m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err == nil {
			p.mapping = m
			p.b = m[:0:total]
			return true
		}
	}
	p.b = make([]byte, 0, total)
	return true
}

// freePart drops the partial packet of t (whose extension is x), if any,
// and gives its bytes back. It must not run while Input reads the packet.
// x is passed rather than found: gnet clears a connection's context when it
// closes it, possibly from within Input.
func (s *Server) freePart(t *conn, x *connExt) {
	p := x.part
	if p == nil {
		return
	}
	x.part = nil
	defer t.shrink(x)
	if p.charged > 0 {
		s.partBytes.Add(-p.charged)
	}
	if p.mapping != nil {
		if err := syscall.Munmap(p.mapping); err != nil {
			panic("BUG: eventloop: munmap of a partial packet: " + err.Error())
		}
	}
	p.b, p.mapping = nil, nil
}

// overBudget closes t, whose packet of total bytes does not fit the budget.
func (s *Server) overBudget(t *conn, x *connExt, total int) {
	n := s.partKicks.Add(1)
	if now := time.Now().Unix(); s.partLastLog.Swap(now) != now {
		s.opts.Logger.Warn("connection closed: its incoming packet does not fit the memory for partial packets",
			"remote", t.RemoteAddr(), "packet", total, "held", s.partBytes.Load(),
			"max", s.partLimit, "closed", n)
	}
	s.freePart(t, x)
	t.client.Disconnect(codec.ServerBusy)
}

// PartialBytes is the number of bytes held for incoming packets not yet
// complete. Safe for concurrent use.
func (s *Server) PartialBytes() int64 { return s.partBytes.Load() }

// PartialKicks is the number of connections closed because their incoming
// packet did not fit MaxPartialPacketBytes. Safe for concurrent use.
func (s *Server) PartialKicks() uint64 { return s.partKicks.Load() }

// MaxPartialPacketBytes is the budget for partial packets in force. Safe
// for concurrent use.
func (s *Server) MaxPartialPacketBytes() int64 { return s.partLimit }
