package cluster

import (
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
)

// claimReq claims through s with req and waits for the answer.
func claimReq(t *testing.T, s *Store, req broker.ClaimRequest) broker.ClaimResult {
	t.Helper()
	ch := make(chan broker.ClaimResult, 1)
	s.Claim(req, func(r broker.ClaimResult, err error) {
		if err != nil {
			t.Errorf("claim %s: %v", req.ClientID, err)
		}
		ch <- r
	})
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("claim %s: no answer", req.ClientID)
		return broker.ClaimResult{}
	}
}

// TestSoloEphemeralClaimSkipsLog: on a node that is the whole cluster, a
// session that ends with its connection and has no will is claimed without
// the log (epoch 0) and released without it; a client id the registry
// holds still goes through the log (its entry must go), and once another
// node joins every claim does.
func TestSoloEphemeralClaimSkipsLog(t *testing.T) {
	a := startLeader(t, "a")
	a.refreshSolo()
	s := a.Store()
	if !s.solo.Load() {
		t.Fatal("a single bootstrapped leader is not solo")
	}
	last := a.raft.LastIndex()
	eph := broker.ClaimRequest{ClientID: "e", CleanStart: true, ProtocolVersion: 5}
	if r := claimReq(t, s, eph); r.Epoch != 0 || r.Known {
		t.Fatalf("solo ephemeral claim: %+v", r)
	}
	s.Ended("e", 0)
	if got := a.raft.LastIndex(); got != last {
		t.Fatalf("log index %d -> %d: an ephemeral claim or its end went through the log", last, got)
	}

	// A client id with an entry: the clean claim goes through the log and
	// removes the entry.
	claim(t, s, "p", false) // expiry 600
	r := claimReq(t, s, broker.ClaimRequest{ClientID: "p", CleanStart: true, ProtocolVersion: 5})
	if r.Epoch == 0 || !r.Known {
		t.Fatalf("clean claim over a recorded session: %+v", r)
	}
	if _, ok := a.fsm.Session("p"); ok {
		t.Fatal("the recorded session outlives a clean claim")
	}
	// A will keeps it in the log.
	w := broker.ClaimRequest{ClientID: "w", CleanStart: true, ProtocolVersion: 5,
		Will: &broker.Will{Msg: &broker.Message{Topic: []byte("w"), Payload: []byte("gone")}}}
	if r := claimReq(t, s, w); r.Epoch == 0 {
		t.Fatalf("claim with a will: %+v", r)
	}

	// Another node joins: claims go through the log again.
	b, err := StartNode(NodeConfig{ID: "b", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", NoBootstrap: true, Fast: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Join("b", string(b.raft.Addr()), true); err != nil {
		t.Fatal(err)
	}
	if s.solo.Load() {
		t.Fatal("still solo after a join")
	}
	if r := claimReq(t, s, eph); r.Epoch == 0 || !r.Known {
		t.Fatalf("ephemeral claim in a two-node cluster: %+v", r)
	}
	if err := a.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if !s.solo.Load() {
		t.Fatal("not solo again after the other node was removed")
	}
}
