package broker

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// The read views and operator actions of the admin endpoint. Sessions are
// owned by their loops, so a view runs a closure on every loop that owns one
// of the sessions asked about and waits for the answers; none of it is on the
// message path.

// ErrInspectTimeout is returned when a loop did not answer a view in time
// (it is stopped or stalled).
var ErrInspectTimeout = errors.New("broker: a loop did not answer in time")

// inspectTimeout bounds how long a view waits for the loops.
const inspectTimeout = 5 * time.Second

// SessionInfo is a snapshot of one session on this node, connected or not.
type SessionInfo struct {
	ClientID        string
	Connected       bool
	Username        string // of the connection, "" when offline or none
	RemoteAddr      string // of the connection, "" when offline
	ProtocolVersion byte   // 3, 4 or 5; 0 for a session restored without a connection yet
	KeepAlive       uint16 // seconds, of the connection
	Expiry          uint32 // session expiry interval in seconds; 0xFFFFFFFF never
	ConnectedAt     time.Time
	DisconnectedAt  time.Time // zero while connected
	Subscriptions   int
	Inflight        int // outgoing QoS 1/2 messages not yet acknowledged
	Queued          int // messages waiting behind the inflight window or for a connection
}

// SubscriptionInfo is one subscription of a session.
type SubscriptionInfo struct {
	ClientID          string
	Filter            string // as subscribed, $share/{group}/... for a shared one
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32
}

// sessionsWithPrefix returns the sessions whose client id starts with
// prefix, sorted by client id.
func (b *Broker) sessionsWithPrefix(prefix string) []*Session {
	b.mu.Lock()
	var out []*Session
	for _, s := range b.clients.slots {
		if s != nil && strings.HasPrefix(s.clientID, prefix) {
			out = append(out, s)
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].clientID < out[j].clientID })
	return out
}

