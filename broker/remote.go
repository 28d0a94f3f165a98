package broker

import (
	"bytes"
	"time"
)

// Remote deliveries: in a cluster, the other nodes are subscribers in this
// broker's trie. Every remote node with at least one subscription to a filter
// is one entry under that filter (routing.SubscribeRemote: ID
// routing.RemoteID(node), QoS 2, Retain As Published), and every remote node
// with members of a shared group is one member of that group. One match thus
// finds the local sessions, the remote nodes that need the message, and one
// member per shared group cluster-wide, local or remote. The router sends one
// copy per remote node through the Remote, with the shared groups that node
// is to serve; the receiving node delivers it with DeliverForwarded to its own
// subscribers only, never forwarding it again.

// Remote is the broker's door to the other nodes of a cluster. The cluster
// package implements it.
type Remote interface {
	// Forward hands m to remote node node (a number the Remote assigned in
	// RemoteRoute) for its local subscribers and, for each of groups, one
	// of its members. It must not block. It reports congested when the way
	// to node is backed up: the publisher of a QoS 1/2 message is then held
	// until Congested(node) turns false. Called on loop goroutines and from
	// Broker.Publish; safe for concurrent use.
	Forward(node uint32, m *Message, groups []SharedTarget) (congested bool)
	// Congested reports whether the way to node is still backed up. Safe for
	// concurrent use.
	Congested(node uint32) bool
	// Alive reports whether gossip sees node alive: a session whose
	// previous owner is alive waits for its state (takeover.go).
	Alive(node string) bool
	// SendSession sends node the state of a session that moved there
	// (handover) or messages that reached its stub here (!handover), on
	// the ordered link behind every message forwarded before. It must not
	// block.
	SendSession(node string, st *SessionState, handover bool)
	// SysTopics returns the cluster's $SYS topics and values (this node's
	// view of the cluster, and cluster-wide counts). Safe for concurrent use.
	SysTopics() [][2]string
	// LocalRoute is called when a filter gains its first local subscription
	// (added) or loses one (!added), under the trie's write lock
	// (routing.Options.OnLocal); it must not call into the broker.
	LocalRoute(filter string, added bool)
}

// WithRemote makes the broker part of a cluster: r learns the local
// subscriptions and carries messages to the other nodes.
func WithRemote(r Remote) Option { return func(b *Broker) { b.remote = r } }

// RemoteRoute adds (or, with !add, removes) remote node node as a subscriber
// of the route key filter: a plain filter, or $share/{group}/{filter} for a
// node with members of that group. Safe for concurrent use.
func (b *Broker) RemoteRoute(node uint32, filter string, add bool) error {
	if !add {
		b.trie.UnsubscribeRemote(filter, node)
		return nil
	}
	return b.trie.SubscribeRemote(filter, node)
}

// Key is the subscription filter of the group, $share/{group}/{filter}.
func (t SharedTarget) Key() string { return sharedKey(t.Group, t.Filter) }

var sysPrefix = []byte("$SYS/")

// remoteOut is one remote node's copy of the message being routed.
type remoteOut struct {
	node   uint32
	groups []SharedTarget
}

// addRemote notes that node gets a copy of the message being routed, for
// group when group is not empty.
func (r *router) addRemote(node uint32, group, filter string) {
	i := 0
	for i < len(r.remote) && r.remote[i].node != node {
		i++
	}
	if i == len(r.remote) {
		if i < cap(r.remote) {
			r.remote = r.remote[:i+1]
			r.remote[i].node = node
		} else {
			r.remote = append(r.remote, remoteOut{node: node})
		}
	}
	if group != "" {
		r.remote[i].groups = append(r.remote[i].groups, SharedTarget{Group: group, Filter: filter})
	}
}

// forward sends m to the remote nodes noted by addRemote, and notes the
// congested ones for a QoS 1/2 message. $SYS topics stay on their node:
// every node publishes its own.
func (r *router) forward(m *Message) {
	if bytes.HasPrefix(m.Topic, sysPrefix) {
		for i := range r.remote {
			clear(r.remote[i].groups)
			r.remote[i].groups = r.remote[i].groups[:0]
		}
		r.remote = r.remote[:0]
		return
	}
	r.b.stats.ForwardedOut.Add(uint64(len(r.remote)))
	for i := range r.remote {
		o := &r.remote[i]
		if r.b.remote.Forward(o.node, m, o.groups) && m.QoS > 0 {
			r.congestedLinks = append(r.congestedLinks, o.node)
		}
		clear(o.groups)
		o.groups = o.groups[:0]
	}
	r.remote = r.remote[:0]
}

