package routing

import (
	"fmt"
	"sync"
	"testing"
)

// sharedTrie returns a trie with members 1..n in group g of filter "t/+".
func sharedTrie(t testing.TB, strategy ShareStrategy, n int) *Trie {
	tr := newTestTrie(strategy, 0)
	for id := 1; id <= n; id++ {
		mustSubscribe(t, tr, "$share/g/t/+", Subscriber{ID: uint64(id)})
	}
	return tr
}

// pickCounts matches topic t/x count times and counts the pick per member.
func pickCounts(t *testing.T, tr *Trie, count int, publisher func(i int) string) map[uint64]int {
	t.Helper()
	got := map[uint64]int{}
	var r Result
	for i := range count {
		tr.Match([]byte("t/x"), publisher(i), &r)
		if len(r.Shared) != 1 {
			t.Fatalf("got %d picks, want exactly one per group", len(r.Shared))
		}
		got[r.Shared[0].ID]++
	}
	return got
}

func TestShareRoundRobinExact(t *testing.T) {
	const members, rounds = 3, 1000
	tr := sharedTrie(t, ShareRoundRobin, members)
	got := pickCounts(t, tr, members*rounds, func(int) string { return "pub" })
	for id := uint64(1); id <= members; id++ {
		if got[id] != rounds {
			t.Errorf("member %d picked %d times, want exactly %d: %v", id, got[id], rounds, got)
		}
	}
}

func TestShareRoundRobinConcurrent(t *testing.T) {
	// The per-group counter is atomic: concurrent matches still hand out each
	// position exactly once, so the split stays exact.
	const members, workers, perWorker = 4, 4, 2000
	tr := sharedTrie(t, ShareRoundRobin, members)
	counts := make([]map[uint64]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			counts[w] = map[uint64]int{}
			var r Result
			for range perWorker {
				tr.Match([]byte("t/x"), "", &r)
				counts[w][r.Shared[0].ID]++
			}
		})
	}
	wg.Wait()
	total := map[uint64]int{}
	for _, c := range counts {
		for id, n := range c {
			total[id] += n
		}
	}
	for id := uint64(1); id <= members; id++ {
		if total[id] != workers*perWorker/members {
			t.Errorf("member %d picked %d times, want %d: %v", id, total[id], workers*perWorker/members, total)
		}
	}
}

func TestShareRandomDistribution(t *testing.T) {
	// 40000 picks over 4 members: 10000 expected each, standard deviation
	// about 87; 600 is about 7 deviations, so this fails only on a real skew.
	const members, n = 4, 40000
	tr := sharedTrie(t, ShareRandom, members)
	got := pickCounts(t, tr, n, func(int) string { return "pub" })
	for id := uint64(1); id <= members; id++ {
		if d := got[id] - n/members; d < -600 || d > 600 {
			t.Errorf("member %d picked %d times, want %d±600: %v", id, got[id], n/members, got)
		}
	}
}

func TestShareHashSticky(t *testing.T) {
	const members = 4
	tr := sharedTrie(t, ShareHash, members)
	// One publisher always lands on one member.
	for _, pub := range []string{"", "sensor-1", "sensor-2", "a-much-longer-client-identifier"} {
		if got := pickCounts(t, tr, 50, func(int) string { return pub }); len(got) != 1 {
			t.Errorf("publisher %q spread over %v, want one member", pub, got)
		}
	}
	// Many publishers spread over all members: 2000 over 4 is 500 each, with
	// FNV-1a deterministic, so the bound only guards against a broken hash.
	got := pickCounts(t, tr, 2000, func(i int) string { return fmt.Sprint("client-", i) })
	for id := uint64(1); id <= members; id++ {
		if d := got[id] - 500; d < -150 || d > 150 {
			t.Errorf("member %d picked %d times, want 500±150: %v", id, got[id], got)
		}
	}
}

func TestPickSharedExcluding(t *testing.T) {
	for _, strategy := range []ShareStrategy{ShareRoundRobin, ShareRandom, ShareHash} {
		t.Run(strategy.String(), func(t *testing.T) {
			const members = 3
			tr := sharedTrie(t, strategy, members)
			got := map[uint64]int{}
			for i := range 3000 {
				s, ok := tr.PickShared("$share/g/t/+", 2, fmt.Sprint("p", i))
				if !ok || s.ID == 2 {
					t.Fatalf("PickShared excluding 2 = %+v, %v", s, ok)
				}
				got[s.ID]++
			}
			if got[1] == 0 || got[3] == 0 {
				t.Errorf("PickShared excluding 2 never picked one of the others: %v", got)
			}
			if strategy == ShareRoundRobin && got[1] != got[3] {
				t.Errorf("round robin excluding 2: %v, want an even split", got)
			}
			// Excluding an ID that is not a member excludes nothing.
			if _, ok := tr.PickShared("$share/g/t/+", 99, ""); !ok {
				t.Error("PickShared excluding a non-member found nothing")
			}
		})
	}
}

func TestPickSharedNoCandidate(t *testing.T) {
	tr := sharedTrie(t, ShareRoundRobin, 1)
	mustSubscribe(t, tr, "t/+", Subscriber{ID: 5})
	mustSubscribe(t, tr, "$queue/q", Subscriber{ID: 6})
	for _, c := range []struct {
		filter string
		ex     uint64
		want   bool
	}{
		{"$share/g/t/+", 1, false}, // the only member is excluded
		{"$share/g/t/+", 2, true},
		{"$share/h/t/+", 2, false}, // no such group
		{"$share/g/t/x", 2, false}, // a topic is not the filter
		{"$share/g/t", 2, false},   // prefix of the filter
		{"$share/g/t/+/z", 2, false},
		{"t/+", 0, false}, // not shared
		{"$queue/q", 0, true},
		{"$share/$queue/q", 6, false},
		{"$share/g/#/x", 0, false}, // invalid
	} {
		s, ok := tr.PickShared(c.filter, c.ex, "")
		if ok != c.want {
			t.Errorf("PickShared(%q, %d) = %+v, %v; want ok %v", c.filter, c.ex, s, ok, c.want)
		}
	}
}

func TestShareGroupMembershipChanges(t *testing.T) {
	// Leaving and joining members change the rotation; no pick goes to a
	// member that left, and the group disappears with its last member.
	tr := sharedTrie(t, ShareRoundRobin, 3)
	tr.Unsubscribe("$share/g/t/+", 2)
	got := pickCounts(t, tr, 100, func(int) string { return "" })
	if got[2] != 0 || got[1] != 50 || got[3] != 50 {
		t.Fatalf("after member 2 left: %v, want 1 and 3 at 50 each", got)
	}
	tr.Unsubscribe("$share/g/t/+", 1)
	tr.Unsubscribe("$share/g/t/+", 3)
	var r Result
	tr.Match([]byte("t/x"), "", &r)
	if len(r.Shared) != 0 {
		t.Fatalf("empty group still picked %v", r.Shared)
	}
	assertEmpty(t, tr)
}
