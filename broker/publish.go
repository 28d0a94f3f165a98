package broker

import (
	"github.com/flockmq/flockmq/codec"
)

// handlePublish takes a PUBLISH from the client: topic alias, checks, ACL,
// routing, retained storage and the acknowledgement of its QoS.
func (c *Client) handlePublish(p *codec.PublishPacket) {
	l := c.l
	b := l.b
	b.stats.PublishReceived[p.QoS%3].Add(1)
	b.stats.PayloadReceived[p.QoS%3].Add(uint64(len(p.Payload)))
	if c.version == codec.V5 {
		if len(p.Props.SubscriptionIDs) > 0 {
			c.protocolError(codec.ProtocolError) // [MQTT-3.3.4-6]
			return
		}
		if p.Props.Has(codec.PropTopicAlias) {
			a := p.Props.TopicAlias
			if a > b.cfg.TopicAliasMaximum {
				c.protocolError(codec.TopicAliasInvalid) // [MQTT-3.3.2-9]
				return
			}
			x := c.x()
			if len(p.Topic) > 0 {
				if x.aliasIn == nil {
					x.aliasIn = make(map[uint16][]byte)
				}
				x.aliasIn[a] = append(x.aliasIn[a][:0], p.Topic...)
			} else {
				t, ok := x.aliasIn[a]
				if !ok {
					c.protocolError(codec.ProtocolError) // alias not yet set
					return
				}
				p.Topic = t
			}
		}
	}
	if max := b.cfg.MaxTopicLevels; max > 0 && levels(p.Topic) > max {
		c.protocolError(codec.TopicNameInvalid)
		return
	}
	if p.Retain && !b.cfg.RetainAvailable {
		c.protocolError(codec.RetainNotSupported) // section 3.3.1.3
		return
	}
	if p.QoS == 2 {
		if _, dup := c.s.inQoS2()[p.PacketID]; dup {
			// Still awaiting PUBREL: acknowledge again, deliver nothing
			// [MQTT-4.3.3-9].
			c.writeAck(codec.Pubrec, p.PacketID, codec.Success)
			return
		}
		if len(c.s.inQoS2()) >= int(b.cfg.ReceiveMaximum) {
			c.protocolError(codec.ReceiveMaximumExceeded) // section 3.3.4, Receive Maximum
			return
		}
	}
	rc := codec.Success
	switch {
	case !c.allowPublish(p.Topic):
		// v5: 0x87 in the PUBACK or PUBREC (sections 3.4.2.1, 3.5.2.1);
		// 3.1.1 acknowledges it as usual and drops it [MQTT-3.3.5-2].
		b.stats.PublishDenied.Add(1)
		rc = codec.NotAuthorized
	case p.Retain && b.cfg.MaxRetainedSize > 0 && len(p.Payload) > b.cfg.MaxRetainedSize:
		rc = codec.QuotaExceeded
	case c.version == codec.V5 && p.Props.PayloadFormat == 1 && codec.ValidUTF8(p.Payload) != nil:
		rc = codec.PayloadFormatInvalid
	}
	// The acknowledgement of a retained QoS 1/2 publish waits for the store
	// to commit it, so that nothing acknowledged is lost in a crash; later
	// acknowledgements queue behind it to keep their order [MQTT-4.6.0-2].
	t := codec.Puback // [MQTT-4.3.2-2]
	if p.QoS == 2 {
		t = codec.Pubrec // [MQTT-4.3.3-8]
	}
	var slot *ackSlot
	var stored func(error)
	if p.QoS > 0 && ((c.ext != nil && len(c.ext.acks) > 0) || (p.Retain && rc == codec.Success)) {
		slot = c.queueAck(t, p.PacketID)
		if p.Retain && rc == codec.Success {
			slot.waiting = true
			stored = c.retainedStored(slot)
		}
	}
	if rc == codec.Success {
		n := l.publish(p, c, stored)
		if n == 0 && !p.Retain {
			rc = codec.NoMatchingSubscribers
		}
		if (len(l.r.congested) > 0 || len(l.r.congestedLinks) > 0) && p.QoS > 0 {
			c.pauseFor(l.r.congested, l.r.congestedLinks)
		}
		l.r.forgetCongestion()
	}
	if p.QoS == 0 {
		return
	}
	if c.version != codec.V5 && rc.IsError() {
		rc = codec.Success // 3.1.1 has no negative acknowledgement
	}
	if p.QoS == 2 && !rc.IsError() {
		f := c.s.flow()
		if f.inQoS2 == nil {
			f.inQoS2 = make(map[uint16]struct{})
		}
		f.inQoS2[p.PacketID] = struct{}{}
	}
	if slot == nil {
		c.writeAck(t, p.PacketID, rc)
		return
	}
	if slot.rc == codec.Success {
		slot.rc = rc
	}
	c.flushAcks()
}

// ackSlot is a PUBACK or PUBREC waiting for its turn.
type ackSlot struct {
	t       codec.PacketType
	id      uint16
	rc      codec.ReasonCode
	waiting bool // for the store to commit a retained message
	drop    bool // the commit failed and the client cannot be told: no ack
}

// queueAck reserves the next acknowledgement in order.
func (c *Client) queueAck(t codec.PacketType, id uint16) *ackSlot {
	s := &ackSlot{t: t, id: id}
	x := c.x()
	x.acks = append(x.acks, s)
	return s
}

