package cluster

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
)

// keyNode is a whole cluster node in-process: raft, gossip, peer link and a
// broker without listeners.
type keyNode struct {
	node *Node
	cl   *Cluster
	b    *broker.Broker
	log  *logBuffer
}

// startKeyNode starts node id with key, joining seeds; it bootstraps raft
// through gossip with two others (bootstrap-expect 3).
func startKeyNode(t *testing.T, id string, key []byte, seeds ...string) *keyNode {
	t.Helper()
	log, buf := captureLog(slog.LevelInfo)
	n, err := StartNode(NodeConfig{ID: id, DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", NoBootstrap: true, Fast: true,
		Logger: log, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewCluster(ClusterConfig{Node: n, BindAddr: "127.0.0.1", Join: seeds, BootstrapExpect: 3, Fast: true, Logger: log})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	b, err := broker.New(cfg, broker.WithRemote(cl), broker.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(b); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		_ = b.Shutdown(time.Second)
		n.Close()
	})
	return &keyNode{node: n, cl: cl, b: b, log: buf}
}

func memberNames(g *Gossip) []string {
	var names []string
	for _, m := range g.Members() {
		names = append(names, m.Name)
	}
	return names
}

func raftServers(r *Raft) []string {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	slices.Sort(ids)
	return ids
}

// forwardOver sends a message from src to dst over their peer link and
// waits until dst's broker has it.
func forwardOver(t *testing.T, src, dst *keyNode) {
	t.Helper()
	before := dst.b.Stats().ForwardedIn.Load()
	m := &broker.Message{Topic: []byte("key/test"), Payload: []byte("over the link"), QoS: 1, Publisher: "p"}
	src.cl.Forward(src.cl.number(dst.node.ID()), m, nil)
	waitUntil(t, 10*time.Second, "the forwarded message at "+dst.node.ID(), func() bool {
		return dst.b.Stats().ForwardedIn.Load() > before
	})
}

// strangerWrongAnswer connects to addr, speaks the handshake without the key
// (a made-up answer) and checks that the node closes the connection.
func strangerWrongAnswer(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello := append([]byte(keyMagic), make([]byte, keyNonceLen)...)
	_, _ = rand.Read(hello[len(keyMagic):])
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, keyReplyLen)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("no answer to the challenge: %v", err)
	}
	answer := make([]byte, keyMACLen)
	_, _ = rand.Read(answer)
	_, _ = c.Write(answer)
	_, _ = c.Write([]byte{streamRaft, 1, 2, 3}) // what a stranger would send next
	checkClosedByPeer(t, c)
}

// strangerGarbage connects to addr, writes garbage and checks that the node
// closes the connection.
func strangerGarbage(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := make([]byte, 100)
	_, _ = rand.Read(junk)
	junk[0] = 0x01 // a peer link hello's type: no key handshake
	_, _ = c.Write(junk)
	checkClosedByPeer(t, c)
}

