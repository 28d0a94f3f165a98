package routing

// Cluster subscription routes: which nodes have at least one local
// subscription whose filter may match a topic.
//
// # The CRDT
//
// Every node is the single writer of its own route table, a LocalRoutes: the
// set of filters it has at least one local subscription to. Many
// subscriptions to one filter are one route (refcounted locally), so the table
// changes only when a filter gains its first subscriber or loses its last.
// Each change bumps the table's version, and the table carries the node's
// boot id, a number that grows with every start of the node. A table state is
// therefore (node, boot, version, filters), and its order is the
// lexicographic order of (boot, version): a restarted node's first table
// (new boot, version 0, empty) is newer than anything its previous run wrote.
//
// Every other node keeps a RemoteRoutes: for each remote node, the newest
// (boot, version, filters) it has seen. Merging two states of one node keeps
// the one with the larger (boot, version) pair; since only the owner writes
// and it never reuses a pair, this merge is commutative, associative and
// idempotent: a state-based CRDT (a map of last-writer-wins registers keyed by
// node) that converges whatever the order, loss or duplication of messages,
// as long as anti-entropy eventually delivers each node's latest state.
//
// Two kinds of messages carry it:
//
//   - Deltas: each change is a RouteDelta (filter, added or removed, version)
//     kept in a bounded log of the last LocalRoutes.LogSize changes. A peer
//     known to hold version v is sent DeltasSince(v), a batch starting at
//     v+1. RemoteRoutes.ApplyDelta applies a batch only when it continues the
//     held state (same boot, starts at or before held+1); an older or duplicate
//     batch is ignored, and a batch from a newer boot (not starting at 0) or
//     past a gap reports gap, and the caller pulls a snapshot.
//   - Snapshots: the whole table, for anti-entropy and for peers older than
//     the delta log. RemoteRoutes.ApplySnapshot replaces the held table when
//     the snapshot's (boot, version) is larger. Digest lists the (boot,
//     version) held per node, for push/pull comparison.
//
// # Shared subscriptions
//
// A shared subscription routes as "$share/{group}/{filter}" ($queue/{filter}
// as $share/$queue/{filter}): the group is part of the route key, so every
// node knows which nodes have members of which group. The node where a
// message enters picks one member per matching group cluster-wide, a local
// session or a remote node, and tells a remote node which groups it is to
// serve (one of its own members each); see the broker's remote deliveries.
// Nodes indexes a shared route under its topic filter, so it answers "which
// nodes may need this message" for plain and shared routes alike.
//
// # Mirroring into the broker's trie
//
// SetHook installs a function called, under the write lock, for every route
// a remote node gains or loses (node, route key, added). The cluster layer
// uses it to keep remote nodes as subscribers in the broker's local trie, so
// that one match finds local sessions, remote nodes and shared group members
// on both.
//
// # Bounds
//
// A LocalRoutes keeps one entry per distinct filter plus a delta log of at
// most LogSize entries (DefaultRouteLogSize unless set). A RemoteRoutes
// keeps, per remote node, one set entry per filter and a shared trie of
// filter levels whose nodes list the remote nodes that route each filter, so
// Nodes costs O(levels of the topic), not O(filters). The wire format
// (routes_wire.go) bounds names, filters and counts and never panics on
// peer input.
//
// # Purity
//
// Everything here is values and maps: no I/O, no goroutines, no timers. The
// cluster package gossips announcements, sends delta batches and snapshots
// over memberlist or the peer link, runs the anti-entropy push/pull and
// drops the routes of nodes that leave.

import (
	"slices"
	"strings"
	"sync"
)

// DefaultRouteLogSize is the number of recent deltas a LocalRoutes keeps for
// peers that are behind; a peer further behind gets a snapshot.
const DefaultRouteLogSize = 4096

// RouteDelta is one change to a node's route table: Filter gained its first
// local subscriber (Add) or lost its last (!Add), taking the table to
// Version.
type RouteDelta struct {
	Filter  string
	Add     bool
	Version uint64
}

// RouteSnapshot is a whole route table: the filters Node routes at (Boot,
// Version), sorted and without duplicates.
type RouteSnapshot struct {
	Node    string
	Boot    uint64
	Version uint64
	Filters []string
}

// RouteVersion is the (boot, version) of one node's table, for digests.
type RouteVersion struct {
	Node    string
	Boot    uint64
	Version uint64
}

