package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/routing"
)

// Cluster joins a node's broker to the other nodes (DESIGN.md §5): it
// gossips membership and this node's subscription routes, mirrors the other
// nodes' routes into the broker's trie, carries publishes over one peer link
// per remote node, bootstraps raft from gossip (bootstrap-expect), and, on
// the raft leader, adds the nodes gossip finds to the raft configuration.
//
// Goroutines: gossip's and memberlist's own, the peer listener's (one reader
// per sending node, which delivers forwarded messages into the broker), one
// writer per peer link, the seed join (until it succeeds or Close), and the
// maintenance loop (links, bootstrap, membership, wake-ups of held
// publishers). Close stops them all.
//
// Locks: Cluster.mu guards the node numbering, the drain waits and changes
// to the link table (which Forward reads without a lock: an atomic pointer
// to a copy); it is a leaf, released before any call out. The RemoteRoutes
// hook runs under RemoteRoutes.mu and calls into the broker's trie
// (RemoteRoutes.mu, then Trie.mu); the broker's trie calls LocalRoute under
// Trie.mu, which takes only the leaf lock of LocalRoutes.
type Cluster struct {
	cfg    ClusterConfig
	node   *Node
	id     string
	log    *slog.Logger
	routes *routing.LocalRoutes
	remote *routing.RemoteRoutes
	peerLn net.Listener
	b      *broker.Broker // set by Start

	// gossip and peers are set once by Start; the $SYS publisher and the
	// broker's loops may ask before (Stats, SysTopics, Alive).
	gossipP atomic.Pointer[Gossip]
	peersP  atomic.Pointer[PeerListener]

	mu    sync.Mutex
	index map[string]uint32 // node name -> number; numbers are never reused
	names []string          // number -> node name
	// links is the link table by node number, copied on write so Forward
	// reads it without a lock; nil where no link is open.
	links atomic.Pointer[[]*PeerLink]
	waits map[string]*broker.DrainWait // per sending node; mu held

	inRaft        atomic.Bool
	congested     atomic.Bool       // some link was congested at the last check
	downDone      map[string]uint64 // node -> boot already marked down; maintenance goroutine only
	sentClients   uint64            // client count last gossiped; maintenance goroutine only
	lastReconnect time.Time         // of the last reconnectDead attempt; maintenance goroutine only
	reconnecting  atomic.Bool       // a reconnectDead join is running
	removedMu     sync.Mutex
	removed       map[string]uint64 // node -> boot the operator removed from raft (Remove with force)
	sentMetaAt    time.Time         // maintenance goroutine only
	bootSeen      []string          // bootstrap candidates at the last check; maintenance goroutine only
	fence         fenceState        // maintenance goroutine only (fence.go)
	wasDead       map[string]bool   // members gossip held dead at the last syncLinks; maintenance goroutine only

	fwdDropped atomic.Uint64 // QoS 0 copies dropped on a full link or to a node without one
	badFrames  atomic.Uint64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	leaveOnce sync.Once
}

// ClusterConfig configures NewCluster.
type ClusterConfig struct {
	// Node is this node's raft side, started. Its cluster key
	// (NodeConfig.Key) is the cluster's too: with one, gossip is encrypted
	// and every peer link connection authenticated (clusterkey.go).
	Node *Node
	// BindAddr is the host gossip and the peer link listen on;
	// AdvertiseAddr, when set, the host the others dial.
	BindAddr      string
	AdvertiseAddr string
	// GossipPort and PeerPort (0 picks a free port).
	GossipPort int
	PeerPort   int
	// Join lists seeds host:port to gossip with; joining is retried with
	// backoff until one answers.
	Join []string
	// BootstrapExpect, when > 0 and raft has no state, makes the first
	// BootstrapExpect nodes that see each other (by name order) bootstrap
	// raft together.
	BootstrapExpect int
	// DeadGrace is how long a crashed node's routes are kept.
	DeadGrace time.Duration
	// PeerLink overrides the defaults of the links this node opens
	// (MaxQueueBytes etc.); Node, Boot, Addr, Logger and Key are filled in.
	PeerLink PeerLinkConfig
	// PeerListener, when set, is used instead of listening on
	// BindAddr:PeerPort; the cluster owns it.
	PeerListener net.Listener
	// QuorumFence is how long this node may go without contact with a raft
	// leader (while not the leader itself) before it closes every
	// connection whose session holds a committed claim, with DISCONNECT
	// 0x9C "use another server" (fence.go). It must stay below failure
	// detection (about 4.5 s with memberlist's LAN settings) and the
	// broker's takeover timeout; 0 turns the fence off.
	QuorumFence time.Duration
	// Fast shortens gossip and maintenance intervals (tests).
	Fast bool
	// Version is the software version gossiped in the node's meta.
	Version string
	// AdminAddr is the host:port of the node's admin endpoint, gossiped so
	// that any node's admin API can reach the others ("" = none).
	AdminAddr string
	// Logger receives the cluster's lines (default: the node's).
	Logger *slog.Logger
}

