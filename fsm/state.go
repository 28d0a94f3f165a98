package fsm

import (
	"encoding/binary"
	"strings"
)

// state is everything the FSM holds. The FSM keeps one working state that
// only the writer touches, and publishes an immutable copy (see tree.go)
// after every ApplyBatch and Restore; readers and snapshots use the
// published one.
//
// Only sessions, retained and boots are primary; owners, sessExp, wills and
// retExp are indexes derived from them, rebuilt on Restore and never
// written to a snapshot.
type state struct {
	sessions *tree[*Session]  // client id -> session
	retained *tree[*Retained] // topicKey(topic) -> message
	boots    map[bootKey]*bootEntry

	owners  *tree[string] // ownerKey(node, boot, client id) -> client id
	sessExp *tree[string] // timeKey(expires at, client id) -> client id
	wills   *tree[string] // timeKey(will due, client id) -> client id, owner down only
	retExp  *tree[string] // timeKey(expires at, topic) -> topic

	subs     int   // number of persisted subscriptions
	retBytes int64 // topic + payload + props bytes of retained messages
}

func emptyState() *state {
	return &state{
		sessions: newTree[*Session](), retained: newTree[*Retained](), boots: map[bootKey]*bootEntry{},
		owners: newTree[string](), sessExp: newTree[string](), wills: newTree[string](), retExp: newTree[string](),
	}
}

// publish returns an immutable copy of the working state w in O(1). The
// boots map is shared: txns copy it before changing it.
func (w *state) publish() *state {
	return &state{
		sessions: w.sessions.Clone(), retained: w.retained.Clone(), boots: w.boots,
		owners: w.owners.Clone(), sessExp: w.sessExp.Clone(), wills: w.wills.Clone(),
		retExp: w.retExp.Clone(), subs: w.subs, retBytes: w.retBytes,
	}
}

// txn applies ops to the working state. It is used by one goroutine.
type txn struct {
	*state
	bootsCopied bool
	ownBoots    map[bootKey]bool // entries copied by this txn
}

func newTxn(w *state) *txn { return &txn{state: w} }

// session returns the current registry entry of id, or nil.
func (t *txn) session(id string) *Session {
	s, _ := get(t.sessions, id)
	return s
}

// putSession replaces old (nil for none) by s, keeping the indexes and the
// subscription count in step. s must be a fresh value: published sessions
// are immutable.
func (t *txn) putSession(old, s *Session) {
	if old != nil {
		t.unindexSession(old)
	}
	put(t.sessions, s.ClientID, s)
	t.indexSession(s)
}

// deleteSession removes s and its subscriptions.
func (t *txn) deleteSession(s *Session) {
	t.unindexSession(s)
	del(t.sessions, s.ClientID)
}

func (t *txn) indexSession(s *Session) {
	t.subs += len(s.Subscriptions)
	put(t.owners, ownerKey(s.Node, s.Boot, s.ClientID), s.ClientID)
	if at, ok := s.ExpiresAt(); ok {
		put(t.sessExp, timeKey(at, s.ClientID), s.ClientID)
	}
	if at, ok := s.WillDueAt(); ok && s.OwnerDown {
		put(t.wills, timeKey(at, s.ClientID), s.ClientID)
	}
}

func (t *txn) unindexSession(s *Session) {
	t.subs -= len(s.Subscriptions)
	del(t.owners, ownerKey(s.Node, s.Boot, s.ClientID))
	if at, ok := s.ExpiresAt(); ok {
		del(t.sessExp, timeKey(at, s.ClientID))
	}
	if at, ok := s.WillDueAt(); ok && s.OwnerDown {
		del(t.wills, timeKey(at, s.ClientID))
	}
}

// putRetained stores m under key (its topicKey), replacing old (nil for
// none).
func (t *txn) putRetained(old, m *Retained, key string) {
	if old != nil {
		t.unindexRetained(old)
	}
	put(t.retained, key, m)
	t.retBytes += m.size()
	if m.ExpiresAt != 0 {
		put(t.retExp, timeKey(m.ExpiresAt, m.Topic), m.Topic)
	}
}

func (t *txn) deleteRetained(m *Retained) {
	t.unindexRetained(m)
	del(t.retained, topicKey(m.Topic))
}

func (t *txn) unindexRetained(m *Retained) {
	t.retBytes -= m.size()
	if m.ExpiresAt != 0 {
		del(t.retExp, timeKey(m.ExpiresAt, m.Topic))
	}
}

func (t *txn) retainedGet(topic string) *Retained {
	m, _ := get(t.retained, topicKey(topic))
	return m
}

// ownerKey is uvarint(len(node)) node boot(8, big endian) clientID: all
// sessions of one node boot share a prefix.
func ownerKey(node string, boot uint64, clientID string) string {
	return ownerPrefix(node, boot) + clientID
}

func ownerPrefix(node string, boot uint64) string {
	k := make([]byte, 0, binary.MaxVarintLen64+len(node)+8)
	k = appendString(k, node)
	return string(binary.BigEndian.AppendUint64(k, boot))
}

// timeKey orders by time (unix ms, sign bit flipped so negative times sort
// first) and then by id.
func timeKey(ms int64, id string) string {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(ms)^(1<<63))
	return string(k[:]) + id
}

func timeOfKey(k string) int64 {
	return int64(binary.BigEndian.Uint64([]byte(k[:8])) ^ (1 << 63))
}

// topicKey is the topic with each '/' replaced by 0x00, so that in key order
// all topics below a level come right after the level itself, before any
// sibling whose name extends it. Retained topics never hold U+0000
// [MQTT-1.5.4-2]; RetainedSet rejects them.
func topicKey(topic string) string {
	if strings.IndexByte(topic, '/') < 0 {
		return topic
	}
	return strings.ReplaceAll(topic, "/", "\x00")
}
