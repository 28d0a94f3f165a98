package bench

import (
	"errors"

	"github.com/flockmq/flockmq/codec"
)

// Connection states, in order.
const (
	stateDialing uint8 = iota
	stateConnecting
	stateSubscribing
	stateReady
	stateClosed
)

// client is one MQTT connection of a run. The dialer sets it up; from
// opened on, every field is owned by the connection's event loop (loop
// goroutine only), and the runner reads the results after the transport
// has stopped. Both transports, gnet and std-net (--tls), drive it through
// opened, decode, answer, flush and closed.
type client struct {
	r     *Runner
	loop  *loopState
	conn  clientConn
	idx   int
	id    []byte
	host  string
	state uint8
	clean bool

	connectStart int64
	lastOut      int64
	sessionPres  bool
	isOpen       bool // counted in loopStats.open
	failed       bool // never became ready
	dropped      bool // closed by the broker or the network after ready

	// Subscriber.
	subs      []codec.Subscription
	subAcks   int // SUBACKs outstanding
	subStart  int64
	readyAt   int64
	tracker   *Tracker
	qos2In    map[uint16]struct{} // QoS 2 packet ids awaiting PUBREL
	expect    uint64              // retained: messages expected
	got       uint64              // unique messages counted towards expect
	completed int64               // retained: when got reached expect (ns)

	// Publisher.
	isPub    bool
	pubIdx   uint32
	topics   [][]byte // published round-robin; one per message
	seqs     []uint64 // next sequence number per topic
	retain   bool
	payload  []byte
	limit    uint64 // messages to publish; 0 = unlimited
	sent     uint64
	acked    uint64
	pubStart int64
	done     bool // limit reached and acknowledged (counted in pubsDone)
	win      pubWindow
}

// opened binds the client to loop l and connection conn and returns its
// CONNECT, to be written first. start is when connecting began: the TCP
// connection's enrolment (gnet), or the start of the TLS handshake (--tls),
// so that the CONNACK latency includes the handshake. Loop goroutine only.
func (c *client) opened(l *loopState, conn clientConn, start int64) []byte {
	c.loop, c.conn = l, conn
	l.clients = append(l.clients, c)
	if c.isPub {
		l.pubs = append(l.pubs, c)
	}
	c.state = stateConnecting
	c.connectStart, c.lastOut = start, start
	return c.appendConnect(nil)
}

// decode handles every complete packet at the head of buf (borrowed: valid
// for the call only) and appends any answers to out. It returns the bytes
// consumed and false when the connection must close. It does not allocate.
// Loop goroutine only.
func (c *client) decode(buf, out []byte, now int64) (int, []byte, bool) {
	l := c.loop
	off := 0
	keep := true
	l.mu.Lock()
	for off < len(buf) {
		n, err := codec.Decode(buf[off:], c.r.cfg.Version, maxPacket, &l.pkt)
		if errors.Is(err, codec.ErrIncomplete) {
			break
		}
		if err != nil {
			l.st.protoErr.Add(1)
			c.r.noteErr(err)
			keep = false
			break
		}
		off += n
		if out, keep = c.handle(&l.pkt, out, now); !keep {
			break
		}
	}
	l.mu.Unlock()
	return off, out, keep
}

// answer refills a publish window freed by acks (unless the connection is
// closing), writes out with one write and hands the buffer back to the
// loop. Loop goroutine only.
func (c *client) answer(out []byte, now int64, keep bool) {
	l := c.loop
	if keep && l.publishing && c.isPub {
		out = c.pump(out, now)
	}
	c.flush(out)
	l.wbuf = out[:0]
}

