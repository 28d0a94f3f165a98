package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/fsm"
)

// NodeConfig configures the persistent, replicated side of one node.
type NodeConfig struct {
	// ID is the node's stable name; empty means the one stored in DataDir,
	// or a new one made from the host name on first start.
	ID string
	// DataDir holds node-id and raft/ (log, stable store, snapshots).
	DataDir string
	// RaftBind and RaftAdvertise are raft's listen and advertised addresses.
	RaftBind      string
	RaftAdvertise string
	// Peers, when set, is the full voter list the cluster bootstraps with
	// (every node given the identical list, this node among them);
	// BootstrapExpect must then equal its length. Without peers the node
	// bootstraps alone; with Join set it does not bootstrap and waits to be
	// added by a leader.
	Peers           []raft.Server
	BootstrapExpect int
	NoBootstrap     bool
	// Fast shortens raft timeouts (tests).
	Fast bool
	// Logger receives the node's log lines, raft's own among them (default:
	// slog.Default()).
	Logger *slog.Logger
	// RaftListener, when set, is used instead of listening on RaftBind;
	// the node owns it from then on: it is closed with the node, or before
	// StartNode returns an error.
	RaftListener net.Listener
	// Key is the cluster key (ParseClusterKey: 16, 24 or 32 bytes; nil:
	// none). Only nodes with the same key may use the raft port here, and
	// the gossip and peer link ports of the node's Cluster, which takes the
	// key from its node. Gossip is encrypted with it; on the raft and peer
	// link ports it authenticates each connection but does not encrypt
	// what follows (clusterkey.go).
	Key []byte
}

