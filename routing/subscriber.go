package routing

// Subscriber is what the trie stores per (filter, subscriber) and copies into
// match results. It is a plain value: results never point into the trie, so a
// Result stays valid after a concurrent Subscribe or Unsubscribe.
type Subscriber struct {
	// ID is the session handle chosen by the broker. Within one filter (or one
	// shared group of a filter) an ID appears at most once [MQTT-3.8.4-3].
	ID uint64
	// ClientID is the subscriber's client identifier, compared with the
	// publisher's for No Local [MQTT-3.8.3-3].
	ClientID string
	// QoS is the granted maximum QoS of the subscription (0, 1 or 2).
	QoS byte
	// NoLocal: do not deliver messages this client published itself
	// [MQTT-3.8.3-3]. A protocol error on a shared subscription [MQTT-3.8.3-4];
	// the broker rejects that before it reaches the trie.
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

// subList is the set of subscribers of one filter (or of one shared group):
// a slice for matching, with an ID index once it grows past indexThreshold so
// Subscribe and Unsubscribe stay O(1) on very popular filters.
// Trie.mu must be held; for writing, the write lock.
type subList struct {
	list  []Subscriber
	index map[uint64]int // ID -> position in list; nil while small
}

// indexThreshold is the size from which a subList keeps an ID index. Below it a
// linear scan over ~40-byte entries is cheaper than a map.
const indexThreshold = 16

func (s *subList) len() int { return len(s.list) }

// find returns the position of id in list, or -1.
func (s *subList) find(id uint64) int {
	if s.index != nil {
		if i, ok := s.index[id]; ok {
			return i
		}
		return -1
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
	if i := s.find(sub.ID); i >= 0 {
		s.list[i] = sub
		return true
	}
	s.list = append(s.list, sub)
	if s.index != nil {
		s.index[sub.ID] = len(s.list) - 1
	} else if len(s.list) > indexThreshold {
		s.index = make(map[uint64]int, 2*len(s.list))
		for i := range s.list {
			s.index[s.list[i].ID] = i
		}
	}
	return false
}

// remove deletes the entry with id (swap with the last entry) and reports
// whether it existed.
func (s *subList) remove(id uint64) bool {
	i := s.find(id)
	if i < 0 {
		return false
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.index != nil {
			s.index[s.list[i].ID] = i
		}
	}
	s.list[last] = Subscriber{} // drop the ClientID reference
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, id)
		if len(s.list) <= indexThreshold/2 {
			s.index = nil
		}
	}
	if len(s.list) == 0 {
		s.list = nil
	}
	return true
}
