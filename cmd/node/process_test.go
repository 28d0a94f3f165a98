//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/fsm"
)

// Process tests: the flockmq binary with the raft store, killed (SIGKILL) or
// stopped (SIGTERM) and started again on the same data dir, with real MQTT
// connections on both sides of each restart.

// node is a running flockmq (see nodetest).
type node = nodetest.Process

// startNode starts bin with the raft store on dataDir and waits until it
// serves MQTT.
func startNode(t *testing.T, bin, dataDir string) *node {
	t.Helper()
	return nodetest.Start(t, bin, "-store", "raft", "-data-dir", dataDir, "-raft-bind", "127.0.0.1:0", "-sys-interval", "0")
}

// mqttc is a minimal MQTT client on the codec: it works in whole packets,
// so that tests see every flag and property the broker sends.
type mqttc struct {
	t    *testing.T
	name string
	conn net.Conn
	v    codec.Version
	buf  []byte
	held []*codec.Packet // read ahead while waiting for a PUBREL
}

func dialMQTT(t *testing.T, addr, name string, v codec.Version) *mqttc {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &mqttc{t: t, name: name, conn: c, v: v}
}

func (c *mqttc) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// next returns the next packet (an owned copy), or nil on close or timeout.
func (c *mqttc) next(timeout time.Duration) *codec.Packet {
	c.t.Helper()
	if len(c.held) > 0 {
		pk := c.held[0]
		c.held = c.held[1:]
		return pk
	}
	deadline := time.Now().Add(timeout)
	tmp := make([]byte, 4096)
	var pk codec.Packet
	for {
		n, err := codec.Decode(c.buf, c.v, 0, &pk)
		if err == nil {
			cp, err := pk.Clone(c.v)
			if err != nil {
				c.t.Fatalf("%s: clone %v: %v", c.name, pk.Type, err)
			}
			c.buf = c.buf[n:]
			return cp
		}
		if err != codec.ErrIncomplete {
			c.t.Fatalf("%s: decode: %v", c.name, err)
		}
		_ = c.conn.SetReadDeadline(deadline)
		m, err := c.conn.Read(tmp)
		c.buf = append(c.buf, tmp[:m]...)
		if err != nil && m == 0 {
			return nil
		}
	}
}

func (c *mqttc) expect(typ codec.PacketType, timeout time.Duration) *codec.Packet {
	c.t.Helper()
	pk := c.next(timeout)
	if pk == nil {
		c.t.Fatalf("%s: expected %v, got nothing within %v", c.name, typ, timeout)
	}
	if pk.Type != typ {
		c.t.Fatalf("%s: expected %v, got %s", c.name, typ, pkString(pk))
	}
	return pk
}

// connect sends cp and returns the CONNACK, failing unless it is a success.
func (c *mqttc) connect(cp codec.ConnectPacket) *codec.ConnackPacket {
	c.t.Helper()
	cp.Version = c.v
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 60
	}
	c.send(codec.AppendConnect(nil, &cp))
	ack := &c.expect(codec.Connack, 10*time.Second).Connack
	if ack.Reason != codec.Success {
		c.t.Fatalf("%s: CONNACK reason %#x", c.name, byte(ack.Reason))
	}
	return ack
}

// subscribe sends one SUBSCRIBE and fails unless every filter is granted
// its QoS.
func (c *mqttc) subscribe(id uint16, subID uint32, subs ...codec.Subscription) {
	c.t.Helper()
	sp := codec.SubscribePacket{PacketID: id, Subscriptions: subs}
	if subID != 0 {
		sp.Props.SubscriptionIDs = []uint32{subID}
	}
	c.send(codec.AppendSubscribe(nil, &sp, c.v))
	ack := c.expect(codec.Suback, 10*time.Second)
	if ack.Suback.PacketID != id || len(ack.Suback.Reasons) != len(subs) {
		c.t.Fatalf("%s: %s for SUBSCRIBE %d", c.name, pkString(ack), id)
	}
	for i, rc := range ack.Suback.Reasons {
		if rc != codec.ReasonCode(subs[i].QoS) {
			c.t.Fatalf("%s: filter %q granted %#x, want QoS %d", c.name, subs[i].Filter, byte(rc), subs[i].QoS)
		}
	}
}