// newer reports whether (boot, version) is larger than (hb, hv).
func newer(boot, version, hb, hv uint64) bool {
	return boot > hb || (boot == hb && version > hv)
}

// routeFilter is the route key of a subscription filter: the filter itself
// for a plain subscription, "$share/{group}/{topic filter}" for a shared one
// ($queue/{f} is $share/$queue/{f}), so that the nodes serving a group are
// known cluster-wide. It reports false for an invalid filter.
func routeFilter(filter string) (string, bool) {
	pf, err := parseFilter(filter)
	if err != nil {
		return "", false
	}
	if !pf.shared {
		return pf.topic, true
	}
	if strings.HasPrefix(filter, QueuePrefix) {
		return "$share/" + QueueGroup + "/" + pf.topic, true
	}
	return filter, true
}

// routeTopic is the topic filter part of a route key.
func routeTopic(key string) string {
	pf, err := parseFilter(key)
	if err != nil {
		return key
	}
	return pf.topic
}

// LocalRoutes is this node's own route table: the refcounted set of filters
// with at least one local subscription, its version, and a bounded log of
// recent deltas. It is the single writer of the node's routes. Safe for
// concurrent use (one mutex, a leaf lock).
type LocalRoutes struct {
	mu      sync.Mutex
	node    string
	boot    uint64
	version uint64
	refs    map[string]int // route filter -> local subscriptions
	log     []RouteDelta   // ring of the last len(log) deltas
	head    int            // index of the oldest delta in log
	n       int            // deltas held in log
}

// NewLocalRoutes returns the empty table (version 0) of node in its boot
// boot, keeping the last logSize deltas (DefaultRouteLogSize when logSize <=
// 0). boot must grow with every start of the node (a start counter kept in
// the data directory, or a timestamp), or peers keep the previous run's routes.
func NewLocalRoutes(node string, boot uint64, logSize int) *LocalRoutes {
	if logSize <= 0 {
		logSize = DefaultRouteLogSize
	}
	return &LocalRoutes{node: node, boot: boot, refs: map[string]int{}, log: make([]RouteDelta, logSize)}
}

// Node returns the node name. Safe for concurrent use.
func (l *LocalRoutes) Node() string { return l.node }

// Boot returns the boot id. Safe for concurrent use.
func (l *LocalRoutes) Boot() uint64 { return l.boot }

// LogSize returns how many deltas the table keeps. Safe for concurrent use.
func (l *LocalRoutes) LogSize() int { return len(l.log) }

// Version returns the current version. Safe for concurrent use.
func (l *LocalRoutes) Version() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version
}

// Len returns the number of routed filters. Safe for concurrent use.
func (l *LocalRoutes) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.refs)
}

// Add counts one more local subscription to filter (plain, $share/{group}/
// or $queue/, keyed by routeFilter) and reports whether that added a
// route, which bumps the version and logs a delta. An invalid filter is
// ignored. Safe for concurrent use.
func (l *LocalRoutes) Add(filter string) (changed bool) {
	f, ok := routeFilter(filter)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.refs[f]
	if c > 0 {
		l.refs[f] = c + 1
		return false
	}
	f = strings.Clone(f) // do not pin the caller's filter
	l.refs[f] = 1
	l.record(f, true)
	return true
}

// Remove counts one local subscription to filter less and reports whether
// that removed the route (its last subscription), which bumps the version and
// logs a delta. Removing a filter with no subscription is a no-op. Safe for
// concurrent use.
func (l *LocalRoutes) Remove(filter string) (changed bool) {
	f, ok := routeFilter(filter)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.refs[f]
	if !ok {
		return false
	}
	if c > 1 {
		l.refs[f] = c - 1
		return false
	}
	delete(l.refs, f)
	l.record(f, false)
	return true
}

// record bumps the version and logs the delta, dropping the oldest when the
// log is full. Lock must be held.
func (l *LocalRoutes) record(f string, add bool) {
	l.version++
	d := RouteDelta{Filter: f, Add: add, Version: l.version}
	if l.n < len(l.log) {
		l.log[(l.head+l.n)%len(l.log)] = d
		l.n++
		return
	}
	l.log[l.head] = d // overwrite the oldest
	l.head = (l.head + 1) % len(l.log)
}

// Snapshot returns the whole table: node, boot, version and the sorted
// filters. Safe for concurrent use.
func (l *LocalRoutes) Snapshot() RouteSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := make([]string, 0, len(l.refs))
	for f := range l.refs {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return RouteSnapshot{Node: l.node, Boot: l.boot, Version: l.version, Filters: fs}
}

