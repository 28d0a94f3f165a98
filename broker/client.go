package broker

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Transport is the connection side the event loop provides for one client.
// Its methods are called on the loop goroutine only.
type Transport interface {
	// Write sends b (or buffers what the socket does not take). b may be
	// reused after Write returns.
	Write(b []byte) error
	// OutboundBuffered is the number of bytes written but not yet sent.
	OutboundBuffered() int
	// Close flushes what is buffered, best effort, and closes the connection.
	// Called while the client's Input runs (Client.Reading), it may instead
	// close the connection as soon as Input returns. graceful means the
	// server closes the client with last words it did not ask for (a
	// DISCONNECT with a reason code, a refusing CONNACK, acknowledgements
	// still unsent): a client still sending (a burst past Receive Maximum,
	// packets after a protocol error) would get a TCP reset for its unread
	// bytes and lose those words with it, so the transport should shut down
	// the sending side and discard what still arrives for a short while
	// before it closes. A client that sent DISCONNECT itself is closed at
	// once.
	Close(graceful bool)
	// Resume asks for Input to be called again with the bytes already
	// buffered, after the client stopped consuming while its CONNECT was in
	// flight.
	Resume()
	// RemoteAddr is the peer's address.
	RemoteAddr() string
}

type clientState uint8

const (
	stateNew        clientState = iota // waiting for CONNECT
	stateAuth                          // v5 enhanced authentication exchange
	stateConnecting                    // CONNECT accepted, claim in flight
	stateConnected
)

// Client is one network connection and its protocol state. It is owned by its
// loop; its methods run on that loop's goroutine.
type Client struct {
	l        *Loop
	t        Transport
	s        *Session // nil until the CONNECT is answered, and once detached
	deadline int64    // unix nanoseconds
	out      *outBuf  // bytes to write at the next Flush, nil between flushes
	ext      *clientExt

	// Limits the client set (v5) or defaults.
	maxPacket int32  // the client's Maximum Packet Size, 0 = none
	window    uint16 // outgoing inflight window: min(client Receive Maximum, MaxInflight)

	keepAlive uint16 // seconds, 0 = none
	pos       int32  // position in the loop's clients, -1 once closed
	filed     uint32 // unix second this client is filed for in the loop's wheel, 0 if none
	state     clientState
	version   codec.Version

	closed     bool
	dirty      bool
	sendWill   bool // publish the session's will when this connection closes
	normalExit bool // the client sent DISCONNECT
	paused     bool // flow control: not read until congested queues drain
	stalled    bool // bytes arrived while the CONNECT was in flight
}

// clientExt is the state that only some connections need: a user name,
// enhanced authentication, topic aliases, the will until the session takes
// it, flow control and acknowledgements waiting for a commit. It is
// allocated on first use (Client.x), so that an idle connection does not
// carry it.
type clientExt struct {
	aliasMax   uint16 // the client's Topic Alias Maximum
	username   []byte
	ident      *Identity // what authentication said, nil for the CONNECT's user name
	aliasOut   map[string]uint16
	aliasIn    map[uint16][]byte
	authMethod []byte
	authState  any
	will       *Will // pending will of this connection, moved to the session on connect
	pendingAck *connackInfo
	acks       []*ackSlot // PUBACK/PUBREC in order, some waiting for a commit

	// The retained QoS 0 messages of new subscriptions waiting for the
	// socket to drain (retained_pace.go).
	retained *retainedBacklog

	// Flow control: the congested sessions (and links) c is held back by, and whether
	// c is in its loop's list of held clients.
	waitOn       []*Session
	waitLinks    []uint32 // remote nodes whose congested link c waits for
	listedPaused bool
}

// clientID is the client identifier of the CONNECT: the session's once it
// has one, before that the one of an enhanced authentication in progress.
// (While the claim is in flight, the pending CONNACK carries it.)
func (c *Client) clientID() string {
	if s := c.s; s != nil {
		return s.clientID
	}
	if x := c.ext; x != nil && x.pendingAck != nil {
		return x.pendingAck.clientID
	}
	return ""
}