// DeliverForwarded delivers m, forwarded by another node, to this node's
// subscribers: every matching plain subscription of a local session, and for
// each of groups one local member. Remote entries and the shared picks of the
// match are ignored: the node where m entered chose the nodes and groups, so
// nothing is forwarded twice and each group gets one copy. It returns the
// number of deliveries. The QoS 1/2 deliveries that went to congested
// sessions are noted in w: the caller waits (w.Wait) before it takes the next
// message from the sending node, which holds that node's publishers back in
// turn. Safe for concurrent use with one w per goroutine; messages delivered
// by one goroutine keep their order.
func (b *Broker) DeliverForwarded(m *Message, groups []SharedTarget, w *DrainWait) int {
	b.extMu.Lock()
	defer b.extMu.Unlock()
	b.stats.ForwardedIn.Add(1)
	r := b.ext
	r.b.trie.Match(m.Topic, m.Publisher, &r.res)
	clear(r.res.Shared)
	r.res.Shared = r.res.Shared[:0]
	r.localOnly = true
	n := r.deliverMatched(m)
	r.localOnly = false
	for _, g := range groups {
		var s *Session
		sub, ok := b.trie.PickLocal(g.Key(), m.Publisher)
		if ok {
			s = b.sessions.get(sub.ID)
		}
		if s == nil {
			b.stats.ForwardedUnserved.Add(1) // the group's last local member left
			continue
		}
		r.add(delivery{s: s, msg: m, qos: min(m.QoS, sub.QoS), retain: m.Retain && sub.RetainAsPublished,
			subIDs: subIDList(nil, sub.SubscriptionID), group: g.Group, filter: g.Key()})
		n++
	}
	r.dispatch()
	if w != nil {
		w.s = append(w.s, r.congested...)
	}
	r.forgetCongestion()
	return n
}

// DrainWait holds the congested sessions of forwarded deliveries. One per
// delivering goroutine; not safe for concurrent use.
type DrainWait struct {
	s []*Session
}

// Pending reports whether Wait has sessions to wait for.
func (w *DrainWait) Pending() bool { return len(w.s) > 0 }

// Wait returns once every noted session has drained below half the
// congestion mark (a session without a connection counts 0 once its mailbox
// is read), or stop is closed, and forgets them. It checks after 20 µs,
// then at doubling intervals up to 1 ms: a session drains its half mark in
// about a millisecond at full speed, and a fixed 1 ms tick halved the
// throughput between two nodes.
func (w *DrainWait) Wait(b *Broker, stop <-chan struct{}) {
	if len(w.s) == 0 {
		return
	}
	low := b.congestAt() / 2
	for _, s := range w.s {
		pause := 20 * time.Microsecond
		for s.backpressure() > low {
			select {
			case <-stop:
				clear(w.s)
				w.s = w.s[:0]
				return
			default:
			}
			time.Sleep(pause)
			pause = min(2*pause, time.Millisecond)
		}
	}
	clear(w.s)
	w.s = w.s[:0]
}

// linksCongested reports whether one of the remote nodes c waits for is
// still backed up.
func (c *Client) linksCongested() bool {
	r := c.l.b.remote
	for _, n := range c.ext.waitLinks {
		if r.Congested(n) {
			return true
		}
	}
	return false
}

// WakeHeld re-checks, on every loop, the publishers held back by flow
// control: the cluster calls it when a congested link has drained. Safe for
// concurrent use.
func (b *Broker) WakeHeld() {
	b.mu.Lock()
	loops := append([]*Loop(nil), b.loops...)
	b.mu.Unlock()
	for _, l := range loops {
		l.exec(func() {
			l.now = time.Now().UnixNano()
			l.resumeDrained()
			l.Flush()
		})
	}
}
