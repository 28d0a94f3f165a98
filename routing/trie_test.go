package routing

import (
	"errors"
	"strings"
	"testing"
)

// matchRules is one table of (filter, topic) cases for every matching rule,
// run against the trie (with and without cache) and the naive matcher.
var matchRules = []struct {
	filter, topic string
	match         bool
}{
	// Literal levels, byte-wise and case sensitive (section 4.7.3).
	{"a/b", "a/b", true},
	{"a/b", "a/c", false},
	{"a/b", "a", false},
	{"a", "a/b", false},
	{"ACCOUNTS", "Accounts", false},
	{"Accounts", "Accounts", true},
	{"a b/c", "a b/c", true},
	// Empty levels are real levels (section 4.7.1.1).
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/b", "a//b", false},
	{"/a", "/a", true},
	{"/a", "a", false},
	{"a/", "a/", true},
	{"a/", "a", false},
	{"a/+/b", "a//b", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+", "", false},
	{"+/+", "/", true},
	// '+' is exactly one level (section 4.7.1.3, [MQTT-4.7.1-2]).
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "a", true},
	{"+", "a/b", false},
	{"+/b/+", "a/b/c", true},
	{"+/+/+", "a/b", false},
	// '#' is this level and all below, including the parent (section 4.7.1.2).
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true},
	{"sport/#", "sports", false},
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a/", true},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a", false},
	{"+/#", "a", true},
	{"+/#", "a/b/c", true},
	// '$' topics are not matched by a leading wildcard [MQTT-4.7.2-1].
	{"#", "$SYS/broker/uptime", false},
	{"#", "$SYS", false},
	{"+", "$SYS", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"+/#", "$SYS/x", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/+/Clients", "$SYS/monitor/Clients", true},
	{"$SYS", "$SYS", true},
	{"a/$x/#", "a/$x/y", true},
	{"a/+", "a/$x", true}, // only the first level is special
	{"a/#", "a/$x", true},
}

func newTestTrie(strategy ShareStrategy, cache int) *Trie {
	return New(Options{Strategy: strategy, CacheSize: cache})
}

func mustSubscribe(t testing.TB, tr *Trie, filter string, s Subscriber) bool {
	t.Helper()
	replaced, err := tr.Subscribe(filter, s)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", filter, err)
	}
	return replaced
}

// forEachCache runs f on a trie without and with a match cache.
func forEachCache(t *testing.T, f func(t *testing.T, cache int)) {
	for _, cache := range []int{0, 64} {
		t.Run(map[int]string{0: "nocache", 64: "cache"}[cache], func(t *testing.T) { f(t, cache) })
	}
}

func TestMatchRules(t *testing.T) {
	forEachCache(t, func(t *testing.T, cache int) {
		for _, c := range matchRules {
			if c.topic == "" {
				continue // not a valid topic name; see TestMatchEmptyTopic
			}
			tr := newTestTrie(ShareRoundRobin, cache)
			mustSubscribe(t, tr, c.filter, Subscriber{ID: 1})
			mustSubscribe(t, tr, "$share/g/"+c.filter, Subscriber{ID: 2})
			var r Result
			for range 3 { // the cache admits on the second miss: exercise hits
				tr.Match([]byte(c.topic), "pub", &r)
				if got := len(r.Subs) == 1; got != c.match || len(r.Subs) > 1 {
					t.Fatalf("filter %q topic %q: %d plain matches, want match=%v", c.filter, c.topic, len(r.Subs), c.match)
				}
				if got := len(r.Shared) == 1; got != c.match || len(r.Shared) > 1 {
					t.Fatalf("$share/g/%q topic %q: %d shared picks, want match=%v", c.filter, c.topic, len(r.Shared), c.match)
				}
			}
		}
	})
}

func TestMatchEmptyTopic(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "#", Subscriber{ID: 1})
	mustSubscribe(t, tr, "+", Subscriber{ID: 2})
	r := Result{Subs: []Subscriber{{ID: 9}}}
	tr.Match(nil, "", &r)
	if len(r.Subs) != 0 || len(r.Shared) != 0 {
		t.Fatalf("empty topic matched %v %v", r.Subs, r.Shared)
	}
}

