package broker

import (
	"sync"
	"sync/atomic"
)

// sessionTable maps routing identities to sessions. A session's identity is
// its place in the table: a slot in one of the shards, and a sequence number
// so that a slot used again never answers for the session it held before
// (a delivery matched just before a session ended finds nothing). A slot
// costs a pointer, where a map entry cost about four times that. Sharded so
// that the lookups of every delivery on every loop rarely meet on a lock.
// Safe for concurrent use.
type sessionTable struct {
	shards [sessionShards]sessionShard
	pick   atomic.Uint32 // shard of the next session, round robin
}

const (
	sessionShards = 64
	shardBits     = 6 // log2(sessionShards)
)

type sessionShard struct {
	mu    sync.RWMutex
	slots []*Session
	free  []uint32 // slots to use again
	seq   uint32   // sequence of the last identity made
}

func newSessionTable() *sessionTable { return &sessionTable{} }

// split returns the shard and slot an identity names.
func (t *sessionTable) split(id uint64) (*sessionShard, int) {
	low := uint32(id)
	return &t.shards[low&(sessionShards-1)], int(low >> shardBits)
}

// add gives s its identity and files it.
func (t *sessionTable) add(s *Session) {
	shard := t.pick.Add(1) % sessionShards
	sh := &t.shards[shard]
	sh.mu.Lock()
	var slot uint32
	if n := len(sh.free); n > 0 {
		slot = sh.free[n-1]
		sh.free = sh.free[:n-1]
		sh.slots[slot] = s
	} else {
		slot = uint32(len(sh.slots))
		sh.slots = append(sh.slots, s)
	}
	sh.seq++
	if sh.seq == 0 {
		sh.seq = 1 // identities are never 0
	}
	s.id = uint64(sh.seq)<<32 | uint64(slot)<<shardBits | uint64(shard)
	sh.mu.Unlock()
}

func (t *sessionTable) get(id uint64) *Session {
	sh, slot := t.split(id)
	sh.mu.RLock()
	var s *Session
	if slot < len(sh.slots) {
		s = sh.slots[slot]
	}
	sh.mu.RUnlock()
	if s == nil || s.id != id {
		return nil
	}
	return s
}

func (t *sessionTable) remove(id uint64) {
	sh, slot := t.split(id)
	sh.mu.Lock()
	if slot < len(sh.slots) && sh.slots[slot] != nil && sh.slots[slot].id == id {
		sh.slots[slot] = nil
		sh.free = append(sh.free, uint32(slot))
	}
	sh.mu.Unlock()
}
