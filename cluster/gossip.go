package cluster

// Gossip is a node's membership and route-gossip layer over memberlist
// (DESIGN.md section 5), run by Cluster.
//
// # Routes
//
// This node's routing.LocalRoutes flows out three ways:
//
//   - Delta batches: Announce (called by the announce goroutine every
//     announce interval, or directly) turns the changes since the last
//     announced version into one batch. A batch of at most
//     maxGossipRouteMsg bytes is queued on a memberlist
//     TransmitLimitedQueue and piggybacks on gossip (lossy, unordered); a
//     bigger one goes by SendReliable to every alive member, and when the
//     delta log no longer reaches back, the whole snapshot does.
//   - Pulls: a receiver whose ApplyDelta reports a gap sends the origin a
//     pull request (rate-limited per origin), answered with the origin's
//     snapshot by SendReliable. A node that joins, or restarts with a new
//     boot, is sent this node's snapshot.
//   - Push/pull anti-entropy: LocalState is this node's snapshot and
//     MergeRemoteState applies the remote's with RemoteRoutes.ApplySnapshot,
//     every PushPullInterval and on join.
//
// Since every node only ever sends its own table and RemoteRoutes merges by
// (boot, version), any loss, duplication or reordering is repaired by the
// next pull or push/pull.
//
// # Membership
//
// Members are kept in a table fed by memberlist's EventDelegate. memberlist
// v0.6.0 never sets Node.State on the node it passes to NotifyLeave (the
// state lives in its private nodeState), so a graceful leave is told apart
// by the leaving node itself: Leave first sends every member a leave notice
// by SendReliable, whose receivers drop the node's routes at once; a
// NotifyLeave without a notice (or with a State other than StateLeft, for a
// memberlist that sets it) is a failure, and the routes stay for DeadGrace
// unless the node comes back. Route messages of a node that left, at or
// below the boot it left in, are ignored so that late gossip cannot bring
// its routes back. Suspicion is not visible through memberlist's API; a
// suspect node is reported alive.
//
// # Goroutines and locks
//
// memberlist runs its own goroutines (probe, gossip, push/pull, packet and
// stream handlers); the delegate and event callbacks run on them and never
// block: sends they need are queued on sendq (bounded; a full queue drops
// the send and counts it, and anti-entropy repairs what it carried). Gossip
// adds two long-lived goroutines, both ended by Shutdown: the announcer
// (ticks Announce) and the sender (drains sendq into SendReliable). Dead
// members' grace timers run as time.AfterFunc callbacks. Leave runs one
// short-lived goroutine per member to send the leave notices.
//
// Locks, in order: Gossip.annMu (announce state), then the broadcast
// queue's (memberlist.TransmitLimitedQueue; its GetBroadcasts calls
// NumNodes, which takes Gossip.mu), then Gossip.mu (member table, pulls,
// closed), then the leaf locks of routing.LocalRoutes and
// routing.RemoteRoutes. Neither annMu nor mu is held while calling into
// memberlist itself (Members, SendReliable, Join, Leave).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/routing"
)

const (
	// DefaultDeadGrace is how long a failed node's routes are kept.
	DefaultDeadGrace = 30 * time.Second

	// maxGossipRouteMsg is the largest delta batch that goes by gossip; a
	// bigger one goes by SendReliable (memberlist's packets are ~1400 bytes,
	// less its overheads; Alertmanager uses half a packet).
	maxGossipRouteMsg = 600
	// maxQueuedBroadcasts bounds the broadcast queue: the oldest batches are
	// pruned beyond it (their receivers see a gap and pull).
	maxQueuedBroadcasts = 256
	// sendQueueLen bounds the queue of reliable sends.
	sendQueueLen = 1024
)

// MemberState is a member's state as this node sees it.
type MemberState int

// Member states.
const (
	MemberAlive MemberState = iota
	MemberSuspect
	MemberDead
	MemberLeft
)

func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberDead:
		return "dead"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node of the cluster as seen through gossip. MetaErr is set
// when the node's meta did not decode (Meta is then zero).
type Member struct {
	Name    string
	Addr    string // memberlist host:port
	Meta    NodeMeta
	MetaErr error
	State   MemberState
	Since   time.Time // of the last state change
}

