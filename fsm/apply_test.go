package fsm

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

const t0 = int64(1_700_000_000_000)

func TestClaimNewAndResume(t *testing.T) {
	a := newApplier(t)
	r := a.claim("c", false, 60, t0)
	if r.SessionPresent || r.PrevOwner != "" || r.Epoch != makeEpoch(1, 0) || EpochIndex(r.Epoch) != 1 {
		t.Fatalf("first claim: %+v", r)
	}
	if res := a.one(&Subscribe{ClientID: "c", Epoch: r.Epoch, Filter: "a/b", QoS: 1}); res.Code != CodeOK || res.Existed {
		t.Fatalf("subscribe: %+v", res)
	}
	if res := a.one(&Subscribe{ClientID: "c", Epoch: r.Epoch, Filter: "a/b", QoS: 2, NoLocal: true}); !res.Existed {
		t.Fatalf("re-subscribe: %+v", res)
	}
	a.one(&Subscribe{ClientID: "c", Epoch: r.Epoch, Filter: "0/first", QoS: 0})
	if res := a.one(&SessionDisconnected{ClientID: "c", Epoch: r.Epoch, At: t0 + 1000, Expiry: 60}); res.Code != CodeOK {
		t.Fatal(res.Code)
	}
	// Takeover by another node within the expiry: resumed with subscriptions.
	r2 := a.one(&SessionClaim{ClientID: "c", Node: "n2", Boot: 9, Expiry: 60, ProtocolVersion: 5, Now: t0 + 2000})
	want := []Subscription{{Filter: "0/first"}, {Filter: "a/b", QoS: 2, NoLocal: true}}
	if !r2.SessionPresent || r2.PrevOwner != "n1" || r2.PrevBoot != 1 || r2.PrevEpoch != r.Epoch ||
		r2.Epoch <= r.Epoch || !reflect.DeepEqual(r2.Subscriptions, want) {
		t.Fatalf("resume: %+v", r2)
	}
	s, ok := a.f.Session("c")
	if !ok || s.Node != "n2" || !s.Connected || s.Epoch != r2.Epoch || !reflect.DeepEqual(s.Subscriptions, want) {
		t.Fatalf("session after resume: %+v", s)
	}
	if st := a.f.Stats(); st.Sessions != 1 || st.Subscriptions != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Clean start clears the subscriptions, but still reports the previous owner.
	r3 := a.claim("c", true, 0, t0+3000)
	if r3.SessionPresent || r3.Subscriptions != nil || r3.PrevOwner != "n2" {
		t.Fatalf("clean start: %+v", r3)
	}
	if st := a.f.Stats(); st.Subscriptions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClaimExpiredOrZeroExpiryNotPresent(t *testing.T) {
	a := newApplier(t)
	r := a.claim("c", false, 10, t0)
	a.one(&SessionDisconnected{ClientID: "c", Epoch: r.Epoch, At: t0, Expiry: 10})
	if r := a.claim("c", false, 10, t0+10_000); r.SessionPresent {
		t.Fatal("session present after expiry")
	}
	// Expiry 0: the session ends with its connection, a takeover resumes nothing.
	r = a.claim("z", false, 0, t0)
	if r := a.claim("z", false, 0, t0+1); r.SessionPresent {
		t.Fatal("expiry-0 session resumed")
	}
	// Connected session with expiry: takeover resumes.
	a.claim("p", false, 100, t0)
	if r := a.claim("p", false, 100, t0+1); !r.SessionPresent {
		t.Fatal("takeover of a connected persistent session is not present")
	}
	// Never-expiring session.
	r = a.claim("v3", false, ExpiryNever, t0)
	a.one(&SessionDisconnected{ClientID: "v3", Epoch: r.Epoch, At: t0, Expiry: ExpiryNever})
	if r := a.claim("v3", false, ExpiryNever, t0+1<<40); !r.SessionPresent {
		t.Fatal("ExpiryNever session expired")
	}
}

func TestClaimInvalidAndSameBatchEpochs(t *testing.T) {
	a := newApplier(t)
	res := a.do(
		&SessionClaim{ClientID: "", Node: "n1", Now: t0},
		&SessionClaim{ClientID: "c", Node: "n1", Expiry: 5, Now: t0},
		&SessionClaim{ClientID: "c", Node: "n1", Expiry: 5, Now: t0},
	)
	if res[0].Code != CodeInvalid {
		t.Fatalf("empty client id: %v", res[0].Code)
	}
	if res[1].Epoch >= res[2].Epoch || EpochIndex(res[1].Epoch) != EpochIndex(res[2].Epoch) || res[2].PrevEpoch != res[1].Epoch {
		t.Fatalf("same-batch claims: %+v %+v", res[1], res[2])
	}
	if r := a.one(&Subscribe{ClientID: "c", Epoch: res[1].Epoch, Filter: "f"}); r.Code != CodeStale {
		t.Fatalf("op under the first claim's epoch: %v", r.Code)
	}
}

func TestStaleOpsChangeNothing(t *testing.T) {
	a := newApplier(t)
	old := a.claim("c", false, 60, t0)
	a.one(&Subscribe{ClientID: "c", Epoch: old.Epoch, Filter: "keep"})
	cur := a.one(&SessionClaim{ClientID: "c", Node: "n2", Boot: 2, Expiry: 60, ProtocolVersion: 5, Now: t0 + 1})
	before := dump(a.f)
	stale := []Command{
		&SessionDisconnected{ClientID: "c", Epoch: old.Epoch, At: t0 + 5, Expiry: 60},
		&SessionExpired{ClientID: "c", Epoch: old.Epoch},
		&SessionRelease{ClientID: "c", Epoch: old.Epoch},
		&Subscribe{ClientID: "c", Epoch: old.Epoch, Filter: "x"},
		&Unsubscribe{ClientID: "c", Epoch: old.Epoch, Filter: "keep"},
		&WillDone{ClientID: "c", Epoch: old.Epoch},
		&Subscribe{ClientID: "c", Epoch: cur.Epoch + 1, Filter: "x"}, // not current either
	}
	for _, op := range stale {
		if r := a.one(op); r.Code != CodeStale {
			t.Fatalf("%s with an old epoch: %v", op.Op(), r.Code)
		}
	}
	for _, op := range []Command{
		&SessionDisconnected{ClientID: "nobody", Epoch: 1},
		&SessionExpired{ClientID: "nobody", Epoch: 1},
		&SessionRelease{ClientID: "nobody", Epoch: 1},
		&Subscribe{ClientID: "nobody", Epoch: 1, Filter: "x"},
		&Unsubscribe{ClientID: "nobody", Epoch: 1, Filter: "x"},
		&WillDone{ClientID: "nobody", Epoch: 1},
	} {
		if r := a.one(op); r.Code != CodeNotFound {
			t.Fatalf("%s of an unknown client: %v", op.Op(), r.Code)
		}
	}
	after := dump(a.f)
	after.Boots, before.Boots = nil, nil // the idempotency window moved on
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("stale ops changed the state:\n%s", diffDump(before, after))
	}
}

