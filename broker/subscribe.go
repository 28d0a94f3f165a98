package broker

import (
	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/routing"
)

// queuePrefix is the compatibility alias for a shared subscription in the
// group "$queue": $queue/{filter} is $share/$queue/{filter}.
const queuePrefix = "$queue/"

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
	reasons := make([]codec.ReasonCode, len(sp.Subscriptions))
	type retainedReq struct {
		sub     *subscription
		existed bool
	}
	var sends []retainedReq
	persistent := s.expiry > 0
	pending := 0
	for i := range sp.Subscriptions {
		in := &sp.Subscriptions[i]
		rc, sub := c.checkFilter(in, subID)
		if rc != codec.Success {
			reasons[i] = rc
			continue
		}
		existed, err := b.trie.Subscribe(sub.filter, routing.Subscriber{ID: s.id, ClientID: s.clientID,
			QoS: sub.opts.QoS, NoLocal: sub.opts.NoLocal, RetainAsPublished: sub.opts.RetainAsPublished,
			RetainHandling: sub.opts.RetainHandling, SubscriptionID: sub.subID}) // [MQTT-3.8.4-3]: replaces
		if err != nil {
			reasons[i] = codec.TopicFilterInvalid
			continue
		}
		if old := s.subs[sub.filter]; old != nil && !existed {
			existed = true
		}
		s.subs[sub.filter] = sub
		reasons[i] = codec.ReasonCode(in.QoS) // granted QoS [MQTT-3.9.3-1]
		if !sub.shared {
			sends = append(sends, retainedReq{sub, existed})
		}
		if persistent {
			pending++
		}
	}
	finish := func() {
		var ack codec.SubackPacket
		ack.PacketID = sp.PacketID
		ack.Reasons = reasons
		if c.version != codec.V5 {
			for i, r := range ack.Reasons {
				if r.IsError() {
					ack.Reasons[i] = codec.V3SubackFailure
				}
			}
		}
		c.out = codec.AppendSuback(c.out, &ack, c.version) // [MQTT-3.8.4-1]
		l.markDirty(c)
		for _, r := range sends {
			l.sendRetained(s, r.sub, r.existed)
		}
	}
	if pending == 0 {
		finish()
		return
	}
	// A persistent session's subscriptions are acknowledged once stored.
	id := sp.PacketID
	_ = id
	for _, sub := range s.subsByFilters(sp, reasons) {
		ps := PersistedSub{Filter: sub.filter, QoS: sub.opts.QoS, NoLocal: sub.opts.NoLocal,
			RetainAsPublished: sub.opts.RetainAsPublished, RetainHandling: sub.opts.RetainHandling, SubscriptionID: sub.subID}
		inline := true
		b.store.Subscribe(s.clientID, s.epoch, ps, func(err error) {
			run := func() {
				if err != nil {
					b.stats.StoreFailures.Add(1)
					for i := range reasons {
						if string(sp.Subscriptions[i].Filter) == ps.Filter {
							reasons[i] = codec.UnspecifiedError
						}
					}
				}
				pending--
				if pending == 0 && !c.closed && c.s == s {
					finish()
				}
			}
			if inline {
				run()
				return
			}
			l.exec(func() { run(); l.Flush() })
		})
		inline = false
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
		sub := &subscription{filter: ps.Filter, subID: ps.SubscriptionID, shared: shared, trieKey: f,
			opts: codec.Subscription{Filter: full, QoS: ps.QoS, NoLocal: ps.NoLocal,
				RetainAsPublished: ps.RetainAsPublished, RetainHandling: ps.RetainHandling}}
		if _, err := l.b.trie.Subscribe(sub.filter, routing.Subscriber{ID: s.id, ClientID: s.clientID,
			QoS: ps.QoS, NoLocal: ps.NoLocal, RetainAsPublished: ps.RetainAsPublished,
			RetainHandling: ps.RetainHandling, SubscriptionID: ps.SubscriptionID}); err != nil {
			continue
		}
		s.subs[sub.filter] = sub
	}
}

// subsByFilters returns the session's subscriptions accepted from sp.
func (s *Session) subsByFilters(sp *codec.SubscribePacket, reasons []codec.ReasonCode) []*subscription {
	var out []*subscription
	for i := range sp.Subscriptions {
		if reasons[i].IsError() {
			continue
		}
		if sub := s.subs[filterKey(sp.Subscriptions[i].Filter)]; sub != nil {
			out = append(out, sub)
		}
	}
	return out
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
func (c *Client) checkFilter(in *codec.Subscription, subID uint32) (codec.ReasonCode, *subscription) {
	b := c.l.b
	key := filterKey(in.Filter)
	full := []byte(key)
	if err := codec.ValidateTopicFilter(full); err != nil {
		return codec.TopicFilterInvalid, nil // [MQTT-4.7.1-1], [MQTT-4.7.1-2]
	}
	group, f, shared, _ := codec.ParseShared(full)
	_ = group
	if max := b.cfg.MaxTopicLevels; max > 0 && levels(f) > max {
		return codec.TopicFilterInvalid, nil
	}
	if !b.authz.CanSubscribe(c.clientID, c.username, in.Filter) {
		return codec.NotAuthorized, nil
	}
	sub := &subscription{filter: key, opts: *in, subID: subID, shared: shared, trieKey: f}
	sub.opts.Filter = full
	if c.version != codec.V5 {
		sub.opts.NoLocal, sub.opts.RetainAsPublished, sub.opts.RetainHandling = false, false, 0
	}
	return codec.Success, sub
}

// sendRetained delivers the retained messages matching a new subscription,
// as Retain Handling says [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11].
func (l *Loop) sendRetained(s *Session, sub *subscription, existed bool) {
	switch sub.opts.RetainHandling {
	case 1:
		if existed {
			return
		}
	case 2:
		return
	}
	send := func(m *Message) {
		d := delivery{s: s, msg: m, qos: min(m.QoS, sub.opts.QoS), retain: true, subIDs: subIDList(nil, sub.subID)}
		l.deliver(d)
	}
	l.b.store.MatchRetained(sub.trieKey, l.now, send)
	l.b.matchSys(sub.trieKey, send)
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
		sub := s.subs[key]
		if sub == nil {
			ack.Reasons[i] = codec.NoSubscriptionExisted
			continue
		}
		delete(s.subs, key)
		b.trie.Unsubscribe(key, s.id) // [MQTT-3.10.4-1]
		if s.expiry > 0 {
			b.store.Unsubscribe(s.clientID, s.epoch, key, func(err error) {
				if err != nil {
					b.stats.StoreFailures.Add(1)
				}
			})
		}
	}
	c.out = codec.AppendUnsuback(c.out, &ack, c.version)
	l.markDirty(c)
}