// GossipConfig configures StartGossip.
type GossipConfig struct {
	// NodeID is the memberlist name; it must equal Routes.Node().
	NodeID string
	// BindAddr is the host to listen on (UDP and TCP; default 0.0.0.0),
	// BindPort the port (0 picks a free one; see Gossip.Addr).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort, when set, are what other nodes dial.
	AdvertiseAddr string
	AdvertisePort int
	// Meta is gossiped to the other nodes; Meta.Boot zero means Routes.Boot().
	Meta NodeMeta
	// Routes is this node's route table, Remote where the others' land.
	Routes *routing.LocalRoutes
	Remote *routing.RemoteRoutes
	// DeadGrace is how long a failed node's routes stay (default
	// DefaultDeadGrace).
	DeadGrace time.Duration
	// DeadNodeReclaimTime, when set, lets a node that was dead for that
	// long come back under its name from another address (a restart on a
	// new IP or port); zero keeps memberlist's default (never: the new
	// address is rejected as a conflict while the old state is kept).
	DeadNodeReclaimTime time.Duration
	// Fast shortens probe, gossip, push/pull and announce intervals (tests
	// on loopback).
	Fast bool
	// Logger receives the gossip layer's and memberlist's lines (default
	// slog.Default()).
	Logger *slog.Logger
	// OnAnnounce, when set, also gets every route message Announce makes
	// (a delta batch, or the snapshot when the delta log no longer reaches
	// back): the cluster sends it on its ordered, reliable peer links, so
	// that a route reaches the nodes with a link at once and for sure;
	// gossip remains the path to the others and the repair. It must not
	// block; msg is not reused.
	OnAnnounce func(msg []byte)
	// Key is the cluster key (16, 24 or 32 bytes; nil: none). memberlist
	// encrypts and authenticates every packet and stream with it (AES-GCM)
	// and drops what does not decrypt, so that a node without the key, or
	// with another, cannot join; each drop is counted (KeyRefused) and
	// logged, rate limited (gossip_key.go).
	Key []byte
}

// Gossip is a running memberlist instance with this node's route gossip.
// Methods are safe for concurrent use.
type Gossip struct {
	cfg  GossipConfig
	id   string
	boot uint64
	meta atomic.Pointer[[]byte] // encoded NodeMeta; SetMeta replaces it
	log  *slog.Logger
	ml   *memberlist.Memberlist // set before any goroutine of ours starts
	q    *memberlist.TransmitLimitedQueue

	annMu     sync.Mutex
	announced uint64 // Routes version last handed out. annMu must be held.

	mu      sync.Mutex
	members map[string]*memberEntry // Gossip.mu must be held
	pulls   map[string]time.Time    // last pull request per origin; mu held
	heard   map[string]time.Time    // last route delta or beacon per origin, relayed or not; mu held
	closed  bool                    // mu held

	pullBackoff time.Duration
	sendq       chan sendTask
	stop        chan struct{}
	wg          sync.WaitGroup
	leaving     atomic.Bool
	leaveOnce   sync.Once
	leaveErr    error
	shutOnce    sync.Once
	shutErr     error

	// sendDrops counts reliable sends dropped on a full queue.
	sendDrops atomic.Uint64
	pullsSent atomic.Uint64 // route table pulls: a gap or an unknown node was seen

	keyRefused atomic.Uint64 // messages memberlist dropped for the cluster key
	keyLog     broker.LogLimit
}

// memberEntry is one member. Gossip.mu must be held.
type memberEntry struct {
	m Member
	// node is a copy of memberlist's node, made in its event callbacks
	// (under memberlist's lock): the *Node that Members returns is its live
	// state, which it rewrites when the node comes back at a new address,
	// so reading it for SendReliable would race.
	node    memberlist.Node
	gen     uint64      // bumped on every state change; a grace timer acts only on its own
	timer   *time.Timer // dead grace
	dropped bool        // routes dropped after the grace
}

// sendTask is one reliable send: to a node by name, or to every alive
// member but this node when to is empty.
type sendTask struct {
	to  string
	msg []byte
}