func TestDisconnectExpireRelease(t *testing.T) {
	a := newApplier(t)
	r := a.claim("c", false, 60, t0)
	if res := a.one(&SessionExpired{ClientID: "c", Epoch: r.Epoch}); res.Code != CodeInvalid {
		t.Fatalf("expiring a connected session: %v", res.Code)
	}
	if got := a.f.ExpiredSessions(t0 + 1<<40); len(got) != 0 {
		t.Fatalf("connected session listed as expired: %v", got)
	}
	// A v5 client changes its expiry on DISCONNECT.
	a.one(&SessionDisconnected{ClientID: "c", Epoch: r.Epoch, At: t0 + 1000, Expiry: 30})
	s, _ := a.f.Session("c")
	if s.Connected || s.DisconnectedAt != t0+1000 || s.Expiry != 30 {
		t.Fatalf("after disconnect: %+v", s)
	}
	if at, ok := s.ExpiresAt(); !ok || at != t0+31_000 {
		t.Fatalf("ExpiresAt %d %v", at, ok)
	}
	if got := a.f.ExpiredSessions(t0 + 30_999); len(got) != 0 {
		t.Fatal("expired too early")
	}
	if got := a.f.ExpiredSessions(t0 + 31_000); len(got) != 1 || got[0].ClientID != "c" {
		t.Fatalf("ExpiredSessions: %v", got)
	}
	if res := a.one(&SessionExpired{ClientID: "c", Epoch: r.Epoch}); res.Code != CodeOK {
		t.Fatal(res.Code)
	}
	if _, ok := a.f.Session("c"); ok || len(a.f.ExpiredSessions(t0+1<<40)) != 0 {
		t.Fatal("expired session still there")
	}
	// Release of a connected session that ends with its connection and
	// has a will (kept, for the will).
	r = a.one(&SessionClaim{ClientID: "clean", Node: "n1", Boot: 1, CleanStart: true, Now: t0,
		Will: &Will{Topic: "w", Payload: []byte("gone")}})
	if st := a.f.Stats(); st.Sessions != 1 {
		t.Fatalf("stats after the claim of a session with a will: %+v", st)
	}
	if res := a.one(&SessionRelease{ClientID: "clean", Epoch: r.Epoch}); res.Code != CodeOK {
		t.Fatal(res.Code)
	}
	if st := a.f.Stats(); st.Sessions != 0 || st.Subscriptions != 0 {
		t.Fatalf("stats after release: %+v", st)
	}
}

