package broker

import (
	"log/slog"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Flow control for QoS 1 and 2. A publish is acknowledged once routed, so a
// publisher faster than a subscriber would fill the subscriber's session
// queue. Instead, a session's backpressure counts what its connection has not
// yet been sent: its queue behind the inflight window, and the deliveries on
// their way to it in its loop's mailbox, which publishers on other loops put
// there faster than that loop drains them. When a QoS 1/2 publish lands in a
// session whose backpressure is past congestAt, the broker stops reading from
// the publisher: its later packets wait unread (in the transport's buffer), no
// PUBACK comes back, and its own inflight window (our Receive Maximum for v5
// clients) stops it. So each publisher adds at most one message to a
// congested session before it is held, and an acknowledged message is always
// in the session of a subscriber that stays connected.
//
// Reading resumes when the backpressure drains below half of congestAt: the
// owner loop of the session wakes the publishers registered with it (wake),
// and every Tick resumes a held publisher none of whose sessions is still
// congested, should a wake-up have raced with a session moving loops. There
// is no time limit that lets a flood through: a subscriber that holds
// publishers back makes progress (acknowledges, or takes messages off its
// queue) within SlowConsumerTimeout, or it is disconnected with 0x97
// (checkStuck), and its waiters resume.
//
// A client whose own session is congested is never held: it must go on
// reading its acknowledgements for that queue to drain, and two clients
// publishing to each other would otherwise hold each other for good.

// congestAt is the backpressure at which publishers are held back.
func (b *Broker) congestAt() int32 {
	return int32(max(16, b.cfg.MaxQueuedMessages/4))
}

// backpressure is the number of QoS 1/2 messages for s that its connection
// has not been sent: queued while connected, or in its loop's mailbox. Safe
// for concurrent use.
func (s *Session) backpressure() int32 {
	return s.queued.Load() + s.mailed.Load()
}

// setQueued publishes the length of the queue of s, 0 while it has no
// connection (an offline session holds nobody back), and wakes the
// publishers waiting on s once it has drained. Loop goroutine only; l owns s.
func (l *Loop) setQueued(s *Session) {
	n := int32(0)
	if s.client != nil {
		n = int32(s.queueLen())
	}
	s.queued.Store(n)
	l.wake(s, false)
}

// noteCongestion records, while routing, a target whose backpressure is past
// the mark.
func (r *router) noteCongestion(d *delivery) {
	if d.qos > 0 && d.s.backpressure() >= r.b.congestAt() {
		r.congested = append(r.congested, d.s)
	}
}

// forgetCongestion drops what routing noted, for publishes nobody pauses for.
func (r *router) forgetCongestion() {
	clear(r.congested)
	r.congested = r.congested[:0]
	r.congestedLinks = r.congestedLinks[:0]
}

// addWaiter registers c to be woken when s drains. Safe for concurrent use;
// l is the owner of s as c saw it.
func (l *Loop) addWaiter(s *Session, c *Client) {
	l.waitMu.Lock()
	if l.waiting == nil {
		l.waiting = make(map[*Session][]*Client)
	}
	ws, ok := l.waiting[s]
	if !ok {
		l.nWaiting.Add(1)
	}
	l.waiting[s] = append(ws, c)
	l.waitMu.Unlock()
}

// wake resumes the publishers waiting on s, once its backpressure is below
// half the mark or, with all, at once (s is leaving the loop or ending).
// Loop goroutine only; l owns s.
func (l *Loop) wake(s *Session, all bool) {
	if l.nWaiting.Load() == 0 || (!all && s.backpressure() > l.b.congestAt()/2) {
		return
	}
	l.waitMu.Lock()
	ws, ok := l.waiting[s]
	if ok {
		delete(l.waiting, s)
		l.nWaiting.Add(-1)
	}
	l.waitMu.Unlock()
	for _, c := range ws {
		if c.l == l {
			c.resume()
		} else {
			c.l.exec(func() { c.resume() })
		}
	}
}

// pauseFor stops reading from c until the congested sessions drain and the
// congested links to other nodes (remote.go) have room. Loop goroutine only.
func (c *Client) pauseFor(congested []*Session, links []uint32) {
	b := c.l.b
	mark := b.congestAt()
	if own := c.s; own != nil && own.backpressure() >= mark {
		return // c must read the acknowledgements its own queue waits for
	}
	low := mark / 2
	waiting := false
	for _, s := range congested {
		if s == c.s {
			continue // a client is never held up by its own queue
		}
		s.loop.Load().addWaiter(s, c)
		if s.backpressure() > low { // it may have drained meanwhile
			waiting = true
			x := c.x()
			x.waitOn = append(x.waitOn, s)
		}
	}
	for _, n := range links {
		if b.remote.Congested(n) {
			waiting = true
			x := c.x()
			x.waitLinks = append(x.waitLinks, n)
		}
	}
	if !waiting {
		return
	}
	x := c.ext
	c.paused = true
	if !x.listedPaused {
		x.listedPaused = true
		c.l.paused = append(c.l.paused, c)
	}
	b.stats.PublisherPauses.Add(1)
	if held, ok := b.abuse.paused.Allow(c.l.now); ok {
		if len(x.waitOn) > 0 {
			LogHeld(b.log, slog.LevelInfo, held, "publisher held back: a subscriber's queue is congested",
				"client", c.clientID(), "subscriber", x.waitOn[0].clientID)
		} else {
			LogHeld(b.log, slog.LevelInfo, held, "publisher held back: the link to another node is congested",
				"client", c.clientID())
		}
	}
}

// resume reads from c again. Loop goroutine only.
func (c *Client) resume() {
	if !c.paused || c.closed {
		return
	}
	c.paused = false
	clear(c.ext.waitOn)
	c.ext.waitOn = c.ext.waitOn[:0]
	c.ext.waitLinks = c.ext.waitLinks[:0]
	c.t.Resume()
}

// resumeDrained resumes the held clients none of whose sessions is still
// congested: a wake-up lost to a session that moved loops or ended costs at
// most one Tick. Loop goroutine only.
func (l *Loop) resumeDrained() {
	low := l.b.congestAt() / 2
	keep := l.paused[:0]
	for _, c := range l.paused {
		if !c.paused || c.closed {
			c.ext.listedPaused = false
			continue
		}
		held := c.linksCongested()
		for _, s := range c.ext.waitOn {
			if s.backpressure() > low {
				held = true
				break
			}
		}
		if !held {
			c.ext.listedPaused = false
			c.resume()
			continue
		}
		keep = append(keep, c)
	}
	clear(l.paused[len(keep):])
	l.paused = keep
}

// holdBack notes that s, connected, holds publishers back: its queue reached
// the mark. checkStuck watches it from then on. Loop goroutine only; l owns s.
func (l *Loop) holdBack(s *Session) {
	f := s.f
	if f.holding || s.client == nil {
		return
	}
	f.holding = true
	f.holdSince = l.now
	l.holding = append(l.holding, s)
	if c := s.client; c.paused {
		// Held on someone else's queue while its own fills: read its
		// acknowledgements again (see pauseFor).
		c.resume()
	}
}

// checkStuck disconnects, with 0x97, the connected clients whose queue has
// held publishers back for SlowConsumerTimeout without progress, and stops
// watching the sessions that drained. Tick calls it. Loop goroutine only.
func (l *Loop) checkStuck() {
	b := l.b
	low := int(b.congestAt() / 2)
	timeout := int64(b.cfg.SlowConsumerTimeout)
	keep := l.holding[:0]
	for _, s := range l.holding {
		if s.loop.Load() != l {
			continue // moved away: release reset its holding flag
		}
		c, f := s.client, s.f
		if c == nil || s.ended || s.queueLen() <= low {
			f.holding = false
			continue
		}
		if since := max(f.progressAt, f.holdSince); timeout > 0 && l.now-since >= timeout {
			f.holding = false
			b.stats.SlowConsumerKicks.Add(1)
			if held, ok := b.abuse.slowConsumer.Allow(l.now); ok {
				LogHeld(b.log, slog.LevelWarn, held, "slow consumer disconnected: no progress while it held publishers back",
					"client", s.clientID, "remote", c.t.RemoteAddr(), "queued", s.queueLen(),
					"inflight", len(f.inflight), "stalled", time.Duration(l.now-since).Round(time.Millisecond))
			}
			c.disconnect(codec.QuotaExceeded) // 0x97; a persistent session keeps its queue
			continue
		}
		keep = append(keep, s)
	}
	clear(l.holding[len(keep):])
	l.holding = keep
}