// StartGossip creates the memberlist instance and starts gossiping; Join
// makes it part of a cluster.
func StartGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Routes == nil || cfg.Remote == nil {
		return nil, errors.New("cluster: gossip needs Routes and Remote")
	}
	if cfg.NodeID == "" || cfg.NodeID != cfg.Routes.Node() {
		return nil, fmt.Errorf("cluster: gossip node id %q must be the route table's node %q", cfg.NodeID, cfg.Routes.Node())
	}
	if len(cfg.NodeID) > routing.MaxRouteNodeName {
		return nil, errors.New("cluster: gossip node id too long")
	}
	if cfg.Meta.Boot == 0 {
		cfg.Meta.Boot = cfg.Routes.Boot()
	}
	if cfg.Meta.Boot != cfg.Routes.Boot() {
		return nil, fmt.Errorf("cluster: gossip meta boot %d differs from the route table's %d", cfg.Meta.Boot, cfg.Routes.Boot())
	}
	if cfg.DeadGrace <= 0 {
		cfg.DeadGrace = DefaultDeadGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := checkClusterKey(cfg.Key); err != nil {
		return nil, err
	}
	meta, err := EncodeNodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:     cfg,
		id:      cfg.NodeID,
		boot:    cfg.Meta.Boot,
		log:     cfg.Logger.With("component", "gossip"),
		members: map[string]*memberEntry{},
		pulls:   map[string]time.Time{},
		heard:   map[string]time.Time{},
		sendq:   make(chan sendTask, sendQueueLen),
		stop:    make(chan struct{}),
	}
	g.meta.Store(&meta)

	mc := memberlist.DefaultLANConfig()
	announceEvery, beaconEvery := 50*time.Millisecond, time.Second
	g.pullBackoff = time.Second
	if cfg.Fast {
		mc.TCPTimeout = time.Second
		mc.IndirectChecks = 1
		mc.RetransmitMult = 3
		mc.SuspicionMult = 3
		mc.PushPullInterval = time.Second
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.ProbeInterval = 200 * time.Millisecond
		mc.GossipInterval = 20 * time.Millisecond
		mc.GossipToTheDeadTime = 2 * time.Second
		announceEvery, beaconEvery = 10*time.Millisecond, 200*time.Millisecond
		g.pullBackoff = 100 * time.Millisecond
	}
	mc.Name = cfg.NodeID
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	if cfg.BindAddr != "" {
		mc.BindAddr = cfg.BindAddr
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	if cfg.AdvertisePort != 0 {
		mc.AdvertisePort = cfg.AdvertisePort
	}
	mc.Logger = log.New(gossipLogFilter{g: g,
		next: newHCLog(cfg.Logger, "memberlist").StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})}, "", 0)
	if len(cfg.Key) > 0 {
		mc.SecretKey = bytes.Clone(cfg.Key)
		// Refuse plaintext both ways (the defaults; false is only for
		// moving a running cluster to encryption).
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = gossipDelegate{g}
	mc.Events = gossipEvents{g}
	g.q = &memberlist.TransmitLimitedQueue{NumNodes: g.numAlive, RetransmitMult: mc.RetransmitMult}

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}
	g.ml = ml
	g.wg.Add(2)
	go g.announceLoop(announceEvery, beaconEvery)
	go g.sendLoop()
	return g, nil
}

// SetMeta replaces what this node gossips about itself (its Boot must stay
// the route table's) and pushes it to the others. Safe for concurrent use.
func (g *Gossip) SetMeta(m NodeMeta) error {
	if m.Boot == 0 {
		m.Boot = g.boot
	}
	if m.Boot != g.boot {
		return fmt.Errorf("cluster: gossip meta boot %d differs from the route table's %d", m.Boot, g.boot)
	}
	b, err := EncodeNodeMeta(m)
	if err != nil {
		return err
	}
	g.meta.Store(&b)
	return g.ml.UpdateNode(2 * time.Second)
}

// Addr returns the host:port other nodes join through. Safe for concurrent
// use.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts seeds ("host:port") once and reports how many answered; an
// error means none did. Safe for concurrent use.
func (g *Gossip) Join(seeds []string) (int, error) {
	n, err := g.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("cluster: gossip join: %w", err)
	}
	return n, nil
}

