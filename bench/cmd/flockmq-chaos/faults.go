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
	slow     string              // slow-link, mixed: the node whose link was degraded
	tbf      bool                // degraded with tbf and iptables (no netem)
	retained map[string][]string // per node, acknowledged retained messages missing after recovery
}

// lossy: the fault takes its victim down or cuts it off, so that what was
// queued on it may be lost (the documented limit). A degraded link loses
// nothing: TCP carries the messages through.
func (f *fault) lossy() bool { return f.kind != "slow-link" }

// hit: node was taken down or cut off by the fault.
func (f *fault) hit(node string) bool {
	return f.lossy() && (f.victim == node || f.victim == "all")
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
	if kind == "leader-kill" || kind == "mixed" {
		f.victim = leader
	} else if kind == "full-restart" {
		f.victim = "all"
	} else if name, ok := strings.CutPrefix(kind, "restart-"); ok {
		f.victim = name
	} else {
		f.victim = cl.pickFollower(leader, usedVictims)
	}
	usedVictims[f.victim] = true
	if kind == "mixed" {
		f.slow = cl.pickFollower(leader, nil)
	}
	v := cl.node(f.victim)
	cl.logf("fault %s: victim %s (leader %s)", kind, f.victim, leader)
	if kind == "full-restart" {
		for _, n := range cl.nodes {
			cl.setFaulted(n.name, true)
		}
	} else {
		cl.setFaulted(f.victim, true)
	}
	f.start = time.Now()
	switch kind {
	case "leader-kill", "follower-kill", "mixed":
		if kind == "mixed" {
			// A degraded link on a follower and, at the same moment, the
			// leader killed: the election runs over the slow link.
			if err := cl.degrade(ctx, f, cl.node(f.slow), true); err != nil {
				return f, err
			}
		}
		cl.mu.Lock()
		cl.kills = append(cl.kills, killRec{node: f.victim, at: time.Now()})
		cl.mu.Unlock()
		if _, err := cl.docker(ctx, "kill", v.container); err != nil {
			return f, err
		}
		if kind != "follower-kill" {
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
		if kind == "mixed" {
			if err := cl.degrade(ctx, f, cl.node(f.slow), false); err != nil {
				return f, err
			}
		}
	case "slow-link":
		if err := cl.degrade(ctx, f, v, true); err != nil {
			return f, err
		}
		sleep(ctx, cl.cfg.slow)
		if err := cl.degrade(ctx, f, v, false); err != nil {
			return f, err
		}
	case "full-restart":
		// Every node at once: SIGTERM to all three, then start them.
		ids := []string{"stop", "--time", "30"}
		cl.mu.Lock()
		for _, n := range cl.nodes {
			ids = append(ids, n.container)
			cl.kills = append(cl.kills, killRec{node: n.name, at: time.Now()})
		}
		cl.mu.Unlock()
		if _, err := cl.docker(ctx, ids...); err != nil {
			return f, err
		}
		ids[0] = "start"
		if _, err := cl.docker(ctx, append(ids[:1:1], ids[3:]...)...); err != nil {
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
	if kind == "full-restart" {
		for _, n := range cl.nodes {
			cl.setFaulted(n.name, false)
		}
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

// degrade turns a degraded link on or off on node v's cluster interface,
// entered through the container's network namespace with nsenter: tc netem
// (delay 100 ms ± 50 ms, loss 5 %) where the kernel has it; otherwise tc tbf
// (1 Mbit/s, up to 200 ms of queue: queueing delay and tail drops) and an
// iptables rule dropping 5 % of the packets each way at random.
func (cl *cluster) degrade(ctx context.Context, f *fault, v *node, on bool) error {
	pid, err := cl.docker(ctx, "inspect", "-f", "{{.State.Pid}}", v.container)
	if err != nil {
		return err
	}
	pid = strings.TrimSpace(pid)
	ns := func(args ...string) (string, error) {
		return runCmd(ctx, cl.cfg.root, nil, 10*time.Second, "nsenter", append([]string{"-t", pid, "-n"}, args...)...)
	}
	out, err := ns("ip", "-o", "-4", "addr", "show")
	if err != nil {
		return fmt.Errorf("nsenter into %s (this fault needs root, nsenter and iproute2): %w", v.name, err)
	}
	dev := ""
	for _, l := range strings.Split(out, "\n") {
		if fl := strings.Fields(l); len(fl) > 3 && strings.HasPrefix(fl[3], v.clusterIP+"/") {
			dev, _, _ = strings.Cut(fl[1], "@")
		}
	}
	if dev == "" {
		return fmt.Errorf("no interface of %s holds %s: %q", v.name, v.clusterIP, out)
	}
	drop := func(op string) [][]string {
		r := []string{"-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"}
		return [][]string{
			append([]string{"iptables", op, "INPUT", "-i", dev}, r...),
			append([]string{"iptables", op, "OUTPUT", "-o", dev}, r...),
		}
	}
	if !on {
		if _, err := ns("tc", "qdisc", "del", "dev", dev, "root"); err != nil {
			return err
		}
		if f.tbf {
			for _, c := range drop("-D") {
				if _, err := ns(c...); err != nil {
					return err
				}
			}
		}
		cl.logf("link of %s (%s) restored", v.name, dev)
		return nil
	}
	if _, err := ns("tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "100ms", "50ms", "loss", "5%"); err == nil {
		f.note("link of %s (%s) degraded with tc netem: delay 100ms ± 50ms, loss 5%%", v.name, dev)
		cl.logf("%s", f.notes[len(f.notes)-1])
		return nil
	} else if !strings.Contains(err.Error(), "qdisc kind is unknown") {
		return err
	}
	if _, err := ns("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "1mbit", "burst", "4kb", "latency", "200ms"); err != nil {
		return err
	}
	f.tbf = true
	for _, c := range drop("-I") {
		if _, err := ns(c...); err != nil {
			return err
		}
	}
	f.note("link of %s (%s) degraded: this kernel has no netem (CONFIG_NET_SCH_NETEM unset), so tc tbf 1mbit with 200ms of queue and iptables dropping 5%% of packets each way at random", v.name, dev)
	cl.logf("%s", f.notes[len(f.notes)-1])
	return nil
}
