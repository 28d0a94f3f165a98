package routing

import (
	"slices"
	"testing"
)

// TestOnLocalHook checks that OnLocal sees every local subscription added
// and removed, once, and never a replacement or a remote entry.
func TestOnLocalHook(t *testing.T) {
	var events []string
	tr := New(Options{OnLocal: func(f string, added bool) {
		if added {
			events = append(events, "+"+f)
		} else {
			events = append(events, "-"+f)
		}
	}})
	mustSub := func(f string, s Subscriber) {
		t.Helper()
		if _, err := tr.Subscribe(f, s); err != nil {
			t.Fatal(err)
		}
	}
	mustSub("a/b", Subscriber{ID: 1})
	mustSub("a/b", Subscriber{ID: 1, QoS: 1}) // replaced: no event
	mustSub("$queue/a/b", Subscriber{ID: 2})
	if err := tr.SubscribeRemote("a/b", 7); err != nil { // remote: no event
		t.Fatal(err)
	}
	tr.Unsubscribe("a/b", 1)
	tr.Unsubscribe("a/b", 1) // gone already: no event
	tr.RemoveAll(2, []string{"$queue/a/b", "x"})
	tr.UnsubscribeRemote("a/b", 7)
	want := []string{"+a/b", "+$queue/a/b", "-a/b", "-$queue/a/b"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	if tr.Subscriptions() != 0 {
		t.Fatalf("subscriptions %d, want 0", tr.Subscriptions())
	}
}

// TestRemoteEntries checks that remote nodes match as subscribers with QoS 2
// and Retain As Published, take part in shared picks, and that PickLocal
// never picks them.
func TestRemoteEntries(t *testing.T) {
	tr := New(DefaultOptions())
	if err := tr.SubscribeRemote("s/+", 3); err != nil {
		t.Fatal(err)
	}
	if err := tr.SubscribeRemote("$share/g/s/#", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Subscribe("$share/g/s/#", Subscriber{ID: 10, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if tr.Subscriptions() != 1 {
		t.Fatalf("subscriptions %d, want 1 (remote entries uncounted)", tr.Subscriptions())
	}
	var r Result
	picked := map[uint64]int{}
	for range 10 {
		tr.Match([]byte("s/x"), "", &r)
		if len(r.Subs) != 1 || r.Subs[0].ID != RemoteID(3) || r.Subs[0].QoS != 2 || !r.Subs[0].RetainAsPublished {
			t.Fatalf("subs %+v, want the remote entry of node 3 at QoS 2 with RAP", r.Subs)
		}
		if len(r.Shared) != 1 {
			t.Fatalf("shared %+v, want one pick", r.Shared)
		}
		picked[r.Shared[0].ID]++
	}
	if picked[RemoteID(3)] != 5 || picked[10] != 5 {
		t.Fatalf("round robin picks %v, want 5 each for the remote node and the local member", picked)
	}
	if !IsRemote(RemoteID(3)) || RemoteNode(RemoteID(3)) != 3 || IsRemote(10) {
		t.Fatal("remote id helpers")
	}
	for range 5 {
		s, ok := tr.PickLocal("$share/g/s/#", "")
		if !ok || s.ID != 10 {
			t.Fatalf("PickLocal = %+v %v, want the local member", s, ok)
		}
	}
	tr.Unsubscribe("$share/g/s/#", 10)
	if s, ok := tr.PickLocal("$share/g/s/#", ""); ok {
		t.Fatalf("PickLocal = %+v, want none: only a remote member is left", s)
	}
	if _, ok := tr.PickShared("$share/g/s/#", 0, ""); !ok {
		t.Fatal("PickShared finds no member, want the remote node")
	}
}