// TestEphemeralClaimKeepsNoEntry: a session that ends with its connection
// and has no will is claimed (fenced, with an epoch and a hook event) but
// leaves no registry entry; claiming such a session over a persistent one
// resumes it (clean start 0) and removes its entry.
func TestEphemeralClaimKeepsNoEntry(t *testing.T) {
	a := newApplier(t)
	var events []ClaimEvent
	a.f.SetClaimHook(func(e ClaimEvent) { events = append(events, e) })
	r := a.claim("e", true, 0, t0)
	if r.Epoch == 0 || len(events) != 1 || events[0].Epoch != r.Epoch {
		t.Fatalf("ephemeral claim: %+v, events %+v", r, events)
	}
	if st := a.f.Stats(); st.Sessions != 0 {
		t.Fatalf("an ephemeral session left an entry: %+v", st)
	}
	if res := a.one(&SessionRelease{ClientID: "e", Epoch: r.Epoch}); res.Code != CodeNotFound {
		t.Fatalf("release of an ephemeral session: %v", res.Code)
	}
	p := a.claim("p", false, 60, t0)
	a.one(&Subscribe{ClientID: "p", Epoch: p.Epoch, Filter: "f"})
	a.one(&SessionDisconnected{ClientID: "p", Epoch: p.Epoch, At: t0, Expiry: 60})
	r = a.claim("p", false, 0, t0+1)
	if !r.SessionPresent || len(r.Subscriptions) != 1 || r.PrevEpoch != p.Epoch {
		t.Fatalf("resuming a persistent session with expiry 0: %+v", r)
	}
	if _, ok := a.f.Session("p"); ok || a.f.Stats().Subscriptions != 0 {
		t.Fatal("the resumed session's entry outlives the connection that ends it")
	}
	// A later claim is fenced against the ephemeral one by its event.
	r2 := a.claim("p", true, 0, t0+2)
	if last := events[len(events)-1]; last.Epoch != r2.Epoch || r2.Epoch <= r.Epoch {
		t.Fatalf("second ephemeral claim: %+v after %+v", last, r)
	}
}