// onOwners runs f for every session of list on its owner loop and waits for
// all of them, at most inspectTimeout. f runs on several loops at once, so
// it must only write to what belongs to its session.
func (b *Broker) onOwners(list []*Session, f func(i int, l *Loop, s *Session)) error {
	var wg sync.WaitGroup
	byLoop := map[*Loop][]int{}
	for i, s := range list {
		l := s.loop.Load()
		byLoop[l] = append(byLoop[l], i)
	}
	for l, idx := range byLoop {
		for _, i := range idx {
			wg.Add(1)
			s := list[i]
			if l.exec(func() {
				defer wg.Done()
				if cur := s.loop.Load(); cur != l {
					// Moved meanwhile: follow it.
					wg.Add(1)
					b.onOwner(s, func(ol *Loop) { defer wg.Done(); f(i, ol, s) })
					return
				}
				f(i, l, s)
			}) {
				continue
			}
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(inspectTimeout):
		return ErrInspectTimeout
	}
}

// info fills a SessionInfo from s. Owner loop only.
func (s *Session) info() SessionInfo {
	in := SessionInfo{ClientID: s.clientID, Expiry: s.expiry, Subscriptions: s.subs.len()}
	if s.attachedAt != 0 {
		in.ConnectedAt = time.Unix(0, s.attachedAt)
	}
	if s.detachedAt != 0 {
		in.DisconnectedAt = time.Unix(0, s.detachedAt)
	}
	if f := s.f; f != nil {
		in.Inflight, in.Queued = len(f.inflight), len(f.queue)
	}
	if c := s.client; c != nil && !c.closed {
		in.Connected = true
		in.DisconnectedAt = time.Time{}
		in.Username = string(c.user())
		in.RemoteAddr = c.t.RemoteAddr()
		in.ProtocolVersion = byte(c.version)
		in.KeepAlive = c.keepAlive
	}
	return in
}

// Sessions returns a snapshot of the sessions on this node whose client id
// starts with prefix, connected or not, sorted by client id. Safe for
// concurrent use.
func (b *Broker) Sessions(prefix string) ([]SessionInfo, error) {
	list := b.sessionsWithPrefix(prefix)
	out := make([]SessionInfo, len(list))
	err := b.onOwners(list, func(i int, _ *Loop, s *Session) {
		if !s.ended {
			out[i] = s.info()
		}
	})
	if err != nil {
		return nil, err
	}
	// Drop the sessions that ended meanwhile.
	kept := out[:0]
	for _, in := range out {
		if in.ClientID != "" {
			kept = append(kept, in)
		}
	}
	return kept, nil
}

// Session returns the snapshot of the session of clientID, if this node
// has one. Safe for concurrent use.
func (b *Broker) Session(clientID string) (SessionInfo, bool, error) {
	var in SessionInfo
	ok := false
	err := b.onSession(clientID, func(_ *Loop, s *Session) {
		if !s.ended {
			in, ok = s.info(), true
		}
	})
	return in, ok, err
}

// SubscriptionsOf returns the subscriptions of the sessions whose client
// id starts with prefix (one session when exact), sorted by client id and
// filter. Safe for concurrent use.
func (b *Broker) SubscriptionsOf(prefix string, exact bool) ([]SubscriptionInfo, error) {
	var list []*Session
	if exact {
		b.mu.Lock()
		if s := b.clients.get(prefix); s != nil {
			list = append(list, s)
		}
		b.mu.Unlock()
	} else {
		list = b.sessionsWithPrefix(prefix)
	}
	parts := make([][]SubscriptionInfo, len(list))
	err := b.onOwners(list, func(i int, _ *Loop, s *Session) {
		if s.ended {
			return
		}
		subs := make([]SubscriptionInfo, 0, s.subs.len())
		for _, sub := range s.subs.list {
			subs = append(subs, SubscriptionInfo{ClientID: s.clientID, Filter: sub.filter, QoS: sub.qos,
				NoLocal: sub.noLocal(), RetainAsPublished: sub.retainAsPublished(), RetainHandling: sub.rh,
				SubscriptionID: sub.subID})
		}
		sort.Slice(subs, func(a, b int) bool { return subs[a].Filter < subs[b].Filter })
		parts[i] = subs
	})
	if err != nil {
		return nil, err
	}
	var out []SubscriptionInfo
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// onSession runs f on the owner loop of the session of clientID and waits
// for it; it does nothing when this node has no such session.
func (b *Broker) onSession(clientID string, f func(l *Loop, s *Session)) error {
	b.mu.Lock()
	s := b.clients.get(clientID)
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	return b.onOwners([]*Session{s}, func(_ int, l *Loop, s *Session) {
		l.now = time.Now().UnixNano()
		f(l, s)
	})
}

// Kick closes the connection of clientID on this node, with DISCONNECT
// 0x98 (administrative action) for a v5 client; the session stays for its
// expiry interval and the will is published as for any connection the
// server closes [MQTT-3.1.2-8]. It reports whether a connection was closed.
// Safe for concurrent use.
func (b *Broker) Kick(clientID string) (bool, error) {
	kicked := false
	err := b.onSession(clientID, func(l *Loop, s *Session) {
		if c := s.client; c != nil && !c.closed && !s.ended {
			c.disconnect(codec.AdministrativeAction)
			l.Flush()
			kicked = true
		}
	})
	return kicked, err
}

// CloseClaimed closes, with DISCONNECT rc (v5), every connection on this
// node whose session holds a claim committed through raft (epoch above 0),
// as the server closes a connection: wills are published as for any close
// that is not a normal disconnect. The cluster calls it when this node has
// lost contact with a raft leader, so that the majority can hand those
// sessions to other nodes without two connections served at once. It
// returns how many it closed. Safe for concurrent use.
func (b *Broker) CloseClaimed(rc codec.ReasonCode) (int, error) {
	var list []*Session
	b.mu.Lock()
	for _, s := range b.clients.slots {
		if s != nil {
			list = append(list, s)
		}
	}
	b.mu.Unlock()
	var n atomic.Int64
	err := b.onOwners(list, func(_ int, l *Loop, s *Session) {
		if c := s.client; c != nil && !c.closed && !s.ended && s.epoch != 0 {
			c.disconnect(rc)
			l.Flush()
			n.Add(1)
		}
	})
	return int(n.Load()), err
}

// DiscardSession ends the session of clientID on this node: its connection,
// if any, is closed as by Kick, and its subscriptions, queue and registry
// entry are removed; a pending will is published. It reports whether there
// was a session. Safe for concurrent use.
func (b *Broker) DiscardSession(clientID string) (bool, error) {
	found := false
	err := b.onSession(clientID, func(l *Loop, s *Session) {
		if s.ended {
			return
		}
		found = true
		if c := s.client; c != nil && !c.closed {
			c.disconnect(codec.AdministrativeAction)
		}
		l.endSession(s)
		l.Flush()
	})
	return found, err
}

// Retained calls fn for each retained message matching filter, until fn
// returns false. The messages must not be modified. Safe for concurrent
// use.
func (b *Broker) Retained(filter string, fn func(*Message) bool) {
	stop := false
	b.store.MatchRetained([]byte(filter), time.Now().UnixNano(), func(m *Message) {
		if !stop && !fn(m) {
			stop = true
		}
	})
}

// SetRetained stores m as the retained message of its topic, or removes
// the topic's retained message when m has no payload, without delivering
// anything to subscribers. It waits for the store (for raft, the commit).
// Safe for concurrent use.
func (b *Broker) SetRetained(m *Message) error {
	if !b.cfg.RetainAvailable {
		return errors.New("broker: retained messages are not available (retain-available false)")
	}
	errc := make(chan error, 1)
	b.store.Retain(m, func(err error) { errc <- err })
	return <-errc
}

// Inject publishes m as the broker itself, as an operator's message: it is
// stored first when retained (and an error from the store is returned before
// anything is delivered), then routed to every matching subscriber in the
// cluster. Safe for concurrent use.
func (b *Broker) Inject(m *Message) error {
	if m.Retain {
		if err := b.SetRetained(m); err != nil {
			return err
		}
	}
	b.Publish(m)
	return nil
}

// LoopCount is the number of loops serving clients (and the one holding
// restored offline sessions).
func (b *Broker) LoopCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.loops)
}

// Started is when the broker was made.
func (b *Broker) Started() time.Time { return b.started }

// SessionCount is the number of sessions on this node, connected or not.
func (b *Broker) SessionCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clients.len()
}
