package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// RaftConfig configures a node's raft instance.
type RaftConfig struct {
	// NodeID is the node's stable raft server ID.
	NodeID string
	// Dir holds raft.db (log and stable store) and snapshots/.
	Dir string
	// Bind is the TCP address raft and the forwarding RPC listen on.
	Bind string
	// Advertise is the address other nodes dial (default: the bound address).
	Advertise string
	// Bootstrap, on first start, makes a cluster of Servers (or of this node
	// alone when Servers is empty). Every node bootstrapping the same cluster
	// must be given the same Servers.
	Bootstrap bool
	Servers   []raft.Server
	// Fast shortens the timeouts for tests on loopback.
	Fast bool
	// Logger receives raft's own log lines, and those of its transport and
	// snapshot store, at their levels (default: slog.Default()).
	Logger *slog.Logger
	// Listener, when set, is the listener raft and the forwarding RPC
	// serve on, instead of one bound to Bind. OpenRaft owns it from then on:
	// it is closed with the node, or before OpenRaft returns an error. Tests
	// bind port 0 and so know the address before the node starts.
	Listener net.Listener
	// Key is the cluster key (16, 24 or 32 bytes; nil: none). With a key,
	// every connection to and from the raft port (raft and the forwarding
	// RPC) starts with the cluster key handshake, and a connection without
	// the key is refused before raft or the forwarding handler reads from
	// it. It authenticates; it does not encrypt (clusterkey.go).
	Key []byte
}

// raftKeyTimeout bounds the cluster key handshake of a connection accepted
// on the raft port.
const raftKeyTimeout = 5 * time.Second

// Raft is a running raft instance with its stores and transport. Methods are
// safe for concurrent use.
type Raft struct {
	*raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	mux   *mux
	snaps *raft.FileSnapshotStore
	addr  raft.ServerAddress
	once  sync.Once

	forward atomic.Pointer[func(req []byte) ([]byte, error)]
	pool    *forwardPool
}

// raftTuning returns the raft configuration for a LAN broker (see the
// reference notes, section 3.3).
func raftTuning(cfg RaftConfig, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = logger
	rc.HeartbeatTimeout = time.Second
	rc.ElectionTimeout = time.Second
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
	rc.CommitTimeout = 10 * time.Millisecond
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.TrailingLogs = 10240
	rc.SnapshotInterval = 120 * time.Second
	rc.SnapshotThreshold = 16384
	if cfg.Fast {
		rc.HeartbeatTimeout = 150 * time.Millisecond
		rc.ElectionTimeout = 150 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	return rc
}

// restoreGuard wraps an FSM to remember why the last Restore failed, so that a
// start that cannot load any snapshot reports which file and why.
type restoreGuard struct {
	raft.FSM
	mu  sync.Mutex
	err error
}

func (g *restoreGuard) Restore(rc io.ReadCloser) error {
	err := g.FSM.Restore(rc)
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
	return err
}

type batchingGuard struct{ *restoreGuard }

func (g batchingGuard) ApplyBatch(logs []*raft.Log) []interface{} {
	return g.FSM.(raft.BatchingFSM).ApplyBatch(logs)
}

// OpenRaft opens (or creates) the raft state in cfg.Dir and starts raft with
// fsm. A damaged log store or snapshot gives an error naming the file.
func OpenRaft(cfg RaftConfig, fsm raft.FSM) (_ *Raft, err error) {
	if cfg.Listener != nil {
		defer func() {
			if err != nil {
				cfg.Listener.Close() // again, if the transport closed it
			}
		}()
	}
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: raft needs a node id")
	}
	if err := checkClusterKey(cfg.Key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	slogger := cfg.Logger
	if slogger == nil {
		slogger = slog.Default()
	}
	logger := newHCLog(slogger, "raft")

	dbPath := filepath.Join(cfg.Dir, "raft.db")
	store, err := openLogStore(dbPath)
	if err != nil {
		return nil, err
	}
	snapDir := filepath.Join(cfg.Dir, "snapshots")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, logger.Named("snapshot"))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: snapshot store %s: %w", snapDir, err)
	}

	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Bind)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("cluster: raft listen on %s: %w", cfg.Bind, err)
		}
	}
	var adv net.Addr = ln.Addr()
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			ln.Close()
			store.Close()
			return nil, fmt.Errorf("cluster: advertise address %q: %w", cfg.Advertise, err)
		}
		adv = a
	}
	m := newMux(ln, adv)
	m.gate = newKeyGate(cfg.Key, purposeRaft, "raft port", raftKeyTimeout, slogger)
	m.auth = newConnAuth(cfg.Key, purposeRaft)
	node := &Raft{mux: m, pool: newForwardPool(m.auth)}
	m.handle(streamForward, forwardHandler(func(req []byte) ([]byte, error) {
		h := node.forward.Load()
		if h == nil {
			return nil, errors.New("this node takes no forwarded proposals yet")
		}
		return (*h)(req)
	}))
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{m}, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger.Named("net"),
	})
	go m.serve()

	guard := &restoreGuard{FSM: fsm}
	var wrapped raft.FSM = guard
	if _, ok := fsm.(raft.BatchingFSM); ok {
		wrapped = batchingGuard{guard}
	}
	rc := raftTuning(cfg, logger)
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("cluster: log cache: %w", err)
	}
	addr := trans.LocalAddr()
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, store, snaps)
		if err != nil {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("cluster: read raft state in %s: %w", cfg.Dir, err)
		}
		if !has {
			servers := cfg.Servers
			if len(servers) == 0 {
				servers = []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: addr}}
			}
			if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
				trans.Close()
				store.Close()
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, wrapped, logs, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		guard.mu.Lock()
		ferr := guard.err
		guard.mu.Unlock()
		if ferr == nil {
			ferr = snapshotProblem(snaps)
		}
		if ferr != nil {
			return nil, fmt.Errorf("cluster: no snapshot in %s could be restored (the newest: %v): %w", snapDir, ferr, err)
		}
		return nil, fmt.Errorf("cluster: start raft in %s: %w", cfg.Dir, err)
	}
	node.Raft, node.store, node.trans, node.snaps, node.addr = r, store, trans, snaps, addr
	return node, nil
}

