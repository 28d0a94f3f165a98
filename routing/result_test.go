package routing

import (
	"cmp"
	"slices"
	"testing"
)

func TestMergeOverlapping(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	// Client 1 overlaps on three filters, client 2 on two; client 3 once.
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 1, QoS: 0, SubscriptionID: 5})
	mustSubscribe(t, tr, "a/+", Subscriber{ID: 1, QoS: 2})
	mustSubscribe(t, tr, "#", Subscriber{ID: 1, QoS: 1, SubscriptionID: 3, RetainAsPublished: true})
	mustSubscribe(t, tr, "a/#", Subscriber{ID: 2, QoS: 1, SubscriptionID: 9})
	mustSubscribe(t, tr, "+/b", Subscriber{ID: 2, QoS: 0, SubscriptionID: 9}) // same id twice
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 3})
	mustSubscribe(t, tr, "$share/g/a/b", Subscriber{ID: 1, SubscriptionID: 7})

	var r Result
	tr.Match([]byte("a/b"), "pub", &r)
	ds := sortDeliveries(r.Merge(nil))
	if len(ds) != 3 {
		t.Fatalf("got %d deliveries, want 3: %+v", len(ds), ds)
	}
	// [MQTT-3.3.5-1] maximum QoS; [MQTT-3.3.4-4] every subscription id.
	check := func(d Delivery, id uint64, qos byte, rap bool, ids []uint32) {
		t.Helper()
		if d.ID != id || d.QoS != qos || d.RetainAsPublished != rap || !slices.Equal(d.SubscriptionIDs, ids) {
			t.Errorf("delivery %+v, want ID %d QoS %d RAP %v ids %v", d, id, qos, rap, ids)
		}
	}
	check(ds[0], 1, 2, true, []uint32{3, 5})
	check(ds[1], 2, 1, false, []uint32{9})
	check(ds[2], 3, 0, false, nil)
	// Shared picks are separate deliveries, untouched by Merge.
	if len(r.Shared) != 1 || r.Shared[0].SubscriptionID != 7 {
		t.Errorf("shared picks %+v, want the one member with subscription id 7", r.Shared)
	}
}

func TestMergeNoLocal(t *testing.T) {
	tr := newTestTrie(ShareRoundRobin, 0)
	// [MQTT-3.8.3-3]: the no-local subscription of the publisher is skipped,
	// its other subscription still delivers (with its own QoS and id only).
	mustSubscribe(t, tr, "a/b", Subscriber{ID: 1, QoS: 2, NoLocal: true, SubscriptionID: 1})
	mustSubscribe(t, tr, "a/+", Subscriber{ID: 1, QoS: 0, SubscriptionID: 2})
	mustSubscribe(t, tr, "#", Subscriber{ID: 2, QoS: 1, NoLocal: true})
	mustSubscribe(t, tr, "+/b", Subscriber{ID: 3, QoS: 1, NoLocal: true}) // another session of the publisher

	var r Result
	var asked []uint64
	isPub := func(id uint64) bool {
		asked = append(asked, id)
		return id == 1 || id == 3
	}
	tr.Match([]byte("a/b"), "me", &r)
	ds := sortDeliveries(r.Merge(isPub))
	if len(ds) != 2 {
		t.Fatalf("got %+v, want deliveries to IDs 1 and 2", ds)
	}
	if ds[0].ID != 1 || ds[0].QoS != 0 || !slices.Equal(ds[0].SubscriptionIDs, []uint32{2}) {
		t.Errorf("publisher's own delivery %+v, want QoS 0 and id 2 from the local-allowed subscription", ds[0])
	}
	if ds[1].ID != 2 || ds[1].QoS != 1 {
		t.Errorf("other client's delivery %+v, want ID 2 QoS 1", ds[1])
	}
	// Only the three No Local subscriptions are asked about.
	slices.Sort(asked)
	if !slices.Equal(asked, []uint64{1, 2, 3}) {
		t.Errorf("isPublisher asked about %v, want the No Local subscriptions' IDs 1, 2, 3", asked)
	}

	// nil: no publishing client, nothing skipped.
	tr.Match([]byte("a/b"), "", &r)
	ds = sortDeliveries(r.Merge(nil))
	if len(ds) != 3 || ds[0].ID != 1 || ds[0].QoS != 2 || !slices.Equal(ds[0].SubscriptionIDs, []uint32{1, 2}) ||
		ds[1].ID != 2 || ds[2].ID != 3 {
		t.Errorf("Merge(nil) = %+v, want IDs 1 (QoS 2, ids 1 and 2), 2 and 3", ds)
	}

	// Everything filtered: no deliveries.
	tr.Unsubscribe("a/+", 1)
	tr.Unsubscribe("#", 2)
	tr.Match([]byte("a/b"), "me", &r)
	if ds := r.Merge(isPub); len(ds) != 0 {
		t.Fatalf("got %+v, want none", ds)
	}
}