// publish sends p and, for QoS 1 and 2, completes the flow; it fails unless
// the broker accepts the message (v5 0x10, no matching subscribers, is an
// acceptance).
func (c *mqttc) publish(p codec.PublishPacket) {
	c.t.Helper()
	c.send(codec.AppendPublish(nil, &p, c.v))
	switch p.QoS {
	case 1:
		ack := c.expectSkipping(codec.Puback)
		if ack.Ack.PacketID != p.PacketID || (ack.Ack.Reason != codec.Success && ack.Ack.Reason != codec.NoMatchingSubscribers) {
			c.t.Fatalf("%s: %s for PUBLISH %d", c.name, pkString(ack), p.PacketID)
		}
	case 2:
		rec := c.expectSkipping(codec.Pubrec)
		if rec.Ack.PacketID != p.PacketID || (rec.Ack.Reason != codec.Success && rec.Ack.Reason != codec.NoMatchingSubscribers) {
			c.t.Fatalf("%s: %s for PUBLISH %d", c.name, pkString(rec), p.PacketID)
		}
		c.ack(codec.Pubrel, p.PacketID)
		c.expectSkipping(codec.Pubcomp)
	}
}

// expectSkipping waits for a packet of type typ, failing on anything but
// PUBLISH, which it acknowledges and drops.
func (c *mqttc) expectSkipping(typ codec.PacketType) *codec.Packet {
	c.t.Helper()
	for {
		pk := c.next(10 * time.Second)
		switch {
		case pk == nil:
			c.t.Fatalf("%s: expected %v, got nothing within 10s", c.name, typ)
		case pk.Type == typ:
			return pk
		case pk.Type != codec.Publish:
			c.t.Fatalf("%s: expected %v, got %s", c.name, typ, pkString(pk))
		case pk.Publish.QoS == 1:
			c.ack(codec.Puback, pk.Publish.PacketID)
		case pk.Publish.QoS == 2:
			c.ack(codec.Pubrec, pk.Publish.PacketID)
		}
	}
}

func (c *mqttc) ack(typ codec.PacketType, id uint16) {
	c.t.Helper()
	a := codec.AckPacket{PacketID: id}
	c.send(codec.AppendAck(nil, typ, &a, c.v))
}

// receive returns the next PUBLISH and completes its QoS flow as a client.
func (c *mqttc) receive(timeout time.Duration) *codec.PublishPacket {
	c.t.Helper()
	pk := c.expect(codec.Publish, timeout)
	p := &pk.Publish
	switch p.QoS {
	case 1:
		c.ack(codec.Puback, p.PacketID)
	case 2:
		c.ack(codec.Pubrec, p.PacketID)
		// The broker may send further PUBLISHes before the PUBREL: hold
		// them for the next calls.
		var ahead []*codec.Packet
		for {
			pk := c.next(timeout)
			if pk == nil {
				c.t.Fatalf("%s: no PUBREL %d within %v", c.name, p.PacketID, timeout)
			}
			if pk.Type == codec.Publish {
				ahead = append(ahead, pk)
				continue
			}
			if pk.Type != codec.Pubrel || pk.Ack.PacketID != p.PacketID {
				c.t.Fatalf("%s: %s, want PUBREL %d", c.name, pkString(pk), p.PacketID)
			}
			break
		}
		c.held = append(ahead, c.held...)
		c.ack(codec.Pubcomp, p.PacketID)
	}
	return p
}

// quiet fails if a packet arrives within d.
func (c *mqttc) quiet(d time.Duration) {
	c.t.Helper()
	if pk := c.next(d); pk != nil {
		c.t.Fatalf("%s: unexpected %s", c.name, pkString(pk))
	}
}

func pkString(pk *codec.Packet) string {
	if pk == nil {
		return "nothing"
	}
	switch pk.Type {
	case codec.Publish:
		p := &pk.Publish
		return fmt.Sprintf("PUBLISH topic=%q qos=%d retain=%v subids=%v payload=%q", p.Topic, p.QoS, p.Retain, p.Props.SubscriptionIDs, p.Payload)
	case codec.Puback, codec.Pubrec, codec.Pubrel, codec.Pubcomp:
		return fmt.Sprintf("%v id=%d reason=%#x", pk.Type, pk.Ack.PacketID, byte(pk.Ack.Reason))
	case codec.Connack:
		return fmt.Sprintf("CONNACK present=%v reason=%#x", pk.Connack.SessionPresent, byte(pk.Connack.Reason))
	case codec.Disconnect:
		return fmt.Sprintf("DISCONNECT reason=%#x", byte(pk.Disconnect.Reason))
	case codec.Suback:
		return fmt.Sprintf("SUBACK id=%d reasons=%v", pk.Suback.PacketID, pk.Suback.Reasons)
	}
	return pk.Type.String()
}

