package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/flockmq/flockmq/routing"
)

type gossipNode struct {
	g      *Gossip
	routes *routing.LocalRoutes
	remote *routing.RemoteRoutes
}

func startGossipNode(t *testing.T, id string, boot uint64, grace time.Duration) *gossipNode {
	t.Helper()
	n := &gossipNode{routes: routing.NewLocalRoutes(id, boot, 0), remote: routing.NewRemoteRoutes()}
	g, err := StartGossip(GossipConfig{
		NodeID:    id,
		BindAddr:  "127.0.0.1",
		Meta:      NodeMeta{RaftAddr: id + ":raft", PeerAddr: id + ":peer", Version: "test"},
		Routes:    n.routes,
		Remote:    n.remote,
		DeadGrace: grace,
		Fast:      true,
		// Restarted nodes come back on another port (port 0).
		DeadNodeReclaimTime: time.Millisecond,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("StartGossip(%s): %v", id, err)
	}
	n.g = g
	t.Cleanup(func() { g.Shutdown() })
	return n
}

// startGossipCluster starts n nodes g0..g{n-1} and joins them to g0.
func startGossipCluster(t *testing.T, n int, grace time.Duration) []*gossipNode {
	t.Helper()
	nodes := make([]*gossipNode, n)
	for i := range nodes {
		nodes[i] = startGossipNode(t, fmt.Sprintf("g%d", i), 1, grace)
	}
	for _, x := range nodes[1:] {
		if _, err := x.g.Join([]string{nodes[0].g.Addr()}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	for _, x := range nodes {
		waitUntil(t, 5*time.Second, "all members alive", func() bool { return aliveCount(x.g) == n })
	}
	return nodes
}

func aliveCount(g *Gossip) int {
	c := 0
	for _, m := range g.Members() {
		if m.State == MemberAlive {
			c++
		}
	}
	return c
}

func memberState(g *Gossip, name string) MemberState {
	for _, m := range g.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return -1
}

func routedBy(r *routing.RemoteRoutes, topic, node string) bool {
	return slices.Contains(r.Nodes([]byte(topic), nil), node)
}

func TestGossipMembers(t *testing.T) {
	start := time.Now()
	nodes := startGossipCluster(t, 3, 0)
	t.Logf("3 nodes alive everywhere after %v", time.Since(start))
	for _, x := range nodes {
		ms := x.g.Members()
		if len(ms) != 3 {
			t.Fatalf("%s sees %d members", x.g.id, len(ms))
		}
		for i, m := range ms {
			want := NodeMeta{RaftAddr: m.Name + ":raft", PeerAddr: m.Name + ":peer", Boot: 1, Version: "test"}
			if m.Name != fmt.Sprintf("g%d", i) || m.Meta != want || m.MetaErr != nil || m.State != MemberAlive {
				t.Fatalf("%s: member %d = %+v", x.g.id, i, m)
			}
			if _, _, err := net.SplitHostPort(m.Addr); err != nil {
				t.Fatalf("member addr %q: %v", m.Addr, err)
			}
		}
	}
}

func TestGossipRoutes(t *testing.T) {
	nodes := startGossipCluster(t, 3, 0)
	a := nodes[0]

	start := time.Now()
	a.routes.Add("a/+")
	for _, x := range nodes[1:] {
		waitUntil(t, time.Second, "route a/+ on "+x.g.id, func() bool { return routedBy(x.remote, "a/x", "g0") })
	}
	t.Logf("added route visible on both peers after %v", time.Since(start))

	start = time.Now()
	a.routes.Remove("a/+")
	for _, x := range nodes[1:] {
		waitUntil(t, time.Second, "route a/+ gone on "+x.g.id, func() bool { return !routedBy(x.remote, "a/x", "g0") })
	}
	t.Logf("removed route gone on both peers after %v", time.Since(start))

	// A change too big for one packet goes by SendReliable.
	start = time.Now()
	b := nodes[1]
	for i := range 200 {
		b.routes.Add(fmt.Sprintf("big/%03d/some/longer/level/#", i))
	}
	want := b.routes.Version()
	for _, x := range []*gossipNode{nodes[0], nodes[2]} {
		waitUntil(t, 2*time.Second, "big table on "+x.g.id, func() bool {
			s, ok := x.remote.Table("g1")
			return ok && s.Version == want && len(s.Filters) == 200
		})
	}
	t.Logf("200-filter change visible on both peers after %v", time.Since(start))
	if !routedBy(nodes[2].remote, "big/042/some/longer/level", "g1") {
		t.Fatal("big/042 not routed to g1")
	}
}

// TestGossipJoinWithRoutes: a node with routes before it joins gets them to
// the cluster (join push/pull, snapshots to new members), and learns theirs.
func TestGossipJoinWithRoutes(t *testing.T) {
	nodes := startGossipCluster(t, 2, 0)
	nodes[0].routes.Add("x/#")
	waitUntil(t, time.Second, "x/# on g1", func() bool { return routedBy(nodes[1].remote, "x/1", "g0") })

	c := startGossipNode(t, "g2", 7, 0)
	c.routes.Add("c/1")
	c.routes.Add("c/2")
	start := time.Now()
	if _, err := c.g.Join([]string{nodes[1].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes {
		waitUntil(t, 2*time.Second, "c/2 on "+x.g.id, func() bool { return routedBy(x.remote, "c/2", "g2") })
	}
	waitUntil(t, 2*time.Second, "x/# on g2", func() bool { return routedBy(c.remote, "x/1", "g0") })
	t.Logf("joiner's routes and the cluster's exchanged after %v", time.Since(start))
}

func TestGossipGracefulLeave(t *testing.T) {
	nodes := startGossipCluster(t, 3, time.Minute) // a failure would keep the routes
	b := nodes[1]
	b.routes.Add("b/#")
	for _, x := range []*gossipNode{nodes[0], nodes[2]} {
		waitUntil(t, time.Second, "b/# on "+x.g.id, func() bool { return routedBy(x.remote, "b", "g1") })
	}
	start := time.Now()
	if err := b.g.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	left := time.Since(start)
	for _, x := range []*gossipNode{nodes[0], nodes[2]} {
		waitUntil(t, time.Second, "b/# dropped on "+x.g.id, func() bool {
			_, held := x.remote.Table("g1")
			return !held && memberState(x.g, "g1") == MemberLeft
		})
	}
	t.Logf("Leave took %v; routes dropped everywhere %v after it started", left, time.Since(start))
	if err := b.g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Late messages of the left node's boot do not bring its routes back.
	late := routing.AppendRouteDeltas(nil, "g1", 1, 1, []routing.RouteDelta{{Filter: "late", Add: true, Version: 2}})
	nodes[0].g.handleMsg(late)
	snap := routing.RouteSnapshot{Node: "g1", Boot: 1, Version: 9, Filters: []string{"late"}}
	nodes[0].g.handleMsg(routing.AppendRouteSnapshot(nil, &snap))
	if _, held := nodes[0].remote.Table("g1"); held {
		t.Fatal("a left node's late message brought its table back")
	}
}

func TestGossipCrashGrace(t *testing.T) {
	const grace = time.Second
	nodes := startGossipCluster(t, 3, grace)
	c := nodes[2]
	c.routes.Add("c/+/d")
	for _, x := range nodes[:2] {
		waitUntil(t, time.Second, "c/+/d on "+x.g.id, func() bool { return routedBy(x.remote, "c/1/d", "g2") })
	}
	start := time.Now()
	if err := c.g.Shutdown(); err != nil { // no leave: a crash
		t.Fatal(err)
	}
	a := nodes[0]
	waitUntil(t, 5*time.Second, "g2 dead on g0", func() bool { return memberState(a.g, "g2") == MemberDead })
	dead := time.Now()
	if !routedBy(a.remote, "c/1/d", "g2") {
		t.Fatal("routes dropped as soon as the node was found dead")
	}
	waitUntil(t, 3*grace, "g2's routes dropped on g0", func() bool { _, held := a.remote.Table("g2"); return !held })
	kept := time.Since(dead)
	t.Logf("crash detected after %v; routes kept %v after that (grace %v)", dead.Sub(start), kept, grace)
	if kept < grace*8/10 {
		t.Fatalf("routes kept %v, want about the grace %v", kept, grace)
	}
	waitUntil(t, 3*grace, "g2's routes dropped on g1", func() bool { _, held := nodes[1].remote.Table("g2"); return !held })
}

// TestGossipRestartNewBoot: a crashed node that comes back (new port, new
// boot) replaces its old routes before the grace expires.
func TestGossipRestartNewBoot(t *testing.T) {
	nodes := startGossipCluster(t, 2, time.Minute)
	b := nodes[1]
	b.routes.Add("old/#")
	waitUntil(t, time.Second, "old/# on g0", func() bool { return routedBy(nodes[0].remote, "old", "g1") })
	b.g.Shutdown()
	waitUntil(t, 5*time.Second, "g1 dead on g0", func() bool { return memberState(nodes[0].g, "g1") == MemberDead })

	b2 := startGossipNode(t, "g1", 2, time.Minute)
	b2.routes.Add("new/#")
	start := time.Now()
	if _, err := b2.g.JoinRetry(t.Context(), []string{nodes[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "g1's new table on g0", func() bool {
		s, ok := nodes[0].remote.Table("g1")
		return ok && s.Boot == 2 && slices.Equal(s.Filters, []string{"new/#"})
	})
	waitUntil(t, time.Second, "g1 alive again on g0", func() bool { return memberState(nodes[0].g, "g1") == MemberAlive })
	t.Logf("restarted node's table replaced the old one after %v", time.Since(start))
}

func TestGossipNodeMetaWire(t *testing.T) {
	m := NodeMeta{RaftAddr: "10.0.0.1:7000", PeerAddr: "10.0.0.1:7001", Boot: 1<<40 + 3, Version: "v0.1.0", InRaft: true, Clients: 12345}
	b, err := EncodeNodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := EncodeNodeMeta(NodeMeta{RaftAddr: string(make([]byte, 256))}); !errors.Is(err, ErrGossipWire) {
		t.Fatalf("long string: %v", err)
	}
	long := string(make([]byte, 255))
	if _, err := EncodeNodeMeta(NodeMeta{RaftAddr: long, PeerAddr: long, Version: long}); !errors.Is(err, ErrGossipWire) {
		t.Fatalf("meta over MetaMaxSize: %v", err)
	}
	for i := range len(b) {
		if _, err := DecodeNodeMeta(b[:i]); !errors.Is(err, ErrGossipWire) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := DecodeNodeMeta(append(b, 0)); !errors.Is(err, ErrGossipWire) {
		t.Fatalf("trailing byte: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		x := bytes.Clone(b)
		for range 1 + rng.IntN(3) {
			x[rng.IntN(len(x))] = byte(rng.Uint32())
		}
		DecodeNodeMeta(x) // must not panic
		r := make([]byte, rng.IntN(40))
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		DecodeNodeMeta(r)
		decodePull(r)
		decodeLeave(r)
	}
	if n, err := decodePull(appendPull(nil, "n1")); n != "n1" || err != nil {
		t.Fatalf("pull: %q %v", n, err)
	}
	if n, boot, err := decodeLeave(appendLeave(nil, "n1", 9)); n != "n1" || boot != 9 || err != nil {
		t.Fatalf("leave: %q %d %v", n, boot, err)
	}
}

// TestGossipBadPeerData: bad meta in membership events and garbage user
// messages neither panic nor change the routes.
func TestGossipBadPeerData(t *testing.T) {
	x := startGossipNode(t, "g0", 1, 0)
	bad := &memberlist.Node{Name: "evil", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: []byte{0x01, 0xff, 0xff, 0xff}}
	ev := gossipEvents{x.g}
	ev.NotifyJoin(bad)
	ev.NotifyUpdate(bad)
	var found bool
	for _, m := range x.g.Members() {
		if m.Name == "evil" {
			found = true
			if !errors.Is(m.MetaErr, ErrGossipWire) {
				t.Fatalf("evil meta error: %v", m.MetaErr)
			}
		}
	}
	if !found {
		t.Fatal("member with bad meta not listed")
	}
	ev.NotifyLeave(bad)

	d := gossipDelegate{x.g}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		r := make([]byte, rng.IntN(60))
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		if len(r) > 0 && rng.IntN(2) == 0 {
			r[0] = []byte{0x01, 0x02, gossipPullTag, gossipLeaveTag}[rng.IntN(4)]
		}
		d.NotifyMsg(r)
		d.MergeRemoteState(r, false)
	}
	d.NotifyMsg(nil)
	d.MergeRemoteState(nil, true)
	if x.remote.Len() != 0 {
		t.Fatalf("garbage created %d remote tables", x.remote.Len())
	}
}

// TestGossipGapPull: a peer that lost a node's table (here: dropped by
// hand) sees the next delta batch as a gap, pulls, and gets it back.
func TestGossipGapPull(t *testing.T) {
	nodes := startGossipCluster(t, 2, 0)
	a, b := nodes[0], nodes[1]
	a.routes.Add("p/1")
	waitUntil(t, time.Second, "p/1 on g1", func() bool { return routedBy(b.remote, "p/1", "g0") })
	b.remote.Drop("g0")
	start := time.Now()
	a.routes.Add("p/2") // a batch from version 1: a gap for g1
	waitUntil(t, 2*time.Second, "g0's table back on g1", func() bool {
		s, ok := b.remote.Table("g0")
		return ok && slices.Equal(s.Filters, []string{"p/1", "p/2"})
	})
	t.Logf("table recovered after a gap in %v", time.Since(start))
}

// TestGossipConverges: concurrent route churn on every node converges to
// every node's final table everywhere.
func TestGossipConverges(t *testing.T) {
	nodes := startGossipCluster(t, 3, 0)
	var wg sync.WaitGroup
	for i, x := range nodes {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				for range 300 {
					f := fmt.Sprintf("t/%d/+", rng.IntN(40))
					if rng.IntN(2) == 0 {
						x.routes.Add(f)
					} else {
						x.routes.Remove(f)
					}
				}
			}()
		}
	}
	wg.Wait()
	start := time.Now()
	for _, x := range nodes {
		want := x.routes.Snapshot()
		for _, y := range nodes {
			if y == x {
				continue
			}
			waitUntil(t, 5*time.Second, x.g.id+"'s table on "+y.g.id, func() bool {
				s, ok := y.remote.Table(x.g.id)
				if want.Version == 0 {
					return !ok || s.Version == 0
				}
				return ok && s.Version == want.Version && slices.Equal(s.Filters, want.Filters)
			})
		}
	}
	t.Logf("converged %v after the churn stopped", time.Since(start))
}