// DeltasSince returns the deltas that take a peer holding version v of this
// boot to the current version, in order (v+1 first; none when v is current).
// ok is false when the log no longer reaches back to v+1, or v is ahead of
// this table (a peer holding another boot's state): send a Snapshot then.
// Safe for concurrent use.
func (l *LocalRoutes) DeltasSince(v uint64) (deltas []RouteDelta, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v > l.version {
		return nil, false
	}
	missing := l.version - v
	if missing > uint64(l.n) {
		return nil, false
	}
	if missing == 0 {
		return nil, true
	}
	deltas = make([]RouteDelta, missing)
	start := l.head + l.n - int(missing)
	for i := range deltas {
		deltas[i] = l.log[(start+i)%len(l.log)]
	}
	return deltas, true
}

// RemoteRoutes is the union of the other nodes' route tables: per node the
// newest (boot, version, filters) seen, plus a trie of filter levels whose
// nodes list the remote nodes routing each filter. Nodes is safe for
// concurrent use and takes the read lock, so every event loop matches in
// parallel; the Apply methods and Drop take the write lock. RemoteRoutes.mu
// is a leaf lock.
type RemoteRoutes struct {
	mu    sync.RWMutex
	nodes map[string]*remoteTable
	root  rlevel
	hook  func(node, key string, added bool) // see SetHook; mu held for writing
}

// SetHook installs fn, called with the write lock held for every route a
// remote node gains (added) or loses, by any Apply, Drop or snapshot. fn
// must not call back into r; locks it takes come after RemoteRoutes.mu in
// the lock order. Call it before the first Apply. Safe for concurrent use.
func (r *RemoteRoutes) SetHook(fn func(node, key string, added bool)) {
	r.mu.Lock()
	r.hook = fn
	r.mu.Unlock()
}

// remoteTable is one remote node's table. RemoteRoutes.mu must be held.
type remoteTable struct {
	name    string // the one copy of the node name the trie refers to
	boot    uint64
	version uint64
	filters map[string]struct{}
}

// rlevel is one level of the remote route trie: literal children, one '+'
// and one '#' child. RemoteRoutes.mu must be held.
type rlevel struct {
	lits map[string]*rnode
	plus *rnode
	hash *rnode // never has a next level
}

// rnode is one filter level; nodes lists the remote nodes whose table has
// a route ending here, once per route key (a node with a plain and a shared
// route on the filter is listed twice), unordered. RemoteRoutes.mu must be
// held.
type rnode struct {
	next  *rlevel
	nodes []string
}

// NewRemoteRoutes returns an empty view.
func NewRemoteRoutes() *RemoteRoutes {
	return &RemoteRoutes{nodes: map[string]*remoteTable{}}
}