// Node is one node's raft, FSM, proposer and broker store, plus the
// leader-only housekeeping. Methods are safe for concurrent use.
type Node struct {
	cfg   NodeConfig
	id    string
	boot  uint64
	fsm   *fsm.FSM
	raft  *Raft
	prop  *Proposer
	store *Store
	log   *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// StartNode opens the node's raft state in cfg.DataDir, bootstrapping a
// one-voter cluster on first start, and starts its proposer.
func StartNode(cfg NodeConfig) (_ *Node, err error) {
	if cfg.RaftListener != nil {
		defer func() {
			if err != nil {
				cfg.RaftListener.Close() // again, if OpenRaft closed it
			}
		}()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkClusterKey(cfg.Key); err != nil {
		return nil, err
	}
	cfg.Key = bytes.Clone(cfg.Key)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cluster: data dir %s: %w", cfg.DataDir, err)
	}
	id, err := nodeID(cfg.DataDir, cfg.ID)
	if err != nil {
		return nil, err
	}
	boot, err := newBoot(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if len(cfg.Peers) > 0 {
		if cfg.BootstrapExpect != len(cfg.Peers) {
			return nil, fmt.Errorf("cluster: bootstrap-expect %d does not match the %d peers listed", cfg.BootstrapExpect, len(cfg.Peers))
		}
		found := false
		for _, p := range cfg.Peers {
			found = found || string(p.ID) == id
		}
		if !found {
			return nil, fmt.Errorf("cluster: this node (%s) is not in the peer list", id)
		}
	} else if cfg.BootstrapExpect > 1 {
		return nil, fmt.Errorf("cluster: bootstrap-expect %d needs the peer list (-raft-peers)", cfg.BootstrapExpect)
	}
	f := fsm.New()
	r, err := OpenRaft(RaftConfig{NodeID: id, Dir: filepath.Join(cfg.DataDir, "raft"), Bind: cfg.RaftBind,
		Advertise: cfg.RaftAdvertise, Bootstrap: !cfg.NoBootstrap, Servers: cfg.Peers, Fast: cfg.Fast, Logger: log, Listener: cfg.RaftListener, Key: cfg.Key}, f)
	if err != nil {
		return nil, err
	}
	p := NewProposer(r, ProposerConfig{Node: id, Boot: boot, Logger: log})
	n := &Node{cfg: cfg, id: id, boot: boot, fsm: f, raft: r, prop: p, log: log, stop: make(chan struct{}),
		store: NewStore(f, p, id, boot, log)}
	return n, nil
}

// nodeID returns the configured id, or the one stored in dir, or makes one
// and stores it.
func nodeID(dir, configured string) (string, error) {
	path := filepath.Join(dir, "node-id")
	stored, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("cluster: read %s: %w", path, err)
	}
	have := strings.TrimSpace(string(stored))
	switch {
	case configured != "" && have != "" && configured != have:
		return "", fmt.Errorf("cluster: node id %q differs from %q stored in %s; a data dir belongs to one node", configured, have, path)
	case configured != "":
		have = configured
	case have == "":
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		var b [3]byte
		_, _ = rand.Read(b[:])
		have = fmt.Sprintf("%s-%x", host, b)
	}
	if err := os.WriteFile(path, []byte(have+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("cluster: write %s: %w", path, err)
	}
	return have, nil
}

// newBoot returns this start's boot id, larger than every earlier start's
// on this data dir: the route tables and the peer link order a node's starts
// by it (a larger boot is a newer start). It is the time in nanoseconds, or
// the previous boot plus one should the clock have gone back, and is kept in
// dir/boot.
func newBoot(dir string) (uint64, error) {
	path := filepath.Join(dir, "boot")
	var prev uint64
	if b, err := os.ReadFile(path); err == nil {
		prev, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cluster: read %s: %w", path, err)
	}
	boot := max(uint64(time.Now().UnixNano()), prev+1)
	if err := os.WriteFile(path, []byte(strconv.FormatUint(boot, 10)+"\n"), 0o640); err != nil {
		return 0, fmt.Errorf("cluster: write %s: %w", path, err)
	}
	return boot, nil
}

// ID is the node's name.
func (n *Node) ID() string { return n.id }

// Store is the broker store backed by this node's raft.
func (n *Node) Store() *Store { return n.store }

// Raft is the node's raft instance (read-only views for the admin endpoint).
func (n *Node) Raft() *Raft { return n.raft }

// FSM is the node's state machine replica.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// WaitReady waits until raft has a leader and this replica has applied what
// was committed before it started.
func (n *Node) WaitReady(timeout time.Duration) error {
	if _, err := n.raft.WaitLeader(timeout); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	want := n.raft.LastIndex()
	for n.raft.AppliedIndex() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: replica applied %d of %d within %v", n.raft.AppliedIndex(), want, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Run prepares broker b and starts the node's background work. Before it
// returns, it fences the sessions of this node's earlier runs (NodeDown) and
// gives b back this node's persistent sessions, so that messages for them
// queue until their clients return; call it before serving clients. Then,
// while this node leads, it expires sessions and retained messages and
// publishes the wills of sessions whose owner is gone.
func (n *Node) Run(b *broker.Broker) {
	// Every applied claim fences older connections of its client id on this
	// node, wherever the claim was made.
	debug := n.log.Enabled(context.Background(), slog.LevelDebug)
	n.fsm.SetClaimHook(func(e fsm.ClaimEvent) {
		if debug {
			n.log.Debug("session claim applied", "client", e.ClientID, "epoch", e.Epoch, "node", e.Node,
				"prev_node", e.PrevNode, "prev_epoch", e.PrevEpoch, "resumed", e.Resumed)
		}
		if e.Node != n.id {
			// The client connected to another node: its session there
			// replaces the one here: resumed there with this node's state
			// when this node was its owner, or ended (clean start).
			if e.PrevNode == n.id && e.Resumed {
				b.HandOver(e.ClientID, e.Epoch, e.Node)
			} else {
				b.FenceMoved(e.ClientID, e.Epoch)
			}
			return
		}
		b.Fence(e.ClientID, e.Epoch)
		if e.Boot == n.boot {
			if req, ok := n.store.takeUnsure(e.ClientID); ok {
				n.adopt(b, e, req)
			}
		}
	})
	n.fenceEarlierBoots()
	n.restoreSessions(b)
	n.refreshSolo()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		barrier := false
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
			}
			n.refreshSolo()
			if n.raft.State() != raft.Leader {
				barrier = false
				continue
			}
			if !barrier {
				// Decide only on a replica that has applied everything the
				// previous leader committed.
				if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
					continue
				}
				barrier = true
			}
			n.housekeep(b)
		}
	}()
}