func TestUnsubscribe(t *testing.T) {
	a := newApplier(t)
	r := a.claim("c", false, 60, t0)
	for _, f := range []string{"b", "a", "c"} {
		a.one(&Subscribe{ClientID: "c", Epoch: r.Epoch, Filter: f})
	}
	if res := a.one(&Subscribe{ClientID: "c", Epoch: r.Epoch, Filter: ""}); res.Code != CodeInvalid {
		t.Fatalf("empty filter: %v", res.Code)
	}
	if res := a.one(&Unsubscribe{ClientID: "c", Epoch: r.Epoch, Filter: "zz"}); res.Code != CodeNoSubscription {
		t.Fatalf("unsubscribe of unknown filter: %v", res.Code)
	}
	if res := a.one(&Unsubscribe{ClientID: "c", Epoch: r.Epoch, Filter: "b"}); res.Code != CodeOK {
		t.Fatal(res.Code)
	}
	s, _ := a.f.Session("c")
	if !reflect.DeepEqual(s.Subscriptions, []Subscription{{Filter: "a"}, {Filter: "c"}}) {
		t.Fatalf("subscriptions %v", s.Subscriptions)
	}
	a.one(&Unsubscribe{ClientID: "c", Epoch: r.Epoch, Filter: "a"})
	a.one(&Unsubscribe{ClientID: "c", Epoch: r.Epoch, Filter: "c"})
	if s, _ := a.f.Session("c"); s.Subscriptions != nil || a.f.Stats().Subscriptions != 0 {
		t.Fatalf("subscriptions left: %v", s.Subscriptions)
	}
}

func TestWills(t *testing.T) {
	a := newApplier(t)
	w := &Will{Topic: "will/c", Payload: []byte("gone"), QoS: 1, Delay: 10}
	claim := func(id string, node string, boot uint64, expiry uint32, w *Will) Result {
		return a.one(&SessionClaim{ClientID: id, Node: node, Boot: boot, Expiry: expiry, ProtocolVersion: 5, Will: w, Now: t0})
	}
	rn := claim("normal", "n1", 1, 100, w)
	rk := claim("kept", "n1", 1, 100, w)
	rs := claim("short", "n2", 2, 3, w) // expiry 3 s < delay 10 s
	claim("down", "n2", 2, 100, w)
	claim("nowill", "n2", 2, 100, nil)
	claim("otherboot", "n2", 3, 100, w)

	// Normal disconnect discards the will; abnormal keeps it for the owner.
	a.one(&SessionDisconnected{ClientID: "normal", Epoch: rn.Epoch, At: t0 + 1, Expiry: 100})
	a.one(&SessionDisconnected{ClientID: "kept", Epoch: rk.Epoch, At: t0 + 1, Expiry: 100, KeepWill: true})
	a.one(&SessionDisconnected{ClientID: "short", Epoch: rs.Epoch, At: t0 + 1, Expiry: 3, KeepWill: true})
	if s, _ := a.f.Session("normal"); s.Will != nil {
		t.Fatal("normal disconnect kept the will")
	}
	if got := a.f.PendingWills(t0 + 1<<40); len(got) != 0 {
		t.Fatalf("wills of live owners listed: %v", got)
	}
	// n2 boot 2 dies: its connected sessions disconnect, all its wills go to the leader.
	if r := a.one(&NodeDown{Node: "n2", Boot: 2, At: t0 + 5000}); r.Code != CodeOK || r.Count != 2 {
		t.Fatalf("NodeDown: %+v", r)
	}
	if s, _ := a.f.Session("otherboot"); !s.Connected {
		t.Fatal("NodeDown touched another boot")
	}
	d, _ := a.f.Session("down")
	if d.Connected || !d.OwnerDown || d.DisconnectedAt != t0+5000 {
		t.Fatalf("down session %+v", d)
	}
	// short: due at min(delay, expiry) after its own disconnect = t0+1+3000.
	if got := a.f.PendingWills(t0 + 3001); len(got) != 1 || got[0].ClientID != "short" {
		t.Fatalf("PendingWills(+3001) = %v", got)
	}
	got := a.f.PendingWills(t0 + 15000)
	if len(got) != 2 || got[0].ClientID != "short" || got[1].ClientID != "down" || !reflect.DeepEqual(got[1].Will, w) {
		t.Fatalf("PendingWills(+15000) = %+v", got)
	}
	if r := a.one(&WillDone{ClientID: "down", Epoch: d.Epoch}); r.Code != CodeOK {
		t.Fatal(r.Code)
	}
	if got := a.f.PendingWills(t0 + 15000); len(got) != 1 {
		t.Fatalf("after WillDone: %v", got)
	}
	if got := a.f.SessionsOfNode("n2", 2); len(got) != 3 {
		t.Fatalf("SessionsOfNode: %v", got)
	}
	// Reconnecting before the will is due discards it [MQTT-3.1.3-10 analogue]: the new claim's will replaces it.
	claim("short", "n1", 1, 3, nil)
	if got := a.f.PendingWills(t0 + 15000); len(got) != 0 {
		t.Fatalf("will of a reclaimed session still pending: %v", got)
	}
	if got := a.f.SessionsOfNode("n2", 2); len(got) != 2 {
		t.Fatalf("SessionsOfNode after reclaim: %v", got)
	}
	// Batches from the dead boot are fenced.
	res := a.batch(&Batch{Node: "n2", Boot: 2, Seq: 1, Ops: []Command{&RetainedSet{Topic: "t", Payload: []byte("x"), Now: t0}}})
	if res[0].Code != CodeFenced {
		t.Fatalf("batch from a dead boot: %v", res[0].Code)
	}
	if _, ok := a.f.Retained("t"); ok {
		t.Fatal("fenced batch applied")
	}
	// A claim for the dead boot, proposed by a live node, is fenced too.
	if r := a.one(&SessionClaim{ClientID: "late", Node: "n2", Boot: 2, Now: t0}); r.Code != CodeFenced {
		t.Fatalf("claim for a dead boot: %v", r.Code)
	}
	// NodeDown again changes nothing.
	if r := a.one(&NodeDown{Node: "n2", Boot: 2, At: t0 + 9000}); r.Count != 0 {
		t.Fatalf("repeated NodeDown: %+v", r)
	}
	// The boot comes back (it was not dead): NodeUp lifts the fence, and
	// the sessions stay as NodeDown left them.
	if !a.f.BootDown("n2", 2) {
		t.Fatal("BootDown false for a fenced boot")
	}
	if r := a.one(&NodeUp{Node: "n2", Boot: 2}); r.Code != CodeOK {
		t.Fatalf("NodeUp: %v", r.Code)
	}
	if a.f.BootDown("n2", 2) {
		t.Fatal("BootDown true after NodeUp")
	}
	if r := a.one(&NodeUp{Node: "n2", Boot: 2}); r.Code != CodeNotFound {
		t.Fatalf("NodeUp of a live boot: %v, want NotFound", r.Code)
	}
	if r := a.one(&SessionClaim{ClientID: "late", Node: "n2", Boot: 2, Now: t0}); r.Code != CodeOK {
		t.Fatalf("claim of a revived boot: %v", r.Code)
	}
	res = a.batch(&Batch{Node: "n2", Boot: 2, Seq: 2, Ops: []Command{&RetainedSet{Topic: "t", Payload: []byte("x"), Now: t0}}})
	if res[0].Code != CodeOK {
		t.Fatalf("batch from a revived boot: %v", res[0].Code)
	}
}

