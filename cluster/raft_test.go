package cluster

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// sumFSM adds up uint64 commands; enough state to compare replicas and to
// snapshot.
type sumFSM struct {
	mu    sync.Mutex
	sum   uint64
	count uint64
}

func (f *sumFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l.Data) == 8 {
		f.sum += binary.BigEndian.Uint64(l.Data)
		f.count++
	}
	return f.count
}

func (f *sumFSM) state() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sum, f.count
}

type sumSnap struct{ b []byte }

func (s sumSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (sumSnap) Release() {}

func (f *sumFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, f.sum)
	return sumSnap{binary.BigEndian.AppendUint64(b, f.count)}, nil
}

func (f *sumFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if len(b) != 16 {
		return io.ErrUnexpectedEOF
	}
	f.mu.Lock()
	f.sum, f.count = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	f.mu.Unlock()
	return nil
}

func cmd(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func openTestRaft(t *testing.T, id, dir string, bootstrap bool, fsm raft.FSM) *Raft {
	t.Helper()
	r, err := OpenRaft(RaftConfig{NodeID: id, Dir: dir, Bind: "127.0.0.1:0", Bootstrap: bootstrap, Fast: true, Logger: quiet}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRaftThreeNodes: a bootstrapped node adds two voters over TCP, all three
// agree, the leader is killed, and a new leader commits within 5 s.
func TestRaftThreeNodes(t *testing.T) {
	fsms := []*sumFSM{{}, {}, {}}
	nodes := make([]*Raft, 3)
	ids := []string{"n1", "n2", "n3"}
	for i := range nodes {
		nodes[i] = openTestRaft(t, ids[i], t.TempDir(), i == 0, fsms[i])
		defer nodes[i].Close()
	}
	if _, err := nodes[0].WaitLeader(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if err := nodes[0].AddVoter(raft.ServerID(ids[i]), nodes[i].Addr(), 0, 5*time.Second).Error(); err != nil {
			t.Fatalf("add voter %s: %v", ids[i], err)
		}
	}
	for v := uint64(1); v <= 100; v++ {
		if err := nodes[0].Apply(cmd(v), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range fsms {
		waitUntil(t, 5*time.Second, "replica "+ids[i]+" to apply 100 entries", func() bool {
			sum, n := f.state()
			return n == 100 && sum == 5050
		})
	}
	// Kill the leader; a new one must serve within 5 s.
	nodes[0].Close()
	start := time.Now()
	var leader *Raft
	waitUntil(t, 5*time.Second, "a new leader", func() bool {
		for _, n := range nodes[1:] {
			if n.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	if err := leader.Apply(cmd(1000), 2*time.Second).Error(); err != nil {
		t.Fatalf("new leader apply: %v", err)
	}
	t.Logf("new leader after %v", time.Since(start))
	for _, i := range []int{1, 2} {
		f := fsms[i]
		waitUntil(t, 5*time.Second, "replica to apply the new entry", func() bool {
			sum, _ := f.state()
			return sum == 6050
		})
	}
}

// TestRaftRestartFromDataDir: a node restarted on its data dir comes back
// with its state, from the snapshot and the log.
func TestRaftRestartFromDataDir(t *testing.T) {
	dir := t.TempDir()
	f := &sumFSM{}
	r := openTestRaft(t, "n1", dir, true, f)
	if _, err := r.WaitLeader(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v <= 10; v++ {
		if err := r.Apply(cmd(v), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for v := uint64(11); v <= 20; v++ {
		if err := r.Apply(cmd(v), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()

	f2 := &sumFSM{}
	r2 := openTestRaft(t, "n1", dir, true, f2)
	defer r2.Close()
	waitUntil(t, 5*time.Second, "state restored after restart", func() bool {
		sum, _ := f2.state()
		return sum == 210
	})
}

// TestRaftDamagedLogStore: a raft.db that is not a bolt file gives an error
// that names the file.
func TestRaftDamagedLogStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenRaft(RaftConfig{NodeID: "n1", Dir: dir, Bind: "127.0.0.1:0", Bootstrap: true, Fast: true, Logger: quiet}, &sumFSM{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("want an error naming %s, got %v", path, err)
	}
}

// TestRaftDamagedSnapshot: a truncated snapshot gives an error naming the
// snapshot directory, not an empty state.
func TestRaftDamagedSnapshot(t *testing.T) {
	dir := t.TempDir()
	r := openTestRaft(t, "n1", dir, true, &sumFSM{})
	if _, err := r.WaitLeader(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v <= 5; v++ {
		if err := r.Apply(cmd(v), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	states, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if len(states) == 0 {
		t.Fatal("no snapshot written")
	}
	for _, s := range states {
		if err := os.Truncate(s, 3); err != nil {
			t.Fatal(err)
		}
	}
	_, err := OpenRaft(RaftConfig{NodeID: "n1", Dir: dir, Bind: "127.0.0.1:0", Bootstrap: true, Fast: true, Logger: quiet}, &sumFSM{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "snapshots")) {
		t.Fatalf("want an error naming the snapshot dir, got %v", err)
	}
}

// TestForwardRPC: a follower's request reaches the leader's handler over the
// raft port and the answer, or the leader's error, comes back.
func TestForwardRPC(t *testing.T) {
	a := openTestRaft(t, "a", t.TempDir(), true, &sumFSM{})
	defer a.Close()
	b := openTestRaft(t, "b", t.TempDir(), false, &sumFSM{})
	defer b.Close()
	a.SetForwardHandler(func(req []byte) ([]byte, error) {
		if string(req) == "fail" {
			return nil, io.ErrUnexpectedEOF
		}
		return append([]byte("echo:"), req...), nil
	})
	for i := 0; i < 3; i++ { // the pooled connection is reused
		resp, err := b.Forward(a.Addr(), []byte("hello"), 2*time.Second)
		if err != nil || string(resp) != "echo:hello" {
			t.Fatalf("forward: %q, %v", resp, err)
		}
	}
	if _, err := b.Forward(a.Addr(), []byte("fail"), 2*time.Second); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("want the leader's error, got %v", err)
	}
	// A node with no handler answers with an error, not a hang.
	if _, err := a.Forward(b.Addr(), []byte("x"), 2*time.Second); err == nil {
		t.Fatal("want an error from a node without a handler")
	}
}
