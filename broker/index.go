package broker

import (
	"sync"
	"sync/atomic"
)

// subIndex is the subscription index the broker matches publishes against.
// Safe for concurrent use.
type subIndex struct {
	mu     sync.RWMutex
	exact  map[string]map[uint64]indexedSub
	wild   map[string]map[uint64]indexedSub
	groups map[string]*shareGroup // key: group + "\x00" + filter
	count  atomic.Int64
}

type indexedSub struct {
	s    *Session
	opts subscription
}

type shareGroup struct {
	group, filter string
	members       []indexedSub
	next          atomic.Uint64
}

// match is one subscription that matched a topic.
type match struct {
	s     *Session
	sub   *subscription
	group *shareGroup
}

func newSubIndex() *subIndex {
	return &subIndex{
		exact:  make(map[string]map[uint64]indexedSub),
		wild:   make(map[string]map[uint64]indexedSub),
		groups: make(map[string]*shareGroup),
	}
}

// add indexes sub of s and reports whether s already had that filter.
func (x *subIndex) add(s *Session, sub *subscription) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if sub.shared {
		key := sub.opts.Filter
		g := x.groups[string(key)]
		if g == nil {
			g = &shareGroup{group: groupOf(sub), filter: string(sub.trieKey)}
			x.groups[string(key)] = g
		}
		for i := range g.members {
			if g.members[i].s == s {
				g.members[i].opts = *sub
				return true
			}
		}
		g.members = append(g.members, indexedSub{s, *sub})
		x.count.Add(1)
		return false
	}
	m := x.exact
	if hasWildcard(sub.trieKey) {
		m = x.wild
	}
	set := m[string(sub.trieKey)]
	if set == nil {
		set = make(map[uint64]indexedSub)
		m[string(sub.trieKey)] = set
	}
	_, existed := set[s.id]
	set[s.id] = indexedSub{s, *sub}
	if !existed {
		x.count.Add(1)
	}
	return existed
}

func groupOf(sub *subscription) string {
	f := sub.opts.Filter
	return string(f[:len(f)-len(sub.trieKey)])
}

// remove drops the subscription and reports whether it existed.
func (x *subIndex) remove(s *Session, sub *subscription) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if sub.shared {
		g := x.groups[string(sub.opts.Filter)]
		if g == nil {
			return false
		}
		for i := range g.members {
			if g.members[i].s == s {
				g.members = append(g.members[:i:i], g.members[i+1:]...)
				if len(g.members) == 0 {
					delete(x.groups, string(sub.opts.Filter))
				}
				x.count.Add(-1)
				return true
			}
		}
		return false
	}
	m := x.exact
	if hasWildcard(sub.trieKey) {
		m = x.wild
	}
	set := m[string(sub.trieKey)]
	if _, ok := set[s.id]; !ok {
		return false
	}
	delete(set, s.id)
	if len(set) == 0 {
		delete(m, string(sub.trieKey))
	}
	x.count.Add(-1)
	return true
}

// match appends the subscriptions matching topic to out: every plain
// subscription, and one member per shared group (round-robin).
func (x *subIndex) match(topic []byte, out []match) []match {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, is := range x.exact[string(topic)] {
		out = append(out, match{s: is.s, sub: &is.opts})
	}
	for f, set := range x.wild {
		if topicMatch([]byte(f), topic) {
			for _, is := range set {
				out = append(out, match{s: is.s, sub: &is.opts})
			}
		}
	}
	for _, g := range x.groups {
		if len(g.members) > 0 && topicMatch([]byte(g.filter), topic) {
			i := g.next.Add(1) % uint64(len(g.members))
			out = append(out, match{s: g.members[i].s, sub: &g.members[i].opts, group: g})
		}
	}
	return out
}

// any reports whether some subscription matches topic.
func (x *subIndex) any(topic []byte) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.exact[string(topic)]) > 0 {
		return true
	}
	for f := range x.wild {
		if topicMatch([]byte(f), topic) {
			return true
		}
	}
	for _, g := range x.groups {
		if len(g.members) > 0 && topicMatch([]byte(g.filter), topic) {
			return true
		}
	}
	return false
}

// pickOther returns a member of the shared group (group, filter) other than
// not, preferring connected ones, or nil.
func (x *subIndex) pickOther(key string, not *Session) *indexedSub {
	x.mu.RLock()
	defer x.mu.RUnlock()
	g := x.groups[key]
	if g == nil {
		return nil
	}
	n := len(g.members)
	start := int(g.next.Add(1) % uint64(max(n, 1)))
	for i := 0; i < n; i++ {
		m := &g.members[(start+i)%n]
		if m.s != not {
			c := *m
			return &c
		}
	}
	return nil
}

// size is the number of subscriptions indexed.
func (x *subIndex) size() int { return int(x.count.Load()) }
