package broker

import (
	"github.com/flockmq/flockmq/routing"
)

// router matches a message against the subscription trie and groups the
// resulting deliveries by destination loop. Each loop has its own router, and
// the broker one more for publishes from outside any loop; a router is used by
// one goroutine at a time and keeps its slices between publishes.
type router struct {
	b   *Broker
	res routing.Result
	// isPub is r.isPublisher, bound once in newRouter: a method value made
	// per publish would allocate. pub is the client id it compares with, set
	// only while Merge runs.
	isPub     func(id uint64) bool
	pub       string
	out       [][]delivery // by destination loop index
	touched   []int
	local     *Loop      // deliveries for this loop stay in localD
	localD    []delivery // deliveries for local
	congested []*Session // targets of QoS 1/2 deliveries whose queue is long

	remote         []remoteOut // remote nodes getting the message being routed
	congestedLinks []uint32    // remote nodes of QoS 1/2 copies whose way is backed up
	localOnly      bool        // delivering a forwarded message: skip remote entries
}

func newRouter(b *Broker) *router {
	r := &router{b: b}
	r.isPub = r.isPublisher
	return r
}

// isPublisher reports whether session id belongs to r.pub, the client that
// published the message being merged. The trie keeps only session ids, so No
// Local [MQTT-3.8.3-3] compares client ids here, at one session lookup per
// matching No Local subscription; a message forwarded from a peer node
// carries its remote publisher's client id and is compared the same way.
func (r *router) isPublisher(id uint64) bool {
	s := r.b.sessions.get(id)
	return s != nil && s.clientID == r.pub
}

// match looks topic up for publisher and reports whether anything matched.
func (r *router) match(topic []byte, publisher string) bool {
	r.b.trie.Match(topic, publisher, &r.res)
	return len(r.res.Subs) > 0 || len(r.res.Shared) > 0
}

// deliverMatched queues one delivery of m per session that the last match
// found: one per client for overlapping plain subscriptions (highest QoS,
// every subscription identifier [MQTT-3.3.4-3, MQTT-3.3.4-4]) and one per
// shared group. It returns the number of deliveries.
func (r *router) deliverMatched(m *Message) int {
	var isPub func(uint64) bool // nil: no publishing client, nothing to skip
	if m.Publisher != "" {
		r.pub, isPub = m.Publisher, r.isPub
	}
	ds := r.res.Merge(isPub) // drops No Local ones [MQTT-3.8.3-3]
	r.pub = ""
	n := 0
	for _, dv := range ds {
		if routing.IsRemote(dv.ID) {
			if !r.localOnly {
				r.addRemote(routing.RemoteNode(dv.ID), "", "")
				n++
			}
			continue
		}
		s := r.b.sessions.get(dv.ID)
		if s == nil {
			continue
		}
		r.add(delivery{s: s, msg: m, qos: min(m.QoS, dv.QoS), retain: m.Retain && dv.RetainAsPublished,
			subIDs: copyIDs(dv.SubscriptionIDs)})
		n++
	}
	for i := range r.res.Shared {
		sm := &r.res.Shared[i]
		if routing.IsRemote(sm.ID) {
			r.addRemote(routing.RemoteNode(sm.ID), sm.Group, sm.Filter)
			n++
			continue
		}
		s := r.b.sessions.get(sm.ID)
		if s == nil {
			continue
		}
		r.add(delivery{s: s, msg: m, qos: min(m.QoS, sm.QoS), retain: m.Retain && sm.RetainAsPublished,
			subIDs: subIDList(nil, sm.SubscriptionID), group: sm.Group, filter: sharedKey(sm.Group, sm.Filter)})
		n++
	}
	if len(r.remote) > 0 {
		r.forward(m)
	}
	return n
}

// route matches m and queues its deliveries.
func (r *router) route(m *Message) int {
	if !r.match(m.Topic, m.Publisher) {
		return 0
	}
	return r.deliverMatched(m)
}

// sharedKey is the full subscription filter of a shared group.
func sharedKey(group, filter string) string { return "$share/" + group + "/" + filter }

// sharedTopic is the topic filter of a sharedKey.
func sharedTopic(key string) string {
	rest := key[len("$share/"):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[i+1:]
		}
	}
	return rest
}

func copyIDs(ids []uint32) []uint32 {
	if len(ids) == 0 {
		return nil
	}
	return append([]uint32(nil), ids...)
}

func subIDList(ids []uint32, id uint32) []uint32 {
	if id == 0 {
		return ids
	}
	return append(ids, id)
}

func (r *router) add(d delivery) {
	r.noteCongestion(&d)
	dl := d.s.loop.Load()
	if dl == r.local {
		r.localD = append(r.localD, d)
		return
	}
	for len(r.out) <= dl.idx {
		r.out = append(r.out, nil)
	}
	if len(r.out[dl.idx]) == 0 {
		r.touched = append(r.touched, dl.idx)
	}
	r.out[dl.idx] = append(r.out[dl.idx], d)
}

// dispatch posts the gathered batches to their loops' mailboxes.
func (r *router) dispatch() {
	if len(r.touched) == 0 {
		return
	}
	r.b.mu.Lock()
	loops := r.b.loops
	r.b.mu.Unlock()
	for _, idx := range r.touched {
		loops[idx].post(r.out[idx])
		clear(r.out[idx])
		r.out[idx] = r.out[idx][:0]
	}
	r.touched = r.touched[:0]
}
