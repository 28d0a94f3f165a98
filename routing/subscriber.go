package routing

import "math/bits"

// Subscriber is what the trie stores per (filter, subscriber) and copies into
// match results. It is a plain 16-byte value without pointers: results never
// point into the trie, so a Result stays valid after a concurrent Subscribe or
// Unsubscribe, and the garbage collector never scans a subscriber list
// (TestSubscriberSize keeps it so).
type Subscriber struct {
	// ID is the session handle chosen by the broker. Within one filter (or one
	// shared group of a filter) an ID appears at most once [MQTT-3.8.4-3]. It
	// is also how No Local finds the publisher's own subscriptions: see
	// Result.Merge.
	ID uint64
	// QoS is the granted maximum QoS of the subscription (0, 1 or 2).
	QoS byte
	// NoLocal: do not deliver messages this client published itself
	// [MQTT-3.8.3-3]; Merge asks the caller whether ID is the publisher's. A
	// protocol error on a shared subscription [MQTT-3.8.3-4]; the broker
	// rejects that before it reaches the trie.
	NoLocal bool
	// RetainAsPublished keeps the RETAIN flag of forwarded messages
	// [MQTT-3.3.1-12, MQTT-3.3.1-13].
	RetainAsPublished bool
	// RetainHandling is the v5 Retain Handling option (0, 1 or 2). The trie only
	// stores it; the broker acts on it at SUBSCRIBE time.
	RetainHandling byte
	// SubscriptionID is the v5 Subscription Identifier, 0 for none.
	SubscriptionID uint32
}

// RemoteBit marks the ID of a remote node's entry (SubscribeRemote): the
// broker's session handles never have it set.
const RemoteBit uint64 = 1 << 63

// RemoteID is the subscriber ID of remote node number node (a small number
// the cluster layer assigns per node name).
func RemoteID(node uint32) uint64 { return RemoteBit | uint64(node) }

// IsRemote reports whether id is a remote node's entry.
func IsRemote(id uint64) bool { return id&RemoteBit != 0 }

// RemoteNode is the node number of a remote entry's ID.
func RemoteNode(id uint64) uint32 { return uint32(id) }

// subList is the set of subscribers of one filter (or of one shared group):
// a slice for matching, with an ID index once it grows past indexThreshold so
// Subscribe and Unsubscribe stay O(1) on very popular filters.
// Trie.mu must be held; for writing, the write lock.
type subList struct {
	list  []Subscriber
	index *subIndex // ID -> position in list; nil while small
}

// subIndex is an open-addressing hash table from ID to position in
// subList.list: linear probing over a power-of-two table, deletion by backward
// shift (no tombstones). A slot holds position+1, 0 when empty; the key is not
// stored, a probe compares list[slot-1].ID, so a slot costs 4 bytes.
//
// The load stays at most 1/2: the table doubles when an insert passes it, so
// it holds 2 to 4 slots (8 to 16 bytes) per subscriber while growing. Every
// occupied slot probed costs a read of the list entry, a likely cache miss on
// a large list; at 1/2 linear probing averages ~1.5 probes for a hit and ~2.5
// for a miss (put of a new ID), against ~2.5 and ~8.5 at 3/4. The memory
// saved by 3/4 is not worth those reads. The table halves when the load falls
// below 1/8, so removes cannot leave a huge table behind a small list (at
// most 32 bytes per subscriber while shrinking).
//
// Positions fit in a uint32 slot up to 2^32-1 entries (128 GiB of list).
// The index sits behind a pointer so a trie node stays 64 bytes.
type subIndex struct {
	slots []uint32 // position+1 in list, 0 empty; len is a power of two
	shift uint8    // 64 - log2(len(slots)): keeps the top bits of the hash
}

// indexThreshold is the size from which a subList keeps an ID index. Below it a
// linear scan over 16-byte entries is cheaper than hashing.
const indexThreshold = 16

// minIndexSlots is the smallest index table; indexThreshold+1 entries fill
// just over a quarter of it.
const minIndexSlots = 64

// len returns the number of subscribers.
func (s *subList) len() int { return len(s.list) }

// find returns the position of id in list, or -1.
func (s *subList) find(id uint64) int {
	if s.index != nil {
		_, pos := s.lookup(id)
		return pos
	}
	for i := range s.list {
		if s.list[i].ID == id {
			return i
		}
	}
	return -1
}