// Voter targets: the raft configuration keeps 3 voters, or 5 once the cluster
// has 5 nodes; further nodes join as non-voters (DESIGN.md §4).
const (
	smallVoters = 3
	largeVoters = 5
)

// NewCluster prepares the cluster side of node: the route tables and the
// peer listener's socket. Pass it to the broker (broker.WithRemote), then
// Start it with the broker.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Node == nil {
		return nil, errors.New("cluster: no node")
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Node.log
	}
	if cfg.DeadGrace <= 0 {
		cfg.DeadGrace = DefaultDeadGrace
	}
	ln := cfg.PeerListener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.PeerPort)))
		if err != nil {
			return nil, fmt.Errorf("cluster: peer link listen: %w", err)
		}
	}
	n := cfg.Node
	c := &Cluster{cfg: cfg, node: n, id: n.id, log: cfg.Logger.With("component", "cluster"),
		routes: routing.NewLocalRoutes(n.id, n.boot, 0), remote: routing.NewRemoteRoutes(), peerLn: ln,
		index: map[string]uint32{}, waits: map[string]*broker.DrainWait{}, downDone: map[string]uint64{},
		stop: make(chan struct{})}
	empty := []*PeerLink{}
	c.links.Store(&empty)
	return c, nil
}

// peerAdvertise is the peer link address the others dial.
func (c *Cluster) peerAdvertise() string {
	host := c.cfg.AdvertiseAddr
	if host == "" {
		host = c.cfg.BindAddr
	}
	_, port, _ := net.SplitHostPort(c.peerLn.Addr().String())
	if host == "" || host == "0.0.0.0" || host == "::" {
		h, _, _ := net.SplitHostPort(c.peerLn.Addr().String())
		host = h
	}
	return net.JoinHostPort(host, port)
}

// Start attaches b, starts gossip and the peer listener, and joins the seeds
// in the background.
func (c *Cluster) Start(b *broker.Broker) error {
	c.b = b
	c.remote.SetHook(c.remoteRoute)
	c.inRaft.Store(c.hasRaftConfig())
	g, err := StartGossip(GossipConfig{NodeID: c.id, BindAddr: c.cfg.BindAddr, BindPort: c.cfg.GossipPort,
		AdvertiseAddr: c.cfg.AdvertiseAddr, Meta: c.meta(), Routes: c.routes, Remote: c.remote,
		DeadGrace: c.cfg.DeadGrace, Fast: c.cfg.Fast, Logger: c.cfg.Logger, OnAnnounce: c.sendRoutes, Key: c.node.cfg.Key})
	if err != nil {
		c.peerLn.Close()
		return err
	}
	c.gossipP.Store(g)
	// After gossip: the peer listener's readers use it.
	c.peersP.Store(ServePeerLinkConfig(c.peerLn, PeerListenerConfig{Logger: c.log, Key: c.node.cfg.Key}, c.deliver))
	c.log.Info("cluster gossip started", "gossip", g.Addr(), "peer", c.peerAdvertise(), "raft", string(c.node.raft.Addr()))
	c.wg.Add(2)
	go c.joinSeeds()
	go c.maintain()
	return nil
}

// Gossip is the node's gossip instance (for status); nil before Start.
func (c *Cluster) Gossip() *Gossip { return c.gossipP.Load() }

// Routes is this node's own route table.
func (c *Cluster) Routes() *routing.LocalRoutes { return c.routes }