// JoinRetry calls Join with a growing backoff (100 ms to 5 s) until one seed
// answers or ctx ends. Safe for concurrent use.
func (g *Gossip) JoinRetry(ctx context.Context, seeds []string) (int, error) {
	wait := 100 * time.Millisecond
	keyWarned := false
	for {
		n, err := g.Join(seeds)
		if err == nil {
			return n, nil
		}
		if !keyWarned && isGossipKeyError(err.Error()) {
			keyWarned = true
			g.log.Warn("gossip: the seeds refused this node's cluster key, or have another; retrying", "seeds", seeds, "err", err)
		} else {
			g.log.Debug("join failed, retrying", "err", err, "in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Members returns every member seen, this node included, sorted by name.
// Safe for concurrent use.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, e := range g.members {
		out = append(out, e.m)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SendDrops returns how many reliable sends were dropped on a full send
// queue. Safe for concurrent use.
func (g *Gossip) SendDrops() uint64 { return g.sendDrops.Load() }

// Pulls returns how many route table pulls this node sent: each is a gap in
// a node's deltas or a node whose table it did not have, so a count that
// keeps rising means the route tables are slow to converge. Safe for
// concurrent use.
func (g *Gossip) Pulls() uint64 { return g.pullsSent.Load() }

// Announce hands the route changes made since the last call to the other
// nodes: a small delta batch by gossip, a big one or a snapshot by
// SendReliable. The announce goroutine calls it every few milliseconds;
// calling it directly only saves that wait. Safe for concurrent use.
func (g *Gossip) Announce() {
	if g.leaving.Load() {
		return
	}
	g.annMu.Lock()
	defer g.annMu.Unlock()
	r := g.cfg.Routes
	if r.Version() == g.announced {
		return
	}
	from := g.announced
	deltas, ok := r.DeltasSince(from)
	if !ok {
		s := r.Snapshot()
		msg := routing.AppendRouteSnapshot(nil, &s)
		g.enqueue(sendTask{msg: msg})
		g.announced = s.Version
		if g.cfg.OnAnnounce != nil {
			g.cfg.OnAnnounce(msg)
		}
		return
	}
	if len(deltas) == 0 {
		return
	}
	msg := routing.AppendRouteDeltas(nil, g.id, g.boot, from, deltas)
	if len(msg) <= maxGossipRouteMsg {
		g.q.QueueBroadcast(routeBroadcast(msg))
		g.q.Prune(maxQueuedBroadcasts)
	} else {
		g.enqueue(sendTask{msg: msg})
	}
	g.announced = deltas[len(deltas)-1].Version
	if g.cfg.OnAnnounce != nil {
		g.cfg.OnAnnounce(msg)
	}
}

// HandleRouteMessage takes a route message (a delta batch or a snapshot, as
// Announce makes them) that came another way than gossip: the peer link.
// Bad input is dropped. It never blocks. Safe for concurrent use.
func (g *Gossip) HandleRouteMessage(b []byte) {
	if len(b) == 0 || (b[0] != 0x01 && b[0] != 0x02) {
		g.log.Debug("not a route message")
		return
	}
	g.handleMsg(b)
}

// Leave tells the other nodes that this node leaves (they drop its routes at
// once) and leaves the memberlist cluster, waiting up to timeout for the
// leave to be gossiped. Sending the notices may take up to the TCP timeout
// on top. Call Shutdown afterwards. Safe for concurrent use; later calls
// return the first one's result.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.leaveOnce.Do(func() {
		g.leaving.Store(true)
		msg := appendLeave(nil, g.id, g.boot)
		var wg sync.WaitGroup
		for _, n := range g.peers("") {
			wg.Add(1)
			go func(n memberlist.Node) {
				defer wg.Done()
				if err := g.ml.SendReliable(&n, msg); err != nil {
					g.log.Debug("leave notice not sent", "node", n.Name, "err", err)
				}
			}(n)
		}
		wg.Wait()
		if err := g.ml.Leave(timeout); err != nil {
			g.leaveErr = fmt.Errorf("cluster: gossip leave: %w", err)
		}
	})
	return g.leaveErr
}

// Shutdown stops gossiping without telling anyone (the others see a
// failure), ends the announce and send goroutines and stops the grace
// timers. Safe for concurrent use; later calls return the first one's
// result.
func (g *Gossip) Shutdown() error {
	g.shutOnce.Do(func() {
		g.leaving.Store(true)
		close(g.stop)
		g.wg.Wait()
		if err := g.ml.Shutdown(); err != nil {
			g.shutErr = fmt.Errorf("cluster: gossip shutdown: %w", err)
		}
		g.mu.Lock()
		g.closed = true
		for _, e := range g.members {
			if e.timer != nil {
				e.timer.Stop()
				e.timer = nil
			}
		}
		g.mu.Unlock()
	})
	return g.shutErr
}

// Close leaves (waiting up to 2 s) and shuts down. Safe for concurrent use.
func (g *Gossip) Close() error {
	return errors.Join(g.Leave(2*time.Second), g.Shutdown())
}

// HeardWithin reports whether route deltas or a version beacon of node
// (every node gossips one a second) reached this node within d, directly or
// relayed: whether node is on this side of a partition.
func (g *Gossip) HeardWithin(node string, d time.Duration) bool {
	g.mu.Lock()
	at, ok := g.heard[node]
	g.mu.Unlock()
	return ok && time.Since(at) <= d
}

// announceLoop calls Announce every interval, and queues a version beacon
// every beaconEvery, until Shutdown.
func (g *Gossip) announceLoop(every, beaconEvery time.Duration) {
	defer g.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.Announce()
			if time.Since(last) >= beaconEvery {
				last = time.Now()
				g.beacon()
			}
		}
	}
}