func TestRetainedSetDelete(t *testing.T) {
	a := newApplier(t)
	set := func(topic, payload string, exp int64) Result {
		return a.one(&RetainedSet{Topic: topic, Payload: []byte(payload), QoS: 1, Props: []byte{7}, ExpiresAt: exp, Now: t0})
	}
	set("a/b", "one", 0)
	set("a/b", "two", t0+1000)
	set("a/c", "three", t0+500)
	if st := a.f.Stats(); st.Retained != 2 || st.RetainedBytes != int64(3+3+1+3+5+1) {
		t.Fatalf("stats %+v", st)
	}
	m, ok := a.f.Retained("a/b")
	if !ok || string(m.Payload) != "two" || m.ExpiresAt != t0+1000 || m.StoredAt != t0 || m.QoS != 1 {
		t.Fatalf("retained %+v", m)
	}
	for _, bad := range []string{"", "a/+", "#", "a\x00b"} {
		if r := set(bad, "x", 0); r.Code != CodeInvalid {
			t.Fatalf("topic %q: %v", bad, r.Code)
		}
	}
	// Expiry queries and the guarded delete.
	if got := a.f.ExpiredRetained(t0 + 700); len(got) != 1 || got[0].Topic != "a/c" {
		t.Fatalf("ExpiredRetained: %v", got)
	}
	if r := a.one(&RetainedDelete{Topic: "a/b", ExpiredBy: t0 + 700}); r.Code != CodeStale {
		t.Fatalf("guarded delete of a live message: %v", r.Code)
	}
	set("a/c", "fresh", 0) // replaced after the sweep looked
	if r := a.one(&RetainedDelete{Topic: "a/c", ExpiredBy: t0 + 700}); r.Code != CodeStale {
		t.Fatalf("guarded delete of a replaced message: %v", r.Code)
	}
	if r := a.one(&RetainedDelete{Topic: "a/b", ExpiredBy: t0 + 1000}); r.Code != CodeOK {
		t.Fatal(r.Code)
	}
	if r := a.one(&RetainedDelete{Topic: "a/b"}); r.Code != CodeNotFound {
		t.Fatal(r.Code)
	}
	// Empty payload deletes; an already expired message is not stored.
	set("a/c", "", 0)
	set("x", "late", t0)
	if st := a.f.Stats(); st.Retained != 0 || st.RetainedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(a.f.ExpiredRetained(t0+1<<40)) != 0 {
		t.Fatal("expiry index not cleaned")
	}
}

