package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/fsm"
)

// Store is the broker's persistent state on raft: every write is an op of
// the node's proposer, and reads (retained messages) come from the local
// replica of the FSM. It implements broker.Store; safe for concurrent use.
type Store struct {
	fsm  *fsm.FSM
	p    *Proposer
	node string
	boot uint64
	log  *slog.Logger

	// solo is set while this node is the only server of the raft
	// configuration (and its leader): see Claim. Node keeps it.
	solo atomic.Bool
	// leaderless, when set (netsplit-clean-sessions), reports that raft has
	// no leader: clean sessions are then claimed locally (see Claim).
	leaderless atomic.Pointer[func() bool]

	// unsure holds, by client id, the claims that failed with ErrUnavailable:
	// their batch may have reached a leader that lost its leadership, and a
	// new leader may still commit it. Node's claim hook adopts such a claim's
	// session (Broker.AdoptClaim) if it is applied after all.
	unsureMu sync.Mutex
	unsure   map[string]unsureClaim
}

var _ broker.Store = (*Store)(nil)

// NewStore returns a store proposing through p and reading from f.
func NewStore(f *fsm.FSM, p *Proposer, node string, boot uint64, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{fsm: f, p: p, node: node, boot: boot, log: log}
}

func nowMS() int64 { return time.Now().UnixMilli() }

// codeError turns a refused op into an error.
func codeError(op string, c fsm.Code) error { return fmt.Errorf("cluster: %s refused: %v", op, c) }

// Claim implements broker.Store: the claim commits before CONNACK.
//
// But for one case: a session that ends with its connection and has no will
// (expiry 0, no will), on a node that is the whole cluster, while the
// registry holds nothing for its client id. Such a claim would keep no
// entry (fsm: ephemeral), and there is no other node whose connections it
// would fence: the broker's own registry serves one connection per client
// id. It is answered at once, without the log, with epoch 0 (older than any
// epoch the log gives, so that any later claim through the log fences the
// connection) and Known false (the broker's memory decides whether a
// session is present). Once another node joins, every claim goes through
// the log again.
//
// With netsplit-clean-sessions on (Node.AllowNetsplitCleanSessions), a clean
// session (expiry 0) is also claimed locally, with epoch 0, while raft has
// no leader (this node is on the minority side of a partition, or quorum is
// lost): it is served on this node, and a claim of its client id through the
// log after the heal fences it. Persistent sessions always need the log.
func (s *Store) Claim(req broker.ClaimRequest, done func(broker.ClaimResult, error)) {
	if req.Expiry == 0 {
		if f := s.leaderless.Load(); f != nil && (*f)() {
			done(broker.ClaimResult{}, nil)
			return
		}
	}
	if req.Expiry == 0 && req.Will == nil && s.solo.Load() {
		if _, ok := s.fsm.Session(req.ClientID); !ok {
			done(broker.ClaimResult{}, nil)
			return
		}
	}
	cmd := &fsm.SessionClaim{ClientID: req.ClientID, Node: s.node, Boot: s.boot, CleanStart: req.CleanStart,
		Expiry: req.Expiry, ProtocolVersion: req.ProtocolVersion, Will: toFSMWill(req.Will), Now: nowMS()}
	s.p.Propose(cmd, func(r fsm.Result, err error) {
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("session claim answered", "client", req.ClientID, "clean_start", req.CleanStart, "expiry", req.Expiry,
				"code", r.Code.String(), "epoch", r.Epoch, "present", r.SessionPresent, "prev_node", r.PrevOwner, "prev_epoch", r.PrevEpoch, "err", err)
		}
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				s.noteUnsure(req)
			}
			done(broker.ClaimResult{}, err)
			return
		}
		s.takeUnsure(req.ClientID) // answered: an older unsure claim is older than this one
		if r.Code != fsm.CodeOK {
			done(broker.ClaimResult{}, codeError("session claim", r.Code))
			return
		}
		res := broker.ClaimResult{Epoch: r.Epoch, Known: true, Present: r.SessionPresent, Persisted: persistedOf(r.Subscriptions)}
		if r.SessionPresent && r.PrevOwner != s.node {
			res.PrevNode = r.PrevOwner // its state moves from there (broker/takeover.go)
		}
		done(res, nil)
	})
}

