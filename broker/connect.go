package broker

import (
	"time"
	"unicode/utf8"

	"github.com/flockmq/flockmq/codec"
)

// handleConnect validates a CONNECT, authenticates, and claims the session.
func (c *Client) handleConnect(cp *codec.ConnectPacket) {
	b := c.l.b
	c.version = cp.Version
	if b.isClosing() {
		c.refuse(codec.ServerUnavailable)
		return
	}
	if max := b.cfg.MaxConnections; max > 0 && int(b.stats.ClientsConnected.Load()) >= max {
		c.refuse(codec.QuotaExceeded)
		return
	}
	id := string(cp.ClientID)
	assigned := false
	switch {
	case id == "" && cp.Version == codec.V31:
		c.refuse(codec.ClientIdentifierNotValid) // 3.1: 1 to 23 characters
		return
	case id == "" && cp.Version == codec.V311 && !cp.CleanStart:
		c.refuse(codec.ClientIdentifierNotValid) // 3.1.1 [MQTT-3.1.3-8]
		return
	case id == "":
		id, assigned = b.assignClientID(), true // [MQTT-3.1.3-6]
	case cp.Version == codec.V31 && utf8.RuneCountInString(id) > 23:
		c.refuse(codec.ClientIdentifierNotValid)
		return
	}
	if cp.Username != nil {
		c.x().username = append([]byte(nil), cp.Username...)
	}

	// The client's own limits (v5 section 3.1.2.11).
	c.window = uint16(b.cfg.MaxInflight) // at most 65535 (Config.Validate)
	respInfo := false
	if cp.Version == codec.V5 {
		p := &cp.Props
		if p.Has(codec.PropReceiveMaximum) {
			c.window = min(c.window, p.ReceiveMaximum)
		}
		if p.Has(codec.PropMaximumPacketSize) {
			c.maxPacket = int32(min(p.MaximumPacketSize, 1<<31-1))
		}
		if p.TopicAliasMaximum > 0 {
			c.x().aliasMax = p.TopicAliasMaximum
		}
		respInfo = p.RequestResponseInfo == 1
		// Request Problem Information needs no state: the broker sends no
		// Reason String and no User Property in any packet, so it never
		// sends what a client asking for 0 forbids [MQTT-3.1.2-29].
	}

	// Session expiry: v5 from the property; 3.1.1 persistent sessions last
	// until MaxSessionExpiry.
	var expiry uint32
	if cp.Version == codec.V5 {
		expiry = cp.Props.SessionExpiry
	} else if !cp.CleanStart {
		expiry = 0xFFFFFFFF
	}
	expiry = min(expiry, b.cfg.MaxSessionExpiry)

	// Keep alive, possibly overridden by the server (v5 Server Keep Alive).
	ka := cp.KeepAlive
	serverKA := false
	if cp.Version == codec.V5 {
		if b.cfg.ServerKeepAlive > 0 {
			ka, serverKA = b.cfg.ServerKeepAlive, true
		} else if m := b.cfg.MaxKeepAlive; m > 0 && (ka == 0 || ka > m) {
			ka, serverKA = m, true
		}
	}
	c.keepAlive = ka

	// The will, owned by the broker from now on.
	if cp.WillFlag {
		wp := codec.PublishPacket{Topic: cp.WillTopic, Payload: cp.WillPayload, QoS: cp.WillQoS, Retain: cp.WillRetain, Props: cp.WillProps}
		m := newMessage(&wp, id, c.l.now)
		m.Props.Clear(codec.PropWillDelay) // a will property, not a PUBLISH one (section 3.3.2.3)
		c.x().will = &Will{Msg: m, Delay: cp.WillProps.WillDelay}
	}

	ack := connackInfo{clientID: id, cleanStart: cp.CleanStart, assigned: assigned, expiry: expiry, serverKA: serverKA,
		keepAlive: ka, respInfo: respInfo, expiryCapped: cp.Version == codec.V5 && expiry != cp.Props.SessionExpiry}

	// Authentication: enhanced (v5 AUTH exchange) or the plain hook.
	if cp.Version == codec.V5 && cp.Props.Has(codec.PropAuthMethod) {
		if b.eauth == nil || !b.eauth.Supports(cp.Props.AuthMethod) {
			b.stats.AuthFailures.Add(1)
			c.refuse(codec.BadAuthenticationMethod)
			return
		}
		x := c.x()
		x.authMethod = append([]byte(nil), cp.Props.AuthMethod...)
		rc, reply, st := b.eauth.Step(id, x.authMethod, cp.Props.AuthData, nil)
		x.authState = st
		switch rc {
		case codec.Success:
			ack.authData = reply
		case codec.ContinueAuthentication:
			pending := ack // only this path keeps it: ack itself stays on the stack
			x.pendingAck = &pending
			c.state = stateAuth
			c.writeAuth(codec.ContinueAuthentication, reply)
			return
		default:
			b.stats.AuthFailures.Add(1)
			c.refuse(rc)
			return
		}
	} else if _, allowAll := b.authn.(AllowAll); !allowAll {
		info := ConnectInfo{ClientID: id, Username: cp.Username, Password: cp.Password, RemoteAddr: c.t.RemoteAddr(),
			Version: cp.Version, Transport: "tcp"}
		if ct, ok := c.t.(CertTransport); ok {
			info.PeerCert, info.Transport = ct.PeerCertificate(), ct.Kind()
		}
		if a := b.asyncn; a != nil {
			// The CONNECT waits; its bytes are the read buffer's, so the
			// callee gets copies.
			info.Username = append([]byte(nil), cp.Username...)
			info.Password = append([]byte(nil), cp.Password...)
			c.connecting()
			cleanStart := cp.CleanStart
			l := c.l
			a.AuthenticateAsync(&info, func(rc codec.ReasonCode, ident *Identity) {
				l.exec(func() {
					l.now = time.Now().UnixNano()
					c.authenticated(rc, ident, cleanStart, ack)
					l.Flush()
				})
			})
			return
		}
		if rc := b.authn.Authenticate(&info); rc != codec.Success {
			b.stats.AuthFailures.Add(1)
			c.refuse(rc)
			return
		}
	}
	c.claim(cp.CleanStart, ack)
}

