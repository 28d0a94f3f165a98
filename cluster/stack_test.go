package cluster

import (
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// countFSM records applied commands.
type countFSM struct {
	mu   sync.Mutex
	logs [][]byte
}

func (f *countFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, append([]byte(nil), l.Data...))
	return len(f.logs)
}
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, raft.ErrNothingNewToSnapshot }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// TestPinnedStack checks that the pinned raft, raft-boltdb/v2 (with bbolt) and
// memberlist versions build together and work: a one-voter raft on a bolt
// store commits an entry, and a memberlist node starts on loopback.
func TestPinnedStack(t *testing.T) {
	dir := t.TempDir()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := raft.DefaultConfig()
	cfg.LocalID = "n1"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.LogOutput = io.Discard
	addr, trans := raft.NewInmemTransport("")
	fsm := &countFSM{}
	r, err := raft.NewRaft(cfg, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var f raft.ApplyFuture
	for {
		f = r.Apply([]byte("hello"), time.Second)
		if f.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no commit before deadline: %v", f.Error())
		}
		select {
		case <-r.LeaderCh():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if got := f.Response(); got != 1 {
		t.Fatalf("response %v, want 1", got)
	}
	last, err := store.LastIndex()
	if err != nil || last == 0 {
		t.Fatalf("bolt store last index %d, %v", last, err)
	}

	mc := memberlist.DefaultLocalConfig()
	mc.Name = "n1"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.LogOutput = io.Discard
	m, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	if n := m.NumMembers(); n != 1 {
		t.Fatalf("members %d, want 1", n)
	}
}
