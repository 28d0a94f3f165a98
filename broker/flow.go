package broker

import "time"

// Flow control for QoS 1 and 2. A publish is acknowledged once routed, so a
// publisher faster than a subscriber would fill the subscriber's session
// queue until the slow-consumer policy disconnects the subscriber, losing
// messages. Instead, when a QoS 1/2 publish lands in a session whose queue is
// past congestAt, the broker stops reading from the publisher: its later
// packets wait unread (in the transport's buffer), no PUBACK comes back, and
// the publisher's own inflight window (our Receive Maximum for v5 clients)
// stops it. Reading resumes when the queue drains below half of congestAt,
// or after maxPause at the latest, so that no cycle of paused clients can
// stall for good.

const maxPause = 500 * time.Millisecond

// congestAt is the session queue length at which publishers pause.
func (b *Broker) congestAt() int32 {
	return int32(max(16, b.cfg.MaxQueuedMessages/4))
}

// setQueued publishes the length of the queue of s and, when it has
// drained, resumes the publishers waiting on s. Loop goroutine only; l owns s.
func (l *Loop) setQueued(s *Session) {
	n := int32(s.queueLen())
	s.queued.Store(n)
	f := s.f
	if n > l.b.congestAt()/2 || f == nil {
		return
	}
	f.waitMu.Lock()
	ws := f.waiters
	f.waiters = nil
	f.waitMu.Unlock()
	for _, c := range ws {
		c.l.exec(func() { c.resume() })
	}
}

// noteCongestion records, while routing, a target whose queue is long.
func (r *router) noteCongestion(d *delivery) {
	if d.qos > 0 && d.s.queued.Load() >= r.b.congestAt() {
		r.congested = append(r.congested, d.s)
	}
}

// forgetCongestion drops what routing noted, for publishes nobody pauses for.
func (r *router) forgetCongestion() {
	clear(r.congested)
	r.congested = r.congested[:0]
}

// pauseFor stops reading from c until the congested sessions drain. Loop
// goroutine only.
func (c *Client) pauseFor(congested []*Session) {
	low := c.l.b.congestAt() / 2
	waiting := false
	for _, s := range congested {
		if s == c.s {
			continue // a client is never held up by its own queue
		}
		// s was congested when noted, so its flow state exists (see
		// sessionFlow).
		f := s.f
		f.waitMu.Lock()
		f.waiters = append(f.waiters, c)
		f.waitMu.Unlock()
		if s.queued.Load() > low { // it may have drained meanwhile
			waiting = true
		}
	}
	if !waiting {
		return
	}
	c.paused = true
	c.x().pausedAt = c.l.now
	c.l.paused = append(c.l.paused, c)
	c.l.b.stats.PublisherPauses.Add(1)
}

// resume reads from c again. Loop goroutine only.
func (c *Client) resume() {
	if !c.paused || c.closed {
		return
	}
	c.paused = false
	c.t.Resume()
}

// resumeOverdue resumes clients paused longer than maxPause. Loop goroutine
// only.
func (l *Loop) resumeOverdue() {
	keep := l.paused[:0]
	for _, c := range l.paused {
		switch {
		case !c.paused || c.closed:
		case time.Duration(l.now-c.ext.pausedAt) >= maxPause:
			c.resume()
		default:
			keep = append(keep, c)
		}
	}
	clear(l.paused[len(keep):])
	l.paused = keep
}