func TestMatchDeepTopic(t *testing.T) {
	// More levels than the stack array holds.
	levels := make([]string, 3*maxStackLevels)
	for i := range levels {
		levels[i] = "l"
	}
	topic := strings.Join(levels, "/")
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, topic, Subscriber{ID: 1})
	mustSubscribe(t, tr, strings.Join(levels[:40], "/")+"/#", Subscriber{ID: 2})
	mustSubscribe(t, tr, strings.Repeat("+/", len(levels)-1)+"+", Subscriber{ID: 3})
	mustSubscribe(t, tr, strings.Repeat("+/", len(levels))+"+", Subscriber{ID: 4}) // one level too deep
	var r Result
	tr.Match([]byte(topic), "", &r)
	got := map[uint64]bool{}
	for _, s := range r.Subs {
		got[s.ID] = true
	}
	if len(r.Subs) != 3 || !got[1] || !got[2] || !got[3] {
		t.Fatalf("deep topic matched %v, want IDs 1, 2, 3", r.Subs)
	}
}

func TestMatchReturnsEveryOverlappingSubscription(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 1, QoS: 0})
	mustSubscribe(t, tr, "a/+", Subscriber{ID: 1, QoS: 1})
	mustSubscribe(t, tr, "#", Subscriber{ID: 1, QoS: 2})
	mustSubscribe(t, tr, "a/#", Subscriber{ID: 2})
	var r Result
	tr.Match([]byte("a/b"), "", &r)
	if len(r.Subs) != 4 {
		t.Fatalf("got %d subscriptions, want 4 (one per matching filter): %v", len(r.Subs), r.Subs)
	}
}

func TestSubscribeReplaces(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	if mustSubscribe(t, tr, "a/b", Subscriber{ID: 7, QoS: 0}) {
		t.Fatal("first Subscribe reported replaced")
	}
	// [MQTT-3.8.4-3]: an identical filter replaces the subscription.
	if !mustSubscribe(t, tr, "a/b", Subscriber{ID: 7, QoS: 2, SubscriptionID: 4}) {
		t.Fatal("second Subscribe of the same (filter, ID) did not report replaced")
	}
	var r Result
	tr.Match([]byte("a/b"), "", &r)
	if len(r.Subs) != 1 || r.Subs[0].QoS != 2 || r.Subs[0].SubscriptionID != 4 {
		t.Fatalf("after replace got %+v, want one entry with QoS 2 and subscription id 4", r.Subs)
	}
	if tr.Subscriptions() != 1 || tr.Filters() != 1 {
		t.Fatalf("counts %d subscriptions %d filters, want 1 1", tr.Subscriptions(), tr.Filters())
	}
	// Other IDs and other filters do not replace.
	if mustSubscribe(t, tr, "a/b", Subscriber{ID: 8}) || mustSubscribe(t, tr, "a/+", Subscriber{ID: 7}) {
		t.Fatal("a different ID or filter reported replaced")
	}
	// A shared subscription of the same filter is a different subscription.
	if mustSubscribe(t, tr, "$share/g/a/b", Subscriber{ID: 7}) {
		t.Fatal("shared subscription replaced the plain one")
	}
	if !mustSubscribe(t, tr, "$share/g/a/b", Subscriber{ID: 7, QoS: 1}) {
		t.Fatal("second shared Subscribe of the same ID did not report replaced")
	}
	if tr.Subscriptions() != 4 || tr.Filters() != 3 || tr.SharedGroups() != 1 {
		t.Fatalf("counts %d/%d/%d, want 4 subscriptions, 3 filters, 1 group",
			tr.Subscriptions(), tr.Filters(), tr.SharedGroups())
	}
}