// persistent5 is a v5 CONNECT with clean start 0 and session expiry 3600 s.
func persistent5(id string) codec.ConnectPacket {
	cp := codec.ConnectPacket{ClientID: []byte(id)}
	cp.Props.SessionExpiry = 3600
	cp.Props.Set(codec.PropSessionExpiry)
	return cp
}

// persistent3 is a 3.1.1 CONNECT with clean session 0.
func persistent3(id string) codec.ConnectPacket { return codec.ConnectPacket{ClientID: []byte(id)} }

// clean is a CONNECT with clean start 1 (and, for v5, session expiry 0).
func clean(id string) codec.ConnectPacket {
	return codec.ConnectPacket{CleanStart: true, ClientID: []byte(id)}
}

// withWill adds a will to cp.
func withWill(cp codec.ConnectPacket, topic, payload string, qos byte, retain bool, delay uint32) codec.ConnectPacket {
	cp.WillFlag, cp.WillTopic, cp.WillPayload, cp.WillQoS, cp.WillRetain = true, []byte(topic), []byte(payload), qos, retain
	if delay > 0 {
		cp.WillProps.WillDelay = delay
		cp.WillProps.Set(codec.PropWillDelay)
		cp.WillProps.User = []codec.UserProperty{{Key: []byte("why"), Value: []byte("gone")}}
	}
	return cp
}

func pub(topic, payload string, qos byte, id uint16, retain bool) codec.PublishPacket {
	return codec.PublishPacket{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, PacketID: id, Retain: retain}
}

