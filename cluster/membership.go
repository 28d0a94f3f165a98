package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/fsm"
)

// Status is a read-only view of a node's raft and state machine, for the
// admin endpoint.
type Status struct {
	NodeID       string
	State        string // Leader, Follower, Candidate, Shutdown
	LeaderID     string
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastContact  time.Duration
	Servers      []Server
	FSM          fsm.Stats
}

// Server is one member of the raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Status reports the node's raft state. Safe for concurrent use.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{NodeID: n.id, State: n.raft.State().String(), LeaderID: string(id), LeaderAddr: string(addr),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(), LastContact: time.Since(n.raft.LastContact()),
		FSM: n.fsm.Stats()}
	if n.raft.State() == raft.Leader {
		st.LastContact = 0
	}
	if term, err := parseUint(n.raft.Stats()["term"]); err == nil {
		st.Term = term
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Servers = append(st.Servers, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
	}
	return st
}

func parseUint(s string) (uint64, error) {
	var v uint64
	_, err := fmt.Sscanf(s, "%d", &v)
	return v, err
}

// ErrNotLeader is returned by membership changes made on a follower; the
// error names the leader to ask instead.
var ErrNotLeader = errors.New("cluster: this node is not the raft leader")

func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("%w, and no leader is known", ErrNotLeader)
	}
	return fmt.Errorf("%w; the leader is %s at %s", ErrNotLeader, id, addr)
}

// Join adds a node to the raft configuration: as a voter, or as a non-voter
// that replicates without voting. Leader only. Safe for concurrent use.
func (n *Node) Join(id, addr string, voter bool) error {
	if id == "" || addr == "" {
		return errors.New("cluster: join needs a node id and a raft address")
	}
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	// Claims go through the log from now on: the new node's connections
	// must be fenced against this one's.
	n.store.solo.Store(false)
	defer n.refreshSolo()
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: add %s at %s: %w", id, addr, err)
	}
	return nil
}

// Remove takes a node out of the raft configuration. Gossip saying a node
// is dead never does this by itself: it is an operator's decision. Leader
// only. Safe for concurrent use.
func (n *Node) Remove(id string) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("cluster: remove %s: %w", id, err)
	}
	n.refreshSolo()
	return nil
}

// TransferLeadership asks raft to hand leadership to another voter.
func (n *Node) TransferLeadership() error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	return n.raft.LeadershipTransfer().Error()
}

// Snapshot takes a snapshot of the state machine now.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// ParsePeers reads a peer list "id@host:port,id@host:port" (raft addresses),
// as given to -raft-peers.
func ParsePeers(list string) ([]raft.Server, error) {
	var out []raft.Server
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, addr, ok := strings.Cut(item, "@")
		if !ok || id == "" || addr == "" || !strings.Contains(addr, ":") {
			return nil, fmt.Errorf("cluster: peer %q is not id@host:port", item)
		}
		if seen[id] {
			return nil, fmt.Errorf("cluster: peer id %q appears twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	return out, nil
}
