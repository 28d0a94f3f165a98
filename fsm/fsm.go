package fsm

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is FlockMQ's raft state machine. It implements raft.FSM and
// raft.BatchingFSM.
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore from its FSM goroutine;
// they are serialized by an internal mutex, so calling them from elsewhere
// (tests, tools) is safe too. The read views (Session, RetainedMatch,
// Stats, ...) are safe for concurrent use with everything: they read the
// latest published immutable state without locking.
type FSM struct {
	mu      sync.Mutex            // serializes writers; readers never take it
	work    *state                // the writer's working state; mu must be held
	st      atomic.Pointer[state] // published, immutable
	onClaim atomic.Pointer[func(ClaimEvent)]
	events  []ClaimEvent // ApplyBatch's scratch, taken and given back under mu
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an empty FSM.
func New() *FSM {
	f := &FSM{work: emptyState()}
	f.st.Store(f.work.publish())
	return f
}

// SetClaimHook sets the function called once for every applied
// SessionClaim, in log order, on the goroutine that applies (raft's FSM
// goroutine), after the new state is visible to the read views. nil removes
// it. The hook must not block and must not call Apply, ApplyBatch or
// Restore: hand the event to the node's event loops (e.g. a bounded mailbox
// that coalesces per client id) and return. Safe for concurrent use.
func (f *FSM) SetClaimHook(h func(ClaimEvent)) {
	if h == nil {
		f.onClaim.Store(nil)
		return
	}
	f.onClaim.Store(&h)
}

// Apply applies one log entry; see ApplyBatch for the response.
// Safe for concurrent use (serialized with the other writers).
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies log entries in order and returns one response per log:
//
//   - a *Response holding one Result per op of the entry's Batch;
//   - nil for a log that is not a raft.LogCommand;
//   - an error (wrapping ErrTruncated, ErrMalformed, ErrUnsupportedVersion
//     or ErrUnknownOp) when the entry does not decode; nothing is applied
//     for it, on every replica alike.
//
// Idempotency: a batch whose (Node, Boot, Seq) was applied before is not
// applied again. Within the last DedupWindow batches of that node boot the
// response holds the results recorded when it was applied (read-only); an
// older Seq gets CodeDuplicate for every op. Seq 0 opts out:
// such a batch is always applied. A batch from a node boot that NodeDown
// declared dead gets CodeFenced for every op.
//
// Safe for concurrent use (serialized with the other writers).
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	events := f.events[:0]
	f.events = nil
	t := newTxn(f.work)
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = t.applyLog(l.Index, l.Data, &events)
	}
	f.st.Store(f.work.publish())
	f.mu.Unlock()
	if h := f.onClaim.Load(); h != nil {
		for _, e := range events {
			(*h)(e)
		}
	}
	clear(events)
	f.mu.Lock()
	f.events = events[:0]
	f.mu.Unlock()
	return out
}

func (t *txn) applyLog(index uint64, data []byte, events *[]ClaimEvent) interface{} {
	b, err := DecodeBatch(data)
	if err != nil {
		return fmt.Errorf("fsm: log %d: %w", index, err)
	}
	if res, apply := t.seen(b.Node, b.Boot, b.Seq, len(b.Ops)); !apply {
		return &Response{res}
	}
	res := t.applyBatch(index, b, events)
	t.record(b.Node, b.Boot, b.Seq, index, res)
	return &Response{res}
}

// Response is what ApplyBatch answers for an entry it applied (or had
// applied): one Result per op of its Batch. raft's log cache keeps each
// recent entry, and with it its response, long after the proposer read it:
// Take hands the results over once and lets them go, so that the cache
// holds a few bytes per entry rather than every op's result.
type Response struct{ results []Result }

// Take returns the results and forgets them: a second Take returns nil.
// For the one goroutine that waited for the entry.
func (r *Response) Take() []Result {
	res := r.results
	r.results = nil
	return res
}

// Snapshot returns a point-in-time view of the state in O(1); Apply may go on
// while it is persisted. Safe for concurrent use.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{st: f.st.Load()}, nil
}