// RemoteRoutes is the other nodes' route tables as this node sees them.
func (c *Cluster) RemoteRoutes() *routing.RemoteRoutes { return c.remote }

func (c *Cluster) meta() NodeMeta {
	m := NodeMeta{RaftAddr: string(c.node.raft.Addr()), PeerAddr: c.peerAdvertise(), Boot: c.node.boot, AdminAddr: c.cfg.AdminAddr,
		Version: c.cfg.Version, InRaft: c.inRaft.Load()}
	if c.b != nil {
		m.Clients = uint64(max(0, c.b.Stats().ClientsConnected.Load()))
	}
	return m
}

// joinSeeds joins the configured seeds, retrying with backoff.
func (c *Cluster) joinSeeds() {
	defer c.wg.Done()
	if len(c.cfg.Join) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	defer cancel()
	// A seed that is this node answers for itself: leave it out, and go
	// on until another node is a member.
	self := c.gossipP.Load().Addr()
	var seeds []string
	for _, s := range c.cfg.Join {
		if s != self {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return // the first node: the others join it
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := c.gossipP.Load().JoinRetry(ctx, seeds)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("could not join the cluster", "seeds", seeds, "err", err)
			}
			return
		}
		if len(c.gossipP.Load().Members()) > 1 {
			c.log.Info("joined the cluster", "seeds answered", n)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// number returns the number of node name, assigning one on first sight.
func (c *Cluster) number(name string) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[name]; ok {
		return i
	}
	i := uint32(len(c.names))
	c.index[name] = i
	c.names = append(c.names, name)
	return i
}

// remoteRoute mirrors a remote route into the broker's trie
// (RemoteRoutes.SetHook).
func (c *Cluster) remoteRoute(node, key string, added bool) {
	if err := c.b.RemoteRoute(c.number(node), key, added); err != nil {
		c.log.Warn("remote route refused", "node", node, "filter", key, "err", err)
	}
}

// LocalRoute implements broker.Remote.
func (c *Cluster) LocalRoute(filter string, added bool) {
	if added {
		c.routes.Add(filter)
	} else {
		c.routes.Remove(filter)
	}
}

// framePool holds encoding buffers of forwarded messages.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Forward implements broker.Remote: one copy of m to node over its link. A
// QoS 0 copy is dropped (and counted) when the link is full; a QoS 1/2 copy
// is always queued, and the link reports congestion so that its publisher is
// held.
func (c *Cluster) Forward(node uint32, m *broker.Message, groups []broker.SharedTarget) (congested bool) {
	l := c.link(node)
	if l == nil {
		c.fwdDropped.Add(1) // its routes outlived its link: the node left
		return false
	}
	bp := framePool.Get().(*[]byte)
	frame := appendForward((*bp)[:0], m, groups, time.Now().UnixNano())
	var err error
	if m.QoS == 0 {
		err = l.Send(frame)
	} else {
		err = l.SendAlways(frame)
	}
	*bp = frame[:0]
	framePool.Put(bp)
	if err != nil {
		c.fwdDropped.Add(1)
		if !errors.Is(err, ErrPeerLinkFull) {
			c.log.Warn("message not forwarded", "node", c.name(node), "topic", string(m.Topic), "err", err)
		}
	}
	if l.Congested() {
		c.congested.Store(true)
		return true
	}
	return false
}

// Alive implements broker.Remote: gossip sees node alive (or suspect).
func (c *Cluster) Alive(node string) bool {
	if c.gossipP.Load() == nil {
		return false
	}
	for _, m := range c.gossipP.Load().Members() {
		if m.Name == node {
			return m.State == MemberAlive || m.State == MemberSuspect
		}
	}
	return false
}

// SendSession implements broker.Remote: a session's state (or messages that
// reached its stub) to the node it moved to, on the ordered link behind the
// messages forwarded before.
func (c *Cluster) SendSession(node string, st *broker.SessionState, handover bool) {
	l := c.link(c.number(node))
	if l == nil {
		c.log.Warn("session state not sent: no link to its new node", "client", st.ClientID, "node", node)
		return
	}
	// A large state goes in chunks: the first as the handover (inflight
	// messages come first, and a window is at most 65535), the rest as
	// moved messages behind it.
	kind := frameMoved
	if handover {
		kind = frameHandover
	}
	msgs := st.Messages
	part := *st
	for first := true; first || len(msgs) > 0; first = false {
		n := min(len(msgs), maxStateChunk)
		part.Messages = msgs[:n]
		msgs = msgs[n:]
		frame := appendSessionState(nil, kind, &part, time.Now().UnixNano())
		if err := l.SendAlways(frame); err != nil {
			c.log.Warn("session state not sent", "client", st.ClientID, "node", node, "err", err)
			return
		}
		kind, part.InQoS2 = frameMoved, nil
	}
}

// maxStateChunk is the number of messages per session state frame.
const maxStateChunk = 1 << 16

// link returns the link to node, opening it now when gossip knows the node
// alive but the maintenance goroutine has not opened it yet (routes can
// arrive a little before); nil when there is none to open.
func (c *Cluster) link(node uint32) *PeerLink {
	if links := *c.links.Load(); int(node) < len(links) && links[node] != nil {
		return links[node]
	}
	name := c.name(node)
	if name == "" || c.gossipP.Load() == nil {
		return nil
	}
	for _, m := range c.gossipP.Load().Members() {
		if m.Name == name && m.MetaErr == nil && m.Meta.PeerAddr != "" && (m.State == MemberAlive || m.State == MemberSuspect) {
			return c.openLink(node, m.Meta.PeerAddr)
		}
	}
	return nil
}

// openLink opens the link to node at addr unless one is open, and returns
// the open one.
func (c *Cluster) openLink(node uint32, addr string) *PeerLink {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := *c.links.Load()
	if int(node) < len(cur) && cur[node] != nil {
		return cur[node]
	}
	lc := c.cfg.PeerLink
	lc.Node, lc.Boot, lc.Addr, lc.Dial, lc.Logger, lc.Key = c.id, c.node.boot, addr, nil, c.cfg.Logger, c.node.cfg.Key
	lc.OnDrained = c.b.WakeHeld
	l, err := NewPeerLink(lc)
	if err != nil {
		c.log.Warn("peer link not opened", "node", c.names[node], "addr", addr, "err", err)
		return nil
	}
	next := slices.Clone(cur)
	for int(node) >= len(next) {
		next = append(next, nil)
	}
	next[node] = l
	c.links.Store(&next)
	return l
}

// sendRoutes sends a route message of this node's on every open link
// (Gossip's OnAnnounce).
func (c *Cluster) sendRoutes(msg []byte) {
	frame := make([]byte, 0, 1+len(msg))
	frame = append(append(frame, frameRoutes), msg...)
	for _, l := range *c.links.Load() {
		if l != nil {
			if err := l.SendAlways(frame); err != nil && !errors.Is(err, ErrPeerLinkClosed) {
				c.log.Debug("route message not sent on a link", "err", err)
			}
		}
	}
}

// frameRoutes is a peer-link frame carrying a route message of the
// sender's (routing's delta batch or snapshot encoding).
const frameRoutes byte = 4

// Congested implements broker.Remote.
func (c *Cluster) Congested(node uint32) bool {
	links := *c.links.Load()
	return int(node) < len(links) && links[node] != nil && links[node].Congested()
}

func (c *Cluster) name(node uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(node) < len(c.names) {
		return c.names[node]
	}
	return ""
}

// deliver takes one frame from a sending node (PeerListener).
func (c *Cluster) deliver(from string, frame []byte) {
	if len(frame) == 0 {
		c.badFrame(from, errors.New("empty frame"))
		return
	}
	switch frame[0] {
	case frameForward:
		m, groups, err := decodeForward(frame, time.Now().UnixNano())
		if err != nil {
			c.badFrame(from, err)
			return
		}
		c.mu.Lock()
		w := c.waits[from]
		if w == nil {
			w = &broker.DrainWait{}
			c.waits[from] = w
		}
		c.mu.Unlock()
		c.b.DeliverForwarded(m, groups, w)
		w.Wait(c.b, c.stop) // a congested subscriber holds the sender's publishers back
	case frameRoutes:
		if c.gossipP.Load() != nil {
			c.gossipP.Load().HandleRouteMessage(frame[1:])
		}
	case frameHandover, frameMoved:
		kind, st, err := decodeSessionState(frame, time.Now().UnixNano())
		if err != nil {
			c.badFrame(from, err)
			return
		}
		c.b.AcceptSession(st, kind == frameHandover)
	default:
		c.badFrame(from, fmt.Errorf("unknown frame kind %d", frame[0]))
	}
}

func (c *Cluster) badFrame(from string, err error) {
	if c.badFrames.Add(1) <= 10 {
		c.log.Warn("bad frame from a peer node, dropped", "from", from, "err", err)
	}
}

// ClusterStats are the cluster's counters.
type ClusterStats struct {
	Members        int
	Links          map[string]PeerLinkStats
	Listener       PeerListenerStats // Listener.KeyRefused: peer link connections refused for the cluster key
	LocalRoutes    int
	RemoteNodes    int
	ForwardDropped uint64
	BadFrames      uint64
	// GossipKeyRefused counts gossip packets and streams dropped for the
	// cluster key, RaftKeyRefused raft port connections refused for it.
	GossipKeyRefused uint64
	RaftKeyRefused   uint64
}

// Stats returns the cluster's counters. Safe for concurrent use.
func (c *Cluster) Stats() ClusterStats {
	st := ClusterStats{Links: map[string]PeerLinkStats{}, LocalRoutes: c.routes.Len(), RemoteNodes: c.remote.Len(),
		ForwardDropped: c.fwdDropped.Load(), BadFrames: c.badFrames.Load(), RaftKeyRefused: c.node.raft.KeyRefused()}
	if c.peersP.Load() != nil {
		st.Listener = c.peersP.Load().Stats()
	}
	if c.gossipP.Load() != nil {
		st.Members = len(c.gossipP.Load().Members())
		st.GossipKeyRefused = c.gossipP.Load().KeyRefused()
	}
	links := *c.links.Load()
	for i, l := range links {
		if l != nil {
			st.Links[c.name(uint32(i))] = l.Stats()
		}
	}
	return st
}

// maintain runs the periodic work: links, raft bootstrap and membership,
// and waking held publishers when links drain.
func (c *Cluster) maintain() {
	defer c.wg.Done()
	every, slow := 100*time.Millisecond, 500*time.Millisecond
	if c.cfg.Fast {
		every, slow = 20*time.Millisecond, 100*time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastSlow time.Time
	c.fence.contact, c.fence.tick = time.Now(), time.Now()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.checkFence(time.Now())
		members := c.gossipP.Load().Members()
		c.syncLinks(members)
		if c.congested.Load() {
			still := false
			for _, l := range *c.links.Load() {
				still = still || (l != nil && l.Congested())
			}
			if !still {
				c.congested.Store(false)
				c.b.WakeHeld()
			}
		}
		if time.Since(lastSlow) < slow {
			continue
		}
		lastSlow = time.Now()
		c.syncMeta()
		c.reconnectDead(members)
		if !c.inRaft.Load() {
			c.bootstrap(members)
			continue
		}
		if c.node.raft.State() == raft.Leader {
			c.reconcile(members)
			c.markDown(members)
		}
	}
}

// syncLinks opens a link to every live member with a peer address and
// closes those of members that left or stayed dead past the grace.
func (c *Cluster) syncLinks(members []Member) {
	want := map[uint32]string{}
	for _, m := range members {
		if m.Name == c.id || m.MetaErr != nil || m.Meta.PeerAddr == "" {
			continue
		}
		if m.State == MemberLeft || (m.State == MemberDead && time.Since(m.Since) >= c.cfg.DeadGrace) {
			continue
		}
		want[c.number(m.Name)] = m.Meta.PeerAddr
	}
	c.mu.Lock()
	cur := *c.links.Load()
	next := slices.Clone(cur)
	var closing []*PeerLink
	for i, l := range next {
		addr, ok := want[uint32(i)]
		if l != nil && (!ok || l.cfg.Addr != addr) {
			closing = append(closing, l)
			next[i] = nil
		}
	}
	if len(closing) > 0 {
		c.links.Store(&next)
	}
	c.mu.Unlock()
	for _, l := range closing {
		l.Close()
	}
	for i, addr := range want {
		c.openLink(i, addr)
	}
	// A member alive again after gossip held it dead: its link's
	// connection is likely stale (a partition, a pause); start a new one.
	if c.wasDead == nil {
		c.wasDead = map[string]bool{}
	}
	for _, m := range members {
		dead := m.State == MemberDead
		if c.wasDead[m.Name] && !dead && m.State != MemberLeft {
			if ls := *c.links.Load(); int(c.number(m.Name)) < len(ls) {
				if l := ls[c.number(m.Name)]; l != nil {
					c.log.Info("peer link: member alive again, reconnecting", "node", m.Name)
					l.Reset()
				}
			}
		}
		c.wasDead[m.Name] = dead
	}
}

// hasRaftConfig reports whether raft has a configuration with servers.
func (c *Cluster) hasRaftConfig() bool {
	f := c.node.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// syncMeta gossips InRaft once this node is part of a raft configuration,
// and the client count when it changed (at most every metaEvery).
func (c *Cluster) syncMeta() {
	join := !c.inRaft.Load() && c.hasRaftConfig()
	if join {
		c.inRaft.Store(true)
	}
	clients := uint64(max(0, c.b.Stats().ClientsConnected.Load()))
	if !join && (clients == c.sentClients || time.Since(c.sentMetaAt) < metaEvery) {
		return
	}
	c.sentClients, c.sentMetaAt = clients, time.Now()
	if err := c.gossipP.Load().SetMeta(c.meta()); err != nil {
		c.log.Warn("could not gossip the node's meta", "err", err)
	}
}

// metaEvery is the shortest period of client-count updates in the meta.
const metaEvery = 5 * time.Second

// SysTopics implements broker.Remote: $SYS/cluster/... topics.
func (c *Cluster) SysTopics() [][2]string {
	alive, total := 0, uint64(0)
	var states []string
	if c.gossipP.Load() != nil {
		for _, m := range c.gossipP.Load().Members() {
			states = append(states, m.Name+"="+m.State.String())
			if m.State == MemberAlive || m.State == MemberSuspect {
				alive++
				if m.Name == c.id {
					total += uint64(max(0, c.b.Stats().ClientsConnected.Load()))
				} else {
					total += m.Meta.Clients
				}
			}
		}
	}
	slices.Sort(states)
	_, leader := c.node.raft.LeaderWithID()
	st := c.Stats()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	return [][2]string{
		{"$SYS/cluster/node", c.id},
		{"$SYS/cluster/nodes", strings.Join(states, ",")},
		{"$SYS/cluster/nodes/alive", strconv.Itoa(alive)},
		{"$SYS/cluster/clients/connected", u(total)},
		{"$SYS/cluster/raft/state", c.node.raft.State().String()},
		{"$SYS/cluster/raft/leader", string(leader)},
		{"$SYS/cluster/routes/local", strconv.Itoa(st.LocalRoutes)},
		{"$SYS/cluster/routes/nodes", strconv.Itoa(st.RemoteNodes)},
		{"$SYS/cluster/messages/forwarded/in", u(st.Listener.Delivered)},
		{"$SYS/cluster/messages/forward/dropped", u(st.ForwardDropped)},
	}
}

// bootstrap makes the first BootstrapExpect nodes that see each other, none
// of them in a raft cluster yet, bootstrap raft together: each computes the
// same server list (the first BootstrapExpect alive members by name) and
// bootstraps once that list is the same at two checks in a row. A node
// outside the list, or one that sees a member already in raft, waits for the
// leader to add it.
func (c *Cluster) bootstrap(members []Member) {
	if c.cfg.BootstrapExpect <= 0 {
		return
	}
	var alive []Member
	for _, m := range members {
		if m.State != MemberAlive || m.MetaErr != nil || m.Meta.RaftAddr == "" {
			continue
		}
		if m.Meta.InRaft && m.Name != c.id {
			return // a cluster exists: its leader adds this node
		}
		alive = append(alive, m)
	}
	if len(alive) < c.cfg.BootstrapExpect {
		return
	}
	slices.SortFunc(alive, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	alive = alive[:c.cfg.BootstrapExpect]
	names := make([]string, len(alive))
	self := false
	for i, m := range alive {
		names[i] = m.Name
		self = self || m.Name == c.id
	}
	stable := slices.Equal(names, c.bootSeen)
	c.bootSeen = names
	if !self || !stable {
		return
	}
	var servers []raft.Server
	for _, m := range alive {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Meta.RaftAddr)})
	}
	if err := c.node.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		if !errors.Is(err, raft.ErrCantBootstrap) {
			c.log.Warn("raft bootstrap failed", "servers", names, "err", err)
		}
		return
	}
	c.log.Info("raft bootstrapped through gossip", "servers", names)
	c.syncMeta()
}