// persistedOf converts the registry's subscriptions for the broker.
func persistedOf(subs []fsm.Subscription) []broker.PersistedSub {
	var out []broker.PersistedSub
	for _, sub := range subs {
		out = append(out, broker.PersistedSub{Filter: sub.Filter, QoS: sub.QoS,
			NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished,
			RetainHandling: sub.RetainHandling, SubscriptionID: sub.SubscriptionID})
	}
	return out
}

// unsureClaim is a claim reported failed whose outcome is unknown.
type unsureClaim struct {
	req broker.ClaimRequest
	at  time.Time
}

// unsureFor is how long an unsure claim is remembered: a leader commits
// what it inherited at its election, within seconds.
const unsureFor = time.Minute

// maxUnsure bounds the unsure claims remembered.
const maxUnsure = 4096

// noteUnsure remembers req, whose claim failed with its outcome unknown.
func (s *Store) noteUnsure(req broker.ClaimRequest) {
	req.Will = nil // not needed to adopt the session; the registry keeps it
	now := time.Now()
	s.unsureMu.Lock()
	defer s.unsureMu.Unlock()
	if s.unsure == nil {
		s.unsure = make(map[string]unsureClaim)
	}
	if len(s.unsure) >= maxUnsure {
		for id, u := range s.unsure {
			if now.Sub(u.at) > unsureFor {
				delete(s.unsure, id)
			}
		}
		if len(s.unsure) >= maxUnsure {
			return
		}
	}
	s.unsure[req.ClientID] = unsureClaim{req: req, at: now}
}

// takeUnsure returns and forgets the unsure claim of clientID, if one is
// remembered and recent. Safe for concurrent use.
func (s *Store) takeUnsure(clientID string) (broker.ClaimRequest, bool) {
	s.unsureMu.Lock()
	defer s.unsureMu.Unlock()
	u, ok := s.unsure[clientID]
	if !ok {
		return broker.ClaimRequest{}, false
	}
	delete(s.unsure, clientID)
	return u.req, time.Since(u.at) <= unsureFor
}

// Disconnected implements broker.Store.
func (s *Store) Disconnected(clientID string, epoch uint64, expiry uint32, will *broker.Will) {
	cmd := &fsm.SessionDisconnected{ClientID: clientID, Epoch: epoch, At: nowMS(), Expiry: expiry, KeepWill: will != nil}
	s.p.Propose(cmd, s.logFailure("session disconnect", clientID, epoch))
}

// Ended implements broker.Store. A session of epoch 0 never went through
// the log (see Claim): there is nothing to release.
func (s *Store) Ended(clientID string, epoch uint64) {
	if epoch == 0 {
		return
	}
	s.p.Propose(&fsm.SessionRelease{ClientID: clientID, Epoch: epoch}, s.logFailure("session release", clientID, epoch))
}

// Release ends the registry entry of clientID at epoch and waits for the
// result: the operator's removal of a session no node holds in memory (its
// node is down, or it was never restored). Safe for concurrent use.
func (s *Store) Release(clientID string, epoch uint64) error {
	errc := make(chan error, 1)
	s.p.Propose(&fsm.SessionRelease{ClientID: clientID, Epoch: epoch}, func(r fsm.Result, err error) {
		if err == nil && r.Code != fsm.CodeOK {
			err = codeError("session release", r.Code)
		}
		errc <- err
	})
	return <-errc
}

// logFailure returns the done callback of an op on the session of clientID
// at epoch: a failure is logged at warn, every result at debug.
func (s *Store) logFailure(what, clientID string, epoch uint64) func(fsm.Result, error) {
	return func(r fsm.Result, err error) {
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug(what+" applied", "client", clientID, "epoch", epoch, "code", r.Code.String(), "err", err)
		}
		if err != nil {
			s.log.Warn(what+" not recorded", "client", clientID, "err", err)
		} else if r.Code != fsm.CodeOK && r.Code != fsm.CodeStale && r.Code != fsm.CodeNotFound {
			s.log.Warn(what+" refused", "client", clientID, "code", r.Code.String())
		}
	}
}

