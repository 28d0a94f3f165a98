package broker

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Loop is the broker side of one event loop: it owns the sessions and
// connections living on it, drains its mailbox of cross-loop deliveries, and
// writes each connection once per drain. Methods are for the loop's own
// goroutine unless marked otherwise.
type Loop struct {
	b    *Broker
	idx  int
	exec func(func()) bool

	// Publishers of any loop held back by sessions of this one, by session
	// (flow.go); nWaiting is len(waiting), read without the lock.
	waitMu   sync.Mutex
	waiting  map[*Session][]*Client
	nWaiting atomic.Int32

	mbMu      sync.Mutex
	mb        []delivery
	mbSpare   []delivery
	scheduled atomic.Bool
	drainFn   func()

	// Loop-owned state.
	r          *router
	pk         codec.Packet
	pub        codec.PublishPacket // outgoing encode scratch
	now        int64               // cached clock, unix nanoseconds
	dirty      []*Client
	dirtySpare []*Client
	flushing   bool
	clients    []*Client // open connections; Client.pos is the position
	backlog    []*Session
	paused     []*Client  // held back by flow control (see resumeDrained)
	msgSeq     uint64     // message ID counter (takeover.go)
	holding    []*Session // sessions whose queue holds publishers back (see checkStuck)
	wheel      wheel
	subReasons []codec.ReasonCode // SUBSCRIBE scratch
	subReqs    []subReq           // SUBSCRIBE scratch
	rs         retainedSink       // sendRetained's subscription
	rsSend     func(*Message)     // l.sendRetainedMsg, bound once
	keyBuf     []byte             // sendRetained's filter
	pace       retainPacer        // connections with a retained backlog (retained_pace.go)
	reading    *Client            // the client whose Input is running
	aux        any                // the transport's own state of this loop (SetAux)
	spare      []*outBuf          // output buffers between flushes (see Client.outBuf)
	spareLow   int                // fewest spare buffers held since the last Tick
}

func newLoop(b *Broker, exec func(func()) bool) *Loop {
	l := &Loop{b: b, exec: exec}
	l.r = newRouter(b)
	l.r.local = l
	l.drainFn = l.drain
	l.rsSend = l.sendRetainedMsg
	l.now = time.Now().UnixNano()
	l.wheel.init(l.now)
	return l
}

// post queues deliveries for this loop and schedules one drain. Safe for
// concurrent use. QoS 0 deliveries beyond the mailbox bound are dropped and
// counted; QoS 1/2 ones are kept (they are bounded by session queues when the
// drain runs) so that an acknowledged message is never lost here.
func (l *Loop) post(batch []delivery) {
	limit := l.b.cfg.MailboxSize
	l.mbMu.Lock()
	for i := range batch {
		if batch[i].qos == 0 {
			if len(l.mb) >= limit {
				l.b.stats.DroppedQoS0.Add(1)
				// On the poster's goroutine: l.now is not ours to read.
				if held, ok := l.b.abuse.dropped.Allow(time.Now().UnixNano()); ok {
					LogHeld(l.b.log, slog.LevelInfo, held, "QoS 0 message dropped: loop mailbox full",
						"client", batch[i].s.clientID, "mailbox-size", limit)
				}
				continue
			}
		} else {
			batch[i].s.mailed.Add(1) // flow control counts it from now on
		}
		l.mb = append(l.mb, batch[i])
	}
	l.mbMu.Unlock()
	if l.scheduled.CompareAndSwap(false, true) {
		if !l.exec(l.drainFn) {
			l.scheduled.Store(false)
		}
	}
}

// drain delivers everything in the mailbox and flushes.
func (l *Loop) drain() {
	l.scheduled.Store(false)
	l.mbMu.Lock()
	batch := l.mb
	l.mb = l.mbSpare[:0]
	l.mbMu.Unlock()
	l.now = time.Now().UnixNano()
	for i := range batch {
		d := &batch[i]
		l.deliver(*d)
		if d.qos > 0 {
			d.s.mailed.Add(-1)
			if l.nWaiting.Load() > 0 && d.s.loop.Load() == l {
				l.wake(d.s, false)
			}
		}
	}
	clear(batch)
	l.mbSpare = batch[:0]
	l.Flush()
}