// put adds sub or replaces the entry with the same ID [MQTT-3.8.4-3], and
// reports whether it replaced one.
func (s *subList) put(sub Subscriber) (replaced bool) {
	if s.index == nil {
		if i := s.find(sub.ID); i >= 0 {
			s.list[i] = sub
			return true
		}
		s.list = append(s.list, sub)
		if len(s.list) > indexThreshold {
			s.rebuild(minIndexSlots)
		}
		return false
	}
	slot, pos := s.lookup(sub.ID)
	if pos >= 0 {
		s.list[pos] = sub
		return true
	}
	s.list = append(s.list, sub)
	s.index.slots[slot] = uint32(len(s.list)) // position+1; lookup stops at an empty slot
	if 2*len(s.list) > len(s.index.slots) {
		s.rebuild(2 * len(s.index.slots))
	}
	return false
}

// remove deletes the entry with id (swap with the last entry) and reports
// whether it existed.
func (s *subList) remove(id uint64) bool {
	var i int
	if s.index != nil {
		var slot int
		slot, i = s.lookup(id)
		if i < 0 {
			return false
		}
		s.unslot(slot)
		if last := len(s.list) - 1; i != last {
			moved, _ := s.lookup(s.list[last].ID)
			s.index.slots[moved] = uint32(i) + 1
		}
	} else if i = s.find(id); i < 0 {
		return false
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list = s.list[:last] // Subscriber holds no pointers: the stale tail pins nothing
	if s.index != nil {
		if len(s.list) <= indexThreshold/2 {
			s.index = nil
		} else if n := len(s.index.slots); n > minIndexSlots && 8*len(s.list) < n {
			s.rebuild(n / 2)
		}
	}
	if len(s.list) == 0 {
		s.list = nil
	}
	return true
}

// home is the slot where a probe for id starts. Broker IDs are
// seq<<32 | slot<<6 | shard, so IDs often differ only in the top or only in
// the middle bits. Folding the top half into the bottom, then a Fibonacci
// multiply, alone leaves clusters on strided IDs (mean probe 3.4 instead of
// 1.2 for IDs i<<40); a second xor-shift and multiply (the splitmix64
// constant) makes every family in TestSubListHashSpread look uniform. The
// top bits of the product are kept. Every step is a bijection, so distinct
// IDs never share a hash, only a home slot.
func (x *subIndex) home(id uint64) int {
	h := (id ^ id>>32) * 0x9e3779b97f4a7c15 // 2^64 / golden ratio, odd
	h = (h ^ h>>29) * 0xbf58476d1ce4e5b9
	return int(h >> x.shift)
}

// lookup returns the slot of id and its position in list, or the empty slot
// where id would go and -1. The index must exist.
func (s *subList) lookup(id uint64) (slot, pos int) {
	slots := s.index.slots
	mask := len(slots) - 1
	for i := s.index.home(id); ; i = (i + 1) & mask {
		p := slots[i]
		if p == 0 {
			return i, -1
		}
		if s.list[p-1].ID == id {
			return i, int(p - 1)
		}
	}
}

// unslot empties slot i by backward shift: every entry after it in the same
// probe run whose home is not between the hole and the entry moves back into
// the hole, so lookups never stop early and no tombstone is needed. The list
// must still hold every indexed entry.
func (s *subList) unslot(i int) {
	slots := s.index.slots
	mask := len(slots) - 1
	for j := (i + 1) & mask; slots[j] != 0; j = (j + 1) & mask {
		home := s.index.home(s.list[slots[j]-1].ID)
		// The entry at j may fill the hole at i when its probe passed i:
		// its distance from home is at least the hole's distance back.
		if (j-home)&mask >= (j-i)&mask {
			slots[i] = slots[j]
			i = j
		}
	}
	slots[i] = 0
}

// rebuild replaces the index with a table of n slots (a power of two, more
// than twice len(list)) holding every entry of list.
func (s *subList) rebuild(n int) {
	x := &subIndex{slots: make([]uint32, n), shift: uint8(64 - bits.TrailingZeros(uint(n)))}
	mask := n - 1
	for p := range s.list {
		i := x.home(s.list[p].ID)
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = uint32(p) + 1
	}
	s.index = x
}
