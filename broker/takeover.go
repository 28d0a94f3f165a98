package broker

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Session takeover across nodes (DESIGN.md §6). A persistent session whose
// client reconnects on another node moves there with its messages:
//
//  1. The new node B commits the claim; its result names the previous owner
//     A. B creates the session, installs its subscriptions from the registry
//     (so messages published from now on reach B), and, while A is alive,
//     holds the CONNACK until A's state arrives or TakeoverTimeout passes
//     (then it goes on with an empty queue and counts TakeoverStateLost; a
//     state that comes after that is dropped: see AcceptSession).
//  2. A applies the same claim: it closes the old connection (0x8E), takes
//     the session's inflight messages, queue and inbound QoS 2 ids, and sends
//     them to B (HandOver, a frameHandover on the ordered peer link). The
//     session stays on A as a stub for movedGrace, subscribed as before:
//     messages that still reach A, because a publisher's node has not yet
//     learnt B's routes, are sent on to B (a frameMoved, behind the handover
//     on the same link). After movedGrace the stub ends and A's routes go.
//  3. B installs A's state in front of what it queued meanwhile: inflight
//     messages first (resent with DUP and their packet ids [MQTT-4.4.0-1]),
//     then the queues, then answers CONNACK with session present.
//
// A message can reach B twice in the window: directly and through A (its
// queue or the stub). Every message carries a cluster-wide ID made at
// ingress, and B's session remembers the IDs it received from its creation
// until movedGrace after the handover, dropping a second copy: so QoS 2 stays
// exactly once and QoS 1 is not duplicated by the move.

// movedGrace is how long a moved session's stub forwards to the new node,
// and how long the new node deduplicates: longer than route convergence.
const movedGrace = 3 * time.Second

// takeover is the state of a session that arrived from another node, on its
// new node, until movedGrace after the handover; or, on its old node, of its
// stub. It lives in sessionFlow (Session.flow().tk). Loop goroutine only.
type takeover struct {
	c       *Client // the connection waiting for its CONNACK; nil once answered
	present bool
	ack     connackInfo
	epoch   uint64              // the claim whose state is awaited
	ids     map[uint64]struct{} // message IDs received
	until   int64               // unix ns; 0 while waiting for the handover

	// On the old node: the session moved to movedTo by the claim of
	// movedEpoch, and is a stub that forwards there.
	movedTo    string
	movedEpoch uint64

	// While the state is awaited: a newer claim moved the session on to
	// handTo (claim handEpoch); the state goes there once it is here.
	handTo    string
	handEpoch uint64
}

// takeover returns the takeover state of s, nil when there is none.
func (s *Session) takeover() *takeover {
	if s.f == nil {
		return nil
	}
	return s.f.tk
}

// awaits reports whether s waits for the state of the claim of epoch.
func awaits(s *Session, epoch uint64) bool {
	tk := s.takeover()
	return tk != nil && tk.awaiting() && tk.epoch == epoch
}

// awaiting reports whether the session waits for its state from its previous
// node.
func (tk *takeover) awaiting() bool { return tk.c != nil || tk.handTo != "" }

// newMsgBase returns the random base of this broker's message IDs.
func newMsgBase() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// nextMsgID returns a message ID: unique on this node (the loop's number in
// the top 16 bits of the offset, its own counter below), and across nodes with
// overwhelming probability (random 64-bit bases). Never 0. Loop goroutine
// only.
func (l *Loop) nextMsgID() uint64 {
	l.msgSeq++
	id := l.b.msgBase + (uint64(l.idx+1)<<48 | l.msgSeq&(1<<48-1))
	if id == 0 {
		return l.nextMsgID()
	}
	return id
}

// awaitsHandover reports whether a new session for res must wait for its
// previous node's state (wait), or resumes without it because that node is
// gone (lost).
func (b *Broker) awaitsHandover(res ClaimResult, present bool) (wait, lost bool) {
	if b.remote == nil || !present || res.PrevNode == "" {
		return false, false
	}
	if !b.remote.Alive(res.PrevNode) {
		// Its node is gone: the subscriptions come from the registry, the
		// messages it held are lost.
		b.stats.TakeoverStateLost.Add(1)
		return false, true
	}
	return true, false
}