// aliasMax is the client's Topic Alias Maximum, 0 for none.
func (c *Client) aliasMax() uint16 {
	if c.ext == nil {
		return 0
	}
	return c.ext.aliasMax
}

// connectExpiry is the Session Expiry Interval the CONNECT asked for (as
// capped): the session keeps it until a DISCONNECT changes it, and before the
// CONNACK the pending answer holds it.
func (c *Client) connectExpiry() uint32 {
	if s := c.s; s != nil {
		return s.expiry
	}
	if x := c.ext; x != nil && x.pendingAck != nil {
		return x.pendingAck.expiry
	}
	return 0
}

// keepAliveGrace is how long c may stay silent: one and a half keep alive
// intervals [MQTT-3.1.2-22].
func (c *Client) keepAliveGrace() int64 {
	return int64(c.keepAlive) * int64(time.Second) * 3 / 2
}

// Loop returns the loop c belongs to.
func (c *Client) Loop() *Loop { return c.l }

// Closed reports whether the broker has closed c. Loop goroutine only.
func (c *Client) Closed() bool { return c.closed }

// Disconnect closes c for a reason of the transport's (a memory budget
// exceeded): a connected v5 client is sent DISCONNECT with rc first. Loop
// goroutine only, outside c's Input.
func (c *Client) Disconnect(rc codec.ReasonCode) { c.disconnect(rc) }

// Reading reports whether c's Input is running: a Transport closed from
// within it may close once Input has returned (see Transport.Close). Loop
// goroutine only.
func (c *Client) Reading() bool { return c.l.reading == c }

// x returns c's extension, allocating it on first use.
func (c *Client) x() *clientExt {
	if c.ext == nil {
		c.ext = &clientExt{}
	}
	return c.ext
}

// user is the user name the ACL sees: the identity's, else the CONNECT's;
// nil if none.
func (c *Client) user() []byte {
	if c.ext == nil {
		return nil
	}
	if id := c.ext.ident; id != nil && id.Username != nil {
		return id.Username
	}
	return c.ext.username
}

// access is the connection as the authorizer sees it.
func (c *Client) access() Access {
	a := Access{ClientID: c.clientID(), Username: c.user()}
	if c.ext != nil && c.ext.ident != nil {
		a.Anonymous, a.Claims = c.ext.ident.Anonymous, c.ext.ident.Claims
	}
	return a
}

// allowPublish asks the ACL hook whether c may publish to topic.
func (c *Client) allowPublish(topic []byte) bool {
	b := c.l.b
	if b.aauthz != nil {
		return b.aauthz.AllowPublish(c.access(), topic)
	}
	return b.authz.CanPublish(c.clientID(), c.user(), topic)
}

// authMethod is the v5 Authentication Method of the CONNECT, nil if none.
func (c *Client) authMethod() []byte {
	if c.ext == nil {
		return nil
	}
	return c.ext.authMethod
}

// pendingWill is the will of the CONNECT until the session takes it.
func (c *Client) pendingWill() *Will {
	if c.ext == nil {
		return nil
	}
	return c.ext.will
}

// Open registers a new connection. Loop goroutine only.
func (l *Loop) Open(t Transport) *Client {
	c := new(Client)
	l.OpenClient(c, t)
	return c
}

// OpenClient registers a new connection whose Client the caller allocated,
// zeroed, typically inside its own per-connection struct so that a
// connection costs one allocation. Loop goroutine only.
func (l *Loop) OpenClient(c *Client, t Transport) {
	*c = Client{l: l, t: t, window: 1, pos: int32(len(l.clients))}
	l.clients = append(l.clients, c)
	l.b.stats.ConnectionsOpen.Add(1)
	l.now = time.Now().UnixNano()
	c.deadline = l.now + int64(l.b.cfg.ConnectTimeout)
	l.wheel.add(c, c.deadline)
}

