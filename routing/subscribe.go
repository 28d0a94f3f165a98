package routing

import "strings"

// Subscribe adds s under filter, or replaces the entry with the same s.ID on
// the same filter [MQTT-3.8.4-3]; replaced reports which (the broker needs it
// for v5 Retain Handling 1, "send retained messages only if the subscription
// did not exist" [MQTT-3.3.1-10]). A filter starting with $share/{group}/ or
// $queue/ joins that shared group of the filter after the prefix; the same ID
// may be a plain subscriber and a member of several groups of one filter.
//
// filter must pass codec.ValidateTopicFilter; otherwise the error wraps
// ErrInvalidFilter. The trie copies the parts of filter it keeps. Safe for
// concurrent use (takes the write lock).
func (t *Trie) Subscribe(filter string, s Subscriber) (replaced bool, err error) {
	return t.subscribe(filter, s)
}

// SubscribeRemote adds remote node node as a subscriber of the route key
// filter (a plain filter, or $share/{group}/{filter} for a member of that
// group): ID RemoteID(node), QoS 2 and Retain As Published, so that the
// remote node receives every message at the publisher's QoS and with its
// RETAIN flag and applies its own subscribers' options. Remote entries are
// not counted by Subscriptions and do not call Options.OnLocal. Safe for
// concurrent use.
func (t *Trie) SubscribeRemote(filter string, node uint32) error {
	_, err := t.subscribe(filter, Subscriber{ID: RemoteID(node), QoS: 2, RetainAsPublished: true})
	return err
}

// UnsubscribeRemote removes what SubscribeRemote added. Safe for concurrent
// use.
func (t *Trie) UnsubscribeRemote(filter string, node uint32) bool {
	return t.Unsubscribe(filter, RemoteID(node))
}

func (t *Trie) subscribe(filter string, s Subscriber) (replaced bool, err error) {
	pf, err := parseFilter(filter)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.insertPath(pf.topic)
	if pf.shared {
		g := n.group(pf.group)
		if g == nil {
			g = &shareGroup{name: strings.Clone(pf.group), filter: strings.Clone(pf.topic)}
			n.shared = append(n.shared, g)
			t.groups.Add(1)
			t.filters.Add(1)
		}
		replaced = g.members.put(s)
	} else {
		if n.subs.len() == 0 {
			t.filters.Add(1)
		}
		replaced = n.subs.put(s)
	}
	if !replaced && !IsRemote(s.ID) {
		t.subs.Add(1)
		if t.onLocal != nil {
			t.onLocal(filter, true)
		}
	}
	t.gen++
	return replaced, nil
}

// Unsubscribe removes subscriber id from filter (plain, $share/{group}/ or
// $queue/) and reports whether it was subscribed [MQTT-3.10.4-1]; v5 answers
// "No subscription existed" (0x11) otherwise. An invalid filter matches
// nothing and returns false. Safe for concurrent use (takes the write lock).
func (t *Trie) Unsubscribe(filter string, id uint64) bool {
	pf, err := parseFilter(filter)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.remove(pf, id) {
		return false
	}
	if t.onLocal != nil && !IsRemote(id) {
		t.onLocal(filter, false)
	}
	return true
}

// RemoveAll removes subscriber id from every filter in filters under one
// write lock, for a session that ends, and returns how many subscriptions
// existed. Invalid filters are skipped. Safe for concurrent use.
func (t *Trie) RemoveAll(id uint64, filters []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	removed := 0
	for _, f := range filters {
		pf, err := parseFilter(f)
		if err != nil {
			continue
		}
		if t.remove(pf, id) {
			removed++
			if t.onLocal != nil && !IsRemote(id) {
				t.onLocal(f, false)
			}
		}
	}
	return removed
}

// insertPath returns the node for topic filter f, creating the levels on the
// way. Trie.mu must be held for writing.
func (t *Trie) insertPath(f string) *node {
	l := &t.root
	for {
		tok, rest, more := nextLevel(f)
		n := l.child(tok, true)
		if !more {
			return n
		}
		if n.next == nil {
			n.next = &level{}
		}
		l, f = n.next, rest
	}
}

// step is one level of a removal path.
type step struct {
	l   *level
	tok string
	n   *node
}

// remove deletes id from the filter pf and prunes the nodes left empty, so a
// trie that had every subscription removed is empty again. Trie.mu must be held
// for writing.
func (t *Trie) remove(pf parsedFilter, id uint64) bool {
	var pa [16]step
	path := pa[:0]
	l, f := &t.root, pf.topic
	var n *node
	for {
		tok, rest, more := nextLevel(f)
		if n = l.child(tok, false); n == nil {
			return false
		}
		path = append(path, step{l, tok, n})
		if !more {
			break
		}
		if n.next == nil {
			return false
		}
		l, f = n.next, rest
	}
	if pf.shared {
		g := n.group(pf.group)
		if g == nil || !g.members.remove(id) {
			return false
		}
		if g.members.len() == 0 {
			n.removeGroup(g)
			t.groups.Add(-1)
			t.filters.Add(-1)
		}
	} else {
		if !n.subs.remove(id) {
			return false
		}
		if n.subs.len() == 0 {
			t.filters.Add(-1)
		}
	}
	if !IsRemote(id) {
		t.subs.Add(-1)
	}
	t.gen++
	for i := len(path) - 1; i >= 0; i-- {
		s := path[i]
		if s.n.next != nil && s.n.next.empty() {
			s.n.next = nil
		}
		if !s.n.empty() {
			break
		}
		s.l.removeChild(s.tok)
	}
	return true
}
