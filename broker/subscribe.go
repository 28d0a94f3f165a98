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
	idx     int  // position in the SUBSCRIBE
	existed bool // the session already had this filter (Retain Handling 1)
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
			existed, err := b.trie.Subscribe(sub.filter, sub.subscriber(s)) // [MQTT-3.8.4-3]: replaces
			if err != nil {
				rc = codec.TopicFilterInvalid
			} else {
				if s.subs.put(sub) {
					existed = true
				}
				rc = codec.ReasonCode(sub.qos) // granted QoS [MQTT-3.9.3-1]
				reqs = append(reqs, subReq{sub: sub, idx: i, existed: existed})
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
				st.stored(c, s, r.idx, err)
				return
			}
			l.exec(func() { st.stored(c, s, r.idx, err); l.Flush() })
		})
		inline = false
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

// stored records the outcome of storing the filter at position idx of the
// SUBSCRIBE, and answers once every one is known. Loop goroutine only.
func (st *pendingSuback) stored(c *Client, s *Session, idx int, err error) {
	if err != nil {
		c.l.b.stats.StoreFailures.Add(1)
		st.reasons[idx] = codec.UnspecifiedError
	}
	st.pending--
	if st.pending == 0 && !c.closed && c.s == s {
		c.finishSubscribe(st.id, st.reasons, st.reqs)
	}
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
	if !b.authz.CanSubscribe(c.clientID(), c.user(), in.Filter) {
		return codec.NotAuthorized, subscription{}
	}
	ps := PersistedSub{Filter: key, QoS: in.QoS, SubscriptionID: subID}
	if c.version == codec.V5 {
		ps.NoLocal, ps.RetainAsPublished, ps.RetainHandling = in.NoLocal, in.RetainAsPublished, in.RetainHandling
	}
	return codec.Success, newSubscription(ps, len(full)-len(f), shared)
}

// sendRetained delivers the retained messages matching a new subscription,
// as Retain Handling says [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11].
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
	l.rs = retainedSink{s: s, qos: sub.qos, subID: sub.subID}
	l.keyBuf = append(l.keyBuf[:0], sub.key()...)
	l.b.store.MatchRetained(l.keyBuf, l.now, l.rsSend)
	l.b.matchSys(l.keyBuf, l.rsSend)
	l.rs = retainedSink{}
}

// retainedSink is the subscription sendRetained is serving.
type retainedSink struct {
	s     *Session
	qos   byte
	subID uint32
}

// sendRetainedMsg delivers m, a retained message matching the subscription in
// l.rs.
func (l *Loop) sendRetainedMsg(m *Message) {
	rs := &l.rs
	l.deliver(delivery{s: rs.s, msg: m, qos: min(m.QoS, rs.qos), retain: true, subIDs: subIDList(nil, rs.subID)})
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