// propsPublish is the retained v5 message with properties.
func propsPublish() codec.PublishPacket {
	p := pub("r/props", "with properties", 1, 3, true)
	p.Props.PayloadFormat = 1
	p.Props.Set(codec.PropPayloadFormat)
	p.Props.ContentType = []byte("text/plain")
	p.Props.Set(codec.PropContentType)
	p.Props.ResponseTopic = []byte("r/reply")
	p.Props.Set(codec.PropResponseTopic)
	p.Props.CorrelationData = []byte{0, 1, 2, 0xff}
	p.Props.Set(codec.PropCorrelationData)
	p.Props.User = []codec.UserProperty{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k1"), Value: []byte("v2")}}
	return p
}

// checkProps fails unless p carries the properties of propsPublish.
func checkProps(t *testing.T, p *codec.PublishPacket) {
	t.Helper()
	want := propsPublish()
	w, g := &want.Props, &p.Props
	if !g.Has(codec.PropPayloadFormat) || g.PayloadFormat != 1 || string(g.ContentType) != string(w.ContentType) ||
		string(g.ResponseTopic) != string(w.ResponseTopic) || !bytes.Equal(g.CorrelationData, w.CorrelationData) ||
		len(g.User) != 2 || string(g.User[0].Value) != "v1" || string(g.User[1].Value) != "v2" {
		t.Fatalf("retained r/props lost properties: %+v", *g)
	}
}

// TestRestartKeepsState builds the binary, fills a node's raft store through
// MQTT clients, kills the node with SIGKILL and starts it again on the same
// data dir; then stops it with SIGTERM and starts it once more. Every
// acknowledged session, subscription and retained message must come back,
// and the wills of sessions whose connection the restart cut are published.
func TestRestartKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the flockmq binary; skipped with -short")
	}
	bin := nodetest.Build(t)
	dir := t.TempDir()

	// Run 1: create state, every write acknowledged.
	a := startNode(t, bin, dir)
	p5 := dialMQTT(t, a.Addr, "p5", codec.V5)
	if ack := p5.connect(persistent5("p5")); ack.SessionPresent {
		t.Fatal("p5: session present on first connect")
	}
	p5.subscribe(1, 11, codec.Subscription{Filter: []byte("s/v5/q1/+"), QoS: 1, NoLocal: true})
	p5.subscribe(2, 22, codec.Subscription{Filter: []byte("s/v5/q2/#"), QoS: 2, RetainAsPublished: true})
	p5.subscribe(3, 0, codec.Subscription{Filter: []byte("s/v5/zero"), QoS: 0})

	// A persistent session that is disconnected (cleanly) when the node dies.
	off := dialMQTT(t, a.Addr, "off5", codec.V5)
	off.connect(persistent5("off5"))
	off.subscribe(1, 7, codec.Subscription{Filter: []byte("s/off/#"), QoS: 1})
	off.send(codec.AppendDisconnect(nil, &codec.DisconnectPacket{}, codec.V5))
	off.quiet(5 * time.Second) // returns nil once the broker closes

	p3 := dialMQTT(t, a.Addr, "p3", codec.V311)
	p3.connect(persistent3("p3"))
	p3.subscribe(1, 0, codec.Subscription{Filter: []byte("s/v3/+"), QoS: 1}, codec.Subscription{Filter: []byte("s/v3/two/#"), QoS: 2})

	c5 := dialMQTT(t, a.Addr, "c5", codec.V5)
	c5.connect(clean("c5"))
	c5.subscribe(1, 0, codec.Subscription{Filter: []byte("s/clean"), QoS: 1})
	c3 := dialMQTT(t, a.Addr, "c3", codec.V311)
	c3.connect(clean("c3"))
	c3.subscribe(1, 0, codec.Subscription{Filter: []byte("s/clean"), QoS: 1})

	w5 := dialMQTT(t, a.Addr, "w5", codec.V5)
	w5.connect(withWill(persistent5("w5"), "will/v5", "w5 is gone", 1, false, 2))
	w3 := dialMQTT(t, a.Addr, "w3", codec.V311)
	w3.connect(withWill(persistent3("w3"), "will/v3", "w3 is gone", 1, true, 0))

	pubA := dialMQTT(t, a.Addr, "pubA", codec.V5)
	pubA.connect(clean("pubA"))
	pubA.publish(pub("r/a", "retained a", 1, 1, true))
	pubA.publish(pub("r/b/c", "retained b/c", 2, 2, true))
	pubA.publish(propsPublish())
	pubA.publish(pub("r/gone", "soon deleted", 1, 4, true))
	pubA.publish(pub("r/gone", "", 1, 5, true)) // [MQTT-3.3.1-6]

	killed := time.Now()
	a.Kill9(t)

	// Run 2: started on the same data dir after SIGKILL.
	b := startNode(t, bin, dir)
	watch := dialMQTT(t, b.Addr, "watch", codec.V5)
	watch.connect(clean("watch"))
	watch.subscribe(1, 0, codec.Subscription{Filter: []byte("will/#"), QoS: 1})
	subscribed := time.Since(b.Started)
	// The 3.1.1 will is retained, so it reaches the watcher whether its
	// SUBSCRIBE came before the leader's first sweep or after.
	got3, got5 := false, false
	for !got3 || !got5 {
		w := watch.receive(15 * time.Second)
		switch string(w.Topic) {
		case "will/v3":
			if got3 || string(w.Payload) != "w3 is gone" || w.QoS != 1 {
				t.Fatalf("will/v3: %s (seen before: %v)", pkString(&codec.Packet{Type: codec.Publish, Publish: *w}), got3)
			}
			got3 = true
		case "will/v5":
			since := time.Since(killed)
			if got5 || string(w.Payload) != "w5 is gone" || w.QoS != 1 || len(w.Props.User) != 1 || string(w.Props.User[0].Value) != "gone" {
				t.Fatalf("will/v5: %s props %+v (seen before: %v)", pkString(&codec.Packet{Type: codec.Publish, Publish: *w}), w.Props, got5)
			}
			if since < 2*time.Second {
				t.Fatalf("will/v5 with delay 2 s published %v after the connection died [MQTT-3.1.3-9]", since)
			}
			t.Logf("after SIGKILL: watcher subscribed %v after start; will/v5 (delay 2 s) arrived %v after the kill, %v after start",
				subscribed.Round(time.Millisecond), since.Round(time.Millisecond), time.Since(b.Started).Round(time.Millisecond))
			got5 = true
		default:
			t.Fatalf("watcher: unexpected will on %q", w.Topic)
		}
	}

	checkSessions(t, b, "after SIGKILL")

	// The clean sessions ended with their connections [MQTT-3.1.2-6].
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		id := map[codec.Version]string{codec.V5: "c5", codec.V311: "c3"}[v]
		c := dialMQTT(t, b.Addr, id+"-again", v)
		if ack := c.connect(codec.ConnectPacket{ClientID: []byte(id)}); ack.SessionPresent {
			t.Fatalf("%s: clean session present after restart", id)
		}
	}

	checkRetained(t, b, "after SIGKILL")

	// The will clients come back: their sessions survived the publication
	// of their wills. w5 leaves a will with a 4 s delay for the SIGTERM below:
	// long enough for the watcher of run 3 to subscribe first.
	w5 = dialMQTT(t, b.Addr, "w5", codec.V5)
	if ack := w5.connect(withWill(persistent5("w5"), "will/v5b", "w5 again", 1, false, 4)); !ack.SessionPresent {
		t.Fatal("w5: no session present after its will was published")
	}
	// w3's new will has no delay: the SIGTERM below publishes it at once
	// (the server closes the connection), so run 3 must not publish it again.
	w3 = dialMQTT(t, b.Addr, "w3", codec.V311)
	if ack := w3.connect(withWill(persistent3("w3"), "will/v3b", "w3 again", 1, false, 0)); !ack.SessionPresent {
		t.Fatal("w3: no session present after its will was published")
	}
	watch.quiet(300 * time.Millisecond) // each will was published once

	// Run 3: SIGTERM, then started again.
	if err := b.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if code := b.ExitStatus(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	c := startNode(t, bin, dir)
	watch = dialMQTT(t, c.Addr, "watch", codec.V5)
	watch.connect(clean("watch"))
	// Retain handling 2: only wills published from now on (will/v3 is
	// retained from run 2 and must not be published again).
	watch.subscribe(1, 0, codec.Subscription{Filter: []byte("will/#"), QoS: 1, RetainHandling: 2})
	w := watch.receive(15 * time.Second)
	if string(w.Topic) != "will/v5b" || string(w.Payload) != "w5 again" {
		t.Fatalf("after SIGTERM: watcher got %s, want the delayed will of w5", pkString(&codec.Packet{Type: codec.Publish, Publish: *w}))
	}
	if since := time.Since(stopped); since < 4*time.Second {
		t.Fatalf("will/v5b with delay 4 s published %v after SIGTERM [MQTT-3.1.3-9]", since)
	}
	checkSessions(t, c, "after SIGTERM")
	checkRetained(t, c, "after SIGTERM")
	watch.quiet(300 * time.Millisecond)
}

