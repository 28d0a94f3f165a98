package broker

import (
	"github.com/flockmq/flockmq/codec"
)

// queuePrefix is the compatibility alias for a shared subscription in the
// group "$queue": $queue/{filter} is $share/$queue/{filter}.
const queuePrefix = "$queue/"

// subReq is one accepted filter of a SUBSCRIBE while its SUBACK is prepared.
type subReq struct {
	sub     subscription
	prev    subscription // of a persistent session: the subscription sub replaced, if hadPrev
	idx     int          // position in the SUBSCRIBE
	existed bool         // the session already had this filter (Retain Handling 1)
	hadPrev bool
}

// handleSubscribe validates each filter, indexes the accepted ones, answers
// with SUBACK and then sends matching retained messages.
func (c *Client) handleSubscribe(sp *codec.SubscribePacket) {
	l := c.l
	b := l.b
	s := c.s
	var subID uint32
	if len(sp.Props.SubscriptionIDs) > 0 {
		subID = sp.Props.SubscriptionIDs[0]
	}
	// The loop's scratch slices: the common SUBSCRIBE is answered before
	// this returns and leaves no garbage.
	reasons, reqs := l.subReasons[:0], l.subReqs[:0]
	for i := range sp.Subscriptions {
		rc, sub := c.checkFilter(&sp.Subscriptions[i], subID)
		if rc == codec.Success {
			r := subReq{idx: i}
			if s.expiry > 0 {
				// Stored below: remember what to put back should that fail.
				sub.gen = b.newSubGen()
				if j := s.subs.find(sub.filter); j >= 0 {
					r.prev, r.hadPrev = s.subs.list[j], true
				}
			}
			existed, err := b.trie.Subscribe(sub.filter, sub.subscriber(s)) // [MQTT-3.8.4-3]: replaces
			if err != nil {
				rc = codec.TopicFilterInvalid
			} else {
				if s.subs.put(sub) {
					existed = true
				}
				rc = codec.ReasonCode(sub.qos) // granted QoS [MQTT-3.9.3-1]
				r.sub, r.existed = sub, existed
				reqs = append(reqs, r)
			}
		}
		reasons = append(reasons, rc)
	}
	l.subReasons, l.subReqs = reasons, reqs
	if s.expiry == 0 || len(reqs) == 0 {
		c.finishSubscribe(sp.PacketID, reasons, reqs)
		clear(reqs) // drop the filter strings the scratch would pin
		return
	}
	// A persistent session's subscriptions are acknowledged once stored; the
	// answer waits in its own copy of the reasons.
	st := &pendingSuback{id: sp.PacketID, reasons: append([]codec.ReasonCode(nil), reasons...),
		reqs: append([]subReq(nil), reqs...), pending: len(reqs)}
	clear(reqs)
	for j := range st.reqs {
		r := &st.reqs[j]
		inline := true
		b.store.Subscribe(s.clientID, s.epoch, r.sub.persisted(), func(err error) {
			if inline {
				st.stored(c, s, r, err)
				return
			}
			l.exec(func() { st.stored(c, s, r, err); l.Flush() })
		})
		inline = false
	}
}

// newSubGen returns a new install generation for a persistent session's
// subscription (never 0, which marks the others). Safe for concurrent use.
func (b *Broker) newSubGen() uint32 {
	for {
		if g := b.subGen.Add(1); g != 0 {
			return g
		}
	}
}

// pendingSuback is the SUBACK of a persistent session waiting for its
// subscriptions to be stored.
type pendingSuback struct {
	id      uint16
	reasons []codec.ReasonCode
	reqs    []subReq
	pending int
}

// stored records the outcome of storing the subscription r of the
// SUBSCRIBE, and answers once every one is known. A subscription the store
// failed to keep is answered 0x80 and undone (subscribeFailed), on the loop
// that owns s now. Loop goroutine only (c's loop).
func (st *pendingSuback) stored(c *Client, s *Session, r *subReq, err error) {
	if err != nil {
		l := c.l
		l.b.stats.StoreFailures.Add(1)
		st.reasons[r.idx] = codec.UnspecifiedError
		if s.loop.Load() == l {
			l.subscribeFailed(s, r)
		} else {
			undo := *r
			l.b.onOwner(s, func(ol *Loop) { ol.subscribeFailed(s, &undo) })
		}
	}
	st.pending--
	if st.pending == 0 && !c.closed && c.s == s {
		c.finishSubscribe(st.id, st.reasons, st.reqs)
	}
}