// awaitHandover parks the CONNACK of c until the state of s arrives from its
// previous node or TakeoverTimeout passes. Loop goroutine only; l owns s.
func (l *Loop) awaitHandover(s *Session, c *Client, present bool, ack connackInfo, epoch uint64) {
	b := l.b
	s.epoch = epoch
	tk := &takeover{c: c, present: present, ack: ack, epoch: epoch, ids: map[uint64]struct{}{}}
	s.flow().tk = tk
	// A state that came before the claim's result here waits in early.
	b.mu.Lock()
	st := b.early[s.clientID]
	if st != nil && st.Epoch == epoch {
		delete(b.early, s.clientID)
	} else {
		st = nil
	}
	b.mu.Unlock()
	if st != nil {
		l.finishTakeover(s, st)
		return
	}
	time.AfterFunc(b.cfg.TakeoverTimeout, func() {
		b.onOwner(s, func(l *Loop) {
			if s.f == nil || s.f.tk != tk || !tk.awaiting() {
				return // answered
			}
			l.now = time.Now().UnixNano()
			b.stats.TakeoverStateLost.Add(1)
			b.log.Warn("session state did not arrive from its previous node; resumed with its subscriptions only",
				"client", s.clientID, "timeout", b.cfg.TakeoverTimeout)
			s.flow().stateLost = epoch
			l.finishTakeover(s, nil)
			l.Flush()
		})
	})
}

// finishTakeover installs st (nil when it never came) in s and answers the
// waiting CONNACK. Loop goroutine only; l owns s.
func (l *Loop) finishTakeover(s *Session, st *SessionState) {
	tk := s.takeover()
	if tk == nil || !tk.awaiting() {
		return
	}
	c := tk.c
	tk.c = nil
	tk.until = l.now + int64(movedGrace)
	if st != nil {
		l.install(s, st)
		l.b.stats.SessionsArrived.Add(1)
	}
	if tk.handTo != "" {
		l.handOverNow(s, tk.handEpoch, tk.handTo) // it moved on meanwhile
		return
	}
	switch {
	case s.ended:
		// A newer claim elsewhere ended it meanwhile: that connection
		// replaced this one [MQTT-3.1.4-3].
		l.closeWaiting(c)
	case c.closed:
		l.parkOrphan(s, &tk.ack)
	default:
		l.attach(s, c, tk.present, tk.ack)
	}
}

// inheritTakeover makes c, whose claim resumed s on this node while s still
// waits for its state from its previous node, the connection that waits: the
// connection of the claim that moved s here closed or is replaced before its
// CONNACK, and c gets the CONNACK when the state comes or the takeover times
// out. It reports false when s waits for nothing. Loop goroutine only; l
// owns s.
func (l *Loop) inheritTakeover(s *Session, c *Client, present bool, ack connackInfo) bool {
	tk := s.takeover()
	if tk == nil || tk.c == nil || tk.handTo != "" {
		return false
	}
	if oc := tk.c; oc != c {
		l.closeWaiting(oc) // the older connection, still without CONNACK [MQTT-3.1.4-3]
	}
	tk.c, tk.present, tk.ack = c, present, ack
	return true
}

// closeWaiting closes oc, a connection waiting for its CONNACK, on its own
// loop (it may be another than l's). Loop goroutine only.
func (l *Loop) closeWaiting(oc *Client) {
	ol := oc.l
	if ol == l {
		oc.abort()
		return
	}
	ol.exec(func() {
		ol.now = time.Now().UnixNano()
		oc.abort()
		ol.Flush()
	})
}

// install puts the messages of st in s, in front of what s queued since it
// was created; copies s already holds are dropped. Loop goroutine only.
func (l *Loop) install(s *Session, st *SessionState) {
	f := s.flow()
	seen := f.tk.ids
	arrived := make(map[uint64]struct{}, len(st.Messages))
	var queue []delivery
	for i := range st.Messages {
		mm := &st.Messages[i]
		d := delivery{s: s, msg: mm.Msg, qos: mm.QoS, retain: mm.Retain, subIDs: mm.SubIDs, group: mm.Group}
		if mm.Group != "" {
			d.filter = sharedKey(mm.Group, mm.Filter)
		}
		if mm.Msg != nil && mm.Msg.ID != 0 {
			arrived[mm.Msg.ID] = struct{}{}
		}
		if mm.PacketID != 0 && s.findInflight(mm.PacketID) < 0 {
			f.inflight = append(f.inflight, &inflightMsg{id: mm.PacketID, d: d, released: mm.Released})
			if mm.PacketID > s.nextID {
				s.nextID = mm.PacketID
			}
			continue
		}
		if mm.Msg != nil {
			queue = append(queue, d)
		}
	}
	// What reached s directly and also came with st: keep st's copy, which
	// is older.
	for _, d := range f.queue {
		if _, dup := arrived[d.msg.ID]; d.msg.ID != 0 && dup {
			l.b.stats.QueuedMessagesHeld.Add(-1)
			continue
		}
		queue = append(queue, d)
	}
	l.b.stats.QueuedMessagesHeld.Add(int64(len(queue) - len(f.queue)))
	f.queue = queue
	for id := range arrived {
		seen[id] = struct{}{}
	}
	for _, id := range st.InQoS2 {
		if f.inQoS2 == nil {
			f.inQoS2 = make(map[uint16]struct{})
		}
		f.inQoS2[id] = struct{}{}
	}
}