// appendConnect encodes the client's CONNECT.
func (c *client) appendConnect(dst []byte) []byte {
	cfg := c.r.cfg
	cp := codec.ConnectPacket{
		Version:    cfg.Version,
		CleanStart: c.clean,
		KeepAlive:  uint16(cfg.KeepAlive.Seconds()),
		ClientID:   c.id,
	}
	if cfg.Username != "" {
		cp.UsernameFlag, cp.Username = true, []byte(cfg.Username)
	}
	if cfg.Password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(cfg.Password)
	}
	if cfg.Version == codec.V5 && cfg.SessionExpiry > 0 {
		cp.Props.SessionExpiry = cfg.SessionExpiry
		cp.Props.Set(codec.PropSessionExpiry)
	}
	return codec.AppendConnect(dst, &cp)
}

// handle processes one decoded packet and appends any answer to out. It
// returns false when the connection must close. Loop goroutine only; the
// loop's mu is held.
func (c *client) handle(pk *codec.Packet, out []byte, now int64) ([]byte, bool) {
	l := c.loop
	v := c.r.cfg.Version
	switch pk.Type {
	case codec.Connack:
		if c.state != stateConnecting {
			return out, c.protocolError("unexpected CONNACK")
		}
		if pk.Connack.Reason != codec.Success {
			c.r.noteErr(pk.Connack.Reason)
			c.fail()
			return out, false
		}
		record(l.connack, now-c.connectStart)
		c.sessionPres = pk.Connack.SessionPresent
		l.st.open.Add(1)
		c.isOpen = true
		c.r.connected.add()
		if c.isPub {
			w := c.r.cfg.Inflight
			if v == codec.V5 && pk.Connack.Props.Has(codec.PropReceiveMaximum) {
				w = min(w, int(pk.Connack.Props.ReceiveMaximum))
			}
			c.win.init(w)
		}
		if len(c.subs) > 0 {
			c.state = stateSubscribing
			c.subStart = now
			return c.appendSubscribes(out), true
		}
		c.becomeReady(now)
	case codec.Suback:
		if c.state != stateSubscribing {
			return out, c.protocolError("unexpected SUBACK")
		}
		for _, rc := range pk.Suback.Reasons {
			if rc >= 0x80 {
				c.r.noteErr(rc)
				c.fail()
				return out, false
			}
		}
		if c.subAcks--; c.subAcks == 0 {
			c.becomeReady(now)
		}
	case codec.Publish:
		return c.onPublish(&pk.Publish, out, now)
	case codec.Puback:
		c.complete(pk.Ack.PacketID, now)
	case codec.Pubrec:
		if pk.Ack.Reason >= 0x80 {
			c.complete(pk.Ack.PacketID, now) // refused: the flow ends here
			break
		}
		ack := codec.AckPacket{PacketID: pk.Ack.PacketID}
		out = codec.AppendAck(out, codec.Pubrel, &ack, v)
	case codec.Pubcomp:
		c.complete(pk.Ack.PacketID, now)
	case codec.Pubrel:
		delete(c.qos2In, pk.Ack.PacketID)
		ack := codec.AckPacket{PacketID: pk.Ack.PacketID}
		out = codec.AppendAck(out, codec.Pubcomp, &ack, v)
	case codec.Pingresp, codec.Unsuback:
	case codec.Disconnect:
		c.r.noteErr(pk.Disconnect.Reason)
		return out, false
	default:
		return out, c.protocolError("unexpected " + pk.Type.String())
	}
	return out, true
}

// subBatch is the most subscriptions one SUBSCRIBE carries; a client with
// more sends several at once and is ready at the last SUBACK.
const subBatch = 100

// appendSubscribes encodes the client's SUBSCRIBE packets, packet ids 1, 2,
// ..., and counts the SUBACKs due.
func (c *client) appendSubscribes(out []byte) []byte {
	v := c.r.cfg.Version
	c.subAcks = 0
	for i := 0; i < len(c.subs); i += subBatch {
		c.subAcks++
		sp := codec.SubscribePacket{PacketID: uint16(c.subAcks), Subscriptions: c.subs[i:min(i+subBatch, len(c.subs))]}
		out = codec.AppendSubscribe(out, &sp, v)
	}
	return out
}

func (c *client) protocolError(msg string) bool {
	c.loop.st.protoErr.Add(1)
	c.r.noteErrString(msg)
	return false
}

