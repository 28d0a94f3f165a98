package fsm

// The read views below read the latest applied state. They never block
// Apply and are safe for concurrent use with everything. Each call sees one
// consistent state; two calls may see different ones.

// Session returns the registry entry of clientID. Safe for concurrent use.
func (f *FSM) Session(clientID string) (Session, bool) {
	s, ok := get(f.st.Load().sessions, clientID)
	if !ok {
		return Session{}, false
	}
	return *s, true
}

// BootDown reports whether NodeDown fenced node's boot (and no NodeUp lifted
// it). Safe for concurrent use.
func (f *FSM) BootDown(node string, boot uint64) bool {
	e := f.st.Load().boots[bootKey{node, boot}]
	return e != nil && e.down
}

// Retained returns the retained message of topic, expired or not.
// Safe for concurrent use.
func (f *FSM) Retained(topic string) (Retained, bool) {
	m, ok := get(f.st.Load().retained, topicKey(topic))
	if !ok {
		return Retained{}, false
	}
	return *m, true
}

// RetainedMatch returns the retained messages whose topic matches filter,
// in topic order (with '/' sorting before every other byte). Expired
// messages the leader has not deleted yet are included: the caller drops
// those with 0 < ExpiresAt <= now, and sends the rest with the remaining
// expiry. A $share/ filter matches nothing. Safe for concurrent use.
func (f *FSM) RetainedMatch(filter string) []Retained {
	var out []Retained
	matchRetained(f.st.Load().retained, filter, func(m *Retained) bool {
		out = append(out, *m)
		return true
	})
	return out
}

// RetainedWalk calls fn for each retained message matching filter, in the
// order of RetainedMatch, until fn returns false; it lets a caller cap what
// it takes without copying every match. The *Retained is the FSM's own
// immutable value: it may be kept, never modified. Safe for concurrent use.
func (f *FSM) RetainedWalk(filter string, fn func(*Retained) bool) {
	matchRetained(f.st.Load().retained, filter, fn)
}

// SessionsOfNode returns the sessions owned by node/boot, connected or not,
// in client id order. Safe for concurrent use.
func (f *FSM) SessionsOfNode(node string, boot uint64) []Session {
	st := f.st.Load()
	var out []Session
	walkPrefix(st.owners, ownerPrefix(node, boot), func(_ string, id string) bool {
		out = append(out, sessionOf(st, id))
		return true
	})
	return out
}

// ExpiredSessions returns the disconnected sessions whose expiry has come
// at now (unix ms), oldest first. For each, the leader publishes a will
// still held (a session end fires it [MQTT-3.1.3-9]) and proposes
// SessionExpired with the session's epoch. Safe for concurrent use.
func (f *FSM) ExpiredSessions(now int64) []Session {
	st := f.st.Load()
	var out []Session
	dueBy(st.sessExp, now, func(id string) { out = append(out, sessionOf(st, id)) })
	return out
}

// PendingWills returns the sessions whose owner is down (NodeDown) and whose
// will is due at now (unix ms), oldest first: the leader publishes each
// will, then proposes WillDone. Safe for concurrent use.
func (f *FSM) PendingWills(now int64) []Session {
	st := f.st.Load()
	var out []Session
	dueBy(st.wills, now, func(id string) { out = append(out, sessionOf(st, id)) })
	return out
}

// ExpiredRetained returns the retained messages with 0 < ExpiresAt <= now
// (unix ms), oldest first; the leader proposes RetainedDelete with
// ExpiredBy = now for each. Safe for concurrent use.
func (f *FSM) ExpiredRetained(now int64) []Retained {
	st := f.st.Load()
	var out []Retained
	dueBy(st.retExp, now, func(topic string) {
		if m, ok := get(st.retained, topicKey(topic)); ok {
			out = append(out, *m)
		}
	})
	return out
}

// Stats are the sizes of the replicated state.
type Stats struct {
	Sessions      int
	Subscriptions int
	Retained      int
	// RetainedBytes is the sum of topic, payload and property bytes.
	RetainedBytes int64
}

// Stats returns the sizes of the state. Safe for concurrent use.
func (f *FSM) Stats() Stats {
	st := f.st.Load()
	return Stats{
		Sessions: st.sessions.Len(), Subscriptions: st.subs,
		Retained: st.retained.Len(), RetainedBytes: st.retBytes,
	}
}

func sessionOf(st *state, id string) Session {
	s, ok := get(st.sessions, id)
	if !ok {
		panic("BUG: fsm: index names a missing session " + id)
	}
	return *s
}

// dueBy calls fn for the values of a time-keyed index up to now, in order.
func dueBy(t *tree[string], now int64, fn func(string)) {
	walk(t, func(k string, v string) bool {
		if timeOfKey(k) > now {
			return false
		}
		fn(v)
		return true
	})
}
