package fsm

import (
	"fmt"
	"math/rand"
	"testing"
)

// gen produces random batches against the current state of an FSM: claims,
// disconnects with and without wills, subscribes, expiries (some stale),
// retained sets and deletes with expiry, node downs and duplicate retries.
type gen struct {
	rng  *rand.Rand
	a    *applier
	now  int64
	sent []*Batch
	seqs map[string]uint64
	boot map[string]uint64 // current boot per node; NodeDown restarts it
}

func newGen(a *applier, seed int64) *gen {
	return &gen{rng: rand.New(rand.NewSource(seed)), a: a, now: t0, seqs: map[string]uint64{}, boot: map[string]uint64{"n1": 1, "n2": 1, "n3": 1, "p": 1}}
}

func (g *gen) pick(xs ...string) string { return xs[g.rng.Intn(len(xs))] }

func (g *gen) client() string { return fmt.Sprintf("c%d", g.rng.Intn(40)) }

// epoch is the client's current epoch most of the time, sometimes a stale
// or unknown one.
func (g *gen) epoch(id string) uint64 {
	if s, ok := g.a.f.Session(id); ok && g.rng.Intn(8) != 0 {
		return s.Epoch
	}
	return uint64(g.rng.Intn(1 << 20))
}

func (g *gen) op() Command {
	id := g.client()
	switch g.rng.Intn(12) {
	case 0, 1:
		var w *Will
		if g.rng.Intn(2) == 0 {
			w = &Will{Topic: "will/" + id, Payload: []byte("w"), QoS: byte(g.rng.Intn(3)), Delay: uint32(g.rng.Intn(20)), Props: []byte{byte(g.rng.Intn(3))}}
			if w.Props[0] == 0 {
				w.Props = nil
			}
		}
		exp := []uint32{0, 5, 60, ExpiryNever}[g.rng.Intn(4)]
		node := g.pick("n1", "n2", "n3")
		return &SessionClaim{ClientID: id, Node: node, Boot: g.boot[node],
			CleanStart: g.rng.Intn(3) == 0, Expiry: exp, ProtocolVersion: byte(3 + g.rng.Intn(3)), Will: w, Now: g.now}
	case 2:
		return &SessionDisconnected{ClientID: id, Epoch: g.epoch(id), At: g.now, Expiry: uint32(g.rng.Intn(30)), KeepWill: g.rng.Intn(2) == 0}
	case 3:
		return &SessionExpired{ClientID: id, Epoch: g.epoch(id)}
	case 4:
		return &SessionRelease{ClientID: id, Epoch: g.epoch(id)}
	case 5, 6:
		return &Subscribe{ClientID: id, Epoch: g.epoch(id), Filter: g.pick("a/#", "a/+", "b", "+/x", "$SYS/#"),
			QoS: byte(g.rng.Intn(3)), NoLocal: g.rng.Intn(2) == 0, RetainHandling: byte(g.rng.Intn(3)), SubscriptionID: uint32(g.rng.Intn(3))}
	case 7:
		return &Unsubscribe{ClientID: id, Epoch: g.epoch(id), Filter: g.pick("a/#", "a/+", "b")}
	case 8, 9:
		var exp int64
		if g.rng.Intn(2) == 0 {
			exp = g.now + int64(g.rng.Intn(20_000)) - 2000
		}
		payload := []byte(g.pick("", "x", "hello"))
		return &RetainedSet{Topic: g.pick("a", "a/b", "a/c/d", "b", "$SYS/up", "x/y"), Payload: payload, QoS: byte(g.rng.Intn(3)), ExpiresAt: exp, Now: g.now}
	case 10:
		var by int64
		if g.rng.Intn(2) == 0 {
			by = g.now
		}
		return &RetainedDelete{Topic: g.pick("a", "a/b", "b"), ExpiredBy: by}
	default:
		if g.rng.Intn(6) == 0 {
			node := g.pick("n1", "n2", "n3")
			g.boot[node]++ // the node restarts with a new boot
			return &NodeDown{Node: node, Boot: g.boot[node] - 1, At: g.now}
		}
		return &WillDone{ClientID: id, Epoch: g.epoch(id)}
	}
}

// batch returns the next batch: usually new, sometimes a retry of an
// earlier one.
func (g *gen) batch() *Batch {
	g.now += int64(g.rng.Intn(3000))
	if len(g.sent) > 0 && g.rng.Intn(10) == 0 {
		return g.sent[len(g.sent)-1-g.rng.Intn(min(len(g.sent), 8))]
	}
	node := g.pick("n1", "n2", "n3", "p")
	boot := g.boot[node]
	if g.rng.Intn(20) == 0 {
		boot-- // a late batch from a previous boot
	}
	key := fmt.Sprintf("%s/%d", node, boot)
	g.seqs[key]++
	b := &Batch{Node: node, Boot: boot, Seq: g.seqs[key]}
	for n := 1 + g.rng.Intn(6); n > 0; n-- {
		b.Ops = append(b.Ops, g.op())
	}
	g.sent = append(g.sent, b)
	return b
}

// run applies n random batches.
func (g *gen) run(n int) {
	for i := 0; i < n; i++ {
		g.a.f.Apply(g.a.log(g.batch()))
	}
}

// TestSnapshotRestoreProperty: random op sequences; snapshot mid-way while
// more ops are applied; the restored FSM equals the state at snapshot time,
// and after applying the same later logs equals the original.
func TestSnapshotRestoreProperty(t *testing.T) {
	for seed := int64(1); seed <= 25; seed++ {
		a := newApplier(t)
		g := newGen(a, seed)
		g.run(100 + g.rng.Intn(300))
		at := dump(a.f)
		snap, _ := a.f.Snapshot()
		var later []*Batch
		for i := 0; i < 200; i++ {
			later = append(later, g.batch())
			a.f.Apply(a.log(later[i]))
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatal(err)
		}
		r := restoreFrom(t, sink.Bytes())
		if d := dump(r); !equalDump(at, d) {
			t.Fatalf("seed %d: restored state differs from the state at Snapshot:\n%s", seed, diffDump(at, d))
		}
		// Replaying the later logs (same indexes) on the restored FSM
		// reaches the original's state.
		ra := &applier{t: t, f: r, index: a.index - uint64(len(later))}
		for _, b := range later {
			r.Apply(ra.log(b))
		}
		requireEqualState(t, a.f, r)
		// And a second snapshot round trip is byte-identical.
		if p1, p2 := persist(t, a.f), persist(t, r); string(p1) != string(p2) {
			t.Fatalf("seed %d: snapshots of equal states differ", seed)
		}
	}
}

func equalDump(a, b dumpT) bool { return diffDump(a, b) == "" }
