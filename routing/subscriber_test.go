package routing

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"unsafe"
)

// sessionID is an identity shaped like the broker's: seq<<32 | slot<<6 | shard.
func sessionID(seq, slot, shard uint32) uint64 {
	return uint64(seq)<<32 | uint64(slot)<<6 | uint64(shard&63)
}

// benchIDs returns n broker-shaped identities, spread over 64 shards.
func benchIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = sessionID(uint32(i+1), uint32(i/64), uint32(i))
	}
	return ids
}

// BenchmarkSubListPutRemove slides a window of 10k subscribers over 20k IDs:
// each op puts one absent ID and removes the oldest present one, so removes
// hit every position and swap the last entry into the hole.
func BenchmarkSubListPutRemove(b *testing.B) {
	const n = 10_000
	ids := benchIDs(2 * n)
	var s subList
	for _, id := range ids[:n] {
		s.put(Subscriber{ID: id})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if s.put(Subscriber{ID: ids[(i+n)%len(ids)]}) {
			b.Fatal("put: replaced an absent ID")
		}
		if !s.remove(ids[i%len(ids)]) {
			b.Fatal("remove: not found")
		}
		i++
	}
}

// BenchmarkSubListBuild builds a 10k-subscriber list from empty. B/op counts
// the garbage of growth too; retained-B/sub is what a built list keeps live
// per subscriber, list and index together, averaged over 16 lists so that
// unrelated heap changes between the two readings hardly count.
func BenchmarkSubListBuild(b *testing.B) {
	const n, lists = 10_000, 16
	ids := benchIDs(n)
	build := func() *subList {
		s := new(subList)
		for _, id := range ids {
			s.put(Subscriber{ID: id})
		}
		return s
	}
	b.ReportAllocs()
	for b.Loop() {
		build()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := make([]*subList, lists)
	for i := range kept {
		kept[i] = build()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(n*lists), "retained-B/sub")
}

// idPatterns are ID families that collide in some bits: broker-shaped
// identities, and IDs differing only in the top 32 bits or only in bits 6..31.
var idPatterns = []struct {
	name string
	id   func(i int) uint64
}{
	{"broker", func(i int) uint64 { return sessionID(uint32(i+1), uint32(i/64), uint32(i)) }},
	{"seq_only", func(i int) uint64 { return sessionID(uint32(i+1), 5, 3) }},
	{"slot_only", func(i int) uint64 { return sessionID(7, uint32(i), 3) }},
	{"seq_and_slot_equal", func(i int) uint64 { return sessionID(uint32(i+1), uint32(i+1), 0) }},
	{"stride_1<<40", func(i int) uint64 { return uint64(i+1) << 40 }},
	{"stride_1<<20", func(i int) uint64 { return uint64(i+1) << 20 }},
	{"dense", func(i int) uint64 { return uint64(i) }},
}

// checkIndex asserts the invariants of s.index: present past the threshold,
// absent at or below half of it, load at most 1/2, and every slot findable.
func checkIndex(t *testing.T, s *subList) {
	t.Helper()
	n := len(s.list)
	if n > indexThreshold && s.index == nil {
		t.Fatalf("%d entries without an index", n)
	}
	if n <= indexThreshold/2 && s.index != nil {
		t.Fatalf("%d entries with an index", n)
	}
	if s.index == nil {
		return
	}
	slots := s.index.slots
	if len(slots)&(len(slots)-1) != 0 || 2*n > len(slots) {
		t.Fatalf("%d entries in %d slots", n, len(slots))
	}
	used := 0
	for i, p := range slots {
		if p == 0 {
			continue
		}
		used++
		if int(p) > n {
			t.Fatalf("slot %d holds position %d of %d", i, p-1, n)
		}
		if slot, pos := s.lookup(s.list[p-1].ID); slot != i || pos != int(p-1) {
			t.Fatalf("slot %d (position %d): lookup gives slot %d position %d", i, p-1, slot, pos)
		}
	}
	if used != n {
		t.Fatalf("%d slots used for %d entries", used, n)
	}
}

// TestSubListModel runs random put, replace and remove on a subList against a
// map, crossing indexThreshold both ways, with ID families that collide in
// low or middle bits; after every step find agrees with the map for every ID
// present or absent, and the list holds exactly the map's entries.
func TestSubListModel(t *testing.T) {
	steps := 12_000
	if testing.Short() {
		steps = 3000
	}
	type pool struct {
		name string
		ids  []uint64
	}
	var pools []pool
	for _, p := range idPatterns {
		ids := make([]uint64, 160)
		for i := range ids {
			ids[i] = p.id(i)
		}
		pools = append(pools, pool{p.name, ids})
	}
	// IDs that all start probing in the last 4 of 64 slots: runs wrap around
	// the end of the smallest table.
	var wrap []uint64
	x := &subIndex{slots: make([]uint32, minIndexSlots), shift: 64 - 6}
	for id := uint64(1); len(wrap) < 40; id++ {
		if x.home(id<<32) >= minIndexSlots-4 {
			wrap = append(wrap, id<<32)
		}
	}
	pools = append(pools, pool{"wrap", wrap})
	for seed, p := range pools {
		ids := p.ids
		t.Run(p.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 1))
			var s subList
			model := map[uint64]Subscriber{}
			target := 0 // the size the walk drifts to; moves across the threshold
			built, dropped, shrunk := 0, 0, 0
			for step := range steps {
				slots := 0
				if s.index != nil {
					slots = len(s.index.slots)
				}
				if step%300 == 0 { // alternately below half the threshold and above it
					if step%600 == 0 {
						target = indexThreshold + 1 + rng.IntN(len(ids)-indexThreshold)
					} else {
						target = rng.IntN(indexThreshold / 2)
					}
				}
				id := ids[rng.IntN(len(ids))]
				removeOdds := 50 // percent
				if len(model) > target {
					removeOdds = 80
				} else if len(model) < target {
					removeOdds = 20
				}
				if rng.IntN(100) < removeOdds {
					if len(s.list) > 0 && rng.IntN(4) > 0 { // mostly a present ID
						id = s.list[rng.IntN(len(s.list))].ID
					}
					want := hasKey(model, id)
					delete(model, id)
					if got := s.remove(id); got != want {
						t.Fatalf("step %d: remove(%#x) = %v, want %v", step, id, got, want)
					}
				} else {
					sub := Subscriber{ID: id, QoS: byte(step % 3)}
					want := hasKey(model, id)
					model[id] = sub
					if got := s.put(sub); got != want {
						t.Fatalf("step %d: put(%#x) replaced = %v, want %v", step, id, got, want)
					}
				}
				if len(s.list) != len(model) {
					t.Fatalf("step %d: %d entries, want %d", step, len(s.list), len(model))
				}
				for _, e := range s.list {
					if m, ok := model[e.ID]; !ok || m != e {
						t.Fatalf("step %d: entry %+v, model has %+v (%v)", step, e, m, ok)
					}
				}
				for _, id := range ids {
					i := s.find(id)
					if m, ok := model[id]; ok != (i >= 0) || ok && s.list[i] != m {
						t.Fatalf("step %d: find(%#x) = %d, present %v", step, id, i, ok)
					}
				}
				checkIndex(t, &s)
				switch {
				case slots == 0 && s.index != nil:
					built++
				case slots > 0 && s.index == nil:
					dropped++
				case s.index != nil && len(s.index.slots) < slots:
					shrunk++
				}
			}
			if built < 3 || dropped < 3 || shrunk < 3 && len(ids) > 4*indexThreshold {
				t.Fatalf("index built %d times, dropped %d, shrunk %d: want more crossings", built, dropped, shrunk)
			}
		})
	}
}

