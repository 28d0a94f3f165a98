package routing

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Level vocabulary for random filters and topics: short, overlapping, with an
// empty level, a '$' level and case variants.
var (
	propLevels  = []string{"a", "b", "A", "", "$x", "c/d"} // "c/d" is two levels
	propGroups  = []string{"g1", "g2"}
	propFirst   = []string{"$SYS", "$x", "a"} // extra first levels for topics
	propMaxDeep = 5
)

func randTopic(rng *rand.Rand) string {
	n := 1 + rng.IntN(propMaxDeep)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = propLevels[rng.IntN(len(propLevels))]
	}
	if rng.IntN(4) == 0 {
		parts[0] = propFirst[rng.IntN(len(propFirst))]
	}
	if t := strings.Join(parts, "/"); t != "" {
		return t
	}
	return "/" // a topic name is never empty [MQTT-4.7.3-1]
}

func randFilter(rng *rand.Rand) string {
	n := 1 + rng.IntN(propMaxDeep)
	parts := make([]string, n)
	for i := range parts {
		switch k := rng.IntN(10); {
		case k < 2:
			parts[i] = "+"
		case k == 2 && i == n-1:
			parts[i] = "#"
		default:
			parts[i] = propLevels[rng.IntN(len(propLevels))]
		}
	}
	if rng.IntN(6) == 0 {
		parts[0] = propFirst[rng.IntN(len(propFirst))]
	}
	f := strings.Join(parts, "/")
	if f == "" {
		f = "/" // a filter is never empty [MQTT-4.7.3-1]
	}
	switch rng.IntN(8) {
	case 0:
		return "$share/" + propGroups[rng.IntN(len(propGroups))] + "/" + f
	case 1:
		return "$queue/" + f
	}
	return f
}

// TestPropertyTrieMatchesNaive applies random subscribes and unsubscribes to
// the trie and to the naive model, and compares every Match, the return
// values and the counters; at the end it removes everything and checks that
// the trie pruned itself empty.
func TestPropertyTrieMatchesNaive(t *testing.T) {
	for _, strategy := range []ShareStrategy{ShareRoundRobin, ShareRandom, ShareHash} {
		t.Run(strategy.String(), func(t *testing.T) {
			forEachCache(t, func(t *testing.T, cache int) {
				rng := rand.New(rand.NewPCG(uint64(strategy), uint64(cache)))
				tr := newTestTrie(strategy, cache)
				m := newModel()
				type sub struct {
					filter string
					id     uint64
				}
				var live []sub
				var r Result
				for round := range 40 {
					for range 40 {
						if len(live) > 0 && rng.IntN(5) < 2 {
							i := rng.IntN(len(live))
							s := live[i]
							want := m.unsubscribe(s.filter, s.id)
							if got := tr.Unsubscribe(s.filter, s.id); got != want {
								t.Fatalf("Unsubscribe(%q, %d) = %v, model %v", s.filter, s.id, got, want)
							}
							live[i] = live[len(live)-1]
							live = live[:len(live)-1]
							continue
						}
						f := randFilter(rng)
						s := Subscriber{ID: uint64(rng.IntN(12)), QoS: byte(rng.IntN(3)), SubscriptionID: uint32(rng.IntN(4))}
						want := m.subscribe(f, s)
						if got := mustSubscribe(t, tr, f, s); got != want {
							t.Fatalf("Subscribe(%q, %d) replaced = %v, model %v", f, s.ID, got, want)
						}
						live = append(live, sub{f, s.ID})
					}
					subs, filters, groups := m.counts()
					if tr.Subscriptions() != subs || tr.Filters() != filters || tr.SharedGroups() != groups {
						t.Fatalf("round %d: counts %d/%d/%d, model %d/%d/%d", round,
							tr.Subscriptions(), tr.Filters(), tr.SharedGroups(), subs, filters, groups)
					}
					for range 100 {
						m.check(t, tr, randTopic(rng), &r)
					}
				}
				for _, s := range live {
					m.unsubscribe(s.filter, s.id)
					tr.Unsubscribe(s.filter, s.id)
				}
				assertEmpty(t, tr)
			})
		})
	}
}

