package broker

import (
	"sync"
	"sync/atomic"
)

// Store is the broker's door to persistent, replicated state: the session
// registry, persistent sessions' subscriptions, retained messages and will
// metadata. Every write completes asynchronously through its done callback,
// which may run on any goroutine (or before the call returns); the broker
// resumes the session on its own loop. The raft-backed store implements it in
// cluster/; MemoryStore serves a node without raft.
//
// Implementations are safe for concurrent use.
type Store interface {
	// Claim registers clientID as connected to this node. The result's Epoch
	// fences older connections of the same client.
	Claim(req ClaimRequest, done func(ClaimResult, error))
	// Disconnected records that a persistent session lost its connection.
	Disconnected(clientID string, epoch uint64, expiry uint32, will *Will)
	// Ended records that a session ended (clean disconnect or expiry).
	Ended(clientID string, epoch uint64)
	// Subscribe persists a subscription of a persistent session.
	Subscribe(clientID string, epoch uint64, sub PersistedSub, done func(error))
	// Unsubscribe removes a persisted subscription.
	Unsubscribe(clientID string, epoch uint64, filter string, done func(error))
	// Retain stores m as the retained message of its topic; an empty payload
	// deletes it.
	Retain(m *Message, done func(error))
	// MatchRetained calls fn for every retained message whose topic matches
	// filter, from the local replica.
	MatchRetained(filter []byte, now int64, fn func(*Message))
	// RetainedCount is the number of retained messages.
	RetainedCount() int
}

// ClaimRequest asks to register a client's session on this node.
type ClaimRequest struct {
	ClientID        string
	CleanStart      bool
	Expiry          uint32
	ProtocolVersion byte
	Will            *Will
}

// ClaimResult is the outcome of a claim.
type ClaimResult struct {
	Epoch uint64
	// Known is set by a store that keeps the session registry (the raft
	// store): then Present says whether the previous session lives on
	// [MQTT-3.2.2-2], and Persisted holds its subscriptions. MemoryStore
	// leaves Known false and the broker's live sessions decide.
	Known     bool
	Present   bool
	Persisted []PersistedSub
	// PrevNode names the other node that owned the session before this
	// claim, when the session lives on: its state moves here from there
	// (takeover.go). "" when it was this node's or new.
	PrevNode string
}

// PersistedSub is a subscription as stored.
type PersistedSub struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32
}

// Will is a will message with its delay.
type Will struct {
	Msg   *Message
	Delay uint32 // seconds
	// Owner is the connection that set the will, for the authorization
	// check when it is published [MQTT-3.1.2-8]: a will is a publish by its
	// client, at that time.
	Owner Access
}

// MemoryStore keeps retained messages in memory and grants every claim. It is
// the store of a broker without raft, and the reference for tests.
type MemoryStore struct {
	epoch atomic.Uint64

	mu       sync.RWMutex
	retained map[string]*Message
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{retained: make(map[string]*Message)}
}

// Claim implements Store; it always succeeds, with an increasing epoch.
func (s *MemoryStore) Claim(_ ClaimRequest, done func(ClaimResult, error)) {
	done(ClaimResult{Epoch: s.epoch.Add(1)}, nil)
}

// Disconnected implements Store.
func (s *MemoryStore) Disconnected(string, uint64, uint32, *Will) {}

// Ended implements Store.
func (s *MemoryStore) Ended(string, uint64) {}

// Subscribe implements Store.
func (s *MemoryStore) Subscribe(_ string, _ uint64, _ PersistedSub, done func(error)) { done(nil) }

// Unsubscribe implements Store.
func (s *MemoryStore) Unsubscribe(_ string, _ uint64, _ string, done func(error)) { done(nil) }

// Retain implements Store.
func (s *MemoryStore) Retain(m *Message, done func(error)) {
	s.mu.Lock()
	if len(m.Payload) == 0 {
		delete(s.retained, string(m.Topic)) // [MQTT-3.3.1-6]
	} else {
		s.retained[string(m.Topic)] = m // [MQTT-3.3.1-5]
	}
	s.mu.Unlock()
	done(nil)
}

// MatchRetained implements Store. Filters without wildcards are a map lookup;
// others scan the retained set.
func (s *MemoryStore) MatchRetained(filter []byte, now int64, fn func(*Message)) {
	var found []*Message
	s.mu.RLock()
	if !hasWildcard(filter) {
		if m := s.retained[string(filter)]; m != nil {
			found = append(found, m)
		}
	} else {
		for _, m := range s.retained {
			if topicMatch(filter, m.Topic) {
				found = append(found, m)
			}
		}
	}
	s.mu.RUnlock()
	var expired []string
	for _, m := range found {
		if m.expired(now) {
			expired = append(expired, string(m.Topic))
			continue
		}
		fn(m)
	}
	if len(expired) > 0 {
		s.mu.Lock()
		for _, t := range expired {
			if m := s.retained[t]; m != nil && m.expired(now) {
				delete(s.retained, t)
			}
		}
		s.mu.Unlock()
	}
}

// RetainedCount implements Store.
func (s *MemoryStore) RetainedCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.retained)
}

func hasWildcard(f []byte) bool {
	for _, c := range f {
		if c == '+' || c == '#' {
			return true
		}
	}
	return false
}

// TopicMatch reports whether topic matches filter (without a $share/
// prefix), as a subscription does.
func TopicMatch(filter, topic string) bool { return topicMatch([]byte(filter), []byte(topic)) }

// topicMatch reports whether topic matches filter: '+' is one level, '#' the
// rest (including the parent level), and topics starting with '$' are not
// matched by a leading wildcard [MQTT-4.7.2-1].
func topicMatch(filter, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		// Read one level of each.
		fe := fi
		for fe < len(filter) && filter[fe] != '/' {
			fe++
		}
		flevel := filter[fi:fe]
		if len(flevel) == 1 && flevel[0] == '#' {
			return true
		}
		if ti > len(topic) {
			return false
		}
		te := ti
		for te < len(topic) && topic[te] != '/' {
			te++
		}
		if !(len(flevel) == 1 && flevel[0] == '+') && string(flevel) != string(topic[ti:te]) {
			return false
		}
		fEnd, tEnd := fe >= len(filter), te >= len(topic)
		if fEnd || tEnd {
			if fEnd && tEnd {
				return true
			}
			// "a/#" matches "a": the filter continues with exactly "/#".
			return tEnd && string(filter[fe:]) == "/#"
		}
		fi, ti = fe+1, te+1
	}
}
