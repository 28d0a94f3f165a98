package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/codec"
)

// The quorum fence. The majority side of a partition handles the unreachable
// nodes as crashed: their persistent sessions can be claimed elsewhere. A
// node cut off from the raft leader cannot learn of those claims, so it would
// go on serving the old connections and a client id would have two served
// connections until the partition heals. Instead, once this node has had no
// contact with a leader for QuorumFence, it closes every connection whose
// session holds a committed claim with DISCONNECT 0x9C ("use another
// server"); the clients reconnect, and only the majority can accept them.
//
// The majority serves a claimed session again only once gossip has declared
// the old node dead (about 4.5 s after it went silent, at the earliest) or
// the broker's takeover timeout (5 s) has passed: both later than the fence
// (3 s by default, checked every maintenance tick). A node whose process was
// stopped (SIGSTOP, a VM pause) for longer than the fence does not trust the
// leader contact raft may record in the first moments after it resumes: a
// maintenance tick late by more than the fence trips it too.
//
// Without a leader but with gossip from a majority of the voters (this node
// included) within the fence, this node is on the majority side and an
// election is under way: no other side can commit a claim, so it does not
// fence, and a slow election does not close every connection of the cluster.
//
// Sessions accepted with -netsplit-clean-sessions (epoch 0) hold no claim
// and are not fenced; the next claim of their client id through the log
// closes them as before.

// fenceState is the fence's state; maintenance goroutine only.
type fenceState struct {
	contact time.Time // the last moment this node knew a leader (itself included)
	tick    time.Time // the previous check
	on      bool      // fenced: claimed connections are being closed
	since   time.Time // when it went on
	lastRun time.Time // the last CloseClaimed
	running bool      // a CloseClaimed is under way (closing is its own goroutine)
	closed  int       // connections closed in this episode
	done    chan int  // the result of the CloseClaimed under way
}

// fenceRepeat is how often a fenced node closes claimed connections again:
// a claim committed just before contact was lost can still be answered.
const fenceRepeat = time.Second

// checkFence runs on every maintenance tick.
func (c *Cluster) checkFence(now time.Time) {
	f := &c.fence
	stalled := now.Sub(f.tick) > c.cfg.QuorumFence
	f.tick = now
	if f.running {
		select {
		case n := <-f.done:
			f.running = false
			f.closed += n
		default:
		}
	}
	if c.cfg.QuorumFence <= 0 || !c.inRaft.Load() || c.b == nil {
		return
	}
	if c.node.raft.State() == raft.Leader {
		f.contact = now
	} else if lc := c.node.raft.LastContact(); lc.After(f.contact) && !stalled {
		f.contact = lc
	}
	if stalled {
		f.contact = time.Time{}
	}
	if now.Sub(f.contact) <= c.cfg.QuorumFence || (!stalled && c.majorityInSight()) {
		if f.on && !f.running {
			f.on = false
			c.log.Info("quorum fence lifted: a raft leader or a majority of voters is in contact again",
				"fenced_for", now.Sub(f.since).Round(time.Millisecond), "closed", f.closed)
		}
		return
	}
	if !f.on {
		f.on, f.since, f.closed = true, now, 0
		c.log.Warn("no contact with a raft leader: closing claimed connections with 0x9C (use another server)",
			"quorum_fence", c.cfg.QuorumFence, "stalled", stalled)
	} else if f.running || now.Sub(f.lastRun) < fenceRepeat {
		return
	}
	f.running, f.lastRun = true, now
	if f.done == nil {
		f.done = make(chan int, 1)
	}
	go func() {
		n, err := c.b.CloseClaimed(codec.UseAnotherServer)
		if err != nil {
			c.log.Warn("quorum fence: closing claimed connections", "err", err)
		}
		if n > 0 {
			c.log.Warn("quorum fence: closed claimed connections", "count", n)
		}
		f.done <- n
	}()
}

// majorityInSight reports whether a majority of the raft voters, this node
// included, gossiped to this node within the fence.
func (c *Cluster) majorityInSight() bool {
	cf := c.node.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	g := c.gossipP.Load()
	voters, seen := 0, 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == c.id || (g != nil && g.HeardWithin(string(s.ID), c.cfg.QuorumFence)) {
			seen++
		}
	}
	return voters > 0 && 2*seen > voters
}