// TestClusterKey: three nodes with the same key form a cluster (gossip,
// raft through gossip bootstrap, peer links) and forward a message; a node
// with another key and one without a key never become members and never
// get into raft; strangers on the peer link and raft ports are refused,
// logged and counted while the link and raft keep working.
func TestClusterKey(t *testing.T) {
	a := startKeyNode(t, "ka", testKey)
	seed := a.cl.Gossip().Addr()
	b := startKeyNode(t, "kb", testKey, seed)
	c := startKeyNode(t, "kc", testKey, seed)
	nodes := []*keyNode{a, b, c}
	want := []string{"ka", "kb", "kc"}
	for _, n := range nodes {
		waitUntil(t, 15*time.Second, n.node.ID()+" sees the three members and raft servers", func() bool {
			return slices.Equal(memberNames(n.cl.Gossip()), want) && slices.Equal(raftServers(n.node.Raft()), want) &&
				aliveCount(n.cl.Gossip()) == 3
		})
	}
	if _, err := a.node.Raft().WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	forwardOver(t, a, b)
	forwardOver(t, c, a)

	// A node with another key, and one without a key, try to join.
	other := startKeyNode(t, "kx", testOtherKey, seed)
	none := startKeyNode(t, "kz", nil, seed)
	waitUntil(t, 15*time.Second, "both joins refused at least twice, logged on both sides", func() bool {
		return a.cl.Stats().GossipKeyRefused >= 4 &&
			other.log.hasLine("level=WARN", "gossip: the seeds refused this node's cluster key") &&
			none.log.hasLine("level=WARN", "gossip: the seeds refused this node's cluster key") &&
			a.log.hasLine("level=WARN", "gossip: message from 127.0.0.1:", "refused: bad cluster key", "no installed keys could decrypt") &&
			a.log.hasLine("level=WARN", "gossip: message from 127.0.0.1:", "refused: bad cluster key", "remote state is not encrypted")
	})
	for _, n := range nodes {
		if got := memberNames(n.cl.Gossip()); !slices.Equal(got, want) {
			t.Errorf("%s lists members %v", n.node.ID(), got)
		}
		if got := raftServers(n.node.Raft()); !slices.Equal(got, want) {
			t.Errorf("%s has raft servers %v", n.node.ID(), got)
		}
	}
	for _, s := range []*keyNode{other, none} {
		if got := memberNames(s.cl.Gossip()); !slices.Equal(got, []string{s.node.ID()}) {
			t.Errorf("%s lists members %v", s.node.ID(), got)
		}
		if got := raftServers(s.node.Raft()); len(got) != 0 {
			t.Errorf("%s has raft servers %v", s.node.ID(), got)
		}
		if s.node.Raft().State() == raft.Leader {
			t.Errorf("%s leads", s.node.ID())
		}
	}

	// Strangers on b's peer link port: garbage, then a made-up answer.
	peerAddr := b.cl.peerAdvertise()
	strangerGarbage(t, peerAddr)
	strangerWrongAnswer(t, peerAddr)
	waitUntil(t, 5*time.Second, "two peer link refusals, logged", func() bool {
		return b.cl.Stats().Listener.KeyRefused == 2 &&
			b.log.hasLine("level=WARN", "peer link: connection from 127.0.0.1:", "refused: bad cluster key handshake", "not a cluster key handshake") &&
			b.log.hasLine("level=WARN", "peer link: connection from 127.0.0.1:", "refused: bad cluster key handshake", "wrong cluster key")
	})
	forwardOver(t, a, b) // the link still carries

	// Strangers on the leader's raft port; then a claim made on a follower
	// is forwarded over the raft port and commits.
	var leader, follower *keyNode
	waitUntil(t, 10*time.Second, "a leader among the three", func() bool {
		leader, follower = nil, nil
		for _, n := range nodes {
			if n.node.Raft().State() == raft.Leader {
				leader = n
			} else {
				follower = n
			}
		}
		return leader != nil
	})
	raftAddr := string(leader.node.Raft().Addr())
	strangerGarbage(t, raftAddr)
	strangerWrongAnswer(t, raftAddr)
	// The refused nodes' own raft ports cannot reach the leader's either.
	if _, err := other.node.Raft().Forward(leader.node.Raft().Addr(), []byte("x"), 5*time.Second); !errors.Is(err, ErrKeyHandshake) {
		t.Errorf("forward from the node with another key: %v", err)
	}
	if _, err := none.node.Raft().Forward(leader.node.Raft().Addr(), []byte("x"), 5*time.Second); err == nil {
		t.Error("forward from the node without a key answered")
	}
	waitUntil(t, 5*time.Second, "four raft port refusals, logged", func() bool {
		return leader.cl.Stats().RaftKeyRefused == 4 &&
			leader.log.hasLine("level=WARN", "raft port: connection from 127.0.0.1:", "refused: bad cluster key handshake", "wrong cluster key")
	})
	if r := claim(t, follower.node.Store(), "after-the-strangers", true); r.Epoch == 0 {
		t.Fatalf("claim through the follower: %+v", r)
	}
	for _, n := range nodes {
		if st := n.cl.Stats(); st.Listener.BadConns != 0 || st.BadFrames != 0 {
			t.Errorf("%s: bad conns %d, bad frames %d", n.node.ID(), st.Listener.BadConns, st.BadFrames)
		}
	}
}
