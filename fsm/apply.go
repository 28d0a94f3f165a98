package fsm

import "sort"

// ClaimEvent tells the cluster layer that a SessionClaim was applied: every
// local connection of ClientID with an epoch older than Epoch must be closed
// (v5 reason 0x8E).
type ClaimEvent struct {
	ClientID  string
	Epoch     uint64
	Node      string
	Boot      uint64
	PrevNode  string // "" when the client id had no session
	PrevBoot  uint64
	PrevEpoch uint64
	// Resumed is set when the claim resumes the previous session (session
	// present); otherwise the previous session ended with this claim.
	Resumed bool
}

// applyBatch applies the ops of one batch (log entry index) and returns one
// result per op.
func (t *txn) applyBatch(index uint64, b *Batch, events *[]ClaimEvent) []Result {
	res := make([]Result, len(b.Ops))
	for i, c := range b.Ops {
		switch c := c.(type) {
		case *SessionClaim:
			res[i] = t.claim(c, makeEpoch(index, i), events)
		case *SessionDisconnected:
			res[i] = t.disconnected(c)
		case *SessionExpired:
			res[i] = t.expired(c)
		case *SessionRelease:
			res[i] = t.release(c)
		case *Subscribe:
			res[i] = t.subscribe(c)
		case *Unsubscribe:
			res[i] = t.unsubscribe(c)
		case *RetainedSet:
			res[i] = t.retainedSet(c)
		case *RetainedDelete:
			res[i] = t.retainedDelete(c)
		case *NodeDown:
			res[i] = t.nodeDown(c)
		case *WillDone:
			res[i] = t.willDone(c)
		case *NodeUp:
			res[i] = t.nodeUp(c)
		default:
			panic("BUG: fsm: unhandled command type")
		}
	}
	return res
}

// fenced returns the session id's current entry if epoch is its epoch, or
// the code that rejects the op.
func (t *txn) fenced(id string, epoch uint64) (*Session, Code) {
	s := t.session(id)
	switch {
	case s == nil:
		return nil, CodeNotFound
	case s.Epoch != epoch:
		return nil, CodeStale
	}
	return s, CodeOK
}

func (t *txn) claim(c *SessionClaim, epoch uint64, events *[]ClaimEvent) Result {
	if c.ClientID == "" || c.Node == "" {
		return Result{Code: CodeInvalid}
	}
	if e := t.boots[bootKey{c.Node, c.Boot}]; e != nil && e.down {
		return Result{Code: CodeFenced} // a claim for a dead node boot
	}
	prev := t.session(c.ClientID)
	res := Result{Epoch: epoch}
	if prev != nil {
		res.PrevOwner, res.PrevBoot, res.PrevEpoch = prev.Node, prev.Boot, prev.Epoch
		if !c.CleanStart && prev.resumable(c.Now) {
			res.SessionPresent = true
			res.Subscriptions = prev.Subscriptions
		}
	}
	if ephemeral(c.Expiry, c.Will) {
		// Nothing of it outlives the connection and no will waits on its
		// owner: the claim fences (the event below) and the epoch orders it,
		// but no entry is kept. A clean connection costs the registry
		// nothing while it lasts.
		if prev != nil {
			t.deleteSession(prev)
		}
	} else {
		t.putSession(prev, &Session{
			ClientID: c.ClientID, Node: c.Node, Boot: c.Boot, Epoch: epoch,
			ProtocolVersion: c.ProtocolVersion, CleanStart: c.CleanStart, Expiry: c.Expiry,
			ConnectedAt: c.Now, Connected: true, Will: c.Will, Subscriptions: res.Subscriptions,
		})
	}
	*events = append(*events, ClaimEvent{
		ClientID: c.ClientID, Epoch: epoch, Node: c.Node, Boot: c.Boot,
		PrevNode: res.PrevOwner, PrevBoot: res.PrevBoot, PrevEpoch: res.PrevEpoch, Resumed: res.SessionPresent,
	})
	return res
}

func (t *txn) disconnected(c *SessionDisconnected) Result {
	old, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	s := *old
	s.Connected, s.DisconnectedAt, s.Expiry = false, c.At, c.Expiry
	if !c.KeepWill {
		s.Will = nil // [MQTT-3.14.4-3]
	}
	t.putSession(old, &s)
	return Result{}
}

