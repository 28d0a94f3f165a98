package routing

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Options configures a Trie. Start from DefaultOptions.
type Options struct {
	// Strategy picks the member of each matching shared group.
	Strategy ShareStrategy
	// CacheSize is the number of slots of the match cache (rounded up to a
	// power of two); 0 disables it. Each slot holds the result of one topic
	// until the next Subscribe or Unsubscribe.
	CacheSize int
	// OnLocal, when set, is called for every local subscription added (not
	// one replaced) and removed, with the filter as the caller gave it, under
	// the trie's write lock: the one place where the cluster's route table
	// learns that a filter gained or lost a local subscriber. It must not
	// call back into the trie; the locks it takes come after Trie.mu.
	OnLocal func(filter string, added bool)
}

// DefaultOptions returns round-robin shared picks and a 1024-slot match cache.
func DefaultOptions() Options {
	return Options{Strategy: ShareRoundRobin, CacheSize: 1024}
}

// Trie is the local subscription index: topic filters split into levels on
// '/', each level a map of literal children plus one '+' and one '#' child.
//
// Match, PickShared and the counters are safe for concurrent use and run under
// the read lock, so event loops match in parallel. Subscribe, Unsubscribe and
// RemoveAll are safe for concurrent use and take the write lock; they are
// expected to be rare compared with Match. Trie.mu is a leaf lock: nothing is
// called while it is held.
type Trie struct {
	mu       sync.RWMutex
	root     level
	gen      uint64 // bumped by every change; written under mu, read under mu.RLock
	strategy ShareStrategy
	cache    *matchCache // nil when disabled; slots are atomics, filled under mu.RLock
	onLocal  func(filter string, added bool)

	subs    atomic.Int64 // subscriptions: plain entries plus shared members
	filters atomic.Int64 // distinct filters: plain filters plus (group, filter) pairs
	groups  atomic.Int64 // shared groups
}

// level is one '/'-separated level of the trie. Its literal children are a
// short slice while there are at most fewMax of them, a map past that: most
// levels below the first few have one child ("devices/{id}/cmd" makes a
// level per device under "devices", each with the single child "cmd"), and
// a one-entry map costs about ten times a one-entry slice. Trie.mu must be
// held.
type level struct {
	few   []child          // literal children while at most fewMax; nil once nodes is used
	nodes map[string]*node // literal children past fewMax; nil until then
	plus  *node            // '+' child
	hash  *node            // '#' child; never has a next level
}

// child is a literal child of a level.
type child struct {
	tok string
	n   *node
}

// fewMax is the number of literal children a level keeps in a slice,
// searched linearly; a level with more keeps a map, and goes back to a slice
// when it falls to fewMax/2.
const fewMax = 8

// node is one filter level; subs and shared hold the subscriptions whose
// filter ends here. Trie.mu must be held.
type node struct {
	next   *level
	subs   subList
	shared []*shareGroup // few per filter: a slice, scanned by name
}

// New returns an empty Trie.
func New(opts Options) *Trie {
	t := &Trie{strategy: opts.Strategy, onLocal: opts.OnLocal}
	if opts.CacheSize > 0 {
		t.cache = newMatchCache(opts.CacheSize)
	}
	return t
}

// Subscriptions returns the number of local subscriptions: one per (filter,
// subscriber) and per shared-group member; remote nodes' entries
// (SubscribeRemote) are not counted. Safe for concurrent use.
func (t *Trie) Subscriptions() int { return int(t.subs.Load()) }

// Filters returns the number of distinct subscribed filters: each plain filter
// with at least one subscriber, and each shared (group, filter) pair. Safe for
// concurrent use.
func (t *Trie) Filters() int { return int(t.filters.Load()) }

// SharedGroups returns the number of shared subscription groups. Safe for
// concurrent use.
func (t *Trie) SharedGroups() int { return int(t.groups.Load()) }

// Strategy returns the shared-pick strategy the Trie was built with.
func (t *Trie) Strategy() ShareStrategy { return t.strategy }

func (l *level) empty() bool {
	return len(l.few) == 0 && len(l.nodes) == 0 && l.plus == nil && l.hash == nil
}

// literal returns the literal child tok, or nil. Trie.mu must be held.
func (l *level) literal(tok []byte) *node {
	if l.nodes != nil {
		return l.nodes[string(tok)] // no allocation: the compiler elides the copy
	}
	for i := range l.few {
		if l.few[i].tok == string(tok) {
			return l.few[i].n
		}
	}
	return nil
}

// addLiteral links n as the literal child tok, which must not exist. Lock
// must be held.
func (l *level) addLiteral(tok string, n *node) {
	tok = strings.Clone(tok) // do not pin the whole filter string
	if l.nodes != nil {
		l.nodes[tok] = n
		return
	}
	if len(l.few) < fewMax {
		l.few = append(l.few, child{tok, n})
		return
	}
	l.nodes = make(map[string]*node, 2*fewMax)
	for _, c := range l.few {
		l.nodes[c.tok] = c.n
	}
	l.nodes[tok] = n
	l.few = nil
}

// removeLiteral unlinks the literal child tok. Lock must be held.
func (l *level) removeLiteral(tok string) {
	if l.nodes != nil {
		delete(l.nodes, tok)
		if len(l.nodes) <= fewMax/2 {
			few := make([]child, 0, len(l.nodes))
			for t, n := range l.nodes {
				few = append(few, child{t, n})
			}
			l.nodes = nil
			if len(few) > 0 {
				l.few = few
			}
		}
		return
	}
	for i := range l.few {
		if l.few[i].tok == tok {
			last := len(l.few) - 1
			l.few[i] = l.few[last]
			l.few[last] = child{}
			l.few = l.few[:last]
			break
		}
	}
	if len(l.few) == 0 {
		l.few = nil
	}
}

func (n *node) empty() bool {
	return n.subs.len() == 0 && len(n.shared) == 0 && (n.next == nil || n.next.empty())
}

// child returns the node for one filter level, creating it when create is set.
// Trie.mu must be held (for writing when create is set).
func (l *level) child(tok string, create bool) *node {
	switch tok {
	case "+":
		if l.plus == nil && create {
			l.plus = &node{}
		}
		return l.plus
	case "#":
		if l.hash == nil && create {
			l.hash = &node{}
		}
		return l.hash
	}
	n := l.literal([]byte(tok)) // subscribe path: a short token converts on the stack
	if n == nil && create {
		n = &node{}
		l.addLiteral(tok, n)
	}
	return n
}

// removeChild unlinks the node of one filter level. Lock must be held.
func (l *level) removeChild(tok string) {
	switch tok {
	case "+":
		l.plus = nil
	case "#":
		l.hash = nil
	default:
		l.removeLiteral(tok)
	}
}

// group returns the shared group called name at n, or nil. Trie.mu must be held.
func (n *node) group(name string) *shareGroup {
	for _, g := range n.shared {
		if g.name == name {
			return g
		}
	}
	return nil
}

// removeGroup unlinks g from n. Lock must be held.
func (n *node) removeGroup(g *shareGroup) {
	for i, x := range n.shared {
		if x == g {
			last := len(n.shared) - 1
			n.shared[i] = n.shared[last]
			n.shared[last] = nil
			n.shared = n.shared[:last]
			break
		}
	}
	if len(n.shared) == 0 {
		n.shared = nil
	}
}
