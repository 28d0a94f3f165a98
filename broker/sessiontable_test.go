package broker

import (
	"sync"
	"testing"
)

// TestSessionTableReuse: a freed slot is used again under a new identity,
// and the old identity finds nothing (a delivery matched before its session
// ended must not reach the session that took the slot).
func TestSessionTableReuse(t *testing.T) {
	tab := newSessionTable()
	var all []*Session
	for i := 0; i < 3*sessionShards; i++ {
		s := &Session{}
		tab.add(s)
		if s.id == 0 {
			t.Fatal("identity 0")
		}
		all = append(all, s)
	}
	seen := map[uint64]bool{}
	for _, s := range all {
		if seen[s.id] {
			t.Fatalf("identity %#x given twice", s.id)
		}
		seen[s.id] = true
		if got := tab.get(s.id); got != s {
			t.Fatalf("get(%#x) = %p, want %p", s.id, got, s)
		}
	}
	old := all[5]
	tab.remove(old.id)
	if tab.get(old.id) != nil {
		t.Fatal("a removed identity still answers")
	}
	tab.remove(old.id) // twice is harmless
	oldShard, oldSlot := tab.split(old.id)
	var again *Session
	for i := 0; i < sessionShards && again == nil; i++ {
		s := &Session{}
		tab.add(s)
		if sh, slot := tab.split(s.id); sh == oldShard && slot == oldSlot {
			again = s
		}
	}
	if again == nil {
		t.Fatal("the freed slot was not used again")
	}
	if again.id == old.id {
		t.Fatalf("slot used again under the same identity %#x", old.id)
	}
	if tab.get(old.id) != nil || tab.get(again.id) != again {
		t.Fatal("the old identity answers for the slot's new session")
	}
	if tab.get(1<<40) != nil {
		t.Fatal("an identity never made answers")
	}
}

// TestSessionTableConcurrent exercises add, get and remove from several
// goroutines (run with -race).
func TestSessionTableConcurrent(t *testing.T) {
	tab := newSessionTable()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				s := &Session{}
				tab.add(s)
				if tab.get(s.id) != s {
					t.Error("get after add")
					return
				}
				if i%2 == 0 {
					tab.remove(s.id)
					if tab.get(s.id) != nil {
						t.Error("get after remove")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
