package broker

import "sync"

// sessionTable maps routing identities to sessions. It is sharded so that the
// lookups of every delivery on every loop rarely meet on a lock. Safe for
// concurrent use.
type sessionTable struct {
	shards [64]struct {
		mu sync.RWMutex
		m  map[uint64]*Session
	}
}

func newSessionTable() *sessionTable {
	t := &sessionTable{}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*Session)
	}
	return t
}

func (t *sessionTable) get(id uint64) *Session {
	sh := &t.shards[id%uint64(len(t.shards))]
	sh.mu.RLock()
	s := sh.m[id]
	sh.mu.RUnlock()
	return s
}

func (t *sessionTable) put(s *Session) {
	sh := &t.shards[s.id%uint64(len(t.shards))]
	sh.mu.Lock()
	sh.m[s.id] = s
	sh.mu.Unlock()
}

func (t *sessionTable) remove(id uint64) {
	sh := &t.shards[id%uint64(len(t.shards))]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}