// ApplyDelta applies a batch of node's deltas that starts from version (so
// d[i].Version is version+1+i) in boot boot. It applies only what continues
// the held state: a batch of the held boot that starts at or before the held
// version applies from held+1 on (so duplicates and overlaps are
// idempotent), and a batch from version 0 of a newer boot (or of a node not
// held) replaces the table with the empty table of that boot first. A batch
// of an older boot, or entirely at or below the held version, is ignored. A
// batch past a gap, from a newer boot not starting at 0, or whose versions
// are not contiguous, changes nothing and reports gap: the caller pulls a
// snapshot (or the missing deltas). Safe for concurrent use.
func (r *RemoteRoutes) ApplyDelta(node string, boot, version uint64, d []RouteDelta) (gap bool) {
	for i := range d {
		if d[i].Version != version+1+uint64(i) {
			return true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.nodes[node]
	switch {
	case t == nil || boot > t.boot:
		if version != 0 {
			return true
		}
		if t != nil {
			r.clearTable(t)
		}
		t = &remoteTable{name: strings.Clone(node), boot: boot, filters: map[string]struct{}{}}
		r.nodes[t.name] = t
	case boot < t.boot:
		return false // an older run of the node
	}
	if version > t.version {
		return true
	}
	end := version + uint64(len(d))
	if end <= t.version {
		return false // stale or duplicate
	}
	for _, x := range d[t.version-version:] {
		if x.Add {
			r.addRoute(t, x.Filter)
		} else {
			r.removeRoute(t, x.Filter)
		}
	}
	t.version = end
	return false
}

// ApplySnapshot replaces s.Node's table with s when (s.Boot, s.Version) is
// larger than the held pair, or no table is held, and reports whether it
// did. Only the filters that differ touch the trie. s.Filters need not be
// sorted; duplicates count once. Safe for concurrent use.
func (r *RemoteRoutes) ApplySnapshot(s RouteSnapshot) (applied bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.nodes[s.Node]
	if t != nil && !newer(s.Boot, s.Version, t.boot, t.version) {
		return false
	}
	next := make(map[string]struct{}, len(s.Filters))
	for _, f := range s.Filters {
		next[f] = struct{}{}
	}
	if t == nil {
		t = &remoteTable{name: strings.Clone(s.Node), filters: map[string]struct{}{}}
		r.nodes[t.name] = t
	}
	for f := range t.filters {
		if _, ok := next[f]; !ok {
			r.removeRoute(t, f)
		}
	}
	for f := range next {
		r.addRoute(t, f) // a no-op for the filters already held
	}
	t.boot, t.version = s.Boot, s.Version
	return true
}

// Drop forgets node's table and routes, for a node that left gracefully or
// stayed dead past the grace period, and reports whether a table was held.
// The caller must not feed the node's older messages back afterwards: they
// would bring its table back. Safe for concurrent use.
func (r *RemoteRoutes) Drop(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.nodes[node]
	if t == nil {
		return false
	}
	r.clearTable(t)
	delete(r.nodes, node)
	return true
}

// Digest returns the (boot, version) held for each remote node, sorted by
// node, for anti-entropy: a peer compares it with its own view and sends
// snapshots or deltas for the nodes where it is ahead. Safe for concurrent
// use.
func (r *RemoteRoutes) Digest() []RouteVersion {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]RouteVersion, 0, len(r.nodes))
	for _, t := range r.nodes {
		out = append(out, RouteVersion{Node: t.name, Boot: t.boot, Version: t.version})
	}
	slices.SortFunc(out, func(a, b RouteVersion) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// Table returns the table held for node as a snapshot (sorted filters), and
// whether one is held. Safe for concurrent use.
func (r *RemoteRoutes) Table(node string) (RouteSnapshot, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := r.nodes[node]
	if t == nil {
		return RouteSnapshot{}, false
	}
	fs := make([]string, 0, len(t.filters))
	for f := range t.filters {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return RouteSnapshot{Node: t.name, Boot: t.boot, Version: t.version, Filters: fs}, true
}

// Len returns the number of remote nodes held. Safe for concurrent use.
func (r *RemoteRoutes) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.nodes)
}

// clearTable removes every route of t from the trie and empties t.
// RemoteRoutes.mu must be held for writing.
func (r *RemoteRoutes) clearTable(t *remoteTable) {
	for f := range t.filters {
		r.root.remove(routeTopic(f), t.name)
		if r.hook != nil {
			r.hook(t.name, f, false)
		}
	}
	clear(t.filters)
}

// addRoute adds filter f to t and the trie, unless t has it.
// RemoteRoutes.mu must be held for writing.
func (r *RemoteRoutes) addRoute(t *remoteTable, f string) {
	if _, ok := t.filters[f]; ok {
		return
	}
	f = strings.Clone(f)
	t.filters[f] = struct{}{}
	// One entry per route key: a node routing "a/b" and "$share/g/a/b"
	// appears twice here, and Nodes reports it once.
	n := r.root.insert(routeTopic(f))
	n.nodes = append(n.nodes, t.name)
	if r.hook != nil {
		r.hook(t.name, f, true)
	}
}

// removeRoute removes filter f from t and the trie, if t has it.
// RemoteRoutes.mu must be held for writing.
func (r *RemoteRoutes) removeRoute(t *remoteTable, f string) {
	if _, ok := t.filters[f]; !ok {
		return
	}
	delete(t.filters, f)
	r.root.remove(routeTopic(f), t.name)
	if r.hook != nil {
		r.hook(t.name, f, false)
	}
}

// get returns the child for one filter level, or nil. RemoteRoutes.mu must
// be held.
func (l *rlevel) get(tok string) *rnode {
	switch tok {
	case "+":
		return l.plus
	case "#":
		return l.hash
	}
	return l.lits[tok]
}

// insert returns the node of filter f, creating the levels on the way.
// RemoteRoutes.mu must be held for writing.
func (l *rlevel) insert(f string) *rnode {
	for {
		tok, rest, more := nextLevel(f)
		n := l.get(tok)
		if n == nil {
			n = &rnode{}
			switch tok {
			case "+":
				l.plus = n
			case "#":
				l.hash = n
			default:
				if l.lits == nil {
					l.lits = map[string]*rnode{}
				}
				l.lits[tok] = n
			}
		}
		if !more {
			return n
		}
		if n.next == nil {
			n.next = &rlevel{}
		}
		l, f = n.next, rest
	}
}

// remove takes node off filter f and prunes the levels left empty.
// RemoteRoutes.mu must be held for writing.
func (l *rlevel) remove(f, node string) {
	tok, rest, more := nextLevel(f)
	n := l.get(tok)
	if n == nil {
		return
	}
	if more {
		if n.next != nil {
			n.next.remove(rest, node)
			if n.next.empty() {
				n.next = nil
			}
		}
	} else if i := slices.Index(n.nodes, node); i >= 0 {
		last := len(n.nodes) - 1
		n.nodes[i] = n.nodes[last]
		n.nodes[last] = ""
		n.nodes = n.nodes[:last]
		if last == 0 {
			n.nodes = nil
		}
	}
	if len(n.nodes) == 0 && n.next == nil {
		switch tok {
		case "+":
			l.plus = nil
		case "#":
			l.hash = nil
		default:
			delete(l.lits, tok)
			if len(l.lits) == 0 {
				l.lits = nil
			}
		}
	}
}

func (l *rlevel) empty() bool { return len(l.lits) == 0 && l.plus == nil && l.hash == nil }

// Nodes appends to dst, and returns, the remote nodes with at least one
// filter matching topic, each once (in no particular order). Matching is the
// Trie's (see Trie.Match): '+' one level, '#' the parent level and all
// below, no leading wildcard for '$' topics [MQTT-4.7.2-1]. topic is a valid
// topic name and is only read during the call. The cost is O(levels of the
// topic) trie steps; a dst with room makes it allocation-free. Safe for
// concurrent use (takes the read lock).
func (r *RemoteRoutes) Nodes(topic []byte, dst []string) []string {
	if len(topic) == 0 {
		return dst
	}
	var tsa [maxStackLevels][]byte
	toks := splitLevels(tsa[:0], topic)
	base := len(dst)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if topic[0] != '$' {
		return rmatchLevel(&r.root, toks, dst, base)
	}
	// [MQTT-4.7.2-1]: only the literal first level for a '$' topic.
	n := r.root.lits[string(toks[0])]
	if n == nil {
		return dst
	}
	if len(toks) == 1 {
		return n.collectTail(dst, base)
	}
	if n.next != nil {
		dst = rmatchLevel(n.next, toks[1:], dst, base)
	}
	return dst
}

// rmatchLevel is matchLevel for the remote trie: it appends the nodes of
// every node matching toks from level l to dst, skipping those already in
// dst[base:]. RemoteRoutes.mu must be held.
func rmatchLevel(l *rlevel, toks [][]byte, dst []string, base int) []string {
	var pwc, n *rnode
	last := len(toks) - 1
	for i, tok := range toks {
		if l == nil {
			return dst
		}
		if l.hash != nil {
			dst = l.hash.collect(dst, base)
		}
		if pwc = l.plus; pwc != nil && i < last && pwc.next != nil {
			dst = rmatchLevel(pwc.next, toks[i+1:], dst, base)
		}
		n = l.lits[string(tok)]
		if n == nil {
			l = nil
		} else {
			l = n.next
		}
	}
	if n != nil {
		dst = n.collectTail(dst, base)
	}
	if pwc != nil {
		dst = pwc.collectTail(dst, base)
	}
	return dst
}

// collect appends n's nodes not yet in dst[base:]. RemoteRoutes.mu must be held.
func (n *rnode) collect(dst []string, base int) []string {
	for _, name := range n.nodes {
		if !slices.Contains(dst[base:], name) {
			dst = append(dst, name)
		}
	}
	return dst
}

// collectTail collects n, the node of a topic's last level, and the '#'
// child below it ("a/#" matches "a"). RemoteRoutes.mu must be held.
func (n *rnode) collectTail(dst []string, base int) []string {
	dst = n.collect(dst, base)
	if n.next != nil && n.next.hash != nil {
		dst = n.next.hash.collect(dst, base)
	}
	return dst
}