// flushAcks writes the acknowledgements at the head of the queue that are
// no longer waiting.
func (c *Client) flushAcks() {
	x := c.ext
	if x == nil {
		return
	}
	n := 0
	for n < len(x.acks) && !x.acks[n].waiting {
		a := x.acks[n]
		if !a.drop {
			c.writeAck(a.t, a.id, a.rc)
		}
		n++
	}
	if n > 0 {
		clear(x.acks[:n])
		x.acks = x.acks[n:]
		if len(x.acks) == 0 {
			x.acks = x.acks[:0:0]
		}
	}
}

// retainedStored returns the store callback of a retained publish: it
// releases its acknowledgement on the client's loop. A failed commit is a
// v5 reason 0x80; a 3.1.1 client, which cannot be told, gets no
// acknowledgement and the connection closes, so that it publishes again.
func (c *Client) retainedStored(slot *ackSlot) func(error) {
	l := c.l
	return func(err error) {
		l.exec(func() {
			if c.closed {
				return
			}
			slot.waiting = false
			if err != nil {
				if c.version == codec.V5 {
					slot.rc = codec.UnspecifiedError
				} else {
					slot.drop = true
					c.flushAcks()
					c.abort()
					return
				}
			}
			c.flushAcks()
			l.Flush()
		})
	}
}

// publish makes the broker's copy of p and routes it; retained messages go
// to the store. It returns the number of deliveries.
// stored, when not nil, learns the outcome of storing a retained message.
func (l *Loop) publish(p *codec.PublishPacket, from *Client, stored func(error)) int {
	b := l.b
	publisher := ""
	if from != nil {
		publisher = from.clientID()
	}
	// Match before copying: a message nobody wants costs no allocation.
	matched := l.r.match(p.Topic, publisher)
	if !matched && !p.Retain {
		return 0
	}
	m := newMessage(p, publisher, l.now)
	if b.remote != nil {
		m.ID = l.nextMsgID()
	}
	if p.Retain {
		b.store.Retain(m, func(err error) {
			if err != nil {
				b.stats.StoreFailures.Add(1)
				b.log.Warn("retained message not stored", "topic", string(m.Topic), "err", err)
			}
			if stored != nil {
				stored(err)
			}
		})
	}
	if !matched {
		return 0
	}
	return l.flushRoute(l.r.deliverMatched(m))
}

// routeMessage delivers m to every matching session: those on this loop at
// once, the others through their loops' mailboxes.
// Nobody is paused for these: they come from the broker itself.
func (l *Loop) routeMessage(m *Message) int {
	n := l.flushRoute(l.r.route(m))
	l.r.forgetCongestion()
	return n
}

// flushRoute posts the router's batches and delivers the local ones.
func (l *Loop) flushRoute(n int) int {
	l.r.dispatch()
	local := l.r.localD
	for i := range local {
		l.deliver(local[i])
	}
	clear(local)
	l.r.localD = local[:0]
	return n
}

// levels counts the levels of a topic.
func levels(t []byte) int {
	n := 1
	for _, c := range t {
		if c == '/' {
			n++
		}
	}
	return n
}

// writeAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (c *Client) writeAck(t codec.PacketType, id uint16, rc codec.ReasonCode) {
	var a codec.AckPacket
	a.PacketID = id
	a.Reason = rc
	ob := c.outBuf()
	ob.b = codec.AppendAck(ob.b, t, &a, c.version)
	c.l.markDirty(c)
}

// handlePubrel completes an inbound QoS 2 exchange [MQTT-4.3.3-11].
func (c *Client) handlePubrel(a *codec.AckPacket) {
	rc := codec.Success
	if _, ok := c.s.inQoS2()[a.PacketID]; ok {
		delete(c.s.f.inQoS2, a.PacketID)
	} else {
		rc = codec.PacketIdentifierNotFound
		if c.version != codec.V5 {
			rc = codec.Success
		}
	}
	c.writeAck(codec.Pubcomp, a.PacketID, rc)
}

// handlePuback frees an outgoing QoS 1 slot.
func (c *Client) handlePuback(a *codec.AckPacket) {
	s := c.s
	if i := s.findInflight(a.PacketID); i >= 0 && s.f.inflight[i].d.qos == 1 {
		s.removeInflight(i)
		s.f.progressAt = c.l.now
		c.l.pump(s)
	}
}

// handlePubrec moves an outgoing QoS 2 message to its second phase.
func (c *Client) handlePubrec(a *codec.AckPacket) {
	s := c.s
	i := s.findInflight(a.PacketID)
	if i < 0 || s.f.inflight[i].d.qos != 2 {
		rc := codec.PacketIdentifierNotFound
		if c.version != codec.V5 {
			rc = codec.Success
		}
		c.writeAck(codec.Pubrel, a.PacketID, rc)
		return
	}
	s.f.progressAt = c.l.now
	if a.Reason.IsError() { // v5: a failed PUBREC ends the exchange (section 4.3.3)
		s.removeInflight(i)
		c.l.pump(s)
		return
	}
	s.f.inflight[i].released = true
	s.f.inflight[i].d.msg = nil                         // the payload is no longer needed
	c.writeAck(codec.Pubrel, a.PacketID, codec.Success) // [MQTT-4.3.3-4]
}

// handlePubcomp ends an outgoing QoS 2 exchange.
func (c *Client) handlePubcomp(a *codec.AckPacket) {
	s := c.s
	if i := s.findInflight(a.PacketID); i >= 0 && s.f.inflight[i].released {
		s.removeInflight(i)
		s.f.progressAt = c.l.now
		c.l.pump(s)
	}
}