// reconcile, on the leader, adds the live members gossip knows and raft does
// not (voters up to the target, then non-voters), updates the address of a
// member that came back elsewhere, and promotes live non-voters while voters
// are short. It never removes a server: that is the operator's decision.
func (c *Cluster) reconcile(members []Member) {
	c.forgetRemoved(members)
	f := c.node.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	inConfig := map[string]raft.Server{}
	voters := 0
	for _, s := range servers {
		inConfig[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	alive := 0
	for _, m := range members {
		if m.State == MemberAlive {
			alive++
		}
	}
	target := smallVoters
	if max(alive, len(servers)) >= largeVoters {
		target = largeVoters
	}
	for _, m := range members {
		if m.State != MemberAlive || m.MetaErr != nil || m.Meta.RaftAddr == "" || m.Name == c.id {
			continue
		}
		if c.wasRemoved(m.Name, m.Meta.Boot) {
			continue
		}
		s, known := inConfig[m.Name]
		switch {
		case !known:
			voter := voters < target
			if err := c.node.Join(m.Name, m.Meta.RaftAddr, voter); err != nil {
				c.log.Warn("could not add a node to raft", "node", m.Name, "err", err)
				continue
			}
			if voter {
				voters++
			}
			c.log.Info("node added to raft", "node", m.Name, "addr", m.Meta.RaftAddr, "voter", voter)
		case string(s.Address) != m.Meta.RaftAddr:
			if err := c.node.Join(m.Name, m.Meta.RaftAddr, s.Suffrage == raft.Voter); err != nil {
				c.log.Warn("could not update a node's raft address", "node", m.Name, "err", err)
				continue
			}
			c.log.Info("node's raft address updated", "node", m.Name, "addr", m.Meta.RaftAddr)
		case s.Suffrage != raft.Voter && voters < target:
			if err := c.node.Join(m.Name, string(s.Address), true); err != nil {
				c.log.Warn("could not promote a node to voter", "node", m.Name, "err", err)
				continue
			}
			voters++
			c.log.Info("node promoted to voter", "node", m.Name)
		}
	}
}

// markDown, on the leader, marks the sessions of a node that gossip reports
// dead or gone disconnected with their owner down (fsm.NodeDown), once per
// boot of that node: the leader's housekeeping then publishes their wills
// and expires them, and their clients may resume them elsewhere. A node
// declared dead that is alive again in the same boot (a partition, a long
// pause) gets NodeUp, so that it can claim sessions again.
func (c *Cluster) markDown(members []Member) {
	for _, m := range members {
		if m.Name == c.id || m.MetaErr != nil {
			continue
		}
		switch m.State {
		case MemberDead, MemberLeft:
			if c.downDone[m.Name] == m.Meta.Boot || c.node.fsm.BootDown(m.Name, m.Meta.Boot) {
				continue
			}
			c.downDone[m.Name] = m.Meta.Boot
			c.node.markNodeDown(m.Name, m.Meta.Boot)
		case MemberAlive:
			if c.node.fsm.BootDown(m.Name, m.Meta.Boot) {
				delete(c.downDone, m.Name)
				c.node.markNodeUp(m.Name, m.Meta.Boot)
			}
		}
	}
}

// Leave leaves the cluster gracefully: leadership moves to another voter if
// this node leads, and gossip tells the others, who drop this node's routes
// at once. Call it before stopping the broker. Safe for concurrent use.
func (c *Cluster) Leave(timeout time.Duration) {
	c.leaveOnce.Do(func() {
		if c.node.raft.State() == raft.Leader && c.hasOtherVoter() {
			if err := c.node.TransferLeadership(); err != nil {
				c.log.Warn("leadership transfer failed", "err", err)
			} else {
				c.log.Info("leadership transferred")
			}
		}
		if c.gossipP.Load() != nil {
			if err := c.gossipP.Load().Leave(timeout); err != nil {
				c.log.Warn("gossip leave", "err", err)
			}
		}
	})
}

func (c *Cluster) hasOtherVoter() bool {
	f := c.node.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != c.id {
			return true
		}
	}
	return false
}

// Close stops gossip, the links and the listener. Unacknowledged frames on
// the links are dropped. Safe for concurrent use.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		if c.gossipP.Load() != nil {
			_ = c.gossipP.Load().Shutdown()
		}
		for _, l := range *c.links.Load() {
			if l != nil {
				l.Close()
			}
		}
		if c.peersP.Load() != nil {
			c.peersP.Load().Close()
		} else {
			c.peerLn.Close()
		}
	})
	return nil
}