// adopt hands b the session of e, a claim of this node reported failed
// (ErrUnavailable) that was committed after all. A claim that keeps no entry
// (clean, no will) needs nothing; one a later claim already replaced in
// this batch is that claim's business.
func (n *Node) adopt(b *broker.Broker, e fsm.ClaimEvent, req broker.ClaimRequest) {
	s, ok := n.fsm.Session(e.ClientID)
	if !ok || s.Epoch != e.Epoch {
		return
	}
	res := broker.ClaimResult{Epoch: e.Epoch, Known: true, Present: e.Resumed}
	if e.Resumed {
		res.Persisted = persistedOf(s.Subscriptions)
		if e.PrevNode != n.id {
			res.PrevNode = e.PrevNode
		}
	}
	n.log.Info("a session claim reported failed was committed later: its session is kept here",
		"client", e.ClientID, "epoch", e.Epoch)
	b.AdoptClaim(req, res)
}

// refreshSolo tells the store whether this node is the whole cluster: the
// only server of the raft configuration, and its leader (Store.Claim).
func (n *Node) refreshSolo() {
	solo := false
	if n.raft.State() == raft.Leader {
		if f := n.raft.GetConfiguration(); f.Error() == nil {
			servers := f.Configuration().Servers
			solo = len(servers) == 1 && servers[0].ID == raft.ServerID(n.id)
		}
	}
	n.store.solo.Store(solo)
}

// fenceEarlierBoots marks the sessions of an earlier run of this node
// disconnected and their owner down: that process is gone.
func (n *Node) fenceEarlierBoots() {
	seen := map[uint64]bool{}
	for _, s := range n.fsm.SessionsOfNodeAnyBoot(n.id) {
		// Fence a boot that left any session not yet marked down, connected
		// or not: a session disconnected by a clean stop (SIGTERM) keeps
		// its delayed will in the registry, and only NodeDown (OwnerDown)
		// hands that will to the leader's sweep; the timer of the stopped
		// process is gone. Skipping disconnected sessions lost such wills.
		if s.Boot == n.boot || s.OwnerDown || seen[s.Boot] {
			continue
		}
		seen[s.Boot] = true
		done := make(chan struct{})
		n.prop.Propose(&fsm.NodeDown{Node: n.id, Boot: s.Boot, At: nowMS()}, func(r fsm.Result, err error) {
			if err != nil {
				n.log.Warn("could not mark an earlier run's sessions down", "boot", s.Boot, "err", err)
			} else {
				n.log.Info("sessions of an earlier run marked disconnected", "boot", s.Boot, "sessions", r.Count)
			}
			close(done)
		})
		select {
		case <-done:
		case <-n.stop:
			return
		}
	}
}

// AllowNetsplitCleanSessions makes the node accept clean sessions (expiry 0)
// with a local claim while raft has no leader (netsplit-clean-sessions; see
// Store.Claim). Call before serving.
func (n *Node) AllowNetsplitCleanSessions() {
	f := func() bool {
		_, id := n.raft.LeaderWithID()
		return id == ""
	}
	n.store.leaderless.Store(&f)
}

// markNodeDown proposes that node's sessions of boot boot are disconnected
// with their owner down: that process crashed or left.
func (n *Node) markNodeDown(node string, boot uint64) {
	n.prop.Propose(&fsm.NodeDown{Node: node, Boot: boot, At: nowMS()}, func(r fsm.Result, err error) {
		if err != nil {
			n.log.Warn("could not mark a lost node's sessions down", "node", node, "err", err)
			return
		}
		n.log.Info("node lost: its boot fenced, its sessions marked disconnected", "node", node, "sessions", r.Count)
	})
}

// markNodeUp proposes that node's boot, declared dead, is alive again.
func (n *Node) markNodeUp(node string, boot uint64) {
	n.prop.Propose(&fsm.NodeUp{Node: node, Boot: boot}, func(r fsm.Result, err error) {
		switch {
		case err != nil:
			n.log.Warn("could not lift a node's fence", "node", node, "err", err)
		case r.Code == fsm.CodeOK:
			n.log.Info("node declared dead is back: its claims are accepted again", "node", node)
		}
	})
}