// seenBefore reports whether s, arrived from another node, already received
// the message of d, and records it otherwise. Loop goroutine only.
func (l *Loop) seenBefore(s *Session, d *delivery) bool {
	tk := s.f.tk
	if tk.until != 0 && l.now >= tk.until {
		s.f.tk = nil // the window is over
		return false
	}
	id := d.msg.ID
	if id == 0 {
		return false
	}
	if _, ok := tk.ids[id]; ok {
		return true
	}
	tk.ids[id] = struct{}{}
	return false
}

// HandOver moves the session of clientID to node to, whose claim (epoch)
// the registry committed with this node as the previous owner: the
// connection here is closed (0x8E), the session's messages go to to, and the
// session stays as a stub that forwards there for movedGrace. With no
// session here, an empty state goes, so that to does not wait. Safe for
// concurrent use; it must not block (the raft apply path calls it).
func (b *Broker) HandOver(clientID string, epoch uint64, to string) {
	b.mu.Lock()
	s := b.clients.get(clientID)
	b.mu.Unlock()
	if s == nil {
		b.remote.SendSession(to, &SessionState{ClientID: clientID, Epoch: epoch}, true)
		return
	}
	b.onOwner(s, func(l *Loop) {
		l.now = time.Now().UnixNano()
		if s.ended || s.epoch >= epoch || (s.f != nil && s.f.tk != nil && s.f.tk.movedTo != "") {
			b.remote.SendSession(to, &SessionState{ClientID: clientID, Epoch: epoch}, true)
			return
		}
		if tk := s.takeover(); tk != nil && tk.awaiting() {
			// Its own state has not come yet: it follows, with what
			// arrived meanwhile, once it does (or the takeover times out).
			if tk.c != nil {
				l.closeWaiting(tk.c) // superseded [MQTT-3.1.4-3]
				tk.c = nil
			}
			tk.handTo, tk.handEpoch = to, epoch
			return
		}
		l.handOverNow(s, epoch, to)
		l.Flush()
	})
}

// handOverNow moves s to node to for its claim of epoch: it closes the
// connection here, sends the messages, and leaves s as a stub that forwards
// there for movedGrace. Loop goroutine only; l owns s.
func (l *Loop) handOverNow(s *Session, epoch uint64, to string) {
	b := l.b
	if oc := s.client; oc != nil {
		l.kickForTakeover(s, oc)
	}
	s.will = nil // the session lives on at to; a delayed will goes with the registry
	s.stopTimers()
	st := l.takeState(s, epoch)
	b.remote.SendSession(to, st, true)
	b.stats.SessionsMoved.Add(1)
	s.flow().tk = &takeover{movedTo: to, movedEpoch: epoch}
	b.mu.Lock()
	b.clients.remove(s) // a new connection here starts a new session
	b.mu.Unlock()
	time.AfterFunc(movedGrace, func() {
		b.onOwner(s, func(l *Loop) {
			l.now = time.Now().UnixNano()
			l.endSession(s)
			l.Flush()
		})
	})
}

// takeState removes and returns the messages of s. Loop goroutine only.
func (l *Loop) takeState(s *Session, epoch uint64) *SessionState {
	st := &SessionState{ClientID: s.clientID, Epoch: epoch}
	f := s.f
	if f == nil {
		return st
	}
	for _, m := range f.inflight {
		st.Messages = append(st.Messages, movedOf(&m.d, m.id, m.released))
	}
	for i := range f.queue {
		st.Messages = append(st.Messages, movedOf(&f.queue[i], 0, false))
	}
	for id := range f.inQoS2 {
		st.InQoS2 = append(st.InQoS2, id)
	}
	l.b.stats.QueuedMessagesHeld.Add(-int64(len(f.queue)))
	f.inflight, f.queue, f.inQoS2 = nil, nil, nil
	if s.backlogged {
		l.removeBacklog(s)
	}
	l.setQueued(s)
	return st
}

