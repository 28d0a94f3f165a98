package routing

import (
	"cmp"
	"slices"
	"strings"
	"testing"
)

// naiveMatch is the matching rules of section 4.7 written out directly, level
// by level, as the reference the trie is checked against.
func naiveMatch(filter, topic string) bool {
	if topic == "" || filter == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true // this level (possibly the parent's "nothing") and all below
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// groupKey names a shared group: (share name, topic filter).
type groupKey struct{ group, filter string }

// model is the naive subscription store: plain filters and shared groups,
// each a map of subscriber ID to Subscriber.
type model struct {
	plain  map[string]map[uint64]Subscriber
	shared map[groupKey]map[uint64]Subscriber
}

func newModel() *model {
	return &model{plain: map[string]map[uint64]Subscriber{}, shared: map[groupKey]map[uint64]Subscriber{}}
}

// key canonicalises a filter the way the trie does: $queue/f is $share/$queue/f.
func modelKey(filter string) (groupKey, bool) {
	if rest, ok := strings.CutPrefix(filter, QueuePrefix); ok {
		return groupKey{QueueGroup, rest}, true
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		g, f, _ := strings.Cut(rest, "/")
		return groupKey{g, f}, true
	}
	return groupKey{"", filter}, false
}

func (m *model) subscribe(filter string, s Subscriber) (replaced bool) {
	k, shared := modelKey(filter)
	var set map[uint64]Subscriber
	if shared {
		if set = m.shared[k]; set == nil {
			set = map[uint64]Subscriber{}
			m.shared[k] = set
		}
	} else if set = m.plain[k.filter]; set == nil {
		set = map[uint64]Subscriber{}
		m.plain[k.filter] = set
	}
	_, replaced = set[s.ID]
	set[s.ID] = s
	return replaced
}

func (m *model) unsubscribe(filter string, id uint64) bool {
	k, shared := modelKey(filter)
	var set map[uint64]Subscriber
	if shared {
		set = m.shared[k]
	} else {
		set = m.plain[k.filter]
	}
	if _, ok := set[id]; !ok {
		return false
	}
	delete(set, id)
	if len(set) == 0 {
		if shared {
			delete(m.shared, k)
		} else {
			delete(m.plain, k.filter)
		}
	}
	return true
}

func (m *model) counts() (subs, filters, groups int) {
	for _, set := range m.plain {
		subs += len(set)
	}
	for _, set := range m.shared {
		subs += len(set)
	}
	return subs, len(m.plain) + len(m.shared), len(m.shared)
}

// check compares Match of topic against the model: the same multiset of
// plain subscriptions, and exactly one pick per matching group, drawn from
// that group's members. It matches three times, so that a trie with a cache
// also answers from the cache (a topic is admitted on its second miss).
func (m *model) check(t *testing.T, tr *Trie, topic string, r *Result) {
	t.Helper()
	// The trie does not report which filter matched: compare whole entries.
	var want []Subscriber
	for f, set := range m.plain {
		if naiveMatch(f, topic) {
			for _, s := range set {
				want = append(want, s)
			}
		}
	}
	bySub := func(a, b Subscriber) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.QoS, b.QoS), cmp.Compare(a.SubscriptionID, b.SubscriptionID))
	}
	slices.SortFunc(want, bySub)
	var groups []groupKey
	for k := range m.shared {
		if naiveMatch(k.filter, topic) {
			groups = append(groups, k)
		}
	}

	for range 3 {
		tr.Match([]byte(topic), "pub", r)
		got := slices.Clone(r.Subs)
		slices.SortFunc(got, bySub)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) plain:\n got  %v\n want %v", topic, got, want)
		}
		if len(r.Shared) != len(groups) {
			t.Fatalf("Match(%q) shared: got %d picks %v, want one for each of %v", topic, len(r.Shared), r.Shared, groups)
		}
		seen := map[groupKey]bool{}
		for _, p := range r.Shared {
			k := groupKey{p.Group, p.Filter}
			if !slices.Contains(groups, k) || seen[k] {
				t.Fatalf("Match(%q): pick from unexpected or repeated group %v", topic, k)
			}
			seen[k] = true
			if s, ok := m.shared[k][p.ID]; !ok || s != p.Subscriber {
				t.Fatalf("Match(%q): group %v picked %+v, not a member", topic, k, p.Subscriber)
			}
		}
	}
}

func TestNaiveMatch(t *testing.T) {
	// The naive matcher is the reference; check it on the spec's examples too
	// (TestMatchRules runs the same table against the trie).
	for _, c := range matchRules {
		if got := naiveMatch(c.filter, c.topic); got != c.match {
			t.Errorf("naiveMatch(%q, %q) = %v, want %v", c.filter, c.topic, got, c.match)
		}
	}
}
