package broker

import (
	"log/slog"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/routing"
)

// deliver hands d to its session on this loop: written now, put in the
// inflight window, queued, or dropped by the overflow policy.
func (l *Loop) deliver(d delivery) {
	s := d.s
	if owner := s.loop.Load(); owner != l {
		owner.post([]delivery{d}) // the session moved; follow it
		return
	}
	b := l.b
	if s.ended {
		if d.group != "" {
			l.redeliverShared(d, s)
		}
		return
	}
	if f := s.f; f != nil && f.tk != nil {
		if f.tk.movedTo != "" {
			l.forwardMoved(s, &d) // the session lives on another node now
			return
		}
		if l.seenBefore(s, &d) {
			return // it came both directly and from the session's old node
		}
	}
	if d.msg.expired(l.now) {
		b.stats.DroppedExpired.Add(1)
		return
	}
	c := s.client
	if c == nil || c.state != stateConnected {
		if d.group != "" && l.redeliverShared(d, s) {
			return // an offline member passes shared messages on
		}
		if d.qos == 0 && !b.cfg.QueueQoS0 {
			return
		}
		l.enqueue(s, d, false)
		return
	}
	if d.qos == 0 {
		if c.retainedPending() {
			l.sendRetainedBacklog(c) // older retained messages first (retained_pace.go)
		}
		if c.overHighWater() {
			b.stats.DroppedQoS0.Add(1)
			b.stats.DroppedQoS0Slow.Add(1)
			if held, ok := b.abuse.dropped.Allow(l.now); ok {
				LogHeld(b.log, slog.LevelInfo, held, "QoS 0 message dropped: the client is not reading fast enough",
					"client", s.clientID, "remote", c.t.RemoteAddr(), "buffered", c.t.OutboundBuffered())
			}
			return
		}
		c.writePublish(&d, 0, false)
		return
	}
	if s.queueLen() > 0 || len(s.inflightMsgs()) >= int(c.window) || c.overHighWater() {
		l.enqueue(s, d, true)
		if s.queueLen() > 0 && len(s.f.inflight) < int(c.window) {
			l.addBacklog(s)
		}
		return
	}
	l.sendInflight(s, c, d)
}

// enqueue holds d in the session queue. For an offline session the queue is
// bounded by MaxQueuedMessages: past it the new message is dropped and
// counted. For a connected one a QoS 1/2 message is always kept: its
// publishers are held back from the congestion mark on (flow.go), so the
// queue passes that mark by at most one message per publisher, and a client
// that stops making progress is disconnected (checkStuck). QoS 0 past the
// bound is dropped and counted.
func (l *Loop) enqueue(s *Session, d delivery, connected bool) {
	b := l.b
	if n := s.queueLen(); n >= b.cfg.MaxQueuedMessages && (!connected || d.qos == 0) {
		if d.qos == 0 {
			b.stats.DroppedQoS0.Add(1)
		} else {
			b.stats.DroppedQueueFull.Add(1)
		}
		if held, ok := b.abuse.dropped.Allow(l.now); ok {
			LogHeld(b.log, slog.LevelInfo, held, "message dropped: session queue full",
				"client", s.clientID, "qos", d.qos, "queued", n, "connected", connected)
		}
		return
	}
	f := s.flow()
	f.queue = append(f.queue, d)
	b.stats.QueuedMessagesHeld.Add(1)
	if s.client != nil {
		s.queued.Store(int32(len(f.queue)))
		if connected && int32(len(f.queue)) >= b.congestAt() {
			l.holdBack(s)
		}
	}
}

func (l *Loop) addBacklog(s *Session) {
	if !s.backlogged {
		s.backlogged = true
		l.backlog = append(l.backlog, s)
	}
}

// pump moves queued messages into the inflight window while there is room
// and the socket keeps up. Loop goroutine only; l owns s.
func (l *Loop) pump(s *Session) {
	c := s.client
	f := s.f
	if c == nil || c.state != stateConnected || f == nil {
		return
	}
	n := 0
	for n < len(f.queue) {
		d := f.queue[n]
		if d.qos > 0 && len(f.inflight) >= int(c.window) {
			break
		}
		if c.overHighWater() {
			l.addBacklog(s)
			break
		}
		n++
		l.b.stats.QueuedMessagesHeld.Add(-1)
		if d.msg.expired(l.now) {
			l.b.stats.DroppedExpired.Add(1)
			continue
		}
		if d.qos == 0 {
			c.writePublish(&d, 0, false)
			continue
		}
		l.sendInflight(s, c, d)
	}
	if n > 0 {
		clear(f.queue[:n])
		f.queue = f.queue[n:]
		if len(f.queue) == 0 {
			f.queue = nil
		}
		l.setQueued(s)
	}
}

// sendInflight assigns a packet id to d, records it and writes it.
func (l *Loop) sendInflight(s *Session, c *Client, d delivery) {
	id := s.allocID()
	m := &inflightMsg{id: id, d: d}
	f := s.flow()
	f.inflight = append(f.inflight, m)
	c.writePublish(&m.d, id, false)
}

