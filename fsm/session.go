package fsm

// ExpiryNever is the session expiry interval of a session that never expires
// (MQTT 5 Session Expiry Interval 0xFFFFFFFF).
const ExpiryNever uint32 = 0xFFFFFFFF

// Session is one entry of the replicated session registry.
//
// Values returned by the read views are copies of the registry entry, but
// Will and Subscriptions are shared with the FSM state: treat them as
// read-only.
type Session struct {
	ClientID string
	// Node and Boot identify the owner: the node process that holds (or
	// held) the connection and the session's in-memory state.
	Node string
	Boot uint64
	// Epoch fences the session: see EpochIndex. Ops carrying another epoch
	// are rejected as stale.
	Epoch           uint64
	ProtocolVersion byte // codec.Version value: 3, 4 or 5
	CleanStart      bool
	// Expiry is the session expiry interval in seconds: 0 ends the session
	// at disconnect, ExpiryNever never ends it.
	Expiry uint32
	// ConnectedAt is the Now of the claim (unix ms).
	ConnectedAt int64
	// Connected is false after SessionDisconnected or NodeDown.
	Connected bool
	// DisconnectedAt is the unix ms of the disconnect, when not Connected.
	DisconnectedAt int64
	// OwnerDown is set by NodeDown: nobody holds the session's connection
	// state or timers, so the leader publishes its will (PendingWills).
	OwnerDown bool
	// Will is the stored will message, nil when there is none or it was
	// published or discarded.
	Will *Will
	// Subscriptions are the persisted subscriptions, sorted by filter.
	Subscriptions []Subscription
}

// ephemeral reports whether a session of expiry and will ends with its
// connection and has no will: its registry entry would serve nothing (no
// session to resume, no subscription to restore, no will for the leader to
// publish should its owner die), so a claim of such a session keeps none.
func ephemeral(expiry uint32, will *Will) bool { return expiry == 0 && will == nil }

// Will is the will message of a session.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Delay is the will delay interval in seconds (MQTT 5; 0 for 3.x).
	Delay uint32
	// Props are the v5 will properties, opaque to the FSM.
	Props []byte
	// Username is the user name of the connection that set the will, for
	// the authorization check when it is published ("" = none).
	Username string
}

// Subscription is a persisted subscription with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	// SubscriptionID is the v5 subscription identifier, 0 when absent.
	SubscriptionID uint32
}

// EpochIndex returns the raft log index of the claim that created epoch.
// An epoch is (index << 16) | position of the claim in its batch, so two
// claims of one client id in one log entry still get ordered, distinct
// epochs. Epochs compare in claim order. Safe for concurrent use.
func EpochIndex(epoch uint64) uint64 { return epoch >> 16 }

func makeEpoch(index uint64, pos int) uint64 { return index<<16 | uint64(pos) }

// ExpiresAt returns the unix ms at which the session expires, and false when
// it is connected or never expires. Safe for concurrent use.
func (s *Session) ExpiresAt() (int64, bool) {
	if s.Connected || s.Expiry == ExpiryNever {
		return 0, false
	}
	return s.DisconnectedAt + int64(s.Expiry)*1000, true
}

// Expired reports whether the session has expired at now (unix ms).
// Safe for concurrent use.
func (s *Session) Expired(now int64) bool {
	at, ok := s.ExpiresAt()
	return ok && now >= at
}

// WillDueAt returns when the will of a disconnected session must be
// published: after the will delay or when the session ends, whichever comes
// first [MQTT-3.1.3-9]. It returns false when there is no will or the session
// is connected. Safe for concurrent use.
func (s *Session) WillDueAt() (int64, bool) {
	if s.Will == nil || s.Connected {
		return 0, false
	}
	d := s.Will.Delay
	if s.Expiry < d {
		d = s.Expiry
	}
	return s.DisconnectedAt + int64(d)*1000, true
}

// resumable reports whether a new connection with CleanStart=false resumes
// this session at now. A session with expiry 0 ends when its connection
// closes, which a takeover does, so it is never resumed.
func (s *Session) resumable(now int64) bool {
	return s.Expiry != 0 && !s.Expired(now)
}

// ExpiryPolicy turns what a client asked for into the Expiry carried by a
// SessionClaim. The FSM applies the claim's Expiry as given and never reads
// configuration, so every replica computes the same state; the broker, which
// owns the configuration, uses this on the proposing node.
type ExpiryPolicy struct {
	// V3Expiry is the expiry of an MQTT 3.x session with clean session 0,
	// which the protocol says never expires; a broker may cap it.
	// The zero value is replaced by ExpiryNever.
	V3Expiry uint32
	// Max caps any v5 session expiry interval; 0 means no cap. A broker that
	// caps must tell the v5 client in CONNACK.
	Max uint32
}

// Effective returns the session expiry interval to put in a SessionClaim.
// Safe for concurrent use.
func (p ExpiryPolicy) Effective(protocolVersion byte, cleanStart bool, requested uint32) uint32 {
	if protocolVersion < 5 {
		if cleanStart {
			return 0
		}
		if p.V3Expiry == 0 {
			return ExpiryNever
		}
		return p.V3Expiry
	}
	if p.Max != 0 && requested > p.Max {
		return p.Max
	}
	return requested
}