func (c *client) becomeReady(now int64) {
	c.state = stateReady
	c.readyAt = now
	c.r.ready.add()
}

// fail marks a client that never became ready.
func (c *client) fail() {
	if !c.failed && c.state < stateReady {
		c.failed = true
		c.r.connFailed.Add(1)
		c.r.ready.add()
		if c.state < stateSubscribing {
			c.r.connected.add()
		}
	}
}

// onPublish accounts for one delivered message and acknowledges it.
func (c *client) onPublish(p *codec.PublishPacket, out []byte, now int64) ([]byte, bool) {
	l, v := c.loop, c.r.cfg.Version
	deliver := true
	switch p.QoS {
	case 1:
		ack := codec.AckPacket{PacketID: p.PacketID}
		out = codec.AppendAck(out, codec.Puback, &ack, v)
	case 2:
		if c.qos2In == nil {
			c.qos2In = make(map[uint16]struct{})
		}
		if _, dup := c.qos2In[p.PacketID]; dup {
			deliver = false // a resend before PUBREL is the same message [MQTT-4.3.3-3]
		}
		c.qos2In[p.PacketID] = struct{}{}
		ack := codec.AckPacket{PacketID: p.PacketID}
		out = codec.AppendAck(out, codec.Pubrec, &ack, v)
	}
	if !deliver || c.tracker == nil {
		return out, true
	}
	h, err := ParseHeader(p.Payload)
	if err != nil {
		l.st.foreign.Add(1)
		return out, true
	}
	if h.Run != c.r.runID && !c.r.anyRun {
		l.st.stale.Add(1) // a previous run's message
		return out, true
	}
	if h.Publisher&probeBit != 0 { // a route probe, outside the sequence checks
		if pr := c.r.prober.Load(); pr != nil {
			pr.observe(c.idx, h, p.Topic, now)
		}
		return out, true
	}
	l.st.recv.Add(1)
	record(l.lat, now-h.SendNs)
	fresh := c.tracker.Observe(StreamKey{Run: h.Run, Publisher: h.Publisher, Topic: fnv64(p.Topic)}, h.Seq)
	if fresh && c.expect > 0 {
		c.got++
		if c.got == c.expect {
			c.completed = now
			c.r.complete.add()
		}
	}
	return out, true
}

// complete ends the QoS 1/2 flow of packet id.
func (c *client) complete(id uint16, now int64) {
	sent, ok := c.win.free(id)
	if !ok {
		c.loop.st.protoErr.Add(1)
		return
	}
	c.acked++
	c.loop.st.acked.Add(1)
	c.loop.st.inflight.Add(-1)
	record(c.loop.ack, now-sent)
	c.checkDone()
}

func (c *client) checkDone() {
	if c.limit > 0 && c.sent == c.limit && c.win.n == 0 && !c.done {
		c.done = true
		c.r.pubsDone.add()
	}
}

// flush writes b, if any. Loop goroutine only.
func (c *client) flush(b []byte) {
	if len(b) == 0 || c.state >= stateClosed {
		return
	}
	_, _ = c.conn.Write(b) // an error closes the connection, seen in OnClose
	c.lastOut = c.r.clk.now()
}

// closed runs when the connection has closed (gnet's OnClose, or the std
// reader's end). Loop goroutine only.
func (c *client) closed(err error) {
	if c.state >= stateClosed {
		return
	}
	if c.state < stateReady {
		if err != nil {
			c.r.noteErr(err)
		}
		c.fail()
	} else if !c.r.closing.Load() {
		c.dropped = true
		c.r.dropped.Add(1)
		if err != nil {
			c.r.noteErr(err)
		}
	}
	if c.isOpen {
		c.isOpen = false
		c.loop.st.open.Add(-1)
	}
	c.loop.st.inflight.Add(-int64(c.win.n))
	c.state = stateClosed
	c.r.closedG.add()
	if c.isPub && c.limit > 0 && !c.done {
		c.done = true
		c.r.pubsDone.add()
	}
}
