package fsm

import (
	"github.com/hashicorp/raft"
	"reflect"
	"testing"
)

// A retry after raft.ErrLeadershipLost is the same batch committed again at
// a later index: it must return the first results and change nothing.
func TestIdempotentRetry(t *testing.T) {
	a := newApplier(t)
	b := &Batch{Node: "n1", Boot: 1, Seq: 1, Ops: []Command{
		&SessionClaim{ClientID: "c", Node: "n1", Boot: 1, Expiry: 60, Now: t0},
		&RetainedSet{Topic: "t", Payload: []byte("p"), Now: t0},
	}}
	first := a.batch(b)
	events := 0
	a.f.SetClaimHook(func(ClaimEvent) { events++ })
	before := dump(a.f)
	again := a.batch(b)
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("retry results %+v, want %+v", again, first)
	}
	if !reflect.DeepEqual(before, dump(a.f)) || events != 0 {
		t.Fatal("retry changed the state or fired the hook")
	}
	// The same key inside one ApplyBatch (both copies committed in one go).
	b2 := &Batch{Node: "n1", Boot: 1, Seq: 2, Ops: []Command{&SessionClaim{ClientID: "d", Node: "n1", Expiry: 60, Now: t0}}}
	out := a.f.ApplyBatch([]*raft.Log{a.log(b2), a.log(b2)})
	if !reflect.DeepEqual(out[0], out[1]) || a.f.Stats().Sessions != 2 {
		t.Fatalf("duplicate within one ApplyBatch: %v %v", out[0], out[1])
	}
}

func TestDedupWindowAndOrder(t *testing.T) {
	a := newApplier(t)
	set := func(seq uint64, topic string) []Result {
		return a.batch(&Batch{Node: "p", Boot: 5, Seq: seq, Ops: []Command{&RetainedSet{Topic: topic, Payload: []byte("x"), Now: t0}}})
	}
	// Out of order: 3 before 2 (forwarded to different leaders); both apply once.
	set(3, "three")
	set(2, "two")
	if a.f.Stats().Retained != 2 {
		t.Fatal("out-of-order batch not applied")
	}
	a.one(&RetainedDelete{Topic: "two"})
	if r := set(2, "two"); r[0].Code != CodeOK || a.f.Stats().Retained != 1 {
		t.Fatal("retry of seq 2 re-applied")
	}
	// Move far ahead: seq 3 leaves the window and gets CodeDuplicate.
	set(3+DedupWindow, "far")
	if r := set(3, "three-again"); r[0].Code != CodeDuplicate {
		t.Fatalf("seq outside the window: %v", r[0].Code)
	}
	if _, ok := a.f.Retained("three-again"); ok {
		t.Fatal("too-old batch applied")
	}
	// A seq inside the window that never applied still applies.
	if r := set(100, "late"); r[0].Code != CodeOK {
		t.Fatal(r[0].Code)
	}
	if _, ok := a.f.Retained("late"); !ok {
		t.Fatal("in-window unseen seq not applied")
	}
	// Seq 0 carries no key and always applies; other boots are independent.
	set(0, "zero")
	a.one(&RetainedDelete{Topic: "zero"})
	set(0, "zero")
	if _, ok := a.f.Retained("zero"); !ok {
		t.Fatal("seq 0 batch not applied twice")
	}
	if r := a.batch(&Batch{Node: "p", Boot: 6, Seq: 3, Ops: []Command{&RetainedSet{Topic: "b6", Payload: []byte("x")}}}); r[0].Code != CodeOK {
		t.Fatal("another boot's seq collided")
	}
}

func TestDownBootsBounded(t *testing.T) {
	a := newApplier(t)
	for boot := uint64(1); boot <= MaxDownBoots+5; boot++ {
		a.batch(&Batch{Node: "q", Boot: boot, Seq: 1, Ops: []Command{&NodeDown{Node: "x", Boot: 1}}})
		a.one(&NodeDown{Node: "q", Boot: boot, At: int64(boot)})
	}
	n := 0
	for k := range a.f.st.Load().boots {
		if k.node == "q" {
			n++
			if k.boot <= 5 {
				t.Fatalf("oldest dead boot %d kept", k.boot)
			}
		}
	}
	if n != MaxDownBoots {
		t.Fatalf("%d dead boots remembered, want %d", n, MaxDownBoots)
	}
}

// TestApplyBatchEqualsOneByOne: applying logs in raft-sized groups through
// ApplyBatch gives the same responses and state as applying them one by one
// (one txn spans the group, so later logs must see earlier ones).
func TestApplyBatchEqualsOneByOne(t *testing.T) {
	for seed := int64(1); seed <= 10; seed++ {
		one, grouped := newApplier(t), newApplier(t)
		g := newGen(one, seed)
		var logs []*raft.Log
		var want []interface{}
		for i := 0; i < 300; i++ {
			l := one.log(g.batch())
			logs = append(logs, l)
			want = append(want, one.f.Apply(l))
		}
		var got []interface{}
		for i := 0; i < len(logs); {
			n := min(1+i%64, len(logs)-i)
			got = append(got, grouped.f.ApplyBatch(logs[i:i+n])...)
			i += n
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: ApplyBatch responses differ from Apply", seed)
		}
		requireEqualState(t, one.f, grouped.f)
	}
}