// restoreSessions hands b the persistent sessions this node owned.
func (n *Node) restoreSessions(b *broker.Broker) {
	var list []broker.RestoredSession
	for _, s := range n.fsm.SessionsOfNodeAnyBoot(n.id) {
		if s.Connected || s.Expiry == 0 {
			continue
		}
		rs := broker.RestoredSession{ClientID: s.ClientID, Epoch: s.Epoch, Expiry: s.Expiry,
			DisconnectedAt: time.UnixMilli(s.DisconnectedAt)}
		for _, sub := range s.Subscriptions {
			rs.Subs = append(rs.Subs, broker.PersistedSub{Filter: sub.Filter, QoS: sub.QoS, NoLocal: sub.NoLocal,
				RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubscriptionID: sub.SubscriptionID})
		}
		list = append(list, rs)
	}
	b.RestoreSessions(list)
	if len(list) > 0 {
		n.log.Info("persistent sessions restored", "sessions", len(list))
	}
}

// housekeep runs one round of the leader's sweeps.
func (n *Node) housekeep(b *broker.Broker) {
	now := nowMS()
	for _, s := range n.fsm.PendingWills(now) {
		n.publishWill(b, &s)
		n.prop.Propose(&fsm.WillDone{ClientID: s.ClientID, Epoch: s.Epoch}, n.logSweep("will done", "client", s.ClientID))
	}
	for _, s := range n.fsm.ExpiredSessions(now) {
		if !s.OwnerDown {
			continue // a live owner ends its own sessions and sends their wills
		}
		if s.Will != nil {
			n.publishWill(b, &s) // the session ends before its will delay [MQTT-3.1.3-9]
		}
		n.prop.Propose(&fsm.SessionExpired{ClientID: s.ClientID, Epoch: s.Epoch}, n.logSweep("session expiry", "client", s.ClientID))
	}
	for _, r := range n.fsm.ExpiredRetained(now) {
		n.prop.Propose(&fsm.RetainedDelete{Topic: r.Topic, ExpiredBy: now}, n.logSweep("retained message expiry", "topic", r.Topic))
	}
}

// logSweep returns the done callback of a housekeeping op: a failure is
// logged at warn, naming the op and its subject (key, value). Stale,
// NotFound and Invalid answers are races with the session's own node or a
// newer message, not failures.
func (n *Node) logSweep(op, key, value string) func(fsm.Result, error) {
	return func(r fsm.Result, err error) {
		if n.log.Enabled(context.Background(), slog.LevelDebug) {
			n.log.Debug("housekeeping: "+op+" applied", key, value, "code", r.Code.String(), "err", err)
		}
		switch {
		case err != nil:
			n.log.Warn("housekeeping: "+op+" failed", key, value, "err", err)
		case r.Code != fsm.CodeOK && r.Code != fsm.CodeStale && r.Code != fsm.CodeNotFound && r.Code != fsm.CodeInvalid:
			n.log.Warn("housekeeping: "+op+" refused", key, value, "code", r.Code.String())
		}
	}
}

// publishWill publishes the stored will of a session whose owner is gone.
func (n *Node) publishWill(b *broker.Broker, s *fsm.Session) {
	w := s.Will
	if w == nil {
		return
	}
	m := &broker.Message{Topic: []byte(w.Topic), Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, Publisher: s.ClientID}
	if _, err := codec.DecodeMessageProperties(w.Props, &m.Props); err != nil {
		n.log.Warn("stored will has bad properties; sent without them", "client", s.ClientID, "err", err)
		m.Props = codec.Properties{}
	}
	if !b.AllowedToPublish(s.ClientID, []byte(w.Username), m.Topic) {
		return
	}
	b.PublishRetained(m)
}

// Close stops the housekeeping and the proposer and shuts raft down.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		close(n.stop)
		n.wg.Wait()
		n.prop.Close()
		err = n.raft.Close()
	})
	return err
}

// Proposer is the node's proposer (its batch and latency metrics).
func (n *Node) Proposer() *Proposer { return n.prop }

// Boot is the node's boot id: the unix nanoseconds of its start, or one more
// than the previous boot's when the clock went back.
func (n *Node) Boot() uint64 { return n.boot }
