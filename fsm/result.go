package fsm

import "encoding/binary"

// Code says what applying one op did.
type Code byte

// Result codes. Values are persisted in snapshots: never renumber them.
const (
	// CodeOK: the op was applied.
	CodeOK Code = 0
	// CodeStale: the op's epoch is not the session's current epoch (a newer
	// claim fenced it); nothing changed.
	CodeStale Code = 1
	// CodeNotFound: no session for the client id, or no retained message
	// for the topic; nothing changed.
	CodeNotFound Code = 2
	// CodeNoSubscription: Unsubscribe of a filter the session does not have
	// (v5 UNSUBACK 0x11).
	CodeNoSubscription Code = 3
	// CodeInvalid: the op is not allowed in the current state or has an
	// invalid field (SessionExpired of a connected session, a topic with a
	// wildcard or U+0000, an empty client id, ...); nothing changed.
	CodeInvalid Code = 4
	// CodeDuplicate: the batch's Seq is older than the idempotency window;
	// it was applied before (or never will be) and its results are gone.
	CodeDuplicate Code = 5
	// CodeFenced: the batch comes from (or the claim is for) a node boot
	// that NodeDown declared dead; nothing changed.
	CodeFenced Code = 6
)

var codeNames = [...]string{"OK", "Stale", "NotFound", "NoSubscription", "Invalid", "Duplicate", "Fenced"}

// String returns the code's name. Safe for concurrent use.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + itoa(uint64(c)) + ")"
}

// Result is the outcome of one op. The response of a log entry (what
// raft.ApplyFuture.Response returns) is a []Result with one Result per op of
// the entry's batch, or an error when the entry could not be decoded.
//
// Fields beyond Code are set by the ops named in their comments.
type Result struct {
	Code Code
	// SessionClaim: the new epoch, whether the previous session is resumed,
	// and who held the client id before (zero when nobody did).
	// SessionPresent is set when CleanStart is false and the previous session
	// has a non-zero expiry and had not expired at the claim's Now; a session
	// with expiry 0 ends with its connection, which the takeover closes.
	Epoch          uint64
	SessionPresent bool
	PrevOwner      string
	PrevBoot       uint64
	PrevEpoch      uint64
	// SessionClaim: the persisted subscriptions of a resumed session
	// (read-only, shared with the FSM state).
	Subscriptions []Subscription
	// Subscribe: a subscription with the same filter existed and was
	// replaced (for Retain Handling 1, [MQTT-3.3.1-10]).
	Existed bool
	// NodeDown: number of sessions marked disconnected.
	Count int
}

const (
	resPresent = 1 << 0
	resExisted = 1 << 1
)

// appendResult encodes r for the idempotency window of a snapshot.
func appendResult(dst []byte, r *Result) []byte {
	var f byte
	if r.SessionPresent {
		f |= resPresent
	}
	if r.Existed {
		f |= resExisted
	}
	dst = append(dst, byte(r.Code), f)
	dst = binary.AppendUvarint(dst, r.Epoch)
	dst = appendString(dst, r.PrevOwner)
	dst = binary.AppendUvarint(dst, r.PrevBoot)
	dst = binary.AppendUvarint(dst, r.PrevEpoch)
	dst = binary.AppendUvarint(dst, uint64(r.Count))
	dst = binary.AppendUvarint(dst, uint64(len(r.Subscriptions)))
	for _, s := range r.Subscriptions {
		dst = appendSubscription(dst, s)
	}
	return dst
}

func readResult(r *reader) Result {
	var res Result
	res.Code = Code(r.byte("result code"))
	if res.Code > CodeFenced {
		r.fail(ErrMalformed, "unknown result code")
	}
	f := r.flags("result flags", resPresent|resExisted)
	res.SessionPresent, res.Existed = f&resPresent != 0, f&resExisted != 0
	res.Epoch = r.uvarint("result epoch")
	res.PrevOwner = r.string("result prev owner")
	res.PrevBoot = r.uvarint("result prev boot")
	res.PrevEpoch = r.uvarint("result prev epoch")
	res.Count = int(r.uint32("result count"))
	n := r.count("result subscriptions", 5)
	if n > 0 {
		res.Subscriptions = make([]Subscription, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			res.Subscriptions = append(res.Subscriptions, readSubscription(r))
		}
	}
	return res
}