func TestSubscriberIndexedList(t *testing.T) {
	// Past indexThreshold a subList keeps an ID index; replace and remove
	// must keep it consistent through swaps.
	tr := newTestTrie(ShareRoundRobin, 0)
	const n = 5 * indexThreshold
	for id := range uint64(n) {
		mustSubscribe(t, tr, "x", Subscriber{ID: id})
	}
	for id := range uint64(n) {
		if !mustSubscribe(t, tr, "x", Subscriber{ID: id, QoS: 1}) {
			t.Fatalf("ID %d not replaced", id)
		}
	}
	for id := uint64(0); id < n; id += 2 {
		if !tr.Unsubscribe("x", id) {
			t.Fatalf("Unsubscribe ID %d: not found", id)
		}
	}
	var r Result
	tr.Match([]byte("x"), "", &r)
	seen := map[uint64]bool{}
	for _, s := range r.Subs {
		if s.ID%2 == 0 || s.QoS != 1 || seen[s.ID] {
			t.Fatalf("unexpected entry %+v", s)
		}
		seen[s.ID] = true
	}
	if len(seen) != n/2 {
		t.Fatalf("%d entries left, want %d", len(seen), n/2)
	}
	for id := uint64(1); id < n; id += 2 {
		if !tr.Unsubscribe("x", id) || tr.Unsubscribe("x", id) {
			t.Fatalf("Unsubscribe ID %d: want true then false", id)
		}
	}
	assertEmpty(t, tr)
}

func TestUnsubscribe(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "a/+/c", Subscriber{ID: 1})
	mustSubscribe(t, tr, "a/+/c", Subscriber{ID: 2})
	mustSubscribe(t, tr, "$share/g/a/+/c", Subscriber{ID: 1})
	for _, c := range []struct {
		filter string
		id     uint64
		want   bool
	}{
		{"a/+/c", 3, false},              // no such subscriber
		{"a/+", 1, false},                // prefix of a filter
		{"a/+/c/d", 1, false},            // longer than any filter
		{"a/b/c", 1, false},              // a topic matching the filter is not the filter [MQTT-3.10.4-1]
		{"$share/h/a/+/c", 1, false},     // other group
		{"$queue/a/+/c", 1, false},       // $queue is group "$queue"
		{"a/+/c", 1, true},               // plain
		{"a/+/c", 1, false},              // gone
		{"$share/g/a/+/c", 1, true},      // shared
		{"$share/g/a/+/c", 1, false},     // gone
		{"$share/g/a/+/c/#/x", 1, false}, // invalid filter
	} {
		if got := tr.Unsubscribe(c.filter, c.id); got != c.want {
			t.Errorf("Unsubscribe(%q, %d) = %v, want %v", c.filter, c.id, got, c.want)
		}
	}
	var r Result
	tr.Match([]byte("a/b/c"), "", &r)
	if len(r.Subs) != 1 || r.Subs[0].ID != 2 || len(r.Shared) != 0 {
		t.Fatalf("after unsubscribes got %v %v, want only ID 2", r.Subs, r.Shared)
	}
	tr.Unsubscribe("a/+/c", 2)
	assertEmpty(t, tr)
}

func TestRemoveAll(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	filters := []string{"a", "a/#", "+/b", "$share/g/a", "$queue/a", "$SYS/x"}
	for _, f := range filters {
		mustSubscribe(t, tr, f, Subscriber{ID: 1})
	}
	mustSubscribe(t, tr, "a", Subscriber{ID: 2})
	if n := tr.RemoveAll(1, append(filters, "never/subscribed", "bad/#/filter")); n != len(filters) {
		t.Fatalf("RemoveAll removed %d, want %d", n, len(filters))
	}
	if tr.Subscriptions() != 1 || tr.Filters() != 1 || tr.SharedGroups() != 0 {
		t.Fatalf("counts %d/%d/%d after RemoveAll, want 1/1/0", tr.Subscriptions(), tr.Filters(), tr.SharedGroups())
	}
	tr.Unsubscribe("a", 2)
	assertEmpty(t, tr)
}

func TestSubscribeInvalidFilter(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	for _, f := range []string{
		"", "a/#/b", "a#", "a/b+", "+a", "$share/", "$share/g", "$share/g/", "$share//a",
		"$share/g+/a", "$share/g/a/#/b", "$queue/", "$queue/a/#/b", "$queue/$share/g/a", "$queue/$queue/a",
	} {
		if _, err := tr.Subscribe(f, Subscriber{ID: 1}); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Subscribe(%q) error = %v, want ErrInvalidFilter", f, err)
		}
	}
	assertEmpty(t, tr)
}

