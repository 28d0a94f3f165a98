package fsm

// SessionsOfNodeAnyBoot returns the sessions owned by node under any boot,
// connected or not, grouped by boot. A restarted node uses it to find the
// sessions of its earlier runs. Safe for concurrent use.
func (f *FSM) SessionsOfNodeAnyBoot(node string) []Session {
	st := f.st.Load()
	var out []Session
	walkPrefix(st.owners, string(appendString(nil, node)), func(_ string, id string) bool {
		out = append(out, sessionOf(st, id))
		return true
	})
	return out
}

// SessionsWithPrefix calls fn with each session whose client id starts with
// prefix, in client id order, until fn returns false. fn gets a copy of the
// entry (Will and Subscriptions shared, read-only) from one consistent state.
func (f *FSM) SessionsWithPrefix(prefix string, fn func(Session) bool) {
	st := f.st.Load()
	walkPrefix(st.sessions, prefix, func(_ string, s *Session) bool { return fn(*s) })
}
