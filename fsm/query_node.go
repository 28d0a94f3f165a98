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