// authenticated goes on with a CONNECT once an AsyncAuthenticator decided.
// Loop goroutine only.
func (c *Client) authenticated(rc codec.ReasonCode, ident *Identity, cleanStart bool, ack connackInfo) {
	if c.closed {
		return
	}
	b := c.l.b
	if rc != codec.Success {
		b.stats.AuthFailures.Add(1)
		c.refuse(rc)
		return
	}
	if ident != nil {
		c.x().ident = ident
		if ident.ExpiresAt > 0 {
			c.expireAt(ident.ExpiresAt)
		}
	}
	c.claim(cleanStart, ack)
}

// expireAt closes the connection at at (unix nanoseconds), when its
// credentials expire: v5 clients get DISCONNECT 0x87 with a reason string.
func (c *Client) expireAt(at int64) {
	l := c.l
	time.AfterFunc(time.Duration(at-time.Now().UnixNano()), func() {
		l.exec(func() {
			if c.closed {
				return
			}
			l.now = time.Now().UnixNano()
			l.b.stats.AuthExpired.Add(1)
			l.b.log.Info("connection closed: its credentials expired", "client", c.clientID(), "remote", c.t.RemoteAddr())
			if c.version == codec.V5 && c.state == stateConnected {
				var d codec.DisconnectPacket
				d.Reason = codec.NotAuthorized
				d.Props.ReasonString = []byte("credentials expired")
				d.Props.Set(codec.PropReasonString)
				ob := c.outBuf()
				ob.b = codec.AppendDisconnect(ob.b, &d, codec.V5)
			}
			c.abort()
			l.Flush()
		})
	})
}

// connackInfo carries what the CONNACK will say while the claim is in flight.
type connackInfo struct {
	clientID     string
	respInfo     bool // Request Response Information
	assigned     bool
	expiry       uint32
	expiryCapped bool
	serverKA     bool
	keepAlive    uint16
	authData     []byte
	cleanStart   bool
}

