package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/fsm"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// heldPort is a raft port bound (to port 0) for a whole test, so that a
// peer list can be written before the nodes start and a node stopped and
// started again finds its address free: each start gets a view of the
// listener, and closing a view leaves the socket bound. Connections that
// arrive while no view is open are closed, as a stopped node's would be
// refused.
type heldPort struct {
	ln   net.Listener
	done chan struct{}

	mu  sync.Mutex
	cur *portView
}

func holdPort(t *testing.T) *heldPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &heldPort{ln: ln, done: make(chan struct{})}
	go h.serve()
	t.Cleanup(func() {
		ln.Close()
		<-h.done
	})
	return h
}

func (h *heldPort) addr() string { return h.ln.Addr().String() }

func (h *heldPort) serve() {
	defer close(h.done)
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		v := h.cur
		h.mu.Unlock()
		if v == nil {
			c.Close()
			continue
		}
		select {
		case v.conns <- c:
		case <-v.closed:
			c.Close()
		}
	}
}

// listener opens a new view; the previous one must be closed.
func (h *heldPort) listener() net.Listener {
	v := &portView{h: h, conns: make(chan net.Conn), closed: make(chan struct{})}
	h.mu.Lock()
	h.cur = v
	h.mu.Unlock()
	return v
}

// portView is one node's listener on a heldPort.
type portView struct {
	h      *heldPort
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (v *portView) Accept() (net.Conn, error) {
	select {
	case c := <-v.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	}
}

func (v *portView) Close() error {
	v.once.Do(func() {
		close(v.closed)
		v.h.mu.Lock()
		if v.h.cur == v {
			v.h.cur = nil
		}
		v.h.mu.Unlock()
	})
	return nil
}

func (v *portView) Addr() net.Addr { return v.h.ln.Addr() }

// startLeader starts a bootstrapped single node with id, closed at cleanup,
// and waits until it leads.
func startLeader(t *testing.T, id string) *Node {
	t.Helper()
	n, err := StartNode(NodeConfig{ID: id, DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return n
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
	ports := []*heldPort{holdPort(t), holdPort(t), holdPort(t)}
	list := fmt.Sprintf("a@%s,b@%s,c@%s", ports[0].addr(), ports[1].addr(), ports[2].addr())
	peers, err := ParsePeers(list)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ids := []string{"a", "b", "c"}
	start := func(i int) *Node {
		n, err := StartNode(NodeConfig{ID: ids[i], DataDir: dirs[i], RaftListener: ports[i].listener(), Peers: peers,
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
	a := startLeader(t, "a")
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
	n := startLeader(t, "a")
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
	r, err := OpenRaft(RaftConfig{NodeID: "lonely", Dir: t.TempDir(), Bind: "127.0.0.1:0", Fast: true, Logger: quiet}, &sumFSM{})
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

// TestProposerHoldsEachOpOnce: without a leader, an op queued behind a
// batch that is being held fails Hold after it was proposed, not Hold after
// the batch in front of it gave up (a CONNECT's claim then waited twice the
// hold and more, past its client's patience).
func TestProposerHoldsEachOpOnce(t *testing.T) {
	r, err := OpenRaft(RaftConfig{NodeID: "lonely", Dir: t.TempDir(), Bind: "127.0.0.1:0", Fast: true, Logger: quiet}, &sumFSM{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const hold = 2 * time.Second
	p := NewProposer(r, ProposerConfig{Node: "lonely", Boot: 1, Hold: hold, Logger: quiet})
	defer p.Close()
	s := NewStore(nil, p, "lonely", 1, quiet)
	first := make(chan error, 1)
	s.Claim(broker.ClaimRequest{ClientID: "a", Expiry: 600, ProtocolVersion: 5}, func(_ broker.ClaimResult, err error) { first <- err })
	// The second op comes while the first one's batch is held.
	time.Sleep(hold / 4)
	start := time.Now()
	_, err = tryClaim(s, "b", true)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim without a leader: %v, want ErrUnavailable", err)
	}
	if took < hold {
		t.Fatalf("failed after %v, before the hold time", took)
	}
	// Behind the first batch it would fail about 2*hold - hold/4 after it
	// was proposed.
	if took > hold+hold/2 {
		t.Fatalf("failed %v after it was proposed, want about the hold time %v", took, hold)
	}
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first claim: %v, want ErrUnavailable", err)
	}
}

// TestProposerBacklogBound: past MaxPending queued ops, Propose fails at once
// with ErrBacklog (counted and logged once); the queued ops are unaffected.
func TestProposerBacklogBound(t *testing.T) {
	r, err := OpenRaft(RaftConfig{NodeID: "lonely", Dir: t.TempDir(), Bind: "127.0.0.1:0", Fast: true, Logger: quiet}, &sumFSM{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log, buf := captureLog(slog.LevelInfo)
	// No leader: the first op's batch is retried for the hold time and the
	// rest wait behind it.
	p := NewProposer(r, ProposerConfig{Node: "lonely", Boot: 1, MaxOps: 1, MaxPending: 3, Hold: time.Minute, Logger: log})
	results := make(chan error, 10)
	propose := func() {
		p.Propose(&fsm.WillDone{ClientID: "c", Epoch: 1}, func(_ fsm.Result, err error) { results <- err })
	}
	propose()
	waitUntil(t, 5*time.Second, "the first op to be taken into a batch", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.pending) == 0
	})
	for i := 0; i < 3; i++ {
		propose()
	}
	select {
	case err := <-results:
		t.Fatalf("an op under the bound finished early: %v", err)
	default:
	}
	propose()
	propose()
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, ErrBacklog) {
				t.Fatalf("op over the bound: %v, want ErrBacklog", err)
			}
		default:
			t.Fatal("an op over the bound did not fail at once")
		}
	}
	if n := p.Rejected(); n != 2 {
		t.Fatalf("Rejected() = %d, want 2", n)
	}
	if !buf.hasLine("level=WARN", "proposal backlog full") || strings.Count(buf.String(), "proposal backlog full") != 1 {
		t.Fatalf("want one backlog warning:\n%s", buf)
	}
	p.Close()
	for i := 0; i < 4; i++ {
		if err := <-results; !errors.Is(err, ErrUnavailable) {
			t.Fatalf("queued op at close: %v, want ErrUnavailable", err)
		}
	}
}

// TestHousekeepingLogsFailures: a sweep op that fails is logged at warn,
// naming the op and its subject.
func TestHousekeepingLogsFailures(t *testing.T) {
	n := startLeader(t, "a")
	now := nowMS()
	done := make(chan fsm.Result, 1)
	n.prop.Propose(&fsm.RetainedSet{Topic: "t/old", Payload: []byte("x"), ExpiresAt: now + 50, Now: now},
		func(r fsm.Result, err error) {
			if err != nil {
				t.Error(err)
			}
			done <- r
		})
	if r := <-done; r.Code != fsm.CodeOK {
		t.Fatalf("retained set: %v", r.Code)
	}
	waitUntil(t, 5*time.Second, "the retained message to expire", func() bool {
		return len(n.fsm.ExpiredRetained(nowMS())) == 1
	})
	log, buf := captureLog(slog.LevelInfo)
	n.log = log
	n.prop.Close() // every op now fails with ErrUnavailable
	n.housekeep(nil)
	if !buf.hasLine("level=WARN", "retained message expiry failed", "topic=t/old", "err=") {
		t.Fatalf("no warning for the failed sweep op:\n%s", buf)
	}
}

// TestStartNodeClosesListenerOnError: a listener handed to StartNode is
// closed when the node cannot start.
func TestStartNodeClosesListenerOnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = StartNode(NodeConfig{ID: "a", DataDir: t.TempDir(), RaftListener: ln, BootstrapExpect: 3, Logger: quiet})
	if err == nil {
		t.Fatal("started with bootstrap-expect 3 and no peers")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on the handed listener: %v, want net.ErrClosed", err)
	}
}
