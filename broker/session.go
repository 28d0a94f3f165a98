package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/codec"
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

	client     *Client // nil while offline
	epoch      uint64
	expiry     uint32 // session expiry interval, seconds; 0xFFFFFFFF never
	ended      bool
	subs       map[string]*subscription // by full filter as subscribed
	inflight   []*inflightMsg           // outgoing QoS 1/2 in send order
	queue      []delivery               // waiting for the window or a connection
	inQoS2     map[uint16]struct{}      // inbound QoS 2 ids awaiting PUBREL
	nextID     uint16
	will       *Will
	willTimer  *time.Timer
	expTimer   *time.Timer
	timerGen   uint64
	backlogged bool // in the loop's backlog list

	// queued mirrors len(queue) for other loops' publishers, which pause
	// while it is high (flow control); waiters are the paused publishers to
	// resume when it drains. Both are safe for concurrent use.
	queued  atomic.Int32
	waitMu  sync.Mutex
	waiters []*Client
}

// subscription is one subscription of a session, with its options.
type subscription struct {
	filter  string // as subscribed, with $share/ prefix
	opts    codec.Subscription
	subID   uint32
	shared  bool
	trieKey []byte // filter as indexed
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

func newSession(id uint64, clientID string, l *Loop) *Session {
	s := &Session{id: id, clientID: clientID, subs: make(map[string]*subscription)}
	s.loop.Store(l)
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
	for i, m := range s.inflight {
		if m.id == id {
			return i
		}
	}
	return -1
}

func (s *Session) removeInflight(i int) {
	copy(s.inflight[i:], s.inflight[i+1:])
	s.inflight[len(s.inflight)-1] = nil
	s.inflight = s.inflight[:len(s.inflight)-1]
}

// stopTimers cancels pending will and expiry timers. Loop goroutine only.
func (s *Session) stopTimers() {
	s.timerGen++
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	if s.expTimer != nil {
		s.expTimer.Stop()
		s.expTimer = nil
	}
}