// Subscribe implements broker.Store: SUBACK waits for the commit.
func (s *Store) Subscribe(clientID string, epoch uint64, sub broker.PersistedSub, done func(error)) {
	cmd := &fsm.Subscribe{ClientID: clientID, Epoch: epoch, Filter: sub.Filter, QoS: sub.QoS, NoLocal: sub.NoLocal,
		RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubscriptionID: sub.SubscriptionID}
	s.p.Propose(cmd, func(r fsm.Result, err error) {
		if err == nil && r.Code != fsm.CodeOK {
			err = codeError("subscribe", r.Code)
		}
		done(err)
	})
}

// Unsubscribe implements broker.Store.
func (s *Store) Unsubscribe(clientID string, epoch uint64, filter string, done func(error)) {
	s.p.Propose(&fsm.Unsubscribe{ClientID: clientID, Epoch: epoch, Filter: filter}, func(r fsm.Result, err error) {
		if err == nil && r.Code != fsm.CodeOK && r.Code != fsm.CodeNoSubscription {
			err = codeError("unsubscribe", r.Code)
		}
		done(err)
	})
}

// Retain implements broker.Store: an empty payload deletes.
func (s *Store) Retain(m *broker.Message, done func(error)) {
	var cmd fsm.Command
	if len(m.Payload) == 0 {
		cmd = &fsm.RetainedDelete{Topic: string(m.Topic)}
	} else {
		var exp int64
		if m.ExpiresAt != 0 {
			exp = (m.ExpiresAt + int64(time.Millisecond) - 1) / int64(time.Millisecond)
		}
		cmd = &fsm.RetainedSet{Topic: string(m.Topic), Payload: m.Payload, QoS: m.QoS,
			Props: codec.AppendMessageProperties(nil, &m.Props), ExpiresAt: exp, Now: nowMS()}
	}
	s.p.Propose(cmd, func(r fsm.Result, err error) {
		if err == nil && r.Code != fsm.CodeOK && r.Code != fsm.CodeNotFound {
			err = codeError("retained message", r.Code)
		}
		done(err)
	})
}

// MatchRetained implements broker.Store from the local replica.
func (s *Store) MatchRetained(filter []byte, now int64, fn func(*broker.Message)) {
	nowMs := now / int64(time.Millisecond)
	s.fsm.RetainedWalk(string(filter), func(r *fsm.Retained) bool {
		if r.ExpiresAt != 0 && r.ExpiresAt <= nowMs {
			return true
		}
		m, err := retainedMessage(r)
		if err != nil {
			s.log.Warn("stored retained message has bad properties; skipped", "topic", r.Topic, "err", err)
			return true
		}
		fn(m)
		return true
	})
}

// RetainedCount implements broker.Store.
func (s *Store) RetainedCount() int { return s.fsm.Stats().Retained }

// retainedMessage turns a stored retained message into a broker message.
func retainedMessage(r *fsm.Retained) (*broker.Message, error) {
	m := &broker.Message{Topic: []byte(r.Topic), Payload: r.Payload, QoS: r.QoS, Retain: true}
	if _, err := codec.DecodeMessageProperties(r.Props, &m.Props); err != nil {
		return nil, err
	}
	if r.ExpiresAt != 0 {
		m.ExpiresAt = r.ExpiresAt * int64(time.Millisecond)
	}
	return m, nil
}

// toFSMWill converts a broker will for storage.
func toFSMWill(w *broker.Will) *fsm.Will {
	if w == nil || w.Msg == nil {
		return nil
	}
	m := w.Msg
	return &fsm.Will{Topic: string(m.Topic), Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Delay: w.Delay,
		Props: codec.AppendMessageProperties(nil, &m.Props), Username: string(w.Owner.Username)}
}
