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

	subs    atomic.Int64 // subscriptions: plain entries plus shared members
	filters atomic.Int64 // distinct filters: plain filters plus (group, filter) pairs
	groups  atomic.Int64 // shared groups
}

// level is one '/'-separated level of the trie. Trie.mu must be held.
type level struct {
	nodes map[string]*node // literal children; nil until the first one
	plus  *node            // '+' child
	hash  *node            // '#' child; never has a next level
}

// node is one filter level; subs and shared hold the subscriptions whose
// filter ends here. Trie.mu must be held.
type node struct {
	next   *level
	subs   subList
	shared []*shareGroup // few per filter: a slice, scanned by name
}

// New returns an empty Trie.
func New(opts Options) *Trie {
	t := &Trie{strategy: opts.Strategy}
	if opts.CacheSize > 0 {
		t.cache = newMatchCache(opts.CacheSize)
	}
	return t
}

// Subscriptions returns the number of subscriptions: one per (filter,
// subscriber) and per shared-group member. Safe for concurrent use.
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
	return len(l.nodes) == 0 && l.plus == nil && l.hash == nil
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
	n := l.nodes[tok]
	if n == nil && create {
		if l.nodes == nil {
			l.nodes = make(map[string]*node)
		}
		n = &node{}
		l.nodes[strings.Clone(tok)] = n // do not pin the whole filter string
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
		delete(l.nodes, tok)
		if len(l.nodes) == 0 {
			l.nodes = nil
		}
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
