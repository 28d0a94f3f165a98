package fsm

// Op identifies a command type in the encoded form. Values are part of the
// replicated log format: never renumber them.
type Op byte

// Op codes.
const (
	OpSessionClaim        Op = 1
	OpSessionDisconnected Op = 2
	OpSessionExpired      Op = 3
	OpSessionRelease      Op = 4
	OpSubscribe           Op = 5
	OpUnsubscribe         Op = 6
	OpRetainedSet         Op = 7
	OpRetainedDelete      Op = 8
	OpNodeDown            Op = 9
	OpWillDone            Op = 10
	OpNodeUp              Op = 11
)

var opNames = [...]string{
	OpSessionClaim:        "SessionClaim",
	OpSessionDisconnected: "SessionDisconnected",
	OpSessionExpired:      "SessionExpired",
	OpSessionRelease:      "SessionRelease",
	OpSubscribe:           "Subscribe",
	OpUnsubscribe:         "Unsubscribe",
	OpRetainedSet:         "RetainedSet",
	OpRetainedDelete:      "RetainedDelete",
	OpNodeDown:            "NodeDown",
	OpWillDone:            "WillDone",
	OpNodeUp:              "NodeUp",
}

// String returns the op's name. Safe for concurrent use.
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "Op(" + itoa(uint64(o)) + ")"
}

// Command is one operation of a Batch. The implementations are the pointer
// types of this file (*SessionClaim, ...); the set is closed.
type Command interface {
	Op() Op
	appendBody(dst []byte) []byte
	decodeBody(r *reader)
}

// Batch is the payload of one raft log entry: the ops one node's proposer
// gathered, with the idempotency key (Node, Boot, Seq). A batch whose key
// was applied before is not applied again (see FSM.ApplyBatch).
type Batch struct {
	Node string
	Boot uint64 // identifies one run of the node process
	Seq  uint64 // per (Node, Boot), starts at 1 and increases; 0 opts out of deduplication
	Ops  []Command
}

// SessionClaim is sent on every CONNECT: the client's session now belongs to
// Node/Boot. The claim's epoch comes from its raft log position.
type SessionClaim struct {
	ClientID   string
	Node       string
	Boot       uint64
	CleanStart bool
	// Expiry is the effective session expiry interval in seconds; see
	// ExpiryPolicy for MQTT 3.x clients.
	Expiry          uint32
	ProtocolVersion byte
	Will            *Will
	Now             int64 // unix ms on the proposing node
}

// SessionDisconnected records the end of a persistent session's connection.
type SessionDisconnected struct {
	ClientID string
	Epoch    uint64
	At       int64 // unix ms
	// Expiry is the session expiry from now on; a v5 client may change it
	// in DISCONNECT.
	Expiry uint32
	// KeepWill keeps the will for later publication (abnormal close, or
	// v5 DISCONNECT 0x04); false discards it [MQTT-3.14.4-3].
	KeepWill bool
}

// SessionExpired removes an expired, disconnected session and its
// subscriptions. The leader's housekeeping proposes it.
type SessionExpired struct {
	ClientID string
	Epoch    uint64
}

// SessionRelease removes a session whose connection ended and whose expiry
// is 0 (clean session end).
type SessionRelease struct {
	ClientID string
	Epoch    uint64
}

// Subscribe adds or replaces a persisted subscription.
type Subscribe struct {
	ClientID          string
	Epoch             uint64
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32
}

// Unsubscribe removes a persisted subscription.
type Unsubscribe struct {
	ClientID string
	Epoch    uint64
	Filter   string
}

// RetainedSet stores or replaces the retained message of Topic; an empty
// payload deletes it [MQTT-3.3.1-6].
type RetainedSet struct {
	Topic     string
	Payload   []byte
	QoS       byte
	Props     []byte // v5 properties, opaque to the FSM
	ExpiresAt int64  // unix ms, 0 for never
	Now       int64  // unix ms on the proposing node
}

// RetainedDelete removes the retained message of Topic. With ExpiredBy set
// it only removes a message whose ExpiresAt is non-zero and <= ExpiredBy, so
// an expiry sweep racing a fresh RetainedSet cannot delete the new message.
type RetainedDelete struct {
	Topic     string
	ExpiredBy int64
}

// NodeDown marks every connected session owned by Node/Boot disconnected at
// At and hands their wills to the leader; later batches from Node/Boot are
// fenced (CodeFenced).
type NodeDown struct {
	Node string
	Boot uint64
	At   int64
}

// WillDone records that a session's will was published (by its owner, or by
// the leader for PendingWills), so it is not published again.
type WillDone struct {
	ClientID string
	Epoch    uint64
}

// Op implements Command. Safe for concurrent use.
func (*SessionClaim) Op() Op { return OpSessionClaim }

// Op implements Command. Safe for concurrent use.
func (*SessionDisconnected) Op() Op { return OpSessionDisconnected }

// Op implements Command. Safe for concurrent use.
func (*SessionExpired) Op() Op { return OpSessionExpired }

// Op implements Command. Safe for concurrent use.
func (*SessionRelease) Op() Op { return OpSessionRelease }

// Op implements Command. Safe for concurrent use.
func (*Subscribe) Op() Op { return OpSubscribe }

// Op implements Command. Safe for concurrent use.
func (*Unsubscribe) Op() Op { return OpUnsubscribe }

// Op implements Command. Safe for concurrent use.
func (*RetainedSet) Op() Op { return OpRetainedSet }

// Op implements Command. Safe for concurrent use.
func (*RetainedDelete) Op() Op { return OpRetainedDelete }

// Op implements Command. Safe for concurrent use.
func (*NodeDown) Op() Op { return OpNodeDown }

// NodeUp lifts NodeDown's fence from Node/Boot: the node was declared dead
// (a partition, a long pause) and is back in the same process, so its
// batches apply again. The sessions NodeDown disconnected stay as NodeDown
// left them (owner down, wills handed to the leader); the node's later
// claims and ops are accepted. Proposed by the leader when gossip sees the
// boot alive again.
type NodeUp struct {
	Node string
	Boot uint64
}

// Op implements Command.
func (*NodeUp) Op() Op { return OpNodeUp }

// Op implements Command. Safe for concurrent use.
func (*WillDone) Op() Op { return OpWillDone }

// newCommand returns an empty command for op, or nil for an unknown op.
func newCommand(op Op) Command {
	switch op {
	case OpSessionClaim:
		return &SessionClaim{}
	case OpSessionDisconnected:
		return &SessionDisconnected{}
	case OpSessionExpired:
		return &SessionExpired{}
	case OpSessionRelease:
		return &SessionRelease{}
	case OpSubscribe:
		return &Subscribe{}
	case OpUnsubscribe:
		return &Unsubscribe{}
	case OpRetainedSet:
		return &RetainedSet{}
	case OpRetainedDelete:
		return &RetainedDelete{}
	case OpNodeDown:
		return &NodeDown{}
	case OpWillDone:
		return &WillDone{}
	case OpNodeUp:
		return &NodeUp{}
	}
	return nil
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