// markDirty schedules c for the next flush.
func (l *Loop) markDirty(c *Client) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// Flush writes each connection's pending bytes with one write.
//
// A write can fail and make the transport close the connection at once,
// calling back into the loop (Closed, and a Flush of its own): the nested
// Flush returns at once, and what it would have written is written by the
// outer one, which takes the dirty list afresh until it is empty.
func (l *Loop) Flush() {
	if l.flushing {
		return
	}
	l.flushing = true
	for len(l.dirty) > 0 {
		batch := l.dirty
		l.dirty = l.dirtySpare[:0]
		for i, c := range batch {
			c.dirty = false
			if c.out == nil {
				batch[i] = nil
				continue
			}
			if n := len(c.out.b); !c.closed && n > 0 {
				l.b.stats.BytesSent.Add(uint64(n))
				if err := c.t.Write(c.out.b); err != nil {
					c.closed = true
					c.t.Close(false)
				}
			}
			if c.out != nil { // a Close from within Write already gave it back
				l.putBuf(c.out)
				c.out = nil
			}
			batch[i] = nil
		}
		l.dirtySpare = batch[:0]
	}
	l.flushing = false
}

// Output buffers. A connection holds one only from its first packet in an
// event to the Flush that writes it: then it goes back to the loop's spares,
// so that an idle connection holds none, and a busy one takes a spare rather
// than allocating. Spares no flush needed for a whole Tick are dropped, so
// that the pool follows the loop's busiest recent event, not its busiest
// ever.

// maxSpareCap is the capacity past which a buffer is dropped after use
// rather than kept.
const maxSpareCap = 16 << 10

// outBuf is an output buffer. A Client holds it by pointer, so that a
// connection without one pays a word rather than a slice header.
type outBuf struct{ b []byte }

// outBuf returns c's output buffer, taking a spare if it has none.
func (c *Client) outBuf() *outBuf {
	if c.out == nil {
		l := c.l
		if n := len(l.spare); n > 0 {
			c.out = l.spare[n-1]
			l.spare[n-1] = nil
			l.spare = l.spare[:n-1]
			l.spareLow = min(l.spareLow, n-1)
		} else {
			c.out = &outBuf{}
		}
	}
	return c.out
}

// pending is the number of bytes c has waiting for the next Flush.
func (c *Client) pending() int {
	if c.out == nil {
		return 0
	}
	return len(c.out.b)
}

// putBuf keeps o, written, as a spare.
func (l *Loop) putBuf(o *outBuf) {
	if cap(o.b) <= maxSpareCap {
		o.b = o.b[:0]
		l.spare = append(l.spare, o)
	}
}

// trimSpares drops the spares that were not taken since the last call (those
// at the bottom of the stack). Tick calls it.
func (l *Loop) trimSpares() {
	if n := l.spareLow; n > 0 {
		k := copy(l.spare, l.spare[n:])
		clear(l.spare[k:])
		l.spare = l.spare[:k]
	}
	if cap(l.spare) > 64 && len(l.spare) < cap(l.spare)/4 {
		l.spare = append([]*outBuf(nil), l.spare...)
	}
	l.spareLow = len(l.spare)
}

// Tick advances the loop clock: keepalive and connect timeouts, and retries
// sessions whose queue waits for the socket to drain. Run it about once a
// second on the loop.
func (l *Loop) Tick() {
	l.now = time.Now().UnixNano()
	l.trimSpares()
	l.wheel.advance(l.now, func(c *Client) {
		if c.closed {
			return
		}
		if c.deadline > l.now {
			l.wheel.add(c, c.deadline)
			return
		}
		b := l.b
		if c.state == stateConnected {
			b.stats.KeepaliveTimeouts.Add(1)
			if held, ok := b.abuse.connectTimeout.Allow(l.now); ok {
				LogHeld(b.log, slog.LevelInfo, held, "connection closed: keep alive timed out",
					"client", c.clientID(), "remote", c.t.RemoteAddr(), "keepalive", c.keepAlive)
			}
			c.disconnect(codec.KeepAliveTimeout) // [MQTT-3.1.2-22]
		} else {
			b.stats.ConnectTimeouts.Add(1)
			if held, ok := b.abuse.connectTimeout.Allow(l.now); ok {
				LogHeld(b.log, slog.LevelInfo, held, "connection closed: no CONNECT in time",
					"remote", c.t.RemoteAddr(), "connect-timeout", b.cfg.ConnectTimeout)
			}
			c.abort()
		}
	})
	l.resumeDrained()
	l.checkStuck()
	if len(l.backlog) > 0 {
		bl := l.backlog
		l.backlog = nil
		for _, s := range bl {
			s.backlogged = false
			if s.client != nil && s.loop.Load() == l {
				l.pump(s)
			}
		}
	}
	l.Flush()
}

