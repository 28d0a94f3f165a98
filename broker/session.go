package broker

import (
	"sync/atomic"
	"time"
)

// Session is the MQTT session state of one client id: subscriptions, the
// outgoing inflight window, the queue behind it, inbound QoS 2 packet ids and
// the will. It outlives its connection when it is persistent.
//
// A session is owned by one loop at a time (loop); every field below loop is
// touched only on that loop's goroutine. Ownership moves when a client
// reconnects on another loop (see Broker.takeover).
type Session struct {
	id       uint64 // routing identity
	clientID string
	loop     atomic.Pointer[Loop] // owner; safe for concurrent use

	client *Client // nil while offline
	epoch  uint64
	subs   subSet
	f      *sessionFlow // nil until the session first holds a message or a timer
	will   *Will

	expiry     uint32 // session expiry interval, seconds; 0xFFFFFFFF never
	attachedAt int64  // unix nanoseconds of the last connection's attach, for the admin views
	detachedAt int64  // unix nanoseconds of its end, 0 while attached
	nextID     uint16
	ended      bool
	backlogged bool // in the loop's backlog list

	// queued mirrors len(f.queue) while s has a connection, 0 while not;
	// mailed counts its QoS 1/2 deliveries in its loop's mailbox. Other
	// loops' publishers pause while their sum is high (flow control). Safe
	// for concurrent use.
	queued atomic.Int32
	mailed atomic.Int32
}

// sessionFlow is the message state of a session: the outgoing inflight
// window, the queue behind it, inbound QoS 2 packet ids, the timers of an
// offline session and its flow-control clock. An idle
// connection's session never needs it, so it is allocated on first use
// (Session.flow) and then kept.
//
// Its fields are touched only on the owner loop.
type sessionFlow struct {
	inflight []*inflightMsg      // outgoing QoS 1/2 in send order
	queue    []delivery          // waiting for the window or a connection
	inQoS2   map[uint16]struct{} // inbound QoS 2 ids awaiting PUBREL
	timers   sessionTimers
	tk       *takeover // a move between nodes in progress (takeover.go)
	// stateLost is the epoch (claim) the session resumed under without its
	// previous node's state; a state that comes late for it is dropped.
	stateLost uint64

	// progressAt is when the connection last acknowledged a message, and
	// holdSince when the queue last reached the flow-control mark (unix
	// nanoseconds): a session that holds publishers back without progress
	// for SlowConsumerTimeout is disconnected (Loop.checkStuck).
	progressAt int64
	holdSince  int64
	holding    bool // in the loop's holding list (Loop.checkStuck)
}

// sessionTimers are the will delay and session expiry timers of an offline
// session. gen tells a timer that fired after it was stopped (its callback
// was already on its way) from a live one. gen only grows.
type sessionTimers struct {
	will *time.Timer
	exp  *time.Timer
	gen  uint64
}

// flow returns the message state of s, allocating it on first use. Loop
// goroutine only.
func (s *Session) flow() *sessionFlow {
	if s.f == nil {
		s.f = &sessionFlow{}
	}
	return s.f
}

// inflightMsgs returns the outgoing QoS 1/2 messages awaiting
// acknowledgement, oldest first. Loop goroutine only.
func (s *Session) inflightMsgs() []*inflightMsg {
	if s.f == nil {
		return nil
	}
	return s.f.inflight
}

// inQoS2 returns the inbound QoS 2 packet ids awaiting PUBREL (nil when
// none). Loop goroutine only.
func (s *Session) inQoS2() map[uint16]struct{} {
	if s.f == nil {
		return nil
	}
	return s.f.inQoS2
}

// queueLen is the number of messages queued behind the inflight window. Loop
// goroutine only.
func (s *Session) queueLen() int {
	if s.f == nil {
		return 0
	}
	return len(s.f.queue)
}

// armTimers returns the timers of s, allocating them on first use. Loop
// goroutine only.
func (s *Session) armTimers() *sessionTimers { return &s.flow().timers }

// timerGen is the current timer generation of s. Loop goroutine only.
func (s *Session) timerGen() uint64 {
	if s.f == nil {
		return 0
	}
	return s.f.timers.gen
}

// inflightMsg is an outgoing QoS 1/2 message awaiting acknowledgement.
type inflightMsg struct {
	id       uint16
	d        delivery
	released bool // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
}

// delivery is one message bound for one session.
type delivery struct {
	s      *Session
	msg    *Message
	qos    byte
	retain bool
	subIDs []uint32 // v5 subscription identifiers to send
	group  string   // shared subscription group ("" if none)
	filter string   // shared subscription filter, for redelivery
	hops   uint8    // times passed on to another shared member
}

// newSession makes the session of clientID, owned by l, and files it under a
// new routing identity.
func (b *Broker) newSession(clientID string, l *Loop) *Session {
	s := &Session{clientID: clientID}
	s.loop.Store(l)
	b.sessions.add(s)
	return s
}

// ID returns the session's routing identity. Safe for concurrent use.
func (s *Session) ID() uint64 { return s.id }

// ClientID returns the client identifier. Safe for concurrent use.
func (s *Session) ClientID() string { return s.clientID }

// allocID returns a free packet identifier for an outgoing QoS 1/2 message
// [MQTT-2.2.1-4]. Loop goroutine only.
func (s *Session) allocID() uint16 {
	for i := 0; i < 65535; i++ {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if s.findInflight(s.nextID) < 0 {
			return s.nextID
		}
	}
	return 0
}

func (s *Session) findInflight(id uint16) int {
	for i, m := range s.inflightMsgs() {
		if m.id == id {
			return i
		}
	}
	return -1
}

func (s *Session) removeInflight(i int) {
	f := s.f
	copy(f.inflight[i:], f.inflight[i+1:])
	f.inflight[len(f.inflight)-1] = nil
	f.inflight = f.inflight[:len(f.inflight)-1]
}

// stopTimers cancels pending will and expiry timers. Loop goroutine only.
func (s *Session) stopTimers() {
	if s.f == nil {
		return // never armed: no timer callback can be on its way
	}
	t := &s.f.timers
	t.gen++
	if t.will != nil {
		t.will.Stop()
		t.will = nil
	}
	if t.exp != nil {
		t.exp.Stop()
		t.exp = nil
	}
}