func (t *txn) expired(c *SessionExpired) Result {
	s, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	if s.Connected {
		return Result{Code: CodeInvalid}
	}
	t.deleteSession(s)
	return Result{}
}

func (t *txn) release(c *SessionRelease) Result {
	s, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	t.deleteSession(s)
	return Result{}
}

func (t *txn) willDone(c *WillDone) Result {
	old, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	if old.Will != nil {
		s := *old
		s.Will = nil
		t.putSession(old, &s)
	}
	return Result{}
}

func (t *txn) subscribe(c *Subscribe) Result {
	if c.Filter == "" {
		return Result{Code: CodeInvalid} // [MQTT-4.7.3-1]
	}
	old, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	subs := old.Subscriptions
	i := sort.Search(len(subs), func(i int) bool { return subs[i].Filter >= c.Filter })
	existed := i < len(subs) && subs[i].Filter == c.Filter
	n := make([]Subscription, 0, len(subs)+1)
	n = append(n, subs[:i]...)
	n = append(n, c.subscription())
	if existed {
		i++
	}
	n = append(n, subs[i:]...)
	s := *old
	s.Subscriptions = n
	t.putSession(old, &s)
	return Result{Existed: existed}
}

func (t *txn) unsubscribe(c *Unsubscribe) Result {
	old, code := t.fenced(c.ClientID, c.Epoch)
	if code != CodeOK {
		return Result{Code: code}
	}
	subs := old.Subscriptions
	i := sort.Search(len(subs), func(i int) bool { return subs[i].Filter >= c.Filter })
	if i == len(subs) || subs[i].Filter != c.Filter {
		return Result{Code: CodeNoSubscription}
	}
	var n []Subscription
	if len(subs) > 1 {
		n = make([]Subscription, 0, len(subs)-1)
		n = append(append(n, subs[:i]...), subs[i+1:]...)
	}
	s := *old
	s.Subscriptions = n
	t.putSession(old, &s)
	return Result{}
}

func (t *txn) retainedSet(c *RetainedSet) Result {
	if !validRetainedTopic(c.Topic) {
		return Result{Code: CodeInvalid}
	}
	key := topicKey(c.Topic)
	old, _ := get(t.retained, key)
	// An empty payload deletes [MQTT-3.3.1-6]; so does a message that
	// expired before it was applied.
	if len(c.Payload) == 0 || (c.ExpiresAt != 0 && c.ExpiresAt <= c.Now) {
		if old != nil {
			t.deleteRetained(old)
		}
		return Result{}
	}
	t.putRetained(old, &Retained{
		Topic: c.Topic, Payload: c.Payload, QoS: c.QoS, Props: c.Props,
		ExpiresAt: c.ExpiresAt, StoredAt: c.Now,
	}, key)
	return Result{}
}

func (t *txn) retainedDelete(c *RetainedDelete) Result {
	old := t.retainedGet(c.Topic)
	switch {
	case old == nil:
		return Result{Code: CodeNotFound}
	case c.ExpiredBy != 0 && (old.ExpiresAt == 0 || old.ExpiresAt > c.ExpiredBy):
		return Result{Code: CodeStale} // replaced since the sweep looked
	}
	t.deleteRetained(old)
	return Result{}
}

// nodeUp lifts the fence of a boot NodeDown declared dead; NotFound when it
// is not fenced.
func (t *txn) nodeUp(c *NodeUp) Result {
	k := bootKey{c.Node, c.Boot}
	if e := t.boots[k]; e == nil || !e.down {
		return Result{Code: CodeNotFound}
	}
	e := t.editBoot(k)
	e.down, e.downAt = false, 0
	return Result{}
}

// nodeDown disconnects the sessions of node/boot at At and marks all its
// sessions OwnerDown, so their wills go to the leader.
func (t *txn) nodeDown(c *NodeDown) Result {
	var ids []string
	walkPrefix(t.owners, ownerPrefix(c.Node, c.Boot), func(_ string, id string) bool {
		ids = append(ids, id)
		return true
	})
	n := 0
	for _, id := range ids {
		old := t.session(id)
		if old.OwnerDown {
			continue
		}
		s := *old
		s.OwnerDown = true
		if s.Connected {
			s.Connected, s.DisconnectedAt = false, c.At
			n++
		}
		t.putSession(old, &s)
	}
	t.markDown(c.Node, c.Boot, c.At)
	return Result{Count: n}
}
