package broker

import (
	"time"

	"github.com/flockmq/flockmq/codec"
)

// scheduleWill publishes the will of s now, or after its delay if the session
// is still without a connection then [MQTT-3.1.3-9]. Loop goroutine only.
func (l *Loop) scheduleWill(s *Session) {
	w := s.will
	delay := w.Delay
	if s.expiry < delay && s.expiry != 0xFFFFFFFF {
		delay = s.expiry // the session ends first; endSession publishes it
	}
	if delay == 0 || s.expiry == 0 {
		l.publishWill(s)
		return
	}
	t := s.armTimers()
	gen := t.gen
	b := l.b
	t.will = time.AfterFunc(time.Duration(delay)*time.Second, func() {
		b.onOwner(s, func(ol *Loop) {
			if s.timerGen() != gen || s.client != nil || s.will == nil {
				return
			}
			ol.now = time.Now().UnixNano()
			ol.publishWill(s)
			ol.Flush()
		})
	})
}

// publishWill routes the will of s through the same checks as a PUBLISH and
// forgets it [MQTT-3.1.2-8], [MQTT-3.1.2-10].
func (l *Loop) publishWill(s *Session) {
	w := s.will
	s.will = nil
	if w == nil {
		return
	}
	b := l.b
	m := w.Msg
	owner := w.Owner
	if owner.ClientID == "" {
		owner.ClientID = s.clientID
	}
	if !b.allowPublish(owner, m.Topic) {
		b.stats.PublishDenied.Add(1)
		return
	}
	if m.ExpiresAt != 0 && m.expired(l.now) {
		return
	}
	b.stats.WillsPublished.Add(1)
	if m.Retain && b.cfg.RetainAvailable { // [MQTT-3.1.2-15]
		b.store.Retain(m, func(error) {})
	}
	l.routeMessage(m)
}

// handleDisconnect ends the connection at the client's request. v5: reason
// 0x04 keeps the will, others discard it; a new Session Expiry Interval may
// be set unless the CONNECT had 0 [MQTT-3.14.2-2].
func (c *Client) handleDisconnect(d *codec.DisconnectPacket) {
	if c.version == codec.V5 {
		if d.Props.Has(codec.PropSessionExpiry) {
			if c.connectExpiry() == 0 && d.Props.SessionExpiry != 0 {
				// Not a normal disconnection: the server closes with 0x82,
				// so the will is published (section 3.1.2.5).
				c.protocolError(codec.ProtocolError)
				return
			}
			if s := c.s; s != nil {
				s.expiry = min(d.Props.SessionExpiry, c.l.b.cfg.MaxSessionExpiry)
			}
		}
		c.sendWill = d.Reason == codec.DisconnectWithWill
	}
	c.normalExit = true
	c.abort() // [MQTT-3.14.4-1]: the server closes after DISCONNECT
}

// handleAuth continues enhanced authentication or re-authenticates (v5).
func (c *Client) handleAuth(a *codec.AuthPacket) {
	b := c.l.b
	am := c.authMethod()
	if am == nil || b.eauth == nil || string(a.Props.AuthMethod) != string(am) {
		c.protocolError(codec.ProtocolError) // section 4.12: AUTH only with the CONNECT's method
		return
	}
	x := c.ext
	rc, reply, st := b.eauth.Step(c.clientID(), am, a.Props.AuthData, x.authState)
	x.authState = st
	switch rc {
	case codec.Success:
		if ack := x.pendingAck; ack != nil && c.state == stateAuth {
			x.pendingAck = nil
			ack.authData = reply
			c.claim(ack.cleanStart, *ack)
			return
		}
		c.writeAuth(codec.Success, reply) // re-authentication done
	case codec.ContinueAuthentication:
		c.writeAuth(codec.ContinueAuthentication, reply)
	default:
		b.stats.AuthFailures.Add(1)
		if c.s == nil {
			c.refuse(rc)
			return
		}
		c.disconnect(rc)
	}
}

// writeAuth appends an AUTH packet.
func (c *Client) writeAuth(rc codec.ReasonCode, data []byte) {
	var a codec.AuthPacket
	a.Reason = rc
	a.Props.AuthMethod = c.authMethod()
	a.Props.Set(codec.PropAuthMethod)
	if data != nil {
		a.Props.AuthData = data
		a.Props.Set(codec.PropAuthData)
	}
	ob := c.outBuf()
	ob.b = codec.AppendAuth(ob.b, &a)
	c.l.markDirty(c)
}
