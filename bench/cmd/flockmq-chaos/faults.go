package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// fault is one injected fault and what was seen during it.
type fault struct {
	kind      string
	victim    string
	oldLeader string
	start     time.Time // injected
	restored  time.Time // docker start / connect / unpause done
	recovered time.Time // cluster healthy again
	newLeader string
	election  time.Duration // leader kill: until a survivor names a new leader
	notes     []string
	fails     []string
	// partition: the minority side's answers to new persistent sessions
	minority []string
	healedIn time.Duration
}

func (f *fault) window() (time.Time, time.Time) {
	return f.start.Add(-2 * time.Second), f.recovered.Add(5 * time.Second)
}

func (f *fault) note(format string, a ...any) { f.notes = append(f.notes, fmt.Sprintf(format, a...)) }
func (f *fault) fail(format string, a ...any) { f.fails = append(f.fails, fmt.Sprintf(format, a...)) }

func (cl *cluster) pickFollower(leader string, avoid map[string]bool) string {
	for _, n := range cl.nodes {
		if n.name != leader && !avoid[n.name] {
			return n.name
		}
	}
	for _, n := range cl.nodes {
		if n.name != leader {
			return n.name
		}
	}
	return cl.nodes[0].name
}

var usedVictims = map[string]bool{}

// inject runs one fault to its end: injection, restoration, and the wait for
// a healthy cluster (not the settle period after it).
func (cl *cluster) inject(ctx context.Context, kind string, h *history, w *workload) (*fault, error) {
	if err := cl.waitHealthy(ctx, 60*time.Second); err != nil {
		return nil, fmt.Errorf("before the fault: %w", err)
	}
	leader, err := cl.leader()
	if err != nil {
		return nil, err
	}
	f := &fault{kind: kind, oldLeader: leader}
	if kind == "leader-kill" {
		f.victim = leader
	} else if name, ok := strings.CutPrefix(kind, "restart-"); ok {
		f.victim = name
	} else {
		f.victim = cl.pickFollower(leader, usedVictims)
	}
	usedVictims[f.victim] = true
	v := cl.node(f.victim)
	cl.logf("fault %s: victim %s (leader %s)", kind, f.victim, leader)
	cl.setFaulted(f.victim, true)
	f.start = time.Now()
	switch kind {
	case "leader-kill", "follower-kill":
		cl.mu.Lock()
		cl.kills = append(cl.kills, killRec{node: f.victim, at: time.Now()})
		cl.mu.Unlock()
		if _, err := cl.docker(ctx, "kill", v.container); err != nil {
			return f, err
		}
		if kind == "leader-kill" {
			f.election, f.newLeader = cl.waitNewLeader(ctx, f.victim, 20*time.Second)
			if f.newLeader == "" {
				f.fail("no new raft leader within 20 s of killing the leader %s", f.victim)
			} else if f.election > cl.cfg.maxLeader {
				f.fail("the new raft leader %s came %v after killing the leader %s, more than %v", f.newLeader, f.election.Round(time.Millisecond), f.victim, cl.cfg.maxLeader)
			} else {
				f.note("new leader %s named by a survivor %v after the kill", f.newLeader, f.election.Round(time.Millisecond))
			}
		}
		sleep(ctx, time.Until(f.start.Add(cl.cfg.down)))
		if _, err := cl.docker(ctx, "start", v.container); err != nil {
			return f, err
		}
	case "restart-n1", "restart-n2", "restart-n3":
		// Rolling restart, one node per fault: SIGTERM (the node leaves
		// the cluster, then closes its clients), start again.
		cl.mu.Lock()
		cl.kills = append(cl.kills, killRec{node: f.victim, at: time.Now()})
		cl.mu.Unlock()
		if _, err := cl.docker(ctx, "restart", "--time", "30", v.container); err != nil {
			return f, err
		}
	case "partition":
		if _, err := cl.docker(ctx, "network", "disconnect", cl.netName, v.container); err != nil {
			return f, err
		}
		cl.minorityProbe(ctx, f, v)
		if _, err := cl.docker(ctx, "network", "connect", "--ip", v.clusterIP, cl.netName, v.container); err != nil {
			return f, err
		}
	case "pause":
		if _, err := cl.docker(ctx, "pause", v.container); err != nil {
			return f, err
		}
		sleep(ctx, cl.cfg.pause)
		if _, err := cl.docker(ctx, "unpause", v.container); err != nil {
			return f, err
		}
	default:
		return nil, fmt.Errorf("unknown fault %q", kind)
	}
	f.restored = time.Now()
	if kind == "partition" || kind == "pause" {
		// Gossip must find the node again by itself. If it has not after
		// 45 s, say so and heal it as an operator would (POST
		// /api/v1/cluster/join on the victim), so that the run goes on.
		if err := cl.waitHealthy(ctx, 45*time.Second); err != nil {
			f.fail("the cluster did not heal on its own within 45 s after the %s of %s ended (%v); the checker then joined %s to the others through POST /api/v1/cluster/join", kind, f.victim, err, f.victim)
			if err := cl.join(v); err != nil {
				f.note("join: %v", err)
			}
		}
	}
	if err := cl.waitHealthy(ctx, 90*time.Second); err != nil {
		f.recovered = time.Now()
		f.fail("the cluster was not healthy again within 90 s of restoring %s after %s: %v", f.victim, kind, err)
		return f, nil
	}
	f.recovered = time.Now()
	if l, err := cl.leader(); err == nil {
		f.note("leader after recovery: %s", l)
	}
	f.note("injected %s, restored after %v, healthy %v after restoring", f.start.Format("15:04:05.000"),
		f.restored.Sub(f.start).Round(time.Millisecond), f.recovered.Sub(f.restored).Round(time.Millisecond))
	if kind == "partition" {
		cl.healProbe(ctx, f, v)
	}
	cl.setFaulted(f.victim, false)
	cl.logf("fault %s done: %s", kind, strings.Join(f.notes, "; "))
	return f, nil
}