// beacon gossips this node's announced (boot, version) as a delta batch with
// no deltas. A receiver behind it sees a gap and pulls, so the loss of the
// last delta batch of a burst (gossip is lossy) is repaired within a beacon
// interval instead of at the next change or push/pull. A newer beacon
// replaces a queued older one.
func (g *Gossip) beacon() {
	if g.leaving.Load() {
		return
	}
	g.annMu.Lock()
	v := g.announced
	g.annMu.Unlock()
	g.q.QueueBroadcast(beaconBroadcast(routing.AppendRouteDeltas(nil, g.id, g.boot, v, nil)))
}

// sendLoop drains sendq into SendReliable until Shutdown.
func (g *Gossip) sendLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case t := <-g.sendq:
			for _, n := range g.peers(t.to) {
				if err := g.ml.SendReliable(&n, t.msg); err != nil {
					g.log.Debug("route message not sent", "node", n.Name, "err", err)
				}
			}
		}
	}
}

// peers returns copies of the alive members but this node (only the one
// named to, unless to is ""), to send to.
func (g *Gossip) peers(to string) []memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []memberlist.Node
	for name, e := range g.members {
		if name == g.id || e.m.State != MemberAlive || (to != "" && name != to) || e.node.Addr == nil {
			continue
		}
		out = append(out, e.node)
	}
	return out
}

// enqueue queues a reliable send, or drops and counts it when the queue is
// full (anti-entropy repairs what it carried). Never blocks.
func (g *Gossip) enqueue(t sendTask) {
	select {
	case g.sendq <- t:
	default:
		g.sendDrops.Add(1)
		g.log.Debug("send queue full, dropping route message", "to", t.to)
	}
}

// numAlive counts the alive members, for the broadcast queue's retransmit
// limit.
func (g *Gossip) numAlive() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, e := range g.members {
		if e.m.State == MemberAlive || e.m.State == MemberSuspect {
			n++
		}
	}
	return max(n, 1)
}

// snapshotMsg returns this node's table, encoded.
func (g *Gossip) snapshotMsg() []byte {
	s := g.cfg.Routes.Snapshot()
	return routing.AppendRouteSnapshot(nil, &s)
}

// accepts reports whether a route message of node in boot should be
// applied: not this node's own, and not from a node that left (or whose
// routes were dropped) in that boot or later, nor older than its meta's
// boot. Gossip.mu must be held.
func (g *Gossip) accepts(node string, boot uint64) bool {
	if node == g.id || g.closed {
		return false
	}
	e := g.members[node]
	if e == nil {
		return true
	}
	if e.m.MetaErr == nil && boot < e.m.Meta.Boot {
		return false
	}
	return !((e.m.State == MemberLeft || e.dropped) && boot <= e.m.Meta.Boot)
}