// openLogStore opens the bolt log store at path and reads every log entry
// once, so that a damaged file fails here with an error naming it rather
// than later in one of raft's goroutines. bbolt reports some damage by
// panicking (a page header that does not match its id: found with the meta
// pages intact and the pages after them overwritten, which crashed the
// binary) or by faulting on a page past the mapping; both become errors on
// this goroutine.
func openLogStore(path string) (store *raftboltdb.BoltStore, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if store != nil {
				store.Close()
			}
			store, err = nil, fmt.Errorf("cluster: raft log store %s is damaged: %v", path, p)
		}
	}()
	store, err = raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: raft log store %s is unreadable: %w", path, err)
	}
	first, err := store.FirstIndex()
	if err == nil {
		var last uint64
		last, err = store.LastIndex()
		var l raft.Log
		for i := first; err == nil && i > 0 && i <= last; i++ {
			if err = store.GetLog(i, &l); err != nil {
				err = fmt.Errorf("log entry %d: %w", i, err)
			}
		}
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: raft log store %s is damaged: %w", path, err)
	}
	return store, nil
}

// snapshotProblem opens the newest snapshot to say why it cannot be read
// (raft itself only reports that none could be loaded).
func snapshotProblem(snaps *raft.FileSnapshotStore) error {
	list, err := snaps.List()
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", list[0].ID, err)
	}
	rc.Close()
	return fmt.Errorf("snapshot %s was rejected by the state machine", list[0].ID)
}

// SetForwardHandler sets how this node answers proposals forwarded to it
// while it leads.
func (r *Raft) SetForwardHandler(h func(req []byte) ([]byte, error)) { r.forward.Store(&h) }

// Forward sends req to the node at addr (the leader's raft address) and
// returns its answer.
func (r *Raft) Forward(addr raft.ServerAddress, req []byte, timeout time.Duration) ([]byte, error) {
	return r.pool.call(string(addr), req, timeout)
}

// KeyRefused is the number of connections the raft port refused for a
// failed cluster key handshake (always 0 without a key). Safe for
// concurrent use.
func (r *Raft) KeyRefused() uint64 { return r.mux.gate.Refused() }

// Addr is the address raft is reachable at.
func (r *Raft) Addr() raft.ServerAddress { return r.addr }

// Close shuts raft down and closes the stores and the transport.
func (r *Raft) Close() error {
	var err error
	r.once.Do(func() {
		err = r.Shutdown().Error()
		r.trans.Close()
		r.pool.close()
		if cerr := r.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// WaitLeader polls until the cluster has a leader or the timeout passes.
func (r *Raft) WaitLeader(timeout time.Duration) (raft.ServerID, error) {
	deadline := time.Now().Add(timeout)
	for {
		if _, id := r.LeaderWithID(); id != "" {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", errors.New("cluster: no raft leader within " + timeout.String())
		}
		select {
		case <-r.LeaderCh():
		case <-time.After(10 * time.Millisecond):
		}
	}
}