// waitNewLeader polls the survivors' /api/v1/cluster/leader.
func (cl *cluster) waitNewLeader(ctx context.Context, dead string, max time.Duration) (time.Duration, string) {
	start := time.Now()
	for time.Since(start) < max && ctx.Err() == nil {
		for _, n := range cl.nodes {
			if n.name == dead {
				continue
			}
			if l, err := cl.leaderOn(n); err == nil && l.ID != "" && l.ID != dead {
				return time.Since(start), l.ID
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), ""
}

// minorityProbe tries new persistent sessions on the isolated node for the
// length of the partition: each must be refused with CONNACK 0x88.
func (cl *cluster) minorityProbe(ctx context.Context, f *fault, v *node) {
	end := f.start.Add(cl.cfg.isolate)
	refused := 0
	for i := 1; time.Now().Before(end) && ctx.Err() == nil; i++ {
		t0 := time.Now()
		id := fmt.Sprintf("chaos-minority-%d", i)
		c, ca, err := dial(v, id, persistent(10), nil)
		at := t0.Sub(f.start).Round(100 * time.Millisecond)
		switch {
		case err == nil:
			f.minority = append(f.minority, fmt.Sprintf("+%v accepted (session present %v)", at, ca.SessionPresent))
			f.fail("the isolated node %s accepted a new persistent session (%s) %v into the partition", v.name, id, at)
			c.Disconnect(&paho.Disconnect{})
			c.kill()
		case ca != nil:
			f.minority = append(f.minority, fmt.Sprintf("+%v CONNACK %#x after %v", at, ca.ReasonCode, time.Since(t0).Round(100*time.Millisecond)))
			if ca.ReasonCode == 0x88 {
				refused++
			} else {
				f.fail("the isolated node %s answered a new persistent session with CONNACK %#x, want 0x88", v.name, ca.ReasonCode)
			}
		default:
			f.minority = append(f.minority, fmt.Sprintf("+%v no CONNACK: %v", at, err))
		}
		sleep(ctx, time.Until(t0.Add(2*time.Second)))
	}
	if refused == 0 {
		f.fail("the isolated node %s never refused a new persistent session with CONNACK 0x88 during the partition", v.name)
	}
}

// healProbe: after the heal the same node accepts a new persistent session
// (the fence on its boot lifts within a second of NodeUp).
func (cl *cluster) healProbe(ctx context.Context, f *fault, v *node) {
	start := time.Now()
	var last string
	for i := 1; time.Since(start) < 30*time.Second && ctx.Err() == nil; i++ {
		c, ca, err := dial(v, fmt.Sprintf("chaos-healed-%d", i), persistent(10), nil)
		if err == nil {
			f.healedIn = time.Since(f.restored)
			f.note("after the heal %s accepted a new persistent session %v after reconnecting it to the network", v.name, f.healedIn.Round(time.Millisecond))
			c.Disconnect(&paho.Disconnect{})
			c.kill()
			return
		}
		last = err.Error()
		if ca != nil {
			last = fmt.Sprintf("CONNACK %#x", ca.ReasonCode)
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.fail("after the heal %s still refused new persistent sessions 30 s after the cluster was healthy (last: %s)", v.name, last)
}