var _ broker.Remote = (*Cluster)(nil)

// Remove takes node out of raft, the operator's call (leader only). A node
// that gossip reports alive is refused unless force is set: a live node
// should leave by itself (SIGTERM), or it would be added back at once. With
// force it is kept out until it starts again (a new boot), on this leader.
// Safe for concurrent use.
func (c *Cluster) Remove(node string, force bool) error {
	var boot uint64
	if g := c.gossipP.Load(); g != nil {
		for _, m := range g.Members() {
			if m.Name == node && m.State == MemberAlive {
				if !force {
					return fmt.Errorf("%w: %s is alive; stop it, or force the removal", ErrNodeAlive, node)
				}
				boot = m.Meta.Boot
			}
		}
	}
	if err := c.node.Remove(node); err != nil {
		return err
	}
	if boot != 0 {
		c.removedMu.Lock()
		if c.removed == nil {
			c.removed = map[string]uint64{}
		}
		c.removed[node] = boot
		c.removedMu.Unlock()
	}
	return nil
}

// ErrNodeAlive is returned by Remove for a live node without force.
var ErrNodeAlive = errors.New("cluster: node is alive")

// wasRemoved reports whether the operator removed node in this boot.
func (c *Cluster) wasRemoved(node string, boot uint64) bool {
	c.removedMu.Lock()
	defer c.removedMu.Unlock()
	b, ok := c.removed[node]
	return ok && b == boot
}

