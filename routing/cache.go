package routing

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// matchCache is a bounded, direct-mapped cache of match results, checked
// against the trie's generation: any Subscribe or Unsubscribe bumps Trie.gen,
// which invalidates every entry at once (nats sublist's genid). It is read and
// filled by concurrent matches under the trie's read lock: slots are atomic
// pointers to immutable entries, so two matches filling one slot simply race
// to store equivalent entries.
//
// A topic is admitted on its second consecutive miss in its slot, so a stream
// of one-off topics (a device id per topic) never allocates entries.
type matchCache struct {
	seed  maphash.Seed
	mask  uint64
	slots []cacheSlot
}

// maxCachedSubs bounds the size of one entry, so the cache holds at most
// slots*maxCachedSubs subscribers.
const maxCachedSubs = 256

type cacheSlot struct {
	entry atomic.Pointer[cacheEntry]
	seen  atomic.Uint64 // hash of the last topic that missed here
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	gen    uint64
	topic  string
	subs   []Subscriber
	groups []*shareGroup
}

func newMatchCache(size int) *matchCache {
	n := 1 << bits.Len(uint(size-1)) // round up to a power of two
	return &matchCache{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]cacheSlot, n)}
}

func (c *matchCache) hash(topic []byte) uint64 { return maphash.Bytes(c.seed, topic) }

// get returns the entry for topic if it is current. Trie.mu must be held.
func (c *matchCache) get(h uint64, topic []byte, gen uint64) *cacheEntry {
	e := c.slots[h&c.mask].entry.Load()
	if e == nil || e.gen != gen || e.topic != string(topic) {
		return nil
	}
	return e
}

// admit records a miss of the topic with hash h and reports whether it missed
// here just before, which earns it an entry.
func (c *matchCache) admit(h uint64) bool {
	tag := h | 1 // 0 means "nothing seen"
	s := &c.slots[h&c.mask]
	if s.seen.Load() == tag {
		return true
	}
	s.seen.Store(tag) // racing misses may overwrite each other: harmless
	return false
}

// put stores a copy of a match result. Trie.mu must be held (read or write).
func (c *matchCache) put(h uint64, topic []byte, gen uint64, subs []Subscriber, groups []*shareGroup) {
	if len(subs) > maxCachedSubs {
		return // copying dominates such a match anyway; keep the cache small
	}
	e := &cacheEntry{gen: gen, topic: string(topic)}
	if len(subs) > 0 {
		e.subs = append([]Subscriber(nil), subs...)
	}
	if len(groups) > 0 {
		e.groups = append([]*shareGroup(nil), groups...)
	}
	c.slots[h&c.mask].entry.Store(e)
}