// handleMsg handles a user message (gossiped or reliable). It never blocks.
func (g *Gossip) handleMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case 0x01:
		d, err := routing.DecodeRouteDeltas(b)
		if err != nil {
			g.log.Debug("bad route delta", "err", err)
			return
		}
		g.mu.Lock()
		ok := g.accepts(d.Node, d.Boot)
		gap := ok && g.cfg.Remote.ApplyDelta(d.Node, d.Boot, d.From, d.Deltas)
		if ok {
			g.heard[d.Node] = time.Now()
		}
		g.mu.Unlock()
		if gap {
			g.requestPull(d.Node)
		}
	case 0x02:
		s, err := routing.DecodeRouteSnapshot(b)
		if err != nil {
			g.log.Debug("bad route snapshot", "err", err)
			return
		}
		g.applySnapshot(s)
	case gossipPullTag:
		node, err := decodePull(b)
		if err != nil {
			g.log.Debug("bad pull", "err", err)
			return
		}
		if node != g.id {
			g.enqueue(sendTask{to: node, msg: g.snapshotMsg()})
		}
	case gossipLeaveTag:
		node, boot, err := decodeLeave(b)
		if err != nil {
			g.log.Debug("bad leave", "err", err)
			return
		}
		g.markLeft(node, boot)
	default:
		g.log.Debug("unknown gossip message", "tag", b[0])
	}
}

// applySnapshot applies a remote node's table, if accepted.
func (g *Gossip) applySnapshot(s routing.RouteSnapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.accepts(s.Node, s.Boot) {
		g.cfg.Remote.ApplySnapshot(s)
	}
}

// requestPull asks node for its snapshot, at most once per pull backoff.
func (g *Gossip) requestPull(node string) {
	g.mu.Lock()
	now := time.Now()
	if last, ok := g.pulls[node]; ok && now.Sub(last) < g.pullBackoff {
		g.mu.Unlock()
		return
	}
	g.pulls[node] = now
	g.mu.Unlock()
	g.pullsSent.Add(1)
	g.enqueue(sendTask{to: node, msg: appendPull(nil, g.id)})
}

