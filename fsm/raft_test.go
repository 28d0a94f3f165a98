package fsm

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// raftNode is one real hashicorp/raft instance with this FSM, on in-memory
// stores and transport.
type raftNode struct {
	id    raft.ServerID
	fsm   *FSM
	raft  *raft.Raft
	trans *raft.InmemTransport
	dead  bool
}

func newRaftNode(t *testing.T, i int) *raftNode {
	t.Helper()
	id := raft.ServerID("node" + strconv.Itoa(i))
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.TrailingLogs = 4 // so that a joining node needs the snapshot
	cfg.SnapshotThreshold = 1 << 30
	cfg.SnapshotInterval = time.Hour
	cfg.LogOutput = io.Discard
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	store := raft.NewInmemStore()
	n := &raftNode{id: id, fsm: New(), trans: trans}
	r, err := raft.NewRaft(cfg, n.fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	return n
}

func (n *raftNode) stop(t *testing.T) {
	if n.dead {
		return
	}
	n.dead = true
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Error(err)
	}
	n.trans.DisconnectAll()
	_ = n.trans.Close()
}

func connect(nodes []*raftNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
}

func leaderOf(nodes []*raftNode) (*raftNode, error) {
	for _, n := range nodes {
		if !n.dead && n.raft.State() == raft.Leader {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no leader")
}

// applyOn applies b on the current leader, retrying through elections until
// the deadline, and returns the results.
func applyOn(t *testing.T, nodes []*raftNode, b *Batch, d time.Duration) []Result {
	t.Helper()
	var res []Result
	err := waitFor(d, func() error {
		l, err := leaderOf(nodes)
		if err != nil {
			return err
		}
		f := l.raft.Apply(EncodeBatch(b), time.Second)
		if err := f.Error(); err != nil {
			return err // ErrNotLeader, ErrLeadershipLost: retry the same batch
		}
		if resp, ok := f.Response().(*Response); ok {
			res = resp.Take()
		} else {
			return fmt.Errorf("response %v", f.Response())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// converged waits until every live node has applied the same index and
// holds the same state.
func converged(t *testing.T, nodes []*raftNode) {
	t.Helper()
	err := waitFor(5*time.Second, func() error {
		var ref *raftNode
		for _, n := range nodes {
			if n.dead {
				continue
			}
			if ref == nil {
				ref = n
				continue
			}
			if a, b := ref.raft.AppliedIndex(), n.raft.AppliedIndex(); a != b {
				return fmt.Errorf("%s applied %d, %s applied %d", ref.id, a, n.id, b)
			}
			if da, db := dump(ref.fsm), dump(n.fsm); !equalDump(da, db) {
				return fmt.Errorf("%s and %s differ:\n%s", ref.id, n.id, diffDump(da, db))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRaftCluster(t *testing.T) {
	var nodes []*raftNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, newRaftNode(t, i))
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	connect(nodes)
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: n.trans.LocalAddr()})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	a := newApplier(t) // only for its generator's view of epochs
	g := newGen(a, 42)
	for i := 0; i < 30; i++ {
		b := g.batch()
		res := applyOn(t, nodes, b, 5*time.Second)
		a.f.Apply(a.log(b)) // keep the generator's FSM roughly in step
		if len(res) != len(b.Ops) {
			t.Fatalf("%d results for %d ops", len(res), len(b.Ops))
		}
	}
	claim := &Batch{Node: "edge", Boot: 1, Seq: 1, Ops: []Command{
		&SessionClaim{ClientID: "raft-client", Node: "edge", Boot: 1, Expiry: 600, ProtocolVersion: 5, Now: t0},
	}}
	first := applyOn(t, nodes, claim, 5*time.Second)
	converged(t, nodes)

	// Kill the leader; a new one must commit within 5 s.
	old, err := leaderOf(nodes)
	if err != nil {
		t.Fatal(err)
	}
	old.stop(t)
	for _, n := range nodes {
		n.trans.Disconnect(old.trans.LocalAddr())
	}
	start := time.Now()
	// The proposer retries its last batch after ErrLeadershipLost: the new
	// leader answers with the recorded results and applies nothing twice.
	if again := applyOn(t, nodes, claim, 5*time.Second); !reflect.DeepEqual(again, first) {
		t.Fatalf("retried claim: %+v, want %+v", again, first)
	}
	after := applyOn(t, nodes, &Batch{Node: "edge", Boot: 1, Seq: 2, Ops: []Command{
		&Subscribe{ClientID: "raft-client", Epoch: first[0].Epoch, Filter: "x/#", QoS: 1},
	}}, 5*time.Second)
	if after[0].Code != CodeOK {
		t.Fatalf("subscribe on the new leader: %v", after[0].Code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("new leader took %v", d)
	}
	converged(t, nodes)

	// Snapshot the new leader, apply past the trailing logs, and join a
	// fresh node: it must be restored from the snapshot and equal the others.
	leader, err := leaderOf(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		applyOn(t, nodes, g.batch(), 5*time.Second)
	}
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	fresh := newRaftNode(t, 4)
	nodes = append(nodes, fresh)
	connect(nodes)
	if err := leader.raft.AddVoter(fresh.id, fresh.trans.LocalAddr(), 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	applyOn(t, nodes, g.batch(), 5*time.Second)
	converged(t, nodes)
	if s := fresh.raft.Stats()["last_snapshot_index"]; s == "0" {
		t.Fatal("the new node was not restored from a snapshot")
	}
	if s, ok := fresh.fsm.Session("raft-client"); !ok || len(s.Subscriptions) != 1 {
		t.Fatalf("restored node: session %+v %v", s, ok)
	}

	// A user snapshot opened and restored into a standalone FSM equals the
	// leader once the cluster is quiet.
	sf := leader.raft.Snapshot()
	if err := sf.Error(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := sf.Open()
	if err != nil {
		t.Fatal(err)
	}
	standalone := New()
	if err := standalone.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if meta.Index != leader.raft.AppliedIndex() {
		t.Fatalf("snapshot index %d, applied %d", meta.Index, leader.raft.AppliedIndex())
	}
	requireEqualState(t, leader.fsm, standalone)
}
