package broker

import "time"

// Pacing the retained messages of a new subscription.
//
// A SUBSCRIBE to a wide filter can match more retained messages than a
// socket takes at once: a thousand 10 KB messages are 10 MB, past the
// outbound high-water mark after about four hundred. Live QoS 0 traffic
// past that mark is dropped (the subscriber is too slow for it), but the
// retained messages are what the subscriber asked for, all at once: they
// wait instead, as pointers to the shared retained copies, in a backlog of
// the connection, and go out as the socket drains. Retained messages the
// subscription gets at QoS 1 or 2 are not paced here: they go through the
// session's inflight window and queue, which the acknowledgements pump.
//
// The transport tells nobody when its buffer drains (gnet has no such
// event), so the loop polls: a timer, armed while some connection of the
// loop has a backlog, runs a round that sends what the sockets take, soon
// after progress (retainPaceMin) and backing off to retainPaceMax while
// the sockets stay full. A live QoS 0 message for a connection with a
// backlog first sends what it can of the backlog, so that it never
// overtakes an older retained message; past the mark it is dropped as
// before.
//
// Bounds: the backlog of a subscription is at most the retained messages
// its filter matched (8 bytes each; the messages are the store's), and it
// lives as long as the connection.

// retainPaceMin and retainPaceMax bound the delay between two rounds of a
// loop's retained backlogs: the minimum after a round that sent something,
// doubling up to the maximum while the sockets stay past the mark.
const (
	retainPaceMin = time.Millisecond
	retainPaceMax = 100 * time.Millisecond
)

// retainedBacklog holds the retained QoS 0 messages a connection has not
// been sent yet, one run per subscription, oldest first.
type retainedBacklog struct {
	runs []retainedRun
}

// retainedRun is what remains to send of the retained messages of one
// subscription.
type retainedRun struct {
	msgs   []*Message
	next   int      // msgs[next:] remain
	subIDs []uint32 // the subscription identifier to send, nil if none
}

// retainPacer is a loop's list of connections with a retained backlog and
// the timer that sends them on. Loop goroutine only, but for the timer's
// callback, which only schedules a round with Loop.exec.
type retainPacer struct {
	clients []*Client
	timer   *time.Timer
	armed   bool          // a round is scheduled (timer pending or round queued)
	delay   time.Duration // of the next arming
	round   func()        // l.paceRound, bound once
}

// retainedPending reports whether c has retained messages waiting. Loop
// goroutine only.
func (c *Client) retainedPending() bool {
	return c.ext != nil && c.ext.retained != nil
}

// holdRetained adds m to the backlog of c, in the run of the subscription
// that sendRetained is serving (l.rs), and schedules the loop's pacer.
func (l *Loop) holdRetained(c *Client, m *Message) {
	x := c.x()
	q := x.retained
	if q == nil {
		q = &retainedBacklog{}
		x.retained = q
		l.rs.held = false
		l.pace.clients = append(l.pace.clients, c)
		l.armPacer(retainPaceMin)
	}
	if !l.rs.held {
		l.rs.held = true
		q.runs = append(q.runs, retainedRun{subIDs: l.rs.subIDs})
	}
	r := &q.runs[len(q.runs)-1]
	r.msgs = append(r.msgs, m)
}

// sendRetainedBacklog writes what the socket of c takes of its retained
// backlog, oldest first, and reports whether it wrote anything. The backlog
// is dropped once sent, or when c is no longer connected. Loop goroutine
// only.
func (l *Loop) sendRetainedBacklog(c *Client) bool {
	q := c.ext.retained
	s := c.s
	if c.closed || c.state != stateConnected || s == nil || s.loop.Load() != l {
		c.ext.retained = nil // QoS 0: nothing is kept for a connection that is gone
		return false
	}
	sent := false
	for len(q.runs) > 0 {
		r := &q.runs[0]
		for r.next < len(r.msgs) {
			if c.overHighWater() {
				return sent
			}
			m := r.msgs[r.next]
			r.msgs[r.next] = nil
			r.next++
			if m.expired(l.now) {
				l.b.stats.DroppedExpired.Add(1)
				continue
			}
			d := delivery{s: s, msg: m, retain: true, subIDs: r.subIDs}
			c.writePublish(&d, 0, false)
			sent = true
		}
		q.runs[0] = retainedRun{}
		q.runs = q.runs[1:]
	}
	c.ext.retained = nil
	return sent
}

// armPacer schedules a round of the loop's retained backlogs after d, unless
// one is scheduled already.
func (l *Loop) armPacer(d time.Duration) {
	p := &l.pace
	if p.armed {
		return
	}
	p.armed = true
	p.delay = d
	if p.timer == nil {
		p.round = l.paceRound
		p.timer = time.AfterFunc(d, func() { l.exec(p.round) })
		return
	}
	p.timer.Reset(d)
}

// paceRound sends on every retained backlog of the loop what its socket
// takes, flushes, and schedules the next round while backlogs remain (also
// should the round panic: see Loop.Recovered).
func (l *Loop) paceRound() {
	p := &l.pace
	p.armed = false
	progress := false
	defer func() {
		if len(p.clients) > 0 {
			d := retainPaceMin
			if !progress {
				d = min(2*p.delay, retainPaceMax)
			}
			l.armPacer(d)
		}
	}()
	l.now = time.Now().UnixNano()
	keep := p.clients[:0]
	for _, c := range p.clients {
		if !c.retainedPending() {
			continue // sent by a live delivery, or dropped
		}
		if l.sendRetainedBacklog(c) {
			progress = true
		}
		if c.retainedPending() {
			keep = append(keep, c)
		}
	}
	clear(p.clients[len(keep):])
	p.clients = keep
	if len(keep) == 0 {
		p.clients = nil
	}
	l.Flush()
}