// markLeft records that node left gracefully in boot and drops its routes.
func (g *Gossip) markLeft(node string, boot uint64) {
	if node == g.id {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.members[node]
	if e == nil {
		e = &memberEntry{m: Member{Name: node, Meta: NodeMeta{Boot: boot}}}
		g.members[node] = e
	}
	if e.m.MetaErr == nil && boot < e.m.Meta.Boot {
		return // a notice of an older run
	}
	e.m.Meta.Boot = boot
	e.m.MetaErr = nil
	g.setState(e, MemberLeft)
	delete(g.pulls, node)
	if g.cfg.Remote.Drop(node) {
		g.log.Info("node left, routes dropped", "node", node)
	}
}

// setState changes e's state, cancelling its grace timer. Gossip.mu must be
// held.
func (g *Gossip) setState(e *memberEntry, s MemberState) {
	e.gen++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.m.State != s || e.m.Since.IsZero() {
		e.m.State, e.m.Since = s, time.Now()
	}
}

// update records n's address and meta; it reports whether n's boot changed
// (a restarted node). Gossip.mu must be held.
func (g *Gossip) update(n *memberlist.Node) (e *memberEntry, rebooted bool) {
	e = g.members[n.Name]
	if e == nil {
		e = &memberEntry{m: Member{Name: n.Name}}
		g.members[n.Name] = e
	}
	old := e.m.Meta.Boot
	e.node = memberlist.Node{Name: n.Name, Addr: append(net.IP(nil), n.Addr...), Port: n.Port}
	e.m.Addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	meta, err := DecodeNodeMeta(n.Meta)
	e.m.Meta, e.m.MetaErr = meta, err
	if err != nil {
		g.log.Warn("bad node meta", "node", n.Name, "err", err)
	}
	return e, err == nil && meta.Boot != old
}

// gossipDelegate is the memberlist.Delegate; memberlist calls it from its
// goroutines, concurrently.
type gossipDelegate struct{ g *Gossip }

// NodeMeta implements memberlist.Delegate.
func (d gossipDelegate) NodeMeta(limit int) []byte {
	meta := *d.g.meta.Load()
	if len(meta) > limit {
		return nil // EncodeNodeMeta bounds it by MetaMaxSize
	}
	return meta
}

// NotifyMsg implements memberlist.Delegate. b is only read during the call.
func (d gossipDelegate) NotifyMsg(b []byte) { d.g.handleMsg(b) }

// GetBroadcasts implements memberlist.Delegate.
func (d gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.q.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: this node's route snapshot.
func (d gossipDelegate) LocalState(join bool) []byte {
	if d.g.leaving.Load() {
		return nil
	}
	return d.g.snapshotMsg()
}

// MergeRemoteState implements memberlist.Delegate: the remote's snapshot.
func (d gossipDelegate) MergeRemoteState(b []byte, join bool) {
	if len(b) == 0 {
		return
	}
	s, err := routing.DecodeRouteSnapshot(b)
	if err != nil {
		d.g.log.Debug("bad remote state", "err", err)
		return
	}
	d.g.applySnapshot(s)
}

// gossipEvents is the memberlist.EventDelegate; memberlist calls it from
// its goroutines, one call at a time.
type gossipEvents struct{ g *Gossip }

// NotifyJoin implements memberlist.EventDelegate.
func (ev gossipEvents) NotifyJoin(n *memberlist.Node) {
	g := ev.g
	g.mu.Lock()
	e, _ := g.update(n)
	e.dropped = false
	g.setState(e, MemberAlive)
	g.mu.Unlock()
	if n.Name != g.id && !g.leaving.Load() {
		g.enqueue(sendTask{to: n.Name, msg: g.snapshotMsg()})
	}
}

// NotifyUpdate implements memberlist.EventDelegate.
func (ev gossipEvents) NotifyUpdate(n *memberlist.Node) {
	g := ev.g
	g.mu.Lock()
	_, rebooted := g.update(n)
	g.mu.Unlock()
	if rebooted && n.Name != g.id && !g.leaving.Load() {
		g.enqueue(sendTask{to: n.Name, msg: g.snapshotMsg()})
	}
}

// NotifyLeave implements memberlist.EventDelegate: a node that left
// gracefully (notice received, or State StateLeft) loses its routes at
// once; a failed one after DeadGrace unless it comes back first.
func (ev gossipEvents) NotifyLeave(n *memberlist.Node) {
	g := ev.g
	if n.Name == g.id {
		return
	}
	if n.State == memberlist.StateLeft {
		meta, err := DecodeNodeMeta(n.Meta)
		if err == nil {
			g.markLeft(n.Name, meta.Boot)
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e, _ := g.update(n)
	if e.m.State == MemberLeft || e.m.State == MemberDead || g.closed {
		return
	}
	g.setState(e, MemberDead)
	gen := e.gen
	e.timer = time.AfterFunc(g.cfg.DeadGrace, func() { g.graceExpired(n.Name, gen) })
	g.log.Info("node failed, routes kept for the grace period", "node", n.Name, "grace", g.cfg.DeadGrace)
}

// graceExpired drops a failed node's routes if it is still dead in the
// same state change (gen).
func (g *Gossip) graceExpired(node string, gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.members[node]
	if g.closed || e == nil || e.gen != gen || e.m.State != MemberDead {
		return
	}
	e.timer = nil
	e.dropped = true
	if g.cfg.Remote.Drop(node) {
		g.log.Info("failed node's grace expired, routes dropped", "node", node)
	}
}

// routeBroadcast is a delta batch on the broadcast queue; batches never
// replace each other.
type routeBroadcast []byte

// beaconBroadcast is a version beacon; it replaces a queued older one.
type beaconBroadcast []byte

func (b beaconBroadcast) Invalidates(o memberlist.Broadcast) bool {
	_, ok := o.(beaconBroadcast)
	return ok
}
func (b beaconBroadcast) Message() []byte { return b }
func (b beaconBroadcast) Finished()       {}

func (b routeBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b routeBroadcast) Message() []byte                       { return b }
func (b routeBroadcast) Finished()                             {}
func (b routeBroadcast) UniqueBroadcast()                      {}