// serverWait bounds, beyond the connect and takeover timeouts, how long a
// connection whose CONNECT came waits for the server: the authentication
// service, the claim (a raft proposal is held up to 5 s while there is no
// leader), the session's state from its previous node.
const serverWait = 20 * time.Second

// connecting marks c as waiting for the server to answer its CONNECT. The
// connect timeout is the client's to meet and it did: the deadline moves out
// by what the server may take, so that the loop's timer does not close a
// connection whose claim is in flight. Should it still pass, the claim that
// commits after the close keeps its session (parkOrphan).
func (c *Client) connecting() {
	c.state = stateConnecting
	b := c.l.b
	c.deadline = c.l.now + int64(b.cfg.ConnectTimeout+b.cfg.TakeoverTimeout+serverWait)
}

// claim registers the session through the store, then finishes the connect on
// this loop.
func (c *Client) claim(cleanStart bool, ack connackInfo) {
	c.connecting()
	ack.cleanStart = cleanStart
	l := c.l
	if w := c.pendingWill(); w != nil {
		w.Owner = c.access()
		w.Owner.ClientID = ack.clientID
	}
	req := ClaimRequest{ClientID: ack.clientID, CleanStart: cleanStart, Expiry: ack.expiry, ProtocolVersion: byte(c.version), Will: c.pendingWill()}
	inline := true
	l.b.store.Claim(req, func(res ClaimResult, err error) {
		if inline {
			c.finishConnect(res, err, ack)
			return
		}
		l.exec(func() {
			c.finishConnect(res, err, ack)
			l.Flush()
		})
	})
	inline = false
}

// finishConnect takes over or creates the session once the claim is known.
// A connection that closed while its claim was in flight still gets its
// session when the registry committed the claim (an orphan, see parkOrphan):
// the registry now names this node as the session's owner, and the previous
// owner hands its messages here.
func (c *Client) finishConnect(res ClaimResult, err error, ack connackInfo) {
	if c.closed && (err != nil || res.Epoch == 0) {
		return // nothing committed for it
	}
	b := c.l.b
	if err != nil {
		b.stats.StoreFailures.Add(1)
		b.log.Warn("session claim failed", "client", ack.clientID, "err", err)
		c.refuse(codec.ServerUnavailable)
		return
	}
	b.mu.Lock()
	old := b.clients.get(ack.clientID)
	var s *Session
	present := false
	resume := old != nil && !ack.cleanStart && !old.ended
	if res.Known {
		// The replicated registry has the last word: a copy here of a
		// session that has since lived on another node is stale.
		resume = resume && res.Present && res.PrevNode == ""
	}
	var restore []PersistedSub
	if resume {
		s, present = old, true // [MQTT-3.1.2-5]
	} else {
		s = b.newSession(ack.clientID, c.l) // [MQTT-3.1.2-4], [MQTT-3.1.2-6]
		b.clients.put(s)
		if res.Known && res.Present && !ack.cleanStart {
			// Known to the registry but not in memory (the node restarted, or
			// the session lived elsewhere): resume it from what was stored.
			present, restore = true, res.Persisted
		}
	}
	b.mu.Unlock()
	if len(restore) > 0 {
		c.l.installPersisted(s, restore)
	}
	if old != nil && old != s {
		b.onOwner(old, func(ol *Loop) { ol.discard(old) })
	}
	if s.loop.Load() == c.l {
		if s != old {
			wait, lost := b.awaitsHandover(res, present)
			if wait {
				c.l.awaitHandover(s, c, present, ack, res.Epoch)
				return
			}
			if lost {
				s.flow().stateLost = res.Epoch
			}
		}
		s.epoch = res.Epoch // session fields only on the owner loop
		c.l.attachOrPark(s, c, present, ack)
		return
	}
	// The session lives on another loop: that loop lets go of it (kicking its
	// connection), then hands it to ours.
	nl := c.l
	b.onOwner(s, func(ol *Loop) {
		if s.ended {
			// Its last connection closed with expiry 0 while this claim was
			// in flight: start over, which finds no session (present 0).
			nl.exec(func() {
				nl.now = time.Now().UnixNano()
				c.finishConnect(res, nil, ack)
				nl.Flush()
			})
			return
		}
		s.epoch = res.Epoch
		ol.release(s)
		s.loop.Store(nl)
		nl.exec(func() {
			nl.now = time.Now().UnixNano()
			nl.attachOrPark(s, c, present, ack)
			nl.Flush()
		})
		ol.Flush()
	})
}