// writePublish encodes d for this client: its QoS, packet id, DUP, retain
// flag, subscription identifiers, remaining expiry and topic alias.
func (c *Client) writePublish(d *delivery, id uint16, dup bool) {
	l := c.l
	m := d.msg
	p := &l.pub
	newAlias := false
	p.Topic, p.Payload = m.Topic, m.Payload
	p.QoS, p.PacketID, p.Dup, p.Retain = d.qos, id, dup && d.qos > 0, d.retain
	if c.version == codec.V5 {
		p.Props = m.Props
		p.Props.SubscriptionIDs = d.subIDs // [MQTT-3.3.4-3]
		if m.ExpiresAt != 0 {
			p.Props.MessageExpiry = m.remainingExpiry(l.now) // [MQTT-3.3.2-6]
		}
		if c.aliasMax() > 0 && !dup {
			newAlias = c.applyAlias(p)
		}
	} else {
		p.Props = codec.Properties{}
	}
	if c.maxPacket > 0 && codec.PublishSize(p, c.version) > int(c.maxPacket) {
		// Too large for the client: discarded as if sent [MQTT-3.1.2-25].
		l.b.stats.DroppedTooLarge.Add(1)
		if newAlias {
			// The client never saw this alias being set: forget it, or the
			// next message on the topic would use it unannounced.
			delete(c.ext.aliasOut, string(m.Topic))
		}
		if id != 0 {
			s := c.s
			if i := s.findInflight(id); i >= 0 {
				s.removeInflight(i)
			}
		}
		return
	}
	ob := c.outBuf()
	ob.b = codec.AppendPublish(ob.b, p, c.version)
	l.b.stats.PublishSent[p.QoS%3].Add(1)
	l.b.stats.PayloadSent[p.QoS%3].Add(uint64(len(p.Payload)))
	l.b.stats.MessagesSent.Add(1)
	l.markDirty(c)
}

// applyAlias replaces the topic with an alias the client already knows, or
// teaches it a new one while there is room [MQTT-3.1.2-26]; it reports
// whether it set up a new alias.
func (c *Client) applyAlias(p *codec.PublishPacket) bool {
	x := c.x()
	if a, ok := x.aliasOut[string(p.Topic)]; ok {
		p.Props.TopicAlias = a
		p.Props.Set(codec.PropTopicAlias)
		p.Topic = nil
		return false
	}
	if len(x.aliasOut) >= int(c.aliasMax()) {
		return false
	}
	if x.aliasOut == nil {
		x.aliasOut = make(map[string]uint16)
	}
	a := uint16(len(x.aliasOut) + 1)
	x.aliasOut[string(p.Topic)] = a
	p.Props.TopicAlias = a
	p.Props.Set(codec.PropTopicAlias)
	return true
}

// redistributeShared gives the messages of shared subscriptions that s holds
// but has not had acknowledged to other members of their groups. Loop
// goroutine only; l owns s.
func (l *Loop) redistributeShared(s *Session) {
	f := s.f
	if f == nil {
		return
	}
	keepI := f.inflight[:0]
	for _, m := range f.inflight {
		// A QoS 2 message already sent stays with this member, to be completed
		// when it reconnects [MQTT-4.8.2-5]; QoS 1 goes to another one.
		if m.d.group != "" && m.d.qos == 1 && l.redeliverShared(m.d, s) {
			continue
		}
		keepI = append(keepI, m)
	}
	clear(f.inflight[len(keepI):])
	f.inflight = keepI
	keepQ := f.queue[:0]
	for _, d := range f.queue {
		if d.group != "" && l.redeliverShared(d, s) {
			l.b.stats.QueuedMessagesHeld.Add(-1)
			continue
		}
		keepQ = append(keepQ, d)
	}
	clear(f.queue[len(keepQ):])
	f.queue = keepQ
	l.setQueued(s)
}

// redeliverShared passes d to another member of its shared group than s. It
// reports whether another member took it.
func (l *Loop) redeliverShared(d delivery, s *Session) bool {
	if d.hops >= 3 {
		return false // every member tried is away: keep it here
	}
	d.hops++
	other, ok := l.b.trie.PickShared(d.filter, s.id, d.msg.Publisher)
	if !ok {
		return false
	}
	if routing.IsRemote(other.ID) {
		// A member on another node: hand it the message for this group. The
		// link may be backed up; the message is queued there all the same.
		l.b.remote.Forward(routing.RemoteNode(other.ID), d.msg, []SharedTarget{{Group: d.group, Filter: sharedTopic(d.filter)}})
		l.b.stats.SharedRedelivered.Add(1)
		return true
	}
	os := l.b.sessions.get(other.ID)
	if os == nil {
		return false
	}
	d.s = os
	d.qos = min(d.msg.QoS, other.QoS)
	d.subIDs = subIDList(nil, other.SubscriptionID)
	l.b.stats.SharedRedelivered.Add(1)
	if ol := os.loop.Load(); ol == l {
		l.deliver(d)
	} else {
		ol.post([]delivery{d})
	}
	return true
}