// checkSessions reconnects the persistent clients of TestRestartKeepsState
// with clean start 0 and, without subscribing again, checks that publishes
// reach them with the stored QoS, options and subscription identifiers.
func checkSessions(t *testing.T, n *node, when string) {
	t.Helper()
	p5 := dialMQTT(t, n.Addr, "p5 "+when, codec.V5)
	if ack := p5.connect(persistent5("p5")); !ack.SessionPresent {
		t.Fatalf("p5 %s: session present 0 [MQTT-3.2.2-2]", when)
	}
	off := dialMQTT(t, n.Addr, "off5 "+when, codec.V5)
	if ack := off.connect(persistent5("off5")); !ack.SessionPresent {
		t.Fatalf("off5 %s: session present 0", when)
	}
	p3 := dialMQTT(t, n.Addr, "p3 "+when, codec.V311)
	if ack := p3.connect(persistent3("p3")); !ack.SessionPresent {
		t.Fatalf("p3 %s: session present 0", when)
	}
	pb := dialMQTT(t, n.Addr, "pub "+when, codec.V5)
	pb.connect(clean("pub"))

	// No Local: p5's own publish on its filter does not come back; the next
	// publish it sees is the other client's.
	p5.publish(pub("s/v5/q1/self", "own", 1, 1, false))
	pb.publish(pub("s/v5/q1/x", "q1", 2, 1, true))
	if m := p5.receive(5 * time.Second); string(m.Topic) != "s/v5/q1/x" || m.QoS != 1 || m.Retain ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 11 {
		t.Fatalf("p5 %s: got %s; want s/v5/q1/x at QoS 1 (granted), retain 0, subscription id 11", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	pb.publish(pub("s/v5/q2/y/z", "q2", 2, 2, true))
	if m := p5.receive(5 * time.Second); string(m.Topic) != "s/v5/q2/y/z" || m.QoS != 2 || !m.Retain ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 22 {
		t.Fatalf("p5 %s: got %s; want s/v5/q2/y/z at QoS 2, retain 1 (Retain As Published), subscription id 22", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	pb.publish(pub("s/v5/zero", "zero", 1, 3, false))
	if m := p5.receive(5 * time.Second); string(m.Topic) != "s/v5/zero" || m.QoS != 0 || len(m.Props.SubscriptionIDs) != 0 {
		t.Fatalf("p5 %s: got %s; want s/v5/zero at QoS 0 without subscription id", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	pb.publish(pub("s/off/1", "off", 1, 4, false))
	if m := off.receive(5 * time.Second); string(m.Topic) != "s/off/1" || m.QoS != 1 ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 7 {
		t.Fatalf("off5 %s: got %s", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	pb.publish(pub("s/v3/a", "v3 one", 2, 5, false))
	if m := p3.receive(5 * time.Second); string(m.Topic) != "s/v3/a" || m.QoS != 1 {
		t.Fatalf("p3 %s: got %s; want s/v3/a at QoS 1", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	pb.publish(pub("s/v3/two/b", "v3 two", 2, 6, false))
	if m := p3.receive(5 * time.Second); string(m.Topic) != "s/v3/two/b" || m.QoS != 2 {
		t.Fatalf("p3 %s: got %s; want s/v3/two/b at QoS 2", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
	}
	for _, c := range []*mqttc{p5, off, p3} {
		c.quiet(200 * time.Millisecond)
	}
}

// checkRetained subscribes a new client to r/# and checks the retained
// messages: r/a, r/b/c and r/props (with its properties), not r/gone.
func checkRetained(t *testing.T, n *node, when string) {
	t.Helper()
	rs := dialMQTT(t, n.Addr, "retained "+when, codec.V5)
	rs.connect(clean("retained-reader"))
	rs.subscribe(1, 0, codec.Subscription{Filter: []byte("r/#"), QoS: 2})
	want := map[string]string{"r/a": "retained a", "r/b/c": "retained b/c", "r/props": "with properties"}
	wantQoS := map[string]byte{"r/a": 1, "r/b/c": 2, "r/props": 1}
	for range len(want) {
		m := rs.receive(5 * time.Second)
		topic := string(m.Topic)
		if p, ok := want[topic]; !ok || string(m.Payload) != p || !m.Retain || m.QoS != wantQoS[topic] {
			t.Fatalf("retained %s: got %s", when, pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
		}
		if topic == "r/props" {
			checkProps(t, m)
		}
		delete(want, topic)
	}
	rs.quiet(300 * time.Millisecond) // r/gone was deleted
}

// seedDataDir writes the raft state of node n1 into dataDir/raft with the
// raft layer and a real FSM, as the binary would: retained messages r/0 to
// r/9, then a snapshot when snapshot is set, then one more retained message
// r/after in the log.
func seedDataDir(t *testing.T, dataDir string, snapshot bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dataDir, "node-id"), []byte("n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := cluster.OpenRaft(cluster.RaftConfig{NodeID: "n1", Dir: filepath.Join(dataDir, "raft"),
		Bind: "127.0.0.1:0", Bootstrap: true, Fast: true}, fsm.New())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	apply := func(seq uint64, topics ...string) {
		b := &fsm.Batch{Node: "seed", Boot: 1, Seq: seq}
		for _, topic := range topics {
			b.Ops = append(b.Ops, &fsm.RetainedSet{Topic: topic, Payload: []byte("seeded " + topic), QoS: 1, Now: time.Now().UnixMilli()})
		}
		f := r.Apply(fsm.EncodeBatch(b), 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		resp, ok := f.Response().(*fsm.Response)
		if !ok {
			t.Fatalf("seed apply: %v", f.Response())
		}
		if res := resp.Take(); len(res) != len(topics) || res[0].Code != fsm.CodeOK {
			t.Fatalf("seed apply: %v", f.Response())
		}
	}
	var topics []string
	for i := range 10 {
		topics = append(topics, fmt.Sprintf("r/%d", i))
	}
	apply(1, topics...)
	if snapshot {
		if err := r.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	apply(2, "r/after")
}

// copyDir copies the regular files of src into dst, recursively.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// refuses starts bin on dataDir and checks that it exits with status 1 and
// a one-line reason naming want, without a panic and without serving.
func refuses(t *testing.T, bin, dataDir, want string) {
	t.Helper()
	n := nodetest.Exec(t, bin, "-store", "raft", "-data-dir", dataDir, "-node-id", "n1", "-raft-bind", "127.0.0.1:0",
		"-listen", "127.0.0.1:0", "-sys-interval", "0")
	code := n.ExitStatus(t, 30*time.Second)
	log := n.Log.String()
	if code != 1 {
		t.Fatalf("exit status %d, want 1\n%s", code, log)
	}
	if strings.Contains(log, "panic") || strings.Contains(log, "goroutine ") {
		t.Fatalf("the node panicked:\n%s", log)
	}
	if strings.Contains(log, "serving MQTT") {
		t.Fatalf("the node served clients before exiting:\n%s", log)
	}
	var reason string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.HasPrefix(line, "flockmq: ") {
			reason = line
		}
	}
	if !strings.Contains(reason, want) {
		t.Fatalf("want a line \"flockmq: ...\" naming %s, got:\n%s", want, log)
	}
	t.Logf("exit status %d: %s", code, reason)
}

// TestDamagedDataDir: a raft.db whose first pages are garbage, or a
// truncated snapshot, makes the binary exit with status 1 and a sentence
// naming the file; never a panic, never a start with an empty state. An
// intact copy of the same data dir starts and serves the seeded retained
// messages, so the refusal is due to the damage alone.
func TestDamagedDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the flockmq binary; skipped with -short")
	}
	bin := nodetest.Build(t)
	t.Run("raft.db first pages garbage", func(t *testing.T) {
		dir := t.TempDir()
		seedDataDir(t, dir, false)
		db := filepath.Join(dir, "raft", "raft.db")
		f, err := os.OpenFile(db, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// bbolt keeps its two meta pages first; overwrite four 4 KiB pages.
		if _, err := f.WriteAt(bytes.Repeat([]byte("garbage!"), 4*4096/8), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		refuses(t, bin, dir, db)
	})
	t.Run("raft.db pages after the meta pages garbage", func(t *testing.T) {
		dir := t.TempDir()
		seedDataDir(t, dir, false)
		db := filepath.Join(dir, "raft", "raft.db")
		f, err := os.OpenFile(db, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The meta pages stay valid; the pages they point to do not.
		if _, err := f.WriteAt(bytes.Repeat([]byte("garbage!"), 8*4096/8), 2*4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		refuses(t, bin, dir, db)
	})
	t.Run("truncated snapshot", func(t *testing.T) {
		dir := t.TempDir()
		seedDataDir(t, dir, true)
		intact := t.TempDir()
		copyDir(t, dir, intact)
		states, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		if len(states) != 1 {
			t.Fatalf("want one snapshot, found %v", states)
		}
		st, err := os.Stat(states[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(states[0], st.Size()/2); err != nil {
			t.Fatal(err)
		}
		refuses(t, bin, dir, filepath.Join(dir, "raft", "snapshots"))

		// The intact copy: snapshot and log both restored.
		n := startNode(t, bin, intact)
		c := dialMQTT(t, n.Addr, "reader", codec.V5)
		c.connect(clean("reader"))
		c.subscribe(1, 0, codec.Subscription{Filter: []byte("r/#"), QoS: 1})
		seen := map[string]bool{}
		for range 11 {
			m := c.receive(5 * time.Second)
			if string(m.Payload) != "seeded "+string(m.Topic) || seen[string(m.Topic)] {
				t.Fatalf("intact copy: got %s", pkString(&codec.Packet{Type: codec.Publish, Publish: *m}))
			}
			seen[string(m.Topic)] = true
		}
		if !seen["r/after"] || !seen["r/9"] {
			t.Fatalf("intact copy: got %v", seen)
		}
	})
}