// TestMergeNoLocalPaths applies No Local on the linear (10 subscribers) and
// the sorted (50) merge paths: every third subscriber is the publisher's and
// keeps only its subscription without No Local.
func TestMergeNoLocalPaths(t *testing.T) {
	for _, n := range []uint64{10, 50} {
		tr := newTestTrie(ShareRoundRobin, 0)
		for id := range n {
			mustSubscribe(t, tr, "x/y", Subscriber{ID: id, QoS: 2, NoLocal: true, SubscriptionID: uint32(2*id + 2)})
			mustSubscribe(t, tr, "x/+", Subscriber{ID: id, QoS: 0, SubscriptionID: uint32(2*id + 1)})
		}
		isPub := func(id uint64) bool { return id%3 == 0 }
		var r Result
		tr.Match([]byte("x/y"), "", &r)
		ds := sortDeliveries(r.Merge(isPub))
		if uint64(len(ds)) != n {
			t.Fatalf("n=%d: got %d deliveries", n, len(ds))
		}
		for i, d := range ds {
			wantQoS, want := byte(2), []uint32{uint32(2*i + 1), uint32(2*i + 2)}
			if isPub(uint64(i)) {
				wantQoS, want = 0, want[:1]
			}
			if d.ID != uint64(i) || d.QoS != wantQoS || !slices.Equal(d.SubscriptionIDs, want) {
				t.Fatalf("n=%d: delivery %d = %+v, want QoS %d ids %v", n, i, d, wantQoS, want)
			}
		}
	}
}

func TestMergeSubscriptionIDs(t *testing.T) {
	// 10 subscribers take the linear path, 50 the sorted one; the ids array
	// is laid out per delivery: every delivery must see exactly its own ids.
	for _, n := range []uint64{10, 50} {
		tr := newTestTrie(ShareRoundRobin, 0)
		for id := range n {
			mustSubscribe(t, tr, "x/y", Subscriber{ID: id, SubscriptionID: uint32(2*id + 2)})
			mustSubscribe(t, tr, "x/+", Subscriber{ID: id, SubscriptionID: uint32(2*id + 1)})
			mustSubscribe(t, tr, "#", Subscriber{ID: id, SubscriptionID: uint32(2*id + 1)}) // duplicate id
			if id%2 == 0 {
				mustSubscribe(t, tr, "+/y", Subscriber{ID: id}) // no id
			}
		}
		var r Result
		tr.Match([]byte("x/y"), "", &r)
		ds := sortDeliveries(r.Merge(nil))
		if uint64(len(ds)) != n {
			t.Fatalf("n=%d: got %d deliveries", n, len(ds))
		}
		for i, d := range ds {
			want := []uint32{uint32(2*i + 1), uint32(2*i + 2)}
			if d.ID != uint64(i) || !slices.Equal(d.SubscriptionIDs, want) || cap(d.SubscriptionIDs) != 2 {
				t.Fatalf("n=%d: delivery %d = %+v, want ids %v", n, i, d, want)
			}
		}
	}
}

// sortDeliveries orders deliveries by ID for comparison.
func sortDeliveries(ds []Delivery) []Delivery {
	slices.SortFunc(ds, func(a, b Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return ds
}