func TestApplyNonCommandAndUndecodable(t *testing.T) {
	f := New()
	out := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: []byte{1, 2}},
		{Index: 2, Type: raft.LogCommand, Data: []byte{9, 9}},
		{Index: 3, Type: raft.LogCommand, Data: EncodeBatch(&Batch{Node: "n", Seq: 1, Ops: []Command{&RetainedSet{Topic: "t", Payload: []byte("p")}}})},
	})
	if len(out) != 3 || out[0] != nil {
		t.Fatalf("out %v", out)
	}
	if err, ok := out[1].(error); !ok || !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("undecodable entry: %v", out[1])
	}
	if resp, ok := out[2].(*Response); !ok || resp.Take()[0].Code != CodeOK {
		t.Fatalf("entry after a bad one: %v", out[2])
	}
}

func TestClaimHook(t *testing.T) {
	a := newApplier(t)
	var got []ClaimEvent
	a.f.SetClaimHook(func(e ClaimEvent) {
		// The new state is visible when the hook runs.
		if s, ok := a.f.Session(e.ClientID); !ok || s.Epoch != e.Epoch {
			t.Errorf("hook ran before the state was published")
		}
		got = append(got, e)
	})
	r1 := a.claim("c", false, 10, t0)
	a.one(&SessionClaim{ClientID: "c", Node: "n2", Boot: 4, Expiry: 10, Now: t0})
	a.one(&SessionClaim{ClientID: "", Node: "n2"}) // invalid: no event
	if len(got) != 2 || got[0] != (ClaimEvent{ClientID: "c", Epoch: r1.Epoch, Node: "n1", Boot: 1}) ||
		got[1].PrevNode != "n1" || got[1].PrevEpoch != r1.Epoch || got[1].Node != "n2" {
		t.Fatalf("events %+v", got)
	}
	a.f.SetClaimHook(nil)
	a.claim("d", false, 10, t0)
	if len(got) != 2 {
		t.Fatal("hook called after removal")
	}
}

func TestExpiryPolicy(t *testing.T) {
	cases := []struct {
		p       ExpiryPolicy
		v       byte
		clean   bool
		req     uint32
		want    uint32
		comment string
	}{
		{ExpiryPolicy{}, 4, true, 99, 0, "v3 clean session"},
		{ExpiryPolicy{}, 4, false, 0, ExpiryNever, "v3 persistent never expires"},
		{ExpiryPolicy{V3Expiry: 3600}, 3, false, 0, 3600, "v3 capped"},
		{ExpiryPolicy{}, 5, false, 0, 0, "v5 as asked"},
		{ExpiryPolicy{Max: 60}, 5, false, ExpiryNever, 60, "v5 capped"},
		{ExpiryPolicy{Max: 60}, 5, true, 10, 10, "v5 below cap"},
	}
	for _, c := range cases {
		if got := c.p.Effective(c.v, c.clean, c.req); got != c.want {
			t.Errorf("%s: %d, want %d", c.comment, got, c.want)
		}
	}
}