func movedOf(d *delivery, id uint16, released bool) MovedMessage {
	mm := MovedMessage{Msg: d.msg, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs, Group: d.group, PacketID: id, Released: released}
	if len(mm.SubIDs) > MaxMovedSubIDs {
		mm.SubIDs = mm.SubIDs[:MaxMovedSubIDs]
	}
	if released {
		mm.Msg = nil
	}
	if d.group != "" {
		mm.Filter = sharedTopic(d.filter)
	}
	return mm
}

// forwardMoved sends d, for a session that moved to another node, after it.
// Loop goroutine only.
func (l *Loop) forwardMoved(s *Session, d *delivery) {
	tk := s.f.tk
	mm := movedOf(d, 0, false)
	l.b.remote.SendSession(tk.movedTo, &SessionState{ClientID: s.clientID, Epoch: tk.movedEpoch, Messages: []MovedMessage{mm}}, false)
}

// AcceptSession takes a session's state from its previous node (handover)
// or messages that reached that node after the handover (!handover). A state
// that arrives before this node has the claim's result waits (early) for
// awaitHandover. Safe for concurrent use; messages from one node are
// accepted in order.
func (b *Broker) AcceptSession(st *SessionState, handover bool) {
	b.mu.Lock()
	if e := b.early[st.ClientID]; e != nil && e.Epoch == st.Epoch && !handover {
		e.Messages = append(e.Messages, st.Messages...) // behind its handover, still early
		b.mu.Unlock()
		return
	}
	s := b.clients.get(st.ClientID)
	if s == nil {
		if handover {
			b.keepEarly(st)
		} else {
			b.stats.MovedMessagesLost.Add(uint64(len(st.Messages)))
		}
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.onOwner(s, func(l *Loop) {
		l.now = time.Now().UnixNano()
		switch {
		case handover && !s.ended && awaits(s, st.Epoch):
			// The state the session waits for (a newer claim of this node
			// may have resumed it meanwhile: inheritTakeover).
			l.finishTakeover(s, st)
		case s.ended || s.epoch > st.Epoch:
			b.stats.MovedMessagesLost.Add(uint64(len(st.Messages)))
		case s.epoch < st.Epoch:
			// An older session here; the claim's result has not come yet.
			if handover {
				b.mu.Lock()
				b.keepEarly(st)
				b.mu.Unlock()
			} else {
				b.stats.MovedMessagesLost.Add(uint64(len(st.Messages)))
			}
		case s.f != nil && s.f.stateLost == st.Epoch:
			// The session resumed without this state: its old node was
			// gone, or silent past TakeoverTimeout (a partition, a pause),
			// and comes back with it now. The session was handled as if
			// that node had crashed, and its client may have had the
			// state's messages from the old node already (QoS 2 past
			// PUBREC) or from this node since: delivering them now would
			// duplicate them, under packet ids the client does not know.
			// They are dropped and counted, as a crash would have lost them.
			b.stats.MovedMessagesLost.Add(uint64(len(st.Messages)))
			if handover {
				b.log.Info("session state came after its session resumed without it; dropped",
					"client", st.ClientID, "messages", len(st.Messages))
			}
		default:
			// Messages the old node's stub sent on after the handover.
			for i := range st.Messages {
				mm := &st.Messages[i]
				if mm.Msg == nil {
					continue
				}
				d := delivery{s: s, msg: mm.Msg, qos: mm.QoS, retain: mm.Retain, subIDs: mm.SubIDs, group: mm.Group}
				if mm.Group != "" {
					d.filter = sharedKey(mm.Group, mm.Filter)
				}
				l.deliver(d)
			}
		}
		l.Flush()
	})
}

// keepEarly keeps st until its claim's result arrives, or 2×TakeoverTimeout.
// Broker.mu must be held.
func (b *Broker) keepEarly(st *SessionState) {
	if b.early == nil {
		b.early = map[string]*SessionState{}
	}
	if len(b.early) >= maxEarlyStates {
		for k := range b.early { // drop one; its session resumes without it
			delete(b.early, k)
			b.stats.TakeoverStateLost.Add(1)
			break
		}
	}
	b.early[st.ClientID] = st
	time.AfterFunc(2*b.cfg.TakeoverTimeout, func() { b.dropEarly(st) })
}

// maxEarlyStates bounds the states kept for claims not yet answered here.
const maxEarlyStates = 4096

// dropEarly forgets st if no claim took it.
func (b *Broker) dropEarly(st *SessionState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.early[st.ClientID] == st {
		delete(b.early, st.ClientID)
		b.stats.TakeoverStateLost.Add(1)
	}
}