// release kicks the current connection of s (v5 DISCONNECT 0x8E) so that s can
// move to another loop. Loop goroutine only; l owns s.
func (l *Loop) release(s *Session) {
	if oc := s.client; oc != nil {
		l.kickForTakeover(s, oc)
	}
	s.stopTimers()
	if s.backlogged {
		l.removeBacklog(s)
	}
	if s.f != nil {
		s.f.holding = false // checkStuck drops it from l's list
	}
	l.wake(s, true) // s leaves l: its waiters re-check at their next publish
}

// kickForTakeover closes oc, the older connection of s [MQTT-3.1.4-3]. Its will
// is handled as for any closed connection, except that a delayed will is
// cancelled by the new connection [MQTT-3.1.3-9].
func (l *Loop) kickForTakeover(s *Session, oc *Client) {
	l.b.stats.SessionsTakenOver.Add(1)
	s.client = nil
	oc.s = nil
	l.setQueued(s)
	if oc.state == stateConnected {
		l.b.stats.ClientsConnected.Add(-1)
		oc.state = stateNew
		if oc.version == codec.V5 {
			var d codec.DisconnectPacket
			d.Reason = codec.SessionTakenOver
			ob := oc.outBuf()
			ob.b = codec.AppendDisconnect(ob.b, &d, codec.V5)
		}
	}
	if w := s.will; w != nil && w.Delay == 0 {
		l.publishWill(s)
	}
	s.will = nil
	oc.abort()
}

// attachOrPark gives s, resumed or created for c's committed claim, to c:
// after the state s still waits for from its previous node, if any; parked
// as an orphan if c closed meanwhile. Loop goroutine only; l owns s.
func (l *Loop) attachOrPark(s *Session, c *Client, present bool, ack connackInfo) {
	switch {
	case l.inheritTakeover(s, c, present, ack):
	case c.closed:
		l.parkOrphan(s, &ack)
	default:
		l.attach(s, c, present, ack)
	}
}

// parkOrphan handles s, whose claim (s.epoch) the registry committed for a
// connection that closed before its CONNACK: as if that connection had
// attached and closed at once (detach), with the session expiry it asked
// for. Its will goes: it is stored once the connection is accepted
// [MQTT-3.1.2-7], which never happened. Loop goroutine only; l owns s.
func (l *Loop) parkOrphan(s *Session, ack *connackInfo) {
	if oc := s.client; oc != nil {
		l.kickForTakeover(s, oc) // its older connection on this node
	}
	s.expiry = ack.expiry
	s.will = nil
	s.detachedAt = l.now
	l.redistributeShared(s) // an offline member of a shared group
	if s.expiry == 0 {
		l.endSession(s)
		return
	}
	l.b.store.Disconnected(s.clientID, s.epoch, s.expiry, nil)
	l.armExpiry(s)
}