// hasKey reports whether id is in m.
func hasKey(m map[uint64]Subscriber, id uint64) bool {
	_, ok := m[id]
	return ok
}

// TestSubListIndexSize builds 10k subscribers and asserts the index costs at
// most 16 bytes per subscriber at every size on the way.
func TestSubListIndexSize(t *testing.T) {
	var s subList
	for _, id := range benchIDs(10_000) {
		s.put(Subscriber{ID: id})
		if s.index != nil && len(s.index.slots)*4 > 16*len(s.list) {
			t.Fatalf("%d entries: index of %d bytes", len(s.list), len(s.index.slots)*4)
		}
	}
	if s.index == nil {
		t.Fatal("no index at 10k entries")
	}
	t.Logf("10k entries: %d slots, %.1f bytes per subscriber",
		len(s.index.slots), float64(len(s.index.slots)*4)/float64(len(s.list)))
}

// TestSubListHashSpread asserts the hash spreads every ID family: the mean
// probe length of a 10k index (load 0.31) stays near the uniform 1.22, and no
// run is long.
func TestSubListHashSpread(t *testing.T) {
	for _, p := range idPatterns {
		var s subList
		for i := range 10_000 {
			s.put(Subscriber{ID: p.id(i)})
		}
		slots := s.index.slots
		mask := len(slots) - 1
		total, longest := 0, 0
		for i, pos := range slots {
			if pos == 0 {
				continue
			}
			d := (i - s.index.home(s.list[pos-1].ID)) & mask
			total += d + 1
			longest = max(longest, d+1)
		}
		mean := float64(total) / float64(len(s.list))
		t.Logf("%s: mean probe %.2f, longest %d", p.name, mean, longest)
		if mean > 1.4 || longest > 32 {
			t.Errorf("%s: mean probe %.2f, longest %d", p.name, mean, longest)
		}
	}
}

// TestNodeSize keeps a trie node within 64 bytes: subList holds its index
// behind a pointer.
func TestNodeSize(t *testing.T) {
	if n := unsafe.Sizeof(node{}); n > 64 {
		t.Fatalf("node is %d bytes, want at most 64", n)
	}
}

// TestSubscriberSize keeps Subscriber a 16-byte value without pointers: the
// trie stores one per (filter, subscriber), every match copies them, and
// pointer-free lists are never scanned by the garbage collector. No Local
// needs no client id in it (Result.Merge asks the caller about the ID).
func TestSubscriberSize(t *testing.T) {
	if n := unsafe.Sizeof(Subscriber{}); n != 16 {
		t.Errorf("Subscriber is %d bytes, want 16", n)
	}
	typ := reflect.TypeFor[Subscriber]()
	for i := range typ.NumField() {
		switch f := typ.Field(i); f.Type.Kind() {
		case reflect.Bool, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("Subscriber.%s is a %v; keep the fields pointer-free", f.Name, f.Type)
		}
	}
}