// TestConcurrentMatchDuringChurn runs matchers in parallel with a writer
// that subscribes and unsubscribes random filters. A fixed set of stable
// subscriptions (IDs >= 1000, never touched by the writer) must be present in
// every result; the churned ones may or may not be. Run it with -race.
func TestConcurrentMatchDuringChurn(t *testing.T) {
	forEachCache(t, func(t *testing.T, cache int) {
		tr := newTestTrie(ShareRoundRobin, cache)
		rng := rand.New(rand.NewPCG(1, 2))
		stable := newModel()
		for i := range 60 {
			f := randFilter(rng)
			s := Subscriber{ID: 1000 + uint64(i%20), QoS: byte(i % 3)}
			stable.subscribe(f, s)
			mustSubscribe(t, tr, f, s)
		}
		topics := make([]string, 200)
		for i := range topics {
			topics[i] = randTopic(rng)
		}

		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				var r Result
				for i := w; !stop.Load(); i++ {
					topic := topics[i%len(topics)]
					tr.Match([]byte(topic), "pub", &r)
					checkStable(t, stable, topic, &r)
				}
			})
		}
		wg.Go(func() {
			defer stop.Store(true)
			wrng := rand.New(rand.NewPCG(3, 4))
			var mine []string
			for i := range 3000 {
				if len(mine) > 0 && wrng.IntN(2) == 0 {
					j := wrng.IntN(len(mine))
					tr.Unsubscribe(mine[j], uint64(i%10))
					mine[j] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					continue
				}
				f := randFilter(wrng)
				if _, err := tr.Subscribe(f, Subscriber{ID: uint64(i % 10)}); err != nil {
					t.Errorf("Subscribe(%q): %v", f, err)
					return
				}
				mine = append(mine, f)
			}
		})
		wg.Wait()
	})
}

// checkStable verifies that every stable subscription matching topic is in r
// (plain ones exactly once per filter, shared groups with a pick).
func checkStable(t *testing.T, stable *model, topic string, r *Result) {
	want := map[uint64]int{}
	for f, set := range stable.plain {
		if naiveMatch(f, topic) {
			for id := range set {
				want[id]++
			}
		}
	}
	for _, s := range r.Subs {
		if s.ID >= 1000 {
			want[s.ID]--
		}
	}
	for id, n := range want {
		if n != 0 {
			t.Errorf("Match(%q): stable subscriber %d off by %d", topic, id, n)
			return
		}
	}
	for k := range stable.shared {
		if !naiveMatch(k.filter, topic) {
			continue
		}
		found := false
		for _, p := range r.Shared {
			found = found || (p.Group == k.group && p.Filter == k.filter)
		}
		if !found {
			t.Errorf("Match(%q): no pick for stable group %v", topic, k)
			return
		}
	}
}

// TestWideLevelsMatchNaive drives levels across fewMax literal children in
// both directions (slice to map and back), against the naive model: 30
// sibling names under "w", each with a child level, subscribed in random
// order until most exist, then unsubscribed down to a few, several times,
// with every topic of the vocabulary matched after each change.
func TestWideLevelsMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tr := newTestTrie(ShareRoundRobin, 0)
	m := newModel()
	const names = 30
	filter := func(k, shape int) string {
		switch shape {
		case 0:
			return "w/n" + strconv.Itoa(k)
		case 1:
			return "w/n" + strconv.Itoa(k) + "/x"
		default:
			return "n" + strconv.Itoa(k) + "/+"
		}
	}
	topics := []string{"w", "w/zz", "w/zz/x"}
	for k := range names {
		topics = append(topics, "w/n"+strconv.Itoa(k), "w/n"+strconv.Itoa(k)+"/x", "n"+strconv.Itoa(k)+"/x")
	}
	type sub struct {
		f  string
		id uint64
	}
	var live []sub
	var r Result
	check := func(when string) {
		t.Helper()
		for _, topic := range topics {
			m.check(t, tr, topic, &r)
		}
		if t.Failed() {
			t.Fatalf("after %s", when)
		}
	}
	sawMap, sawFewAgain := false, false
	for cycle := range 4 {
		for len(live) < 3*names*2/3 {
			s := sub{filter(rng.IntN(names), rng.IntN(3)), uint64(rng.IntN(3))}
			want := m.subscribe(s.f, Subscriber{ID: s.id})
			if got := mustSubscribe(t, tr, s.f, Subscriber{ID: s.id}); got != want {
				t.Fatalf("Subscribe(%q) replaced = %v, model %v", s.f, got, want)
			}
			if !want {
				live = append(live, s)
			}
			check("subscribe " + s.f)
		}
		sawMap = sawMap || tr.root.literal([]byte("w")).next.nodes != nil
		for len(live) > 4 {
			i := rng.IntN(len(live))
			s := live[i]
			want := m.unsubscribe(s.f, s.id)
			if got := tr.Unsubscribe(s.f, s.id); got != want || !got {
				t.Fatalf("cycle %d: Unsubscribe(%q, %d) = %v, model %v", cycle, s.f, s.id, got, want)
			}
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			check("unsubscribe " + s.f)
		}
		if w := tr.root.literal([]byte("w")); w != nil && w.next != nil && w.next.nodes == nil {
			sawFewAgain = true
		}
	}
	if !sawMap || !sawFewAgain {
		t.Fatalf("levels did not cross fewMax both ways: map %v, slice again %v", sawMap, sawFewAgain)
	}
	for _, s := range live {
		m.unsubscribe(s.f, s.id)
		tr.Unsubscribe(s.f, s.id)
	}
	assertEmpty(t, tr)
}