// Input decodes and handles every complete packet at the start of data and
// returns the number of bytes consumed. It stops early while a CONNECT is in
// flight (see Transport.Resume). After a fatal error it closes the client and
// reports all of data consumed. Loop goroutine only.
func (l *Loop) Input(c *Client, data []byte) int {
	l.reading = c
	defer func() { l.reading = nil }()
	l.now = time.Now().UnixNano()
	l.b.stats.BytesReceived.Add(uint64(len(data)))
	done := 0
	for !c.closed && c.state != stateConnecting && !c.paused && done < len(data) {
		if c.state == stateNew {
			// fail answers a bad CONNECT in the version it read into l.pk,
			// which the loop's clients share: forget the previous client's,
			// so that a packet that never reached a CONNECT body is treated
			// as of unknown version (closed, no CONNACK).
			l.pk.Connect.Version = 0
			if codec.PacketType(data[done]>>4) != codec.Connect {
				// [MQTT-3.1.0-1]: refuse at the first byte instead of
				// buffering, until the connect timeout, a body that can
				// only be refused.
				c.fail(codec.ErrVersionUnknown)
				return len(data)
			}
		}
		n, err := codec.Decode(data[done:], c.version, l.b.cfg.MaxPacketSize, &l.pk)
		if err == codec.ErrIncomplete {
			break
		}
		if err != nil {
			c.fail(err)
			return len(data)
		}
		done += n
		l.b.stats.MessagesReceived.Add(1)
		if c.keepAlive > 0 {
			c.deadline = l.now + c.keepAliveGrace()
		}
		c.handle(&l.pk)
	}
	if c.closed {
		return len(data)
	}
	if c.state == stateConnecting && done < len(data) {
		c.stalled = true // bytes wait for the claim: attach resumes reading
	}
	return done
}

// Closed tells the loop the connection is gone (closed by either side).
// Loop goroutine only.
func (l *Loop) Closed(c *Client) {
	if c.pos < 0 || int(c.pos) >= len(l.clients) || l.clients[c.pos] != c {
		return
	}
	last := int32(len(l.clients) - 1)
	l.clients[c.pos] = l.clients[last]
	l.clients[c.pos].pos = c.pos
	l.clients[last] = nil
	l.clients = l.clients[:last]
	if cap(l.clients) > 1024 && len(l.clients) < cap(l.clients)/4 {
		l.clients = slices.Clip(slices.Clone(l.clients)) // give back what a burst of connections left
	}
	c.pos = -1
	c.closed = true
	l.b.stats.ConnectionsOpen.Add(-1)
	l.now = time.Now().UnixNano()
	if c.state == stateConnected {
		l.b.stats.ClientsConnected.Add(-1)
	}
	if s := c.s; s != nil && s.client == c {
		l.detach(s, c)
	}
	c.s = nil
}

// handle dispatches one decoded packet.
func (c *Client) handle(pk *codec.Packet) {
	if c.state == stateNew && pk.Type != codec.Connect {
		c.abort() // [MQTT-3.1.0-1]: the first packet must be CONNECT
		return
	}
	if c.state == stateAuth && pk.Type != codec.Auth && pk.Type != codec.Disconnect {
		c.abort() // [MQTT-3.1.2-30]: only AUTH or DISCONNECT before CONNACK
		return
	}
	switch pk.Type {
	case codec.Connect:
		if c.state != stateNew {
			c.protocolError(codec.ProtocolError) // [MQTT-3.1.0-2]
			return
		}
		c.handleConnect(&pk.Connect)
	case codec.Publish:
		c.handlePublish(&pk.Publish)
	case codec.Puback:
		c.handlePuback(&pk.Ack)
	case codec.Pubrec:
		c.handlePubrec(&pk.Ack)
	case codec.Pubrel:
		c.handlePubrel(&pk.Ack)
	case codec.Pubcomp:
		c.handlePubcomp(&pk.Ack)
	case codec.Subscribe:
		c.handleSubscribe(&pk.Subscribe)
	case codec.Unsubscribe:
		c.handleUnsubscribe(&pk.Unsubscribe)
	case codec.Pingreq:
		ob := c.outBuf()
		ob.b = append(ob.b, byte(codec.Pingresp)<<4, 0) // [MQTT-3.12.4-1]
		c.l.markDirty(c)
	case codec.Disconnect:
		c.handleDisconnect(&pk.Disconnect)
	case codec.Auth:
		c.handleAuth(&pk.Auth)
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP go only from server to client.
		c.protocolError(codec.ProtocolError)
	}
}

