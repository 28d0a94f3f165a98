package eventloop

import (
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Lingering: a graceful close for a client the server closes with last words
// it did not ask for (broker.Client.Graceful): a DISCONNECT with a reason
// code, a refusing CONNACK.
//
// Closing a socket that still has unread bytes makes the kernel answer with
// a TCP reset instead of a FIN, and a client still sending (a burst of QoS 2
// publishes past Receive Maximum, packets after a protocol error) then gets
// ECONNRESET, often before it has read the DISCONNECT and its reason code.
// So the connection lingers: once what was written has left gnet's buffer,
// the sending side is shut down (shutdown(SHUT_WR): the FIN follows the last
// words), and what still arrives is read and discarded until the peer
// closes, lingerTime passes or lingerMaxBytes have arrived; then it is
// closed. gnet has no half-close of its own, hence the syscall on the
// connection's descriptor, on its loop.
//
// A lingering connection is closed for the broker already (its Client is
// closed, its session detached, nothing counted as connected); its partial
// packet, if any, is dropped at once. It keeps its descriptor, so it still
// counts against MaxConns until it closes. At most maxLingering connections
// linger at a time; past that a graceful close is a plain one, counted
// (LingerDenied), so that a flood of misbehaving clients holds no more than
// maxLingering descriptors for lingerTime.

const (
	// lingerTime is how long a lingering connection waits for the peer to
	// close. The loop's tick closes it, so it closes within a second more.
	lingerTime = 2 * time.Second
	// lingerMaxBytes is how much a lingering connection discards before it
	// closes anyway: a client that keeps sending at full speed has read,
	// or will never read, the last words.
	lingerMaxBytes = 4 << 20
	// maxLingering bounds the connections lingering at once.
	maxLingering = 1024
)

// lingerState is a lingering connection's state.
type lingerState struct {
	until int64 // unix nanoseconds: close then
	read  int   // bytes discarded
	shut  bool  // the sending side is shut down
}

// linger starts t's graceful close and reports true, or reports false if
// maxLingering connections already linger (t is then closed at once).
// Called by Close, on the loop.
func (t *conn) linger() bool {
	if t.gone() {
		return true // closed already: a write that failed in the client's Input closes it from within
	}
	x := t.ext()
	if x.lg != nil {
		return true
	}
	ls := t.loopState()
	s := ls.s
	if s.lingering.Add(1) > maxLingering {
		s.lingering.Add(-1)
		s.lingerDenied.Add(1)
		t.shrink(x)
		return false
	}
	x.lg = &lingerState{until: time.Now().Add(lingerTime).UnixNano()}
	if !t.client.Reading() {
		s.freePart(t, x) // else OnTraffic frees it once Input has returned
	}
	x.shutWrite()
	ls.lingering = append(ls.lingering, x)
	return true
}

// shutWrite shuts down the sending side of t once gnet has sent everything
// written to it. Never after OnClose: another connection may have the
// descriptor by then (gnet accepts on another goroutine when it does not
// use SO_REUSEPORT).
func (x *connExt) shutWrite() {
	t := x.t
	if lg := x.lg; !lg.shut && !t.gone() && t.c.OutboundBuffered() == 0 {
		lg.shut = true
		_ = syscall.Shutdown(t.c.Fd(), syscall.SHUT_WR)
	}
}

// discard is OnTraffic for a lingering connection: what arrived is dropped;
// past lingerMaxBytes or lingerTime the connection closes.
func (x *connExt) discard(c gnet.Conn) gnet.Action {
	lg := x.lg
	n := c.InboundBuffered()
	if n > 0 {
		_, _ = c.Discard(n)
	}
	lg.read += n
	x.shutWrite()
	if lg.read > lingerMaxBytes || time.Now().UnixNano() >= lg.until {
		return gnet.Close
	}
	return gnet.None
}

// sweep, run by each tick on the loop, closes the lingering connections
// whose time is up, shuts down the sending side of those whose last words
// have left gnet's buffer since, and forgets those that have closed.
func (ls *loopState) sweep() {
	if len(ls.lingering) == 0 {
		return
	}
	now := time.Now().UnixNano()
	keep := ls.lingering[:0]
	for _, x := range ls.lingering {
		switch {
		case x.t.gone():
		case now >= x.lg.until:
			_ = x.t.c.Close()
		default:
			x.shutWrite()
			keep = append(keep, x)
		}
	}
	clear(ls.lingering[len(keep):])
	ls.lingering = keep
	if cap(ls.lingering) > 64 && len(ls.lingering) < cap(ls.lingering)/4 {
		ls.lingering = append([]*connExt(nil), ls.lingering...)
	}
}

// Lingering is the number of connections closing gracefully. Safe for
// concurrent use.
func (s *Server) Lingering() int64 { return s.lingering.Load() }

// LingerDenied is the number of graceful closes made plain because
// maxLingering connections were lingering. Safe for concurrent use.
func (s *Server) LingerDenied() uint64 { return s.lingerDenied.Load() }
