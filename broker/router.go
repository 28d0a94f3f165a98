package broker

import (
	"cmp"
	"slices"
)

// router matches a message against the subscription index and groups the
// resulting deliveries by destination loop. Each loop has its own router, and
// the broker one more for publishes from outside any loop; a router is used by
// one goroutine at a time and keeps its slices between publishes.
type router struct {
	b       *Broker
	matches []match
	out     [][]delivery // by destination loop index
	touched []int
	local   *Loop      // deliveries for this loop stay in localDel
	localD  []delivery // deliveries for local
}

func newRouter(b *Broker) *router { return &router{b: b} }

// route matches m and queues one delivery per target session. from is the
// publishing client, nil for the broker's own messages.
func (r *router) route(m *Message, from *Client) int {
	r.matches = r.b.index.match(m.Topic, r.matches[:0])
	if len(r.matches) == 0 {
		return 0
	}
	// Overlapping subscriptions of one session deliver one message: the
	// highest QoS, every subscription identifier [MQTT-3.3.4-3, MQTT-3.3.4-4].
	slices.SortFunc(r.matches, func(a, b match) int {
		if c := cmp.Compare(a.s.id, b.s.id); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.group != nil), boolInt(b.group != nil))
	})
	n := 0
	for i := 0; i < len(r.matches); {
		mt := r.matches[i]
		if mt.group != nil { // shared: each group delivers on its own
			r.add(delivery{s: mt.s, msg: m, qos: min(m.QoS, mt.sub.opts.QoS), retain: r.retainFlag(m, mt.s, mt.sub),
				subIDs: subIDList(nil, mt.sub.subID), group: mt.group.group, filter: string(mt.sub.opts.Filter)})
			n++
			i++
			continue
		}
		d := delivery{s: mt.s, msg: m}
		any := false
		j := i
		for ; j < len(r.matches) && r.matches[j].s == mt.s && r.matches[j].group == nil; j++ {
			sub := r.matches[j].sub
			if sub.opts.NoLocal && m.Publisher != "" && m.Publisher == mt.s.clientID {
				continue // [MQTT-3.8.3-3]
			}
			any = true
			d.qos = max(d.qos, min(m.QoS, sub.opts.QoS))
			d.retain = d.retain || r.retainFlag(m, mt.s, sub)
			d.subIDs = subIDList(d.subIDs, sub.subID)
		}
		if any {
			r.add(d)
			n++
		}
		i = j
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func subIDList(ids []uint32, id uint32) []uint32 {
	if id == 0 {
		return ids
	}
	return append(ids, id)
}

// retainFlag is the RETAIN flag of a live delivery: kept only for a v5 Retain
// As Published subscription [MQTT-3.3.1-12, MQTT-3.3.1-13].
func (r *router) retainFlag(m *Message, _ *Session, sub *subscription) bool {
	return m.Retain && sub.opts.RetainAsPublished
}

func (r *router) add(d delivery) {
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
