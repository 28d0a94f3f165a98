package broker

import "github.com/flockmq/flockmq/routing"

// subscription is one subscription of a session, with its options. It is
// kept small and by value: most of an idle session's memory is its
// subscriptions.
type subscription struct {
	filter string // as subscribed, with the $share/{group}/ prefix ($queue/ in its $share/ form)
	subID  uint32 // v5 Subscription Identifier, 0 for none
	keyOff uint32 // filter[keyOff:] is the filter as indexed, without the share prefix
	qos    byte   // granted maximum QoS
	rh     byte   // v5 Retain Handling
	flags  subFlags
	gen    uint32 // a persistent session's: which SUBSCRIBE made it (see Loop.subscribeFailed); 0 otherwise
}

type subFlags uint8

const (
	subNoLocal subFlags = 1 << iota
	subRetainAsPublished
	subShared
)

func (s *subscription) noLocal() bool           { return s.flags&subNoLocal != 0 }
func (s *subscription) retainAsPublished() bool { return s.flags&subRetainAsPublished != 0 }
func (s *subscription) shared() bool            { return s.flags&subShared != 0 }

// key is the filter as the trie and the retained index know it.
func (s *subscription) key() string { return s.filter[s.keyOff:] }

// subscriber is the trie's entry for s, a subscription of sess.
func (s *subscription) subscriber(sess *Session) routing.Subscriber {
	return routing.Subscriber{ID: sess.id, QoS: s.qos, NoLocal: s.noLocal(), RetainAsPublished: s.retainAsPublished(),
		RetainHandling: s.rh, SubscriptionID: s.subID}
}

// persisted is s as the store keeps it.
func (s *subscription) persisted() PersistedSub {
	return PersistedSub{Filter: s.filter, QoS: s.qos, NoLocal: s.noLocal(), RetainAsPublished: s.retainAsPublished(),
		RetainHandling: s.rh, SubscriptionID: s.subID}
}

// subSet is a session's subscriptions by filter. A session usually has a
// handful, searched linearly in a slice; past subIndexThreshold a map
// indexes them. Loop goroutine only (the session's owner).
type subSet struct {
	list  []subscription
	index map[string]int // filter -> position in list; nil while small
}

// subIndexThreshold is the size from which a subSet keeps an index.
const subIndexThreshold = 32

func (ss *subSet) len() int { return len(ss.list) }

// find returns the position of filter in the set, or -1.
func (ss *subSet) find(filter string) int {
	if ss.index != nil {
		if i, ok := ss.index[filter]; ok {
			return i
		}
		return -1
	}
	for i := range ss.list {
		if ss.list[i].filter == filter {
			return i
		}
	}
	return -1
}

// put adds sub, or replaces the subscription to the same filter
// [MQTT-3.8.4-3], and reports whether one was replaced.
func (ss *subSet) put(sub subscription) (replaced bool) {
	if i := ss.find(sub.filter); i >= 0 {
		ss.list[i] = sub
		return true
	}
	ss.list = append(ss.list, sub)
	if ss.index != nil {
		ss.index[sub.filter] = len(ss.list) - 1
	} else if len(ss.list) > subIndexThreshold {
		ss.index = make(map[string]int, 2*len(ss.list))
		for i := range ss.list {
			ss.index[ss.list[i].filter] = i
		}
	}
	return false
}

// remove deletes the subscription to filter (the last one takes its place)
// and reports whether it existed.
func (ss *subSet) remove(filter string) bool {
	i := ss.find(filter)
	if i < 0 {
		return false
	}
	last := len(ss.list) - 1
	if i != last {
		ss.list[i] = ss.list[last]
		if ss.index != nil {
			ss.index[ss.list[i].filter] = i
		}
	}
	ss.list[last] = subscription{}
	ss.list = ss.list[:last]
	if ss.index != nil {
		delete(ss.index, filter)
		if len(ss.list) <= subIndexThreshold/2 {
			ss.index = nil
		}
	}
	if len(ss.list) == 0 {
		ss.list = nil
	}
	return true
}

// filters lists every filter of the set.
func (ss *subSet) filters() []string {
	out := make([]string, len(ss.list))
	for i := range ss.list {
		out[i] = ss.list[i].filter
	}
	return out
}

// reset empties the set.
func (ss *subSet) reset() { *ss = subSet{} }