// closeAll disconnects every client of the loop with reason rc (v5).
func (l *Loop) closeAll(rc codec.ReasonCode) {
	// Closing removes a client from l.clients: walk a copy.
	for _, c := range slices.Clone(l.clients) {
		if c.state == stateConnected {
			c.disconnect(rc)
		} else {
			c.abort()
		}
	}
	l.Flush()
}

// wheel is a timing wheel of one-second slots for connection deadlines.
// Clients re-file themselves lazily: activity only moves c.deadline, and a
// client found in a slot before its deadline is put back where it belongs.
// A deadline moved earlier (keep alive after the connect timeout) files the
// client again; c.filed tells the live entry from the stale one.
type wheel struct {
	slots [256][]*Client
	last  int64 // last second processed
}

func (w *wheel) init(now int64) { w.last = now / int64(time.Second) }

// add files c for its deadline (unix nanoseconds).
func (w *wheel) add(c *Client, deadline int64) {
	sec := deadline / int64(time.Second)
	if sec <= w.last {
		sec = w.last + 1
	}
	if sec > w.last+int64(len(w.slots))-1 {
		sec = w.last + int64(len(w.slots)) - 1
	}
	i := sec % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], c)
	c.filed = uint32(sec)
}

// advance visits every client filed for a second up to now.
func (w *wheel) advance(now int64, visit func(*Client)) {
	sec := now / int64(time.Second)
	for w.last < sec {
		w.last++
		i := w.last % int64(len(w.slots))
		due := w.slots[i]
		w.slots[i] = nil
		for _, c := range due {
			if int64(c.filed) != w.last {
				continue // stale: c was filed again for an earlier second
			}
			c.filed = 0
			visit(c)
		}
	}
}

// Exec runs f on the loop's goroutine later. Safe for concurrent use.
func (l *Loop) Exec(f func()) bool { return l.exec(f) }

// Recovered is called by the transport after it recovered a panic raised on
// the loop, v with its stack: in c's Input, open or close (c is then the
// connection whose event it was), or in a loop task (c is nil). A panic is a
// bug, never an answer to input: it is logged at error with the stack
// (rate-limited) and counted in Stats.Panics, the loop's transient state is
// reset, and c alone is closed; every other connection of the loop goes on
// being served (docs/threads.md, "Panics"). Loop goroutine only.
func (l *Loop) Recovered(c *Client, v any, stack []byte) {
	b := l.b
	b.stats.Panics.Add(1)
	args := []any{"panic", fmt.Sprint(v), "stack", string(stack)}
	if c != nil {
		args = append(args, "client", c.clientID(), "remote", c.t.RemoteAddr())
	}
	if held, ok := b.abuse.panic.Allow(time.Now().UnixNano()); ok {
		LogHeld(b.log, slog.LevelError, held, "BUG: panic on an event loop recovered; its connection is closed", args...)
	}
	l.reading = nil
	l.flushing = false
	if c == nil {
		return
	}
	// c's state may be half-updated: close it as far as that goes, and a
	// second panic on the way stops there, logged.
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("BUG: closing the connection of a recovered panic panicked too", "panic", fmt.Sprint(v))
		}
	}()
	if !c.closed {
		c.closed = true
		c.t.Close(false)
	}
	l.Closed(c)
}

// SetAux keeps v, the transport's own state of this loop, for Aux. Loop
// goroutine only, or before the loop runs.
func (l *Loop) SetAux(v any) { l.aux = v }

// Aux returns what SetAux kept. Loop goroutine only.
func (l *Loop) Aux() any { return l.aux }