// subscribeFailed undoes the subscription r made, which the store failed to
// keep: the client is told it failed (0x80), so it must not be in force
// [MQTT-3.9.3-1]. The SUBSCRIBE then changed nothing: a subscription it
// replaced [MQTT-3.8.4-3], which the store still has, is put back with its
// options; otherwise the filter is removed. Nothing is undone if the
// session ended, or if an UNSUBSCRIBE or a later SUBSCRIBE of the filter
// came since (the subscription in force is no longer r's: its generation
// differs). Messages delivered while r was in force stay delivered.
//
// Limitation: when two SUBSCRIBEs of one filter are in flight together and
// both fail, undoing the second puts back the first's options, which the
// store does not have either. Loop goroutine only; l owns s.
func (l *Loop) subscribeFailed(s *Session, r *subReq) {
	if s.ended {
		return
	}
	i := s.subs.find(r.sub.filter)
	if i < 0 || s.subs.list[i].gen != r.sub.gen {
		return
	}
	if r.hadPrev {
		s.subs.put(r.prev)
		_, _ = l.b.trie.Subscribe(r.prev.filter, r.prev.subscriber(s)) // its filter was accepted before
		return
	}
	s.subs.remove(r.sub.filter)
	l.b.trie.Unsubscribe(r.sub.filter, s.id)
}

// finishSubscribe writes the SUBACK [MQTT-3.8.4-1] and then the retained
// messages of the accepted filters.
func (c *Client) finishSubscribe(id uint16, reasons []codec.ReasonCode, reqs []subReq) {
	var ack codec.SubackPacket
	ack.PacketID = id
	ack.Reasons = reasons
	if c.version != codec.V5 {
		for i, r := range ack.Reasons {
			if r.IsError() {
				ack.Reasons[i] = codec.V3SubackFailure
			}
		}
	}
	ob := c.outBuf()
	ob.b = codec.AppendSuback(ob.b, &ack, c.version)
	c.l.markDirty(c)
	for i := range reqs {
		if r := &reqs[i]; !r.sub.shared() && reasons[r.idx] == codec.ReasonCode(r.sub.qos) {
			c.l.sendRetained(c.s, &r.sub, r.existed)
		}
	}
}

// installPersisted indexes the stored subscriptions of a resumed session.
// Loop goroutine only; l owns s, which is new.
func (l *Loop) installPersisted(s *Session, subs []PersistedSub) {
	for _, ps := range subs {
		full := []byte(ps.Filter)
		if codec.ValidateTopicFilter(full) != nil {
			l.b.log.Warn("stored subscription has an invalid filter; skipped", "client", s.clientID, "filter", ps.Filter)
			continue
		}
		_, f, shared, _ := codec.ParseShared(full)
		sub := newSubscription(ps, len(full)-len(f), shared)
		if _, err := l.b.trie.Subscribe(sub.filter, sub.subscriber(s)); err != nil {
			continue
		}
		s.subs.put(sub)
	}
}

// newSubscription makes the subscription ps describes; the filter as indexed
// starts at keyOff.
func newSubscription(ps PersistedSub, keyOff int, shared bool) subscription {
	sub := subscription{filter: ps.Filter, subID: ps.SubscriptionID, keyOff: uint32(keyOff), qos: ps.QoS,
		rh: ps.RetainHandling}
	if ps.NoLocal {
		sub.flags |= subNoLocal
	}
	if ps.RetainAsPublished {
		sub.flags |= subRetainAsPublished
	}
	if shared {
		sub.flags |= subShared
	}
	return sub
}

// filterKey is the name a subscription is kept under: $queue/ becomes its
// $share/ form.
func filterKey(f []byte) string {
	if len(f) > len(queuePrefix) && string(f[:len(queuePrefix)]) == queuePrefix {
		return codec.SharePrefix + "$queue/" + string(f[len(queuePrefix):])
	}
	return string(f)
}