// attach binds c to s on this loop and sends CONNACK, then replays what is
// inflight and queued. Loop goroutine only; l owns s.
func (l *Loop) attach(s *Session, c *Client, present bool, ack connackInfo) {
	if oc := s.client; oc != nil && oc != c {
		l.kickForTakeover(s, oc)
	}
	s.stopTimers()
	s.client = c
	s.attachedAt, s.detachedAt = l.now, 0
	s.expiry = ack.expiry
	s.will = c.pendingWill() // a new connection replaces the will [MQTT-3.1.2-7]
	if c.ext != nil {
		c.ext.will = nil
	}
	c.s = s
	c.state = stateConnected
	l.b.stats.ClientsConnected.Add(1)
	l.b.stats.ConnectsTotal.Add(1)
	if c.keepAlive > 0 {
		c.deadline = l.now + c.keepAliveGrace()
		// The connect timeout filed c for a later second; keep alive deadlines
		// are shorter, so file it again (the old entry goes stale).
		if c.filed == 0 || int64(c.filed) > c.deadline/int64(time.Second) {
			l.wheel.add(c, c.deadline)
		}
	} else {
		c.deadline = 1<<63 - 1
	}
	c.writeConnack(present, codec.Success, &ack)
	// Resend unacknowledged messages with DUP set, and PUBREL for those
	// already received [MQTT-4.4.0-1].
	for _, m := range s.inflightMsgs() {
		if m.released {
			var a codec.AckPacket
			a.PacketID = m.id
			ob := c.outBuf()
			ob.b = codec.AppendAck(ob.b, codec.Pubrel, &a, c.version)
		} else {
			c.writePublish(&m.d, m.id, true)
		}
	}
	l.markDirty(c)
	l.pump(s)
	l.setQueued(s)
	if c.stalled {
		c.stalled = false
		c.t.Resume()
	}
}

// detach handles the end of c, the connection of s: the will, then either the
// end of the session or its parking until expiry.
func (l *Loop) detach(s *Session, c *Client) {
	s.client = nil
	s.detachedAt = l.now
	c.s = nil
	l.setQueued(s) // an offline session holds nobody back
	l.redistributeShared(s)
	if c.state == stateConnected {
		if s.will != nil && (c.sendWill || !c.normalExit) {
			l.scheduleWill(s)
		} else {
			s.will = nil // [MQTT-3.1.2-10]
		}
	}
	if s.expiry == 0 {
		l.endSession(s)
		return
	}
	l.b.store.Disconnected(s.clientID, s.epoch, s.expiry, s.will)
	l.armExpiry(s)
}

// armExpiry starts the session expiry timer of a parked session.
func (l *Loop) armExpiry(s *Session) {
	if s.expiry == 0xFFFFFFFF {
		return
	}
	l.armExpiryAfter(s, time.Duration(s.expiry)*time.Second)
}

// armExpiryAfter ends the offline session s after d unless a client resumes
// it first.
func (l *Loop) armExpiryAfter(s *Session, d time.Duration) {
	t := s.armTimers()
	gen := t.gen
	b := l.b
	t.exp = time.AfterFunc(d, func() {
		b.onOwner(s, func(ol *Loop) {
			if s.timerGen() != gen || s.client != nil || s.ended {
				return
			}
			ol.now = time.Now().UnixNano()
			b.stats.SessionsExpired.Add(1)
			ol.endSession(s)
			ol.Flush()
		})
	})
}

// endSession removes s: its subscriptions, its registry entry, and publishes
// a will still pending. Loop goroutine only; l owns s.
func (l *Loop) endSession(s *Session) {
	if s.ended {
		return
	}
	b := l.b
	b.mu.Lock()
	s.ended = true // under b.mu: finishConnect reads it with the registry
	b.clients.remove(s)
	b.mu.Unlock()
	s.stopTimers()
	if s.will != nil {
		l.publishWill(s) // the session ends before the will delay [MQTT-3.1.2-8]
	}
	if s.subs.len() > 0 {
		l.b.trie.RemoveAll(s.id, s.subs.filters())
	}
	l.redistributeShared(s)
	s.subs.reset()
	if f := s.f; f != nil {
		f.queue, f.inflight = nil, nil
	}
	l.setQueued(s)
	b.sessions.remove(s.id)
	if s.backlogged {
		l.removeBacklog(s)
	}
	b.store.Ended(s.clientID, s.epoch)
}

// discard ends s because a clean-start connection replaced it.
func (l *Loop) discard(s *Session) {
	if oc := s.client; oc != nil {
		l.kickForTakeover(s, oc)
	}
	l.endSession(s)
	l.Flush()
}

func (l *Loop) removeBacklog(s *Session) {
	for i, x := range l.backlog {
		if x == s {
			l.backlog = append(l.backlog[:i], l.backlog[i+1:]...)
			break
		}
	}
	s.backlogged = false
}

