package broker

import "hash/maphash"

// clientIndex finds a session by client identifier. It is an open-addressing
// table of session pointers with linear probing, keyed by a hash of the
// session's own clientID, so that an entry costs one pointer slot (about 13
// bytes at its load) where a map[string]*Session entry cost about 40, and
// the key is not stored twice. Deletion shifts the following entries back
// rather than leaving tombstones. Not safe for concurrent use: Broker.mu
// guards it.
type clientIndex struct {
	seed  maphash.Seed
	slots []*Session // len is 0 or a power of two
	n     int
}

// minIndexSlots is the smallest table. The table doubles past a load of 3/4
// and, below 1/16, shrinks to a quarter (to a load under 1/4), so that a
// mass disconnect rebuilds it a few times rather than at every halving; it
// is dropped when empty.
const minIndexSlots = 16

func newClientIndex() clientIndex { return clientIndex{seed: maphash.MakeSeed()} }

func (x *clientIndex) len() int { return x.n }

// home is the first slot id probes.
func (x *clientIndex) home(id string) int {
	return int(maphash.String(x.seed, id) & uint64(len(x.slots)-1))
}

// get returns the session of id, or nil.
func (x *clientIndex) get(id string) *Session {
	if x.n == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	for i := x.home(id); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == nil {
			return nil
		}
		if s.clientID == id {
			return s
		}
	}
}

// put files s under its clientID, replacing the session filed there.
func (x *clientIndex) put(s *Session) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(max(minIndexSlots, 2*len(x.slots)))
	}
	if x.insert(s) {
		x.n++
	}
}

// insert stores s in its probe sequence and reports whether it took a free
// slot (false: it replaced the session with the same id).
func (x *clientIndex) insert(s *Session) bool {
	mask := len(x.slots) - 1
	for i := x.home(s.clientID); ; i = (i + 1) & mask {
		switch cur := x.slots[i]; {
		case cur == nil:
			x.slots[i] = s
			return true
		case cur.clientID == s.clientID:
			x.slots[i] = s
			return false
		}
	}
}

// remove takes s out if it is the session filed under its clientID, and
// reports whether it was.
func (x *clientIndex) remove(s *Session) bool {
	if x.n == 0 {
		return false
	}
	mask := len(x.slots) - 1
	i := x.home(s.clientID)
	for x.slots[i] != s {
		if x.slots[i] == nil {
			return false
		}
		i = (i + 1) & mask
	}
	// Backward shift: move up each later entry of the run that may sit in
	// the hole, so that no probe sequence crosses an empty slot.
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		h := x.home(x.slots[j].clientID)
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = nil
	x.n--
	switch {
	case x.n == 0:
		x.slots = nil
	case len(x.slots) > minIndexSlots && x.n*16 < len(x.slots):
		x.resize(max(minIndexSlots, len(x.slots)/4))
	}
	return true
}

// resize moves every entry into a table of n slots.
func (x *clientIndex) resize(n int) {
	old := x.slots
	x.slots = make([]*Session, n)
	for _, s := range old {
		if s != nil {
			x.insert(s)
		}
	}
}