// checkFilter validates one requested subscription and builds it.
func (c *Client) checkFilter(in *codec.Subscription, subID uint32) (codec.ReasonCode, subscription) {
	b := c.l.b
	key := filterKey(in.Filter)
	full := in.Filter
	if len(key) != len(full) {
		full = []byte(key) // the $share/ form of a $queue/ filter
	}
	if err := codec.ValidateTopicFilter(full); err != nil {
		return codec.TopicFilterInvalid, subscription{} // [MQTT-4.7.1-1], [MQTT-4.7.1-2]
	}
	_, f, shared, _ := codec.ParseShared(full)
	if max := b.cfg.MaxTopicLevels; max > 0 && levels(f) > max {
		return codec.TopicFilterInvalid, subscription{}
	}
	allowed := false
	if b.aauthz != nil {
		allowed = b.aauthz.AllowSubscribe(c.access(), in.Filter)
	} else {
		allowed = b.authz.CanSubscribe(c.clientID(), c.user(), in.Filter)
	}
	if !allowed {
		b.stats.SubscribeDenied.Add(1)
		return codec.NotAuthorized, subscription{} // v5 0x87, 3.1.1 0x80 (Failure) [MQTT-3.9.3-2]
	}
	ps := PersistedSub{Filter: key, QoS: in.QoS, SubscriptionID: subID}
	if c.version == codec.V5 {
		ps.NoLocal, ps.RetainAsPublished, ps.RetainHandling = in.NoLocal, in.RetainAsPublished, in.RetainHandling
	}
	return codec.Success, newSubscription(ps, len(full)-len(f), shared)
}

// sendRetained delivers the retained messages matching a new subscription,
// as Retain Handling says [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11].
// Those sent at QoS 0 that the socket does not take at once wait in the
// connection's retained backlog (retained_pace.go) rather than being
// dropped at the outbound high-water mark.
func (l *Loop) sendRetained(s *Session, sub *subscription, existed bool) {
	switch sub.rh {
	case 1:
		if existed {
			return
		}
	case 2:
		return
	}
	// The store calls back synchronously: the loop's sink carries the
	// subscription, so that a SUBSCRIBE costs no closure.
	l.rs = retainedSink{s: s, qos: sub.qos, subIDs: subIDList(nil, sub.subID)}
	if c := s.client; c != nil && c.state == stateConnected {
		l.rs.c = c
		if l.b.aauthz != nil {
			l.rs.read, l.rs.check = c.access(), true
		}
	}
	l.keyBuf = append(l.keyBuf[:0], sub.key()...)
	l.b.store.MatchRetained(l.keyBuf, l.now, l.rsSend)
	l.b.matchSys(l.keyBuf, l.rsSend)
	l.rs = retainedSink{}
}

// retainedSink is the subscription sendRetained is serving.
type retainedSink struct {
	s      *Session
	c      *Client  // the connection of s, nil if none
	subIDs []uint32 // shared by the deliveries of this subscription: read only
	qos    byte
	held   bool   // the backlog of c has a run for this subscription
	check  bool   // ask the AccessAuthorizer whether read may have each message
	read   Access // the connection, for check
}

// sendRetainedMsg delivers m, a retained message matching the subscription in
// l.rs: at QoS 0 at once while the socket takes it, else into the
// connection's retained backlog, behind what is already there.
func (l *Loop) sendRetainedMsg(m *Message) {
	rs := &l.rs
	if rs.check && !l.b.aauthz.AllowRead(rs.read, m.Topic) {
		l.b.stats.ReadDenied.Add(1)
		return
	}
	d := delivery{s: rs.s, msg: m, qos: min(m.QoS, rs.qos), retain: true, subIDs: rs.subIDs}
	if c := rs.c; c != nil && d.qos == 0 && (c.retainedPending() || c.overHighWater()) {
		l.holdRetained(c, m)
		return
	}
	l.deliver(d)
}

// handleUnsubscribe removes filters and answers with UNSUBACK [MQTT-3.10.4-4].
func (c *Client) handleUnsubscribe(up *codec.UnsubscribePacket) {
	l := c.l
	b := l.b
	s := c.s
	var ack codec.SubackPacket
	ack.PacketID = up.PacketID
	ack.Reasons = make([]codec.ReasonCode, len(up.Filters))
	for i, f := range up.Filters {
		key := filterKey(f)
		if !s.subs.remove(key) {
			ack.Reasons[i] = codec.NoSubscriptionExisted
			continue
		}
		b.trie.Unsubscribe(key, s.id) // [MQTT-3.10.4-1]
		if s.expiry > 0 {
			b.store.Unsubscribe(s.clientID, s.epoch, key, func(err error) {
				if err != nil {
					b.stats.StoreFailures.Add(1)
				}
			})
		}
	}
	ob := c.outBuf()
	ob.b = codec.AppendUnsuback(ob.b, &ack, c.version)
	l.markDirty(c)
}
