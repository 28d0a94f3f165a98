package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// peerAddrs gives three raft addresses on distinct loopback IPs, so that a
// peer list can be written before the nodes start.
func peerAddrs(t *testing.T) []string {
	t.Helper()
	port := 20000 + os.Getpid()%20000
	var out []string
	for i := 0; i < 3; i++ {
		addr := fmt.Sprintf("127.0.%d.%d:%d", 10+os.Getpid()%200, 11+i, port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("loopback address %s not usable here: %v", addr, err)
		}
		ln.Close()
		out = append(out, addr)
	}
	return out
}

func claim(t *testing.T, s *Store, id string, clean bool) broker.ClaimResult {
	t.Helper()
	r, err := tryClaim(s, id, clean)
	if err != nil {
		t.Fatalf("claim %s: %v", id, err)
	}
	return r
}

// tryClaim claims id through s and waits up to 10 s for the answer; safe to
// call from any goroutine.
func tryClaim(s *Store, id string, clean bool) (broker.ClaimResult, error) {
	type out struct {
		r   broker.ClaimResult
		err error
	}
	ch := make(chan out, 1)
	s.Claim(broker.ClaimRequest{ClientID: id, CleanStart: clean, Expiry: 600, ProtocolVersion: 5}, func(r broker.ClaimResult, err error) {
		ch <- out{r, err}
	})
	select {
	case o := <-ch:
		return o.r, o.err
	case <-time.After(10 * time.Second):
		return broker.ClaimResult{}, errors.New("no answer")
	}
}

// TestNodesBootstrapExpect: three nodes given the same peer list form one
// cluster; a claim made on a follower is forwarded and applied everywhere;
// the leader is stopped and a new one takes claims; the stopped node,
// restarted from its data dir, catches up.
func TestNodesBootstrapExpect(t *testing.T) {
	addrs := peerAddrs(t)
	list := fmt.Sprintf("a@%s,b@%s,c@%s", addrs[0], addrs[1], addrs[2])
	peers, err := ParsePeers(list)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ids := []string{"a", "b", "c"}
	start := func(i int) *Node {
		n, err := StartNode(NodeConfig{ID: ids[i], DataDir: dirs[i], RaftBind: addrs[i], Peers: peers,
			BootstrapExpect: 3, Fast: true, Logger: quiet})
		if err != nil {
			t.Fatalf("start %s: %v", ids[i], err)
		}
		return n
	}
	nodes := []*Node{start(0), start(1), start(2)}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for _, n := range nodes {
		if err := n.WaitReady(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var leader, follower *Node
	waitUntil(t, 5*time.Second, "a leader among the three", func() bool {
		leader, follower = nil, nil
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
			} else {
				follower = n
			}
		}
		return leader != nil && follower != nil
	})
	if st := leader.Status(); len(st.Servers) != 3 || st.State != "Leader" {
		t.Fatalf("leader status %+v", st)
	}
	r := claim(t, follower.Store(), "dev-1", false) // forwarded to the leader
	if r.Epoch == 0 || r.Present {
		t.Fatalf("first claim: %+v", r)
	}
	for _, n := range nodes {
		waitUntil(t, 5*time.Second, "every replica to hold dev-1", func() bool {
			_, ok := n.fsm.Session("dev-1")
			return ok
		})
	}

	// Stop the leader; the other two elect a new one that takes claims.
	down := -1
	for i, n := range nodes {
		if n == leader {
			down = i
		}
	}
	leader.Close()
	var survivor *Node
	waitUntil(t, 5*time.Second, "a new leader", func() bool {
		for i, n := range nodes {
			if i != down && n.raft.State() == raft.Leader {
				survivor = n
				return true
			}
		}
		return false
	})
	r2 := claim(t, survivor.Store(), "dev-2", false)
	if r2.Epoch <= r.Epoch {
		t.Fatalf("epoch %d after %d", r2.Epoch, r.Epoch)
	}

	// The stopped node comes back from its data dir and catches up.
	nodes[down] = start(down)
	waitUntil(t, 10*time.Second, "the restarted node to catch up", func() bool {
		_, ok := nodes[down].fsm.Session("dev-2")
		return ok
	})
}

// TestNodeJoinAndRemove: a node started without bootstrap joins through the
// leader as a voter, gets the state, and is removed again; a follower asked
// to change membership names the leader.
func TestNodeJoinAndRemove(t *testing.T) {
	a, err := StartNode(NodeConfig{ID: "a", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	claim(t, a.Store(), "before-join", false)
	b, err := StartNode(NodeConfig{ID: "b", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", NoBootstrap: true, Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Join("x", "127.0.0.1:1", true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("join on a non-member: %v", err)
	}
	if err := a.Join("b", string(b.raft.Addr()), true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the joined node to get the state", func() bool {
		_, ok := b.fsm.Session("before-join")
		return ok
	})
	if err := b.Join("x", "127.0.0.1:1", false); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("join on a follower: %v", err)
	}
	if err := a.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Status().Servers); n != 1 {
		t.Fatalf("%d servers after remove, want 1", n)
	}
	if err := a.Join("", "", true); err == nil {
		t.Fatal("join with no id accepted")
	}
}

// TestProposerConcurrentClaims: many concurrent claims through one store all
// commit, with distinct increasing epochs per client.
func TestProposerConcurrentClaims(t *testing.T) {
	n, err := StartNode(NodeConfig{ID: "a", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	epochs := make([]uint64, 500)
	errs := make([]error, len(epochs))
	for i := range epochs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryClaim(n.Store(), fmt.Sprintf("c%d", i), true)
			epochs[i], errs[i] = r.Epoch, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	seen := map[uint64]bool{}
	for i, e := range epochs {
		if e == 0 || seen[e] {
			t.Fatalf("claim %d: epoch %d zero or repeated", i, e)
		}
		seen[e] = true
	}
	if got := n.fsm.Stats().Sessions; got != len(epochs) {
		t.Fatalf("%d sessions, want %d", got, len(epochs))
	}
}

// TestProposerNoLeaderFails: with no leader, a proposal is retried for the
// hold time and then fails with ErrUnavailable (the broker answers CONNACK
// 0x88 / 3.1.1 0x03 or SUBACK 0x80).
func TestProposerNoLeaderFails(t *testing.T) {
	r, err := OpenRaft(RaftConfig{NodeID: "lonely", Dir: t.TempDir(), Bind: "127.0.0.1:0", Fast: true}, &sumFSM{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := NewProposer(r, ProposerConfig{Node: "lonely", Boot: 1, Hold: 300 * time.Millisecond, Logger: quiet})
	defer p.Close()
	s := NewStore(nil, p, "lonely", 1, quiet)
	start := time.Now()
	_, err = tryClaim(s, "c", true)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim without a leader: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("failed after %v, before the hold time", d)
	}
}