// refuse answers a CONNECT with a failure CONNACK and closes [MQTT-3.2.2-5].
func (c *Client) refuse(rc codec.ReasonCode) {
	if c.version != codec.V5 {
		rc = v3ConnackCode(rc)
	}
	c.writeConnack(false, rc, nil)
	c.abort()
}

// writeConnack appends a CONNACK. ack is nil for a refusal.
func (c *Client) writeConnack(present bool, rc codec.ReasonCode, ack *connackInfo) {
	var p codec.ConnackPacket
	p.SessionPresent = present && rc == codec.Success // [MQTT-3.2.2-6]
	p.Reason = rc
	if c.version == codec.V5 && ack != nil {
		cfg := &c.l.b.cfg
		pr := &p.Props
		pr.ReceiveMaximum = cfg.ReceiveMaximum
		pr.Set(codec.PropReceiveMaximum)
		pr.MaximumPacketSize = uint32(cfg.MaxPacketSize)
		pr.Set(codec.PropMaximumPacketSize)
		if cfg.TopicAliasMaximum > 0 {
			pr.TopicAliasMaximum = cfg.TopicAliasMaximum
			pr.Set(codec.PropTopicAliasMaximum)
		}
		if !cfg.RetainAvailable {
			pr.RetainAvailable = 0
			pr.Set(codec.PropRetainAvailable)
		}
		if ack.assigned {
			pr.AssignedClientID = []byte(ack.clientID) // [MQTT-3.1.3-7]
			pr.Set(codec.PropAssignedClientID)
		}
		if ack.expiryCapped {
			pr.SessionExpiry = ack.expiry
			pr.Set(codec.PropSessionExpiry)
		}
		if ack.serverKA {
			pr.ServerKeepAlive = ack.keepAlive // [MQTT-3.1.2-21]
			pr.Set(codec.PropServerKeepAlive)
		}
		if am := c.authMethod(); am != nil {
			pr.AuthMethod = am
			pr.Set(codec.PropAuthMethod)
			if ack.authData != nil {
				pr.AuthData = ack.authData
				pr.Set(codec.PropAuthData)
			}
		}
		if ack.respInfo {
			pr.ResponseInfo = []byte("flockmq/response/" + ack.clientID)
			pr.Set(codec.PropResponseInfo)
		}
	}
	ob := c.outBuf()
	ob.b = codec.AppendConnack(ob.b, &p, c.version)
	c.l.markDirty(c)
}

// Fence closes the connection of clientID on this node if it belongs to a
// session older than epoch: a newer claim was committed, here or on another
// node, so the older connection is stale [MQTT-3.1.4-3]. v5 clients get
// DISCONNECT 0x8E. Safe for concurrent use; it must not block (it is called
// from the raft apply path).
func (b *Broker) Fence(clientID string, epoch uint64) {
	b.onSessionOf(clientID, func(l *Loop, s *Session) {
		if s.ended || s.client == nil || s.epoch == 0 || s.epoch >= epoch {
			return
		}
		oc := s.client
		l.kickForTakeover(s, oc)
		l.Flush()
	})
}

// FenceMoved ends the session of clientID on this node when it is older than
// epoch: a newer claim was committed on another node, which serves the
// client from now on. Its connection, if any, is closed as for Fence (v5
// DISCONNECT 0x8E) and the session, with its subscriptions and queue, is
// discarded here, so this node stops routing messages to it; the new owner
// restored its subscriptions from the registry. Safe for concurrent use; it
// must not block (it is called from the raft apply path).
func (b *Broker) FenceMoved(clientID string, epoch uint64) {
	b.onSessionOf(clientID, func(l *Loop, s *Session) {
		if s.ended || s.epoch >= epoch {
			return
		}
		b.stats.SessionsMoved.Add(1)
		l.discard(s)
	})
}

// onSessionOf runs f on the owner loop of the session of clientID, if there
// is one, with the loop's clock read.
func (b *Broker) onSessionOf(clientID string, f func(l *Loop, s *Session)) {
	b.mu.Lock()
	s := b.clients.get(clientID)
	b.mu.Unlock()
	if s == nil {
		return
	}
	b.onOwner(s, func(l *Loop) {
		l.now = time.Now().UnixNano()
		f(l, s)
	})
}
