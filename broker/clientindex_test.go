package broker

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestClientIndexModel runs random puts, replacements and removals against a
// map and checks every lookup, present and absent, after each step, through
// growth and shrinkage of the table.
func TestClientIndexModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := newClientIndex()
	model := map[string]*Session{}
	const ids = 3000
	check := func(step int) {
		t.Helper()
		if x.len() != len(model) {
			t.Fatalf("step %d: len %d, model %d", step, x.len(), len(model))
		}
		for k := 0; k < 20; k++ {
			id := strconv.Itoa(rng.IntN(ids))
			if got, want := x.get(id), model[id]; got != want {
				t.Fatalf("step %d: get(%q) = %p, want %p", step, id, got, want)
			}
		}
	}
	for step := 0; step < 60000; step++ {
		id := strconv.Itoa(rng.IntN(ids))
		// Bias towards filling for the first half, emptying for the second,
		// so the table grows to thousands of entries and shrinks back.
		fill := step < 30000
		switch r := rng.IntN(10); {
		case (fill && r < 7) || (!fill && r < 2):
			s := &Session{clientID: id}
			x.put(s)
			model[id] = s
		default:
			cur := model[id]
			if cur == nil {
				if x.remove(&Session{clientID: id}) {
					t.Fatalf("step %d: removed absent %q", step, id)
				}
				continue
			}
			// A stale session of the same id is not the filed one.
			if x.remove(&Session{clientID: id}) {
				t.Fatalf("step %d: removed a session that was not filed for %q", step, id)
			}
			if !x.remove(cur) {
				t.Fatalf("step %d: remove(%q) found nothing", step, id)
			}
			delete(model, id)
		}
		check(step)
	}
	for id, s := range model {
		if x.get(id) != s {
			t.Fatalf("final: get(%q) wrong", id)
		}
	}
	if len(x.slots) > minIndexSlots && x.n*16 < len(x.slots) {
		t.Fatalf("table of %d slots for %d entries did not shrink", len(x.slots), x.n)
	}
	for _, s := range model {
		x.remove(s)
	}
	if x.len() != 0 || x.slots != nil {
		t.Fatalf("emptied: len %d, %d slots kept", x.len(), len(x.slots))
	}
	s := &Session{clientID: "again"}
	x.put(s)
	if x.get("again") != s {
		t.Fatal("put after emptying: not found")
	}
}

// TestClientIndexMemory holds the table under 16 bytes per session at 10,000
// sessions: the reason it replaced a map.
func TestClientIndexMemory(t *testing.T) {
	x := newClientIndex()
	const n = 10000
	for i := 0; i < n; i++ {
		x.put(&Session{clientID: "client-" + strconv.Itoa(i)})
	}
	if x.len() != n {
		t.Fatalf("len %d, want %d", x.len(), n)
	}
	if per := len(x.slots) * 8 / n; per > 16 {
		t.Fatalf("%d bytes per session, budget 16", per)
	}
	for i := 0; i < n; i++ {
		id := "client-" + strconv.Itoa(i)
		if s := x.get(id); s == nil || s.clientID != id {
			t.Fatalf("get(%q) = %v", id, s)
		}
	}
}
