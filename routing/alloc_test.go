package routing

import (
	"fmt"
	"testing"
)

// allocTrie holds 10 subscribers matching "site/7/dev/42/temp" through
// literal, '+' and '#' filters, two shared groups, and unrelated filters.
func allocTrie(t testing.TB, strategy ShareStrategy, cache int) *Trie {
	tr := newTestTrie(strategy, cache)
	matching := []string{
		"site/7/dev/42/temp", "site/7/dev/42/temp", "site/+/dev/42/temp", "site/7/+/42/temp",
		"site/7/dev/+/temp", "site/+/dev/+/temp", "site/7/#", "site/#", "#", "+/+/+/+/+",
	}
	for i, f := range matching {
		mustSubscribe(t, tr, f, Subscriber{ID: uint64(i), QoS: byte(i % 3), SubscriptionID: uint32(i)})
	}
	mustSubscribe(t, tr, "$share/g/site/+/dev/+/temp", Subscriber{ID: 100})
	mustSubscribe(t, tr, "$share/g/site/+/dev/+/temp", Subscriber{ID: 101})
	mustSubscribe(t, tr, "$queue/site/7/#", Subscriber{ID: 102})
	for i := range 1000 {
		mustSubscribe(t, tr, fmt.Sprintf("site/%d/dev/%d/hum", i%50, i), Subscriber{ID: uint64(1000 + i)})
	}
	return tr
}

// publisherOf answers Merge's isPublisher the way the broker does: a method
// value bound once, asked about the publisher set before each Merge.
type publisherOf struct{ pub uint64 }

func (p *publisherOf) is(id uint64) bool { return id == p.pub }

// TestMatchAllocs is the allocation budget of the hot path: matching into a
// warm Result allocates nothing, with or without the cache, for every
// strategy, and so does Merge, No Local included.
func TestMatchAllocs(t *testing.T) {
	topic := []byte("site/7/dev/42/temp")
	for _, strategy := range []ShareStrategy{ShareRoundRobin, ShareRandom, ShareHash} {
		forEachCache(t, func(t *testing.T, cache int) {
			tr := allocTrie(t, strategy, cache)
			// Subscriber 3 also subscribes with No Local: skipped when it publishes.
			mustSubscribe(t, tr, "site/7/dev/42/+", Subscriber{ID: 3, QoS: 2, NoLocal: true, SubscriptionID: 99})
			pub := &publisherOf{}
			isPub := pub.is
			var r Result
			for range 3 { // warm the Result (and admit the topic to the cache)
				tr.Match(topic, "publisher", &r)
				r.Merge(isPub)
			}
			if len(r.Subs) != 11 || len(r.Shared) != 2 {
				t.Fatalf("got %d plain and %d shared, want 11 and 2", len(r.Subs), len(r.Shared))
			}
			allocs := testing.AllocsPerRun(200, func() {
				tr.Match(topic, "publisher", &r)
			})
			if allocs != 0 {
				t.Errorf("%v: Match allocates %.1f times per run, budget 0", strategy, allocs)
			}
			pub.pub = 3
			var ds []Delivery
			allocs = testing.AllocsPerRun(200, func() {
				tr.Match(topic, "c3", &r)
				ds = r.Merge(isPub)
			})
			if allocs != 0 {
				t.Errorf("%v: Match+Merge allocates %.1f times per run, budget 0", strategy, allocs)
			}
			if len(ds) != 10 || len(r.Subs) != 10 {
				t.Errorf("%v: got %d deliveries from %d kept subscriptions, want 10 and 10 (No Local skipped)",
					strategy, len(ds), len(r.Subs))
			}
		})
	}
}

// TestMatchAllocsOneOffTopics checks that topics seen once are not copied
// into the cache: a miss that is not admitted allocates nothing.
func TestMatchAllocsOneOffTopics(t *testing.T) {
	tr := allocTrie(t, ShareRoundRobin, 1024)
	var r Result
	topics := make([][]byte, 4096)
	for i := range topics {
		topics[i] = fmt.Appendf(nil, "site/%d/dev/%d/hum", i%50, i)
	}
	tr.Match(topics[0], "", &r) // warm the Result
	i := 1
	allocs := testing.AllocsPerRun(1000, func() {
		tr.Match(topics[i], "", &r)
		i++
	})
	if allocs != 0 {
		t.Errorf("Match of one-off topics allocates %.2f times per run, budget 0", allocs)
	}
}