// fail closes the connection after a decoding error, answering with the
// error's reason code where the protocol allows it.
func (c *Client) fail(err error) {
	b := c.l.b
	b.stats.ProtocolErrors.Add(1)
	rc := codec.Code(err)
	if errors.Is(err, codec.ErrPacketTooLarge) {
		rc = codec.PacketTooLarge
		b.stats.PacketsTooLarge.Add(1)
		if held, ok := b.abuse.tooLarge.Allow(c.l.now); ok {
			LogHeld(b.log, slog.LevelWarn, held, "connection closed: packet larger than max-packet-size",
				"client", c.clientID(), "remote", c.t.RemoteAddr(), "max", b.cfg.MaxPacketSize)
		}
	} else {
		if held, ok := b.abuse.malformed.Allow(c.l.now); ok {
			LogHeld(b.log, slog.LevelWarn, held, "connection closed: malformed packet",
				"client", c.clientID(), "remote", c.t.RemoteAddr(), "err", err.Error())
		}
	}
	if c.state == stateNew {
		// A bad CONNECT: v5 clients get a CONNACK with the reason; 3.1.1 only
		// for an unsupported protocol level [MQTT-3.1.2-2].
		v := c.l.pk.Connect.Version
		switch {
		case v == codec.V5:
			c.version = codec.V5
			c.writeConnack(false, rc, nil)
		case rc == codec.UnsupportedProtocolVersion:
			c.version = codec.V311
			c.writeConnack(false, codec.V3UnacceptableProtocolVersion, nil)
		}
		c.abort()
		return
	}
	c.disconnect(rc)
}

// protocolError ends the connection for a packet that breaks the protocol: v5
// clients get DISCONNECT with rc [MQTT-4.13.1-1]. Counted and logged.
func (c *Client) protocolError(rc codec.ReasonCode) {
	b := c.l.b
	b.stats.ProtocolErrors.Add(1)
	if held, ok := b.abuse.malformed.Allow(c.l.now); ok {
		LogHeld(b.log, slog.LevelWarn, held, "connection closed: protocol error",
			"client", c.clientID(), "remote", c.t.RemoteAddr(), "reason", rc.String())
	}
	c.disconnect(rc)
}

// disconnect sends a v5 DISCONNECT with rc (nothing for older clients) and
// closes the connection; the will is published [MQTT-3.1.2-8] unless rc is a
// normal disconnection requested by the client.
func (c *Client) disconnect(rc codec.ReasonCode) {
	if c.closed {
		return
	}
	if c.version == codec.V5 && c.state == stateConnected {
		var d codec.DisconnectPacket
		d.Reason = rc
		ob := c.outBuf()
		ob.b = codec.AppendDisconnect(ob.b, &d, codec.V5)
	}
	c.abort()
}

// abort flushes what is pending and closes the connection.
func (c *Client) abort() {
	if c.closed {
		return
	}
	graceful := !c.normalExit && c.pending() > 0
	// The buffer leaves c before the write: a write that fails closes the
	// connection from within (the transport's close runs Loop.Closed and a
	// Flush), and that nested close must find nothing of c's to give back.
	if o := c.out; o != nil {
		c.out = nil
		_ = c.t.Write(o.b)
		c.l.putBuf(o)
	}
	c.closed = true
	c.t.Close(graceful)
	c.l.Closed(c)
}

// overHighWater reports whether the connection has too much unsent data.
func (c *Client) overHighWater() bool {
	return c.t.OutboundBuffered()+c.pending() > c.l.b.cfg.OutboundHighWater
}