func TestQueueAlias(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "$queue/jobs/+", Subscriber{ID: 1})
	if !mustSubscribe(t, tr, "$share/$queue/jobs/+", Subscriber{ID: 1, QoS: 1}) {
		t.Fatal("$share/$queue/f is not the same subscription as $queue/f")
	}
	var r Result
	tr.Match([]byte("jobs/1"), "", &r)
	if len(r.Shared) != 1 || r.Shared[0].Group != QueueGroup || r.Shared[0].Filter != "jobs/+" || r.Shared[0].QoS != 1 {
		t.Fatalf("got %+v, want one pick from group %q filter jobs/+", r.Shared, QueueGroup)
	}
	if len(r.Subs) != 0 {
		t.Fatalf("$queue subscription delivered as plain: %v", r.Subs)
	}
}

func TestSharedGroupsAreIndependent(t *testing.T) {
	// One pick per (group, filter): two groups on one filter and one group on
	// two overlapping filters give three picks [MQTT-4.8.2 section].
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "$share/g1/a/b", Subscriber{ID: 1})
	mustSubscribe(t, tr, "$share/g1/a/b", Subscriber{ID: 2})
	mustSubscribe(t, tr, "$share/g2/a/b", Subscriber{ID: 1})
	mustSubscribe(t, tr, "$share/g1/a/+", Subscriber{ID: 3})
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 1})
	var r Result
	tr.Match([]byte("a/b"), "", &r)
	if len(r.Shared) != 3 || len(r.Subs) != 1 {
		t.Fatalf("got %d picks %d plain, want 3 and 1: %+v", len(r.Shared), len(r.Subs), r.Shared)
	}
	if tr.Filters() != 4 || tr.SharedGroups() != 3 || tr.Subscriptions() != 5 {
		t.Fatalf("counts %d filters %d groups %d subs, want 4 3 5", tr.Filters(), tr.SharedGroups(), tr.Subscriptions())
	}
}

func TestMatchResultReused(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	mustSubscribe(t, tr, "a", Subscriber{ID: 1})
	mustSubscribe(t, tr, "$share/g/a", Subscriber{ID: 2})
	var r Result
	tr.Match([]byte("a"), "", &r)
	tr.Match([]byte("b"), "", &r)
	if len(r.Subs) != 0 || len(r.Shared) != 0 {
		t.Fatalf("second Match kept the first one's results: %v %v", r.Subs, r.Shared)
	}
}

func TestCacheInvalidatedByChanges(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 16)
	var r Result
	count := func() int {
		tr.Match([]byte("a/b"), "", &r)
		return len(r.Subs)
	}
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 1})
	for range 3 {
		if n := count(); n != 1 {
			t.Fatalf("got %d, want 1", n)
		}
	}
	mustSubscribe(t, tr, "a/+", Subscriber{ID: 2})
	if n := count(); n != 2 {
		t.Fatalf("cached result survived Subscribe: got %d, want 2", n)
	}
	count()
	tr.Unsubscribe("a/b", 1)
	if n := count(); n != 1 {
		t.Fatalf("cached result survived Unsubscribe: got %d, want 1", n)
	}
	mustSubscribe(t, tr, "a/+", Subscriber{ID: 2, QoS: 2})
	if count(); r.Subs[0].QoS != 2 {
		t.Fatalf("cached result survived a replace: %+v", r.Subs)
	}
}

// assertEmpty checks that the counters are zero and every node was pruned.
func assertEmpty(t *testing.T, tr *Trie) {
	t.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	if !tr.root.empty() || tr.root.nodes != nil || tr.root.few != nil || tr.root.plus != nil || tr.root.hash != nil {
		t.Fatalf("trie not pruned: root %+v", tr.root)
	}
	if tr.Subscriptions() != 0 || tr.Filters() != 0 || tr.SharedGroups() != 0 {
		t.Fatalf("counts %d/%d/%d, want 0", tr.Subscriptions(), tr.Filters(), tr.SharedGroups())
	}
}