// forgetRemoved drops the removals of nodes that started again.
func (c *Cluster) forgetRemoved(members []Member) {
	c.removedMu.Lock()
	defer c.removedMu.Unlock()
	for _, m := range members {
		if b, ok := c.removed[m.Name]; ok && m.Meta.Boot != b && m.Meta.Boot != 0 {
			delete(c.removed, m.Name)
		}
	}
}

// reconnectEvery is how often a node tries to join the members gossip holds
// dead: after a partition longer than failure detection each side holds the
// other dead, memberlist contacts no dead member by itself, and the cluster
// would stay split although the network healed (as Serf's reconnect does).
const reconnectEvery = 5 * time.Second

// reconnectDead joins the members gossip reports dead, at most every
// reconnectEvery, on a goroutine of its own (a join waits for the TCP
// push/pull, which a still unreachable node lets time out). Maintenance
// goroutine only.
func (c *Cluster) reconnectDead(members []Member) {
	every := reconnectEvery
	if c.cfg.Fast {
		every = time.Second
	}
	if time.Since(c.lastReconnect) < every {
		return
	}
	c.lastReconnect = time.Now()
	var addrs []string
	for _, m := range members {
		if m.State == MemberDead && m.Name != c.id && m.Addr != "" {
			addrs = append(addrs, m.Addr)
		}
	}
	if len(addrs) == 0 || !c.reconnecting.CompareAndSwap(false, true) {
		return
	}
	g := c.gossipP.Load()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.reconnecting.Store(false)
		if n, err := g.Join(addrs); n > 0 {
			c.log.Info("gossip: reached members held dead again", "members", addrs, "answered", n)
		} else if err != nil {
			c.log.Debug("gossip: members held dead still unreachable", "members", addrs, "err", err)
		}
	}()
}
