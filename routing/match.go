package routing

// maxStackLevels is how many topic levels Match splits into a stack array;
// deeper topics still match, at the cost of one allocation.
const maxStackLevels = 32

// Match finds the subscriptions whose filter matches topic and writes them to
// r, reusing its capacity: r.Subs gets every plain subscription (a client with
// overlapping filters appears once per filter; see Result.Merge), r.Shared one
// member of each matching shared group, picked by the Trie's strategy
// (publisher, the publishing client's identifier, feeds ShareHash). topic is a
// valid topic name: non-empty, no wildcards; it is only read during the call.
//
// Matching follows section 4.7: levels split on '/', empty levels are real
// levels, comparison is byte-wise and case sensitive; '+' matches exactly one
// level (section 4.7.1.3; it fills a whole level [MQTT-4.7.1-2]); '#' matches
// its parent level and any number of child levels, so "a/#" matches "a"
// (section 4.7.1.2; it is the last level [MQTT-4.7.1-1]); filters starting
// with '+' or '#' do not match topics starting with '$' [MQTT-4.7.2-1].
//
// Safe for concurrent use: it holds the read lock, and a warm r makes it
// allocation-free.
func (t *Trie) Match(topic []byte, publisher string, r *Result) {
	r.reset()
	if len(topic) == 0 {
		return
	}
	t.mu.RLock()
	if c := t.cache; c != nil {
		h := c.hash(topic)
		if e := c.get(h, topic, t.gen); e != nil {
			r.Subs = append(r.Subs, e.subs...)
			t.pickGroups(e.groups, publisher, r)
			t.mu.RUnlock()
			return
		}
		t.matchTopic(topic, r)
		if c.admit(h) {
			c.put(h, topic, t.gen, r.Subs, r.groups)
		}
	} else {
		t.matchTopic(topic, r)
	}
	t.pickGroups(r.groups, publisher, r)
	t.mu.RUnlock()
	clear(r.groups) // do not pin groups the trie may drop
	r.groups = r.groups[:0]
}

// splitLevels appends the levels of topic to dst and returns it; with dst
// backed by a stack array of maxStackLevels, matching a topic of that many
// levels allocates nothing.
func splitLevels(dst [][]byte, topic []byte) [][]byte {
	start := 0
	for i, c := range topic {
		if c == '/' {
			dst = append(dst, topic[start:i])
			start = i + 1
		}
	}
	return append(dst, topic[start:])
}

// matchTopic collects the plain subscriptions of every matching filter into
// r.Subs and the matching shared groups into r.groups. Trie.mu must be held.
func (t *Trie) matchTopic(topic []byte, r *Result) {
	var tsa [maxStackLevels][]byte
	toks := splitLevels(tsa[:0], topic)

	if topic[0] != '$' {
		matchLevel(&t.root, toks, r)
		return
	}
	// [MQTT-4.7.2-1]: a topic starting with '$' is not matched by a filter
	// starting with a wildcard, so skip the root's '+' and '#' and follow the
	// literal first level only ("$SYS/#" still matches "$SYS/x" and "$SYS").
	n := t.root.literal(toks[0])
	if n == nil {
		return
	}
	if len(toks) == 1 {
		r.collectTail(n)
		return
	}
	if n.next != nil {
		matchLevel(n.next, toks[1:], r)
	}
}

// matchLevel walks toks from level l, collecting every matching node: the '#'
// child of each level on the way, the '+' child by recursion, the literal
// child by iteration. Trie.mu must be held.
func matchLevel(l *level, toks [][]byte, r *Result) {
	var pwc, n *node
	last := len(toks) - 1
	for i, tok := range toks {
		if l == nil {
			return
		}
		if l.hash != nil {
			r.collect(l.hash) // '#' matches this level and all below
		}
		if pwc = l.plus; pwc != nil && i < last && pwc.next != nil {
			matchLevel(pwc.next, toks[i+1:], r) // '+' matches exactly this level
		}
		n = l.literal(tok)
		if n == nil {
			l = nil
		} else {
			l = n.next
		}
	}
	// The topic's last level: the literal and '+' nodes there, and the '#'
	// below each, since "a/#" matches "a" (section 4.7.1.2).
	if n != nil {
		r.collectTail(n)
	}
	if pwc != nil {
		r.collectTail(pwc)
	}
}

// collect appends the subscriptions of n. Trie.mu must be held.
func (r *Result) collect(n *node) {
	r.Subs = append(r.Subs, n.subs.list...)
	if len(n.shared) > 0 {
		r.groups = append(r.groups, n.shared...)
	}
}

// collectTail collects n, the node of a topic's last level, and the '#' child
// below it. Trie.mu must be held.
func (r *Result) collectTail(n *node) {
	r.collect(n)
	if n.next != nil && n.next.hash != nil {
		r.collect(n.next.hash)
	}
}

// pickGroups appends one member of each group to r.Shared. Trie.mu must be held.
func (t *Trie) pickGroups(groups []*shareGroup, publisher string, r *Result) {
	for _, g := range groups {
		if s, ok := g.pick(t.strategy, publisher, 0, false); ok {
			r.Shared = append(r.Shared, SharedMatch{Group: g.name, Filter: g.filter, Subscriber: s})
		}
	}
}

// PickShared picks a member of the shared group of filter ("$share/{group}/
// {topic filter}" or "$queue/{topic filter}") other than exclude, by the
// Trie's strategy. The broker uses it to hand a leaving member's unacknowledged
// QoS 1 messages to another member (section 4.8.2: the Server SHOULD send them
// to another subscribed Client). QoS 2 messages in flight must not be resent
// to another member [MQTT-4.8.2-5]; that is the broker's rule to keep. It
// returns false when the filter is not shared or no other member exists. Safe
// for concurrent use.
func (t *Trie) PickShared(filter string, exclude uint64, publisher string) (Subscriber, bool) {
	return t.pickShared(filter, exclude, publisher, true, false)
}

// PickLocal picks a local member (not a remote node's entry) of the shared
// group named by filter ($share/{group}/{topic filter} or $queue/...), by the
// trie's strategy: the member that serves a message another node forwarded
// for this group. It reports false when the group has no local member. Safe
// for concurrent use.
func (t *Trie) PickLocal(filter string, publisher string) (Subscriber, bool) {
	return t.pickShared(filter, 0, publisher, false, true)
}

func (t *Trie) pickShared(filter string, exclude uint64, publisher string, skip, localOnly bool) (Subscriber, bool) {
	pf, err := parseFilter(filter)
	if err != nil || !pf.shared {
		return Subscriber{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, f := &t.root, pf.topic
	for {
		tok, rest, more := nextLevel(f)
		n := l.child(tok, false)
		if n == nil {
			return Subscriber{}, false
		}
		if !more {
			g := n.group(pf.group)
			if g == nil {
				return Subscriber{}, false
			}
			if localOnly {
				return g.pickLocal(t.strategy, publisher)
			}
			return g.pick(t.strategy, publisher, exclude, skip)
		}
		if l = n.next; l == nil {
			return Subscriber{}, false
		}
		f = rest
	}
}
