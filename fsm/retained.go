package fsm

import "strings"

// Retained is a retained message. Values returned by the read views share
// Payload and Props with the FSM state: treat them as read-only.
type Retained struct {
	Topic     string
	Payload   []byte
	QoS       byte
	Props     []byte // v5 properties, opaque to the FSM
	ExpiresAt int64  // unix ms, 0 for never
	StoredAt  int64  // the Now of the RetainedSet (unix ms)
}

func (m *Retained) size() int64 { return int64(len(m.Topic) + len(m.Payload) + len(m.Props)) }

// validRetainedTopic: a topic name is non-empty [MQTT-4.7.3-1], has no
// wildcard [MQTT-3.3.2-2] and no U+0000 [MQTT-1.5.4-2] (which topicKey
// relies on).
func validRetainedTopic(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00")
}

// matchRetained calls fn for every retained message in root whose topic
// matches filter, until fn returns false. The retained tree is ordered by topicKey, where the level
// separator is 0x00, so the topics under one level form a contiguous key
// range: literal levels descend by key prefix, '#' walks a prefix, and '+'
// enumerates the distinct names of a level with one seek per name.
//
// Filters starting with a wildcard do not match topics starting with '$'
// [MQTT-4.7.2-1]. Shared subscription filters match nothing: retained
// messages are not sent for a new shared subscription (MQTT 5 §4.8.2).
func matchRetained(t *tree[*Retained], filter string, fn func(*Retained) bool) {
	if filter == "" || strings.HasPrefix(filter, "$share/") || t.Len() == 0 {
		return // (nothing to split the filter for: most subscribes find none)
	}
	m := matcher{t: t, levels: strings.Split(filter, "/"), fn: fn}
	m.match("", 0)
}

type matcher struct {
	t      *tree[*Retained]
	levels []string
	fn     func(*Retained) bool
	done   bool // fn returned false
}

func (m *matcher) emit(r *Retained) {
	if !m.done && !m.fn(r) {
		m.done = true
	}
}

func (m *matcher) get(key string) {
	if r, ok := get(m.t, key); ok {
		m.emit(r)
	}
}

// match matches levels[i:] below prefix, the key of levels[:i] with a 0x00
// after each level (empty at i == 0).
func (m *matcher) match(prefix string, i int) {
	lvl, last := m.levels[i], i == len(m.levels)-1
	if m.done {
		return
	}
	switch lvl {
	case "#":
		// "a/#" also matches "a" [MQTT-4.7.1-2].
		if i > 0 {
			m.get(prefix[:len(prefix)-1])
		}
		walkPrefix(m.t, prefix, func(k string, r *Retained) bool {
			if i == 0 && k != "" && k[0] == '$' {
				return true // [MQTT-4.7.2-1]
			}
			m.emit(r)
			return !m.done
		})
	case "+":
		next := prefix
		for !m.done {
			e, ok := seek(m.t, next)
			if !ok || !strings.HasPrefix(e.k, prefix) {
				return
			}
			name := e.k[len(prefix):]
			if j := strings.IndexByte(name, 0); j >= 0 {
				name = name[:j]
			}
			child := prefix + name
			if !(i == 0 && name != "" && name[0] == '$') { // [MQTT-4.7.2-1]
				if last {
					m.get(child)
				} else {
					m.match(child+"\x00", i+1)
				}
			}
			// The next name is the first key at or after prefix+name+0x01:
			// everything below name (prefix+name+0x00...) is skipped.
			next = child + "\x01"
		}
	default:
		if last {
			m.get(prefix + lvl)
			return
		}
		m.match(prefix+lvl+"\x00", i+1)
	}
}
