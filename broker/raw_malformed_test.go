package broker_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// Raw-socket tests for malformed input and protocol violations. Each case
// sends hand-written bytes on its own connection and checks the broker's last
// word before it closes: DISCONNECT with a reason (v5, connected), CONNACK
// with a reason (a bad CONNECT), or nothing (3.1.1 after CONNECT, where the
// protocol only allows closing). After every case two bystanders, one 3.1.1
// and one v5, publish to each other to show the node still serves everyone
// else.

// malCase is one malformed packet or protocol violation.
type malCase struct {
	name    string
	v       codec.Version    // of the CONNECT sent first and of the reply expected
	connect bool             // send a valid CONNECT first
	send    []byte           // written in one write after the CONNECT
	want    codec.PacketType // last packet before the close: DISCONNECT, CONNACK, or 0 for none
	rc      codec.ReasonCode // reason of want (CONNACK return code for 3.1.1)
}

// malPkt frames body behind the first byte of a fixed header.
func malPkt(first byte, body ...[]byte) []byte {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	out := codec.AppendVarint([]byte{first}, n)
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

// malStr is a two-byte length and s: an MQTT string, valid or not.
func malStr(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// malConnect is a hand-written CONNECT: protocol name and level, connect
// flags, keep alive 30, then rest (v5 properties, client id, ...).
func malConnect(name string, level, flags byte, rest ...[]byte) []byte {
	body := append([][]byte{malStr(name), {level, flags, 0, 30}}, rest...)
	return malPkt(0x10, body...)
}

// malNoProps is an empty v5 property list.
var malNoProps = []byte{0}

const (
	malV5 = codec.V5
	malV3 = codec.V311
)

// malFixedHeaderCases break the fixed header (section 2.1).
func malFixedHeaderCases() []malCase {
	var cs []malCase
	for _, v := range []codec.Version{malV5, malV3} {
		want, rc := codec.Disconnect, codec.MalformedPacket
		if v == malV3 {
			want, rc = 0, 0
		}
		add := func(name string, send []byte) {
			cs = append(cs, malCase{name: name + " " + v.String(), v: v, connect: true, send: send, want: want, rc: rc})
		}
		add("reserved packet type 0", []byte{0x00, 0x00})
		add("reserved packet type 0 with body", []byte{0x0F, 0x02, 0x00, 0x01})
		add("PUBACK reserved flags", []byte{0x42, 0x02, 0x00, 0x01})
		add("PUBREL flags 0", []byte{0x60, 0x02, 0x00, 0x01})
		add("SUBSCRIBE flags 0", malPkt(0x80, []byte{0, 1}, malNoProps, malStr("a"), []byte{0}))
		add("UNSUBSCRIBE flags 0", malPkt(0xA0, []byte{0, 1}, malNoProps, malStr("a")))
		add("PINGREQ reserved flags", []byte{0xC1, 0x00})
		add("DISCONNECT reserved flags", []byte{0xE2, 0x00})
		add("5-byte remaining length", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})
		add("PUBLISH QoS 3", []byte{0x36, 0x05, 0, 1, 'a', 0, 1})
		add("PINGREQ trailing byte", []byte{0xC0, 0x01, 0x00})
	}
	return cs
}

// malPublishCases break PUBLISH: topic strings, packet identifier, flags.
func malPublishCases() []malCase {
	var cs []malCase
	for _, v := range []codec.Version{malV5, malV3} {
		var props []byte
		if v == malV5 {
			props = malNoProps
		}
		add := func(name string, rc codec.ReasonCode, send []byte) {
			c := malCase{name: name + " " + v.String(), v: v, connect: true, send: send, want: codec.Disconnect, rc: rc}
			if v == malV3 {
				c.want, c.rc = 0, 0
			}
			cs = append(cs, c)
		}
		add("topic not UTF-8", codec.MalformedPacket, malPkt(0x30, malStr("a\xC3\x28"), props))
		add("topic with a surrogate", codec.MalformedPacket, malPkt(0x30, malStr("a\xED\xA0\x80"), props))
		add("topic with U+0000", codec.MalformedPacket, malPkt(0x30, malStr("a\x00b"), props))
		add("topic overlong encoding", codec.MalformedPacket, malPkt(0x30, malStr("\xC0\xAF"), props))
		add("topic with +", codec.TopicNameInvalid, malPkt(0x30, malStr("a/+"), props))
		add("topic with #", codec.TopicNameInvalid, malPkt(0x30, malStr("a/#"), props))
		add("QoS 1 packet id 0", codec.MalformedPacket, malPkt(0x32, malStr("a"), []byte{0, 0}, props))
		add("QoS 2 packet id 0", codec.MalformedPacket, malPkt(0x34, malStr("a"), []byte{0, 0}, props))
		add("DUP on QoS 0", codec.MalformedPacket, malPkt(0x38, malStr("a"), props))
		add("topic length past the end", codec.MalformedPacket, malPkt(0x30, []byte{0, 9, 'a'}))
		add("PUBACK packet id 0", codec.MalformedPacket, []byte{0x40, 2, 0, 0})
		add("SUBSCRIBE packet id 0", codec.MalformedPacket, malPkt(0x82, []byte{0, 0}, props, malStr("a"), []byte{0}))
		add("UNSUBSCRIBE packet id 0", codec.MalformedPacket, malPkt(0xA2, []byte{0, 0}, props, malStr("a")))
		add("SUBSCRIBE with no filters", codec.ProtocolError, malPkt(0x82, []byte{0, 1}, props))
		add("UNSUBSCRIBE with no filters", codec.ProtocolError, malPkt(0xA2, []byte{0, 1}, props))
		add("SUBSCRIBE filter not UTF-8", codec.MalformedPacket, malPkt(0x82, []byte{0, 1}, props, malStr("\xFF"), []byte{0}))
		add("SUBSCRIBE without options byte", codec.MalformedPacket, malPkt(0x82, []byte{0, 1}, props, malStr("a")))
		add("second CONNECT", codec.ProtocolError, codec.AppendConnect(nil, &codec.ConnectPacket{Version: v, CleanStart: true, ClientID: []byte("again")}))
		add("CONNACK from a client", codec.ProtocolError, codec.AppendConnack(nil, &codec.ConnackPacket{}, v))
		add("SUBACK from a client", codec.ProtocolError, codec.AppendSuback(nil, &codec.SubackPacket{PacketID: 1, Reasons: []codec.ReasonCode{0}}, v))
		add("PINGRESP from a client", codec.ProtocolError, []byte{0xD0, 0})
	}
	// UNSUBACK differs too much between versions for the loop above.
	cs = append(cs,
		malCase{name: "UNSUBACK from a client 5.0", v: malV5, connect: true, send: []byte{0xB0, 4, 0, 1, 0, 0}, want: codec.Disconnect, rc: codec.ProtocolError},
		malCase{name: "UNSUBACK from a client 3.1.1", v: malV3, connect: true, send: []byte{0xB0, 2, 0, 1}},
		malCase{name: "PUBLISH empty topic 3.1.1", v: malV3, connect: true, send: malPkt(0x30, malStr(""), []byte("x"))},
		malCase{name: "SUBSCRIBE QoS 3 3.1.1", v: malV3, connect: true, send: malPkt(0x82, []byte{0, 1}, malStr("a"), []byte{3})},
		malCase{name: "SUBSCRIBE reserved option bits 3.1.1", v: malV3, connect: true, send: malPkt(0x82, []byte{0, 1}, malStr("a"), []byte{0x04})},
		malCase{name: "PUBACK trailing bytes 3.1.1", v: malV3, connect: true, send: []byte{0x40, 3, 0, 1, 0}},
		malCase{name: "DISCONNECT trailing bytes 3.1.1", v: malV3, connect: true, send: []byte{0xE0, 1, 0}},
		malCase{name: "AUTH from a 3.1.1 client", v: malV3, connect: true, send: []byte{0xF0, 0}},
		malCase{name: "AUTH with a reason from a 3.1.1 client", v: malV3, connect: true, send: []byte{0xF0, 2, 0x18, 0}},
	)
	return cs
}

// malV5Cases are v5-only: properties, reason codes, aliases, AUTH.
func malV5Cases() []malCase {
	pub := func(props ...byte) []byte {
		return malPkt(0x30, malStr("a"), codec.AppendVarint(nil, len(props)), props, []byte("x"))
	}
	c := func(name string, rc codec.ReasonCode, send []byte) malCase {
		return malCase{name: name, v: malV5, connect: true, send: send, want: codec.Disconnect, rc: rc}
	}
	return []malCase{
		c("duplicate property", codec.ProtocolError, pub(0x01, 0, 0x01, 0)),
		c("unknown property 0x05", codec.MalformedPacket, pub(0x05, 0)),
		c("unknown property 0x7F", codec.MalformedPacket, pub(0x7F, 0)),
		c("session expiry in PUBLISH", codec.MalformedPacket, pub(0x11, 0, 0, 0, 10)),
		c("receive maximum in PUBLISH", codec.MalformedPacket, pub(0x21, 0, 10)),
		c("property value cut short", codec.MalformedPacket, pub(0x02, 0, 0)),
		c("property length past the packet", codec.MalformedPacket, malPkt(0x30, malStr("a"), []byte{9, 0x01, 0})),
		c("payload format 2", codec.ProtocolError, pub(0x01, 2)),
		c("user property not UTF-8", codec.MalformedPacket, pub(0x26, 0, 1, 0xFF, 0, 1, 'v')),
		c("response topic with wildcard", codec.ProtocolError, pub(append([]byte{0x08}, malStr("r/#")...)...)),
		c("topic alias 0", codec.ProtocolError, pub(0x23, 0, 0)),
		c("topic alias above the maximum", codec.TopicAliasInvalid, pub(0x23, 0xFF, 0xFF)),
		c("unknown topic alias", codec.ProtocolError, malPkt(0x30, malStr(""), []byte{3, 0x23, 0, 7}, []byte("x"))),
		c("empty topic without alias", codec.ProtocolError, malPkt(0x30, malStr(""), malNoProps, []byte("x"))),
		c("subscription identifier from a client", codec.ProtocolError, pub(0x0B, 1)),
		c("SUBSCRIBE QoS 3", codec.ProtocolError, malPkt(0x82, []byte{0, 1}, malNoProps, malStr("a"), []byte{3})),
		c("SUBSCRIBE reserved option bits", codec.MalformedPacket, malPkt(0x82, []byte{0, 1}, malNoProps, malStr("a"), []byte{0x40})),
		c("SUBSCRIBE retain handling 3", codec.ProtocolError, malPkt(0x82, []byte{0, 1}, malNoProps, malStr("a"), []byte{0x30})),
		c("SUBSCRIBE no local on shared", codec.ProtocolError, malPkt(0x82, []byte{0, 1}, malNoProps, malStr("$share/g/a"), []byte{0x04})),
		c("SUBSCRIBE subscription identifier 0", codec.ProtocolError, malPkt(0x82, []byte{0, 1}, []byte{2, 0x0B, 0}, malStr("a"), []byte{0})),
		c("PUBACK reason not allowed", codec.MalformedPacket, []byte{0x40, 3, 0, 1, 0x81}),
		c("PUBREL trailing bytes", codec.MalformedPacket, []byte{0x62, 5, 0, 1, 0, 0, 0xAA}),
		c("DISCONNECT reason not allowed", codec.MalformedPacket, []byte{0xE0, 1, 0x01}),
		c("DISCONNECT session expiry after 0", codec.ProtocolError, []byte{0xE0, 7, 0, 5, 0x11, 0, 0, 0, 10}),
		c("AUTH without a method", codec.ProtocolError, []byte{0xF0, 0}),
		c("AUTH reason not allowed", codec.MalformedPacket, []byte{0xF0, 2, 0x80, 0}),
	}
}

// malConnectCases are bad CONNECTs: v5 gets a CONNACK with the reason, 3.1.1
// a CONNACK only for an unacceptable protocol level [MQTT-3.1.2-2].
func malConnectCases() []malCase {
	id := malStr("bad")
	v5 := func(name string, rc codec.ReasonCode, send []byte) malCase {
		return malCase{name: name, v: malV5, send: send, want: codec.Connack, rc: rc}
	}
	v3 := func(name string, send []byte) malCase {
		return malCase{name: name, v: malV3, send: send}
	}
	v3level := func(name string, send []byte) malCase {
		return malCase{name: name, v: malV3, send: send, want: codec.Connack, rc: codec.V3UnacceptableProtocolVersion}
	}
	return []malCase{
		v5("5.0 reserved connect flag", codec.MalformedPacket, malConnect("MQTT", 5, 0x03, malNoProps, id)),
		v5("5.0 will QoS without will", codec.MalformedPacket, malConnect("MQTT", 5, 0x0A, malNoProps, id)),
		v5("5.0 will retain without will", codec.MalformedPacket, malConnect("MQTT", 5, 0x22, malNoProps, id)),
		v5("5.0 will QoS 3", codec.MalformedPacket, malConnect("MQTT", 5, 0x1E, malNoProps, id, malNoProps, malStr("w"), malStr("x"))),
		v5("5.0 will topic with wildcard", codec.TopicNameInvalid, malConnect("MQTT", 5, 0x06, malNoProps, id, malNoProps, malStr("w/#"), malStr("x"))),
		v5("5.0 user name flag without user name", codec.MalformedPacket, malConnect("MQTT", 5, 0x82, malNoProps, id)),
		v5("5.0 client id not UTF-8", codec.MalformedPacket, malConnect("MQTT", 5, 0x02, malNoProps, malStr("\xFE"))),
		v5("5.0 client id with U+0000", codec.MalformedPacket, malConnect("MQTT", 5, 0x02, malNoProps, malStr("a\x00"))),
		v5("5.0 duplicate property", codec.ProtocolError, malConnect("MQTT", 5, 0x02, []byte{4, 0x17, 1, 0x17, 1}, id)),
		v5("5.0 topic alias in CONNECT", codec.MalformedPacket, malConnect("MQTT", 5, 0x02, []byte{3, 0x23, 0, 1}, id)),
		v5("5.0 unknown property", codec.MalformedPacket, malConnect("MQTT", 5, 0x02, []byte{2, 0x7E, 0}, id)),
		v5("5.0 receive maximum 0", codec.ProtocolError, malConnect("MQTT", 5, 0x02, []byte{3, 0x21, 0, 0}, id)),
		v5("5.0 trailing bytes", codec.MalformedPacket, malConnect("MQTT", 5, 0x02, malNoProps, id, []byte{0})),
		v5("5.0 level with protocol name MQIsdp", codec.UnsupportedProtocolVersion, malConnect("MQIsdp", 5, 0x02, malNoProps, id)),
		v5("5.0 level with protocol name MQTX", codec.UnsupportedProtocolVersion, malConnect("MQTX", 5, 0x02, malNoProps, id)),
		v5("5.0 authentication method unsupported", codec.BadAuthenticationMethod, malConnect("MQTT", 5, 0x02, []byte{4, 0x15, 0, 1, 'x'}, id)),
		v3("3.1.1 reserved connect flag", malConnect("MQTT", 4, 0x03, id)),
		v3("3.1.1 will QoS without will", malConnect("MQTT", 4, 0x0A, id)),
		v3("3.1.1 will retain without will", malConnect("MQTT", 4, 0x22, id)),
		v3("3.1.1 password without user name", malConnect("MQTT", 4, 0x42, id, malStr("pw"))),
		v3("3.1.1 client id not UTF-8", malConnect("MQTT", 4, 0x02, malStr("\xFE"))),
		v3("3.1.1 will topic with wildcard", malConnect("MQTT", 4, 0x06, id, malStr("w/+"), malStr("x"))),
		v3("3.1.1 trailing bytes", malConnect("MQTT", 4, 0x02, id, []byte{0})),
		v3("3.1.1 CONNECT reserved flags in fixed header", append([]byte{0x11}, malConnect("MQTT", 4, 0x02, id)[1:]...)),
		v3level("3.1.1 level 3 with protocol name MQTT", malConnect("MQTT", 3, 0x02, id)),
		v3level("3.1.1 level 4 with protocol name MQIsdp", malConnect("MQIsdp", 4, 0x02, id)),
		v3level("3.1.1 unsupported level 6", malConnect("MQTT", 6, 0x02, id)),
		v3level("3.1.1 protocol name MQTX", malConnect("MQTX", 4, 0x02, id)),
		{name: "3.1.1 empty client id without clean session", v: malV3, send: malConnect("MQTT", 4, 0x00, malStr("")),
			want: codec.Connack, rc: codec.V3IdentifierRejected},
		// The first packet must be CONNECT [MQTT-3.1.0-1]; the version is
		// unknown, so nothing is sent back.
		v3("PINGREQ before CONNECT", []byte{0xC0, 0}),
		v3("PUBLISH before CONNECT", malPkt(0x30, malStr("a"), []byte("x"))),
		v3("SUBSCRIBE before CONNECT", malPkt(0x82, []byte{0, 1}, malStr("a"), []byte{0})),
		v3("reserved type before CONNECT", []byte{0x00, 0x00}),
		v3("DISCONNECT before CONNECT", []byte{0xE0, 0}),
	}
}

// malBystanders are two connected clients that must keep working while the
// cases run: a v5 client and a 3.1.1 client publishing to each other.
type malBystanders struct {
	v5 *v5Client
	v3 *v3Client
	n  int
}

func newMalBystanders(t *testing.T, addr string) *malBystanders {
	t.Helper()
	by := &malBystanders{}
	by.v5, _ = dialV5(t, addr, "bystander-v5", nil)
	by.v5.sub(t, paho.SubscribeOptions{Topic: "alive/v5/#", QoS: 1})
	by.v3 = dialV3(t, addr, "bystander-v3", nil)
	wait(t, by.v3.Subscribe("alive/v3/#", 1, nil))
	return by
}

// check has each bystander publish to the other and both receive.
func (by *malBystanders) check(t *testing.T, after string) {
	t.Helper()
	by.n++
	to3 := fmt.Sprintf("alive/v3/%d", by.n)
	by.v5.pub(t, &paho.Publish{Topic: to3, QoS: 1, Payload: []byte(after)})
	if m := by.v3.next(t, 5*time.Second); m.Topic() != to3 || string(m.Payload()) != after {
		t.Fatalf("after %q: 3.1.1 bystander got %q %q", after, m.Topic(), m.Payload())
	}
	to5 := fmt.Sprintf("alive/v5/%d", by.n)
	wait(t, by.v3.Publish(to5, 1, false, after))
	if m := by.v5.next(t, 5*time.Second); m.Topic != to5 || string(m.Payload) != after {
		t.Fatalf("after %q: v5 bystander got %q %q", after, m.Topic, m.Payload)
	}
}

func runMalCases(t *testing.T, cs []malCase) {
	tb := startBroker(t, nil)
	by := newMalBystanders(t, tb.Addr)
	for i, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, tb.Addr, c.v)
			if c.connect {
				r.connect(fmt.Sprintf("mal-%d", i))
			}
			r.send(c.send)
			closed, last := r.closed(5 * time.Second)
			if !closed {
				t.Fatalf("connection still open after % x (last packet %+v)", c.send, last)
			}
			switch {
			case c.want == 0 && last != nil:
				t.Errorf("got packet type %d, want only the close", last.Type)
			case c.want != 0 && last == nil:
				t.Errorf("closed without a packet, want type %d reason %#x", c.want, byte(c.rc))
			case c.want == codec.Disconnect && (last.Type != c.want || last.Disconnect.Reason != c.rc):
				t.Errorf("got type %d DISCONNECT reason %v, want DISCONNECT %v", last.Type, last.Disconnect.Reason, c.rc)
			case c.want == codec.Connack && (last.Type != c.want || last.Connack.Reason != c.rc):
				t.Errorf("got type %d CONNACK reason %#x, want CONNACK %#x", last.Type, byte(last.Connack.Reason), byte(c.rc))
			}
			by.check(t, c.name)
		})
	}
	waitFor(t, 5*time.Second, "only the bystanders connected", func() bool {
		return tb.B.Stats().ConnectionsOpen.Load() == 2
	})
}

func TestRawMalformedFixedHeader(t *testing.T) { runMalCases(t, malFixedHeaderCases()) }
func TestRawMalformedPackets(t *testing.T)     { runMalCases(t, malPublishCases()) }
func TestRawMalformedV5(t *testing.T)          { runMalCases(t, malV5Cases()) }
func TestRawMalformedConnect(t *testing.T)     { runMalCases(t, malConnectCases()) }

// TestRawPacketTooLarge sends only the fixed header of a packet larger than
// MaxPacketSize: the broker must refuse it at once, not wait for the body.
func TestRawPacketTooLarge(t *testing.T) {
	const max = 4096
	tb := startBroker(t, func(c *broker.Config) { c.MaxPacketSize = max })
	by := newMalBystanders(t, tb.Addr)
	header := codec.AppendVarint([]byte{0x30}, 100_000)
	for _, c := range []malCase{
		{name: "PUBLISH header 5.0", v: malV5, connect: true, send: header, want: codec.Disconnect, rc: codec.PacketTooLarge},
		{name: "PUBLISH header 3.1.1", v: malV3, connect: true, send: header},
		{name: "PUBLISH one byte over 5.0", v: malV5, connect: true, send: codec.AppendVarint([]byte{0x30}, max-1), want: codec.Disconnect, rc: codec.PacketTooLarge},
		// Before CONNECT the version is unknown: just close.
		{name: "CONNECT header", v: malV3, send: codec.AppendVarint([]byte{0x10}, 100_000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, tb.Addr, c.v)
			if c.connect {
				r.connect("big")
			}
			start := time.Now()
			r.send(c.send)
			closed, last := r.closed(3 * time.Second)
			if !closed {
				t.Fatal("connection still open: the broker waits for the body")
			}
			if c.want == 0 && last != nil {
				t.Fatalf("got packet type %d, want only the close", last.Type)
			}
			if c.want != 0 && (last == nil || last.Type != c.want || last.Disconnect.Reason != c.rc) {
				t.Fatalf("got %+v, want DISCONNECT %v", last, c.rc)
			}
			t.Logf("closed %v after the header", time.Since(start))
			by.check(t, c.name)
		})
	}
	// A packet of exactly MaxPacketSize is accepted.
	r := dialRaw(t, tb.Addr, malV5)
	r.connect("exact")
	p := codec.PublishPacket{Topic: []byte("alive/v5/exact")}
	p.Payload = make([]byte, max-codec.PublishSize(&p, codec.V5))
	for codec.PublishSize(&p, codec.V5) > max { // the remaining length grew a byte
		p.Payload = p.Payload[1:]
	}
	r.send(codec.AppendPublish(nil, &p, codec.V5))
	if m := by.v5.next(t, 5*time.Second); len(m.Payload) != len(p.Payload) {
		t.Fatalf("got %d payload bytes, want %d", len(m.Payload), len(p.Payload))
	}
}

// TestRawFirstPacketNotConnect checks that a connection whose first packet is
// not CONNECT is closed at once and gets no CONNACK, even when the loop's last
// CONNECT was a v5 one: an earlier client's version must not leak into the
// answer.
func TestRawFirstPacketNotConnect(t *testing.T) {
	tb := startBroker(t, nil)
	for i := 0; i < 4; i++ { // v5 CONNECTs decoded on both loops
		dialRaw(t, tb.Addr, malV5).connect(fmt.Sprintf("v5-%d", i))
	}
	for _, send := range [][]byte{
		{0xC0, 0},
		malPkt(0x30, malStr("a"), []byte("x")),
		{0x00, 0x00},
		codec.AppendVarint([]byte{0x10}, 1<<21), // CONNECT too large
		{0x30, 0x80, 0x80, 0x20},                // PUBLISH header only: refused without waiting for the body
		{0x82},                                  // first byte only
	} {
		r := dialRaw(t, tb.Addr, malV3)
		r.send(send)
		// Well within the connect timeout (10s): refused, not timed out.
		closed, last := r.closed(2 * time.Second)
		if !closed || last != nil {
			t.Errorf("first packet % x: closed %v, got %+v; want a close and no packet", send, closed, last)
		}
	}
}

// TestRawRandomGarbage opens 200 connections that send random bytes, some
// after a valid CONNECT, then checks that the node still serves its other
// clients and counted protocol errors.
func TestRawRandomGarbage(t *testing.T) {
	tb := startBroker(t, func(c *broker.Config) { c.ConnectTimeout = 2 * time.Second })
	by := newMalBystanders(t, tb.Addr)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	const conns, workers = 200, 8
	var wg sync.WaitGroup
	opened := make(chan net.Conn, conns)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := w; i < conns; i += workers {
				c, err := net.Dial("tcp", tb.Addr)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				opened <- c
				var buf []byte
				switch i % 3 {
				case 1:
					buf = codec.AppendConnect(buf, &codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: fmt.Appendf(nil, "garbage-%d", i)})
				case 2:
					buf = codec.AppendConnect(buf, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: fmt.Appendf(nil, "garbage-%d", i)})
				}
				n := 1 + rng.IntN(2048)
				for j := 0; j < n; j++ {
					buf = append(buf, byte(rng.Uint32()))
				}
				// Write in a few pieces so that packets straddle reads; the
				// broker may close first, so errors are expected.
				for len(buf) > 0 {
					k := min(len(buf), 1+rng.IntN(512))
					if _, err := c.Write(buf[:k]); err != nil {
						break
					}
					buf = buf[k:]
				}
			}
		}(w)
	}
	wg.Wait()
	close(opened)
	by.check(t, "random garbage")
	if n := tb.B.Stats().ProtocolErrors.Load(); n == 0 {
		t.Fatal("no protocol errors counted")
	} else {
		t.Logf("%d protocol errors", n)
	}
	for c := range opened {
		c.Close()
	}
	waitFor(t, 5*time.Second, "garbage connections gone", func() bool {
		return tb.B.Stats().ConnectionsOpen.Load() == 2
	})
	by.check(t, "garbage connections closed")
	// A new client is served as well.
	late, _ := dialV5(t, tb.Addr, "late", nil)
	late.sub(t, paho.SubscribeOptions{Topic: "late", QoS: 1})
	late.pub(t, &paho.Publish{Topic: "late", QoS: 1, Payload: []byte("ok")})
	if m := late.next(t, 5*time.Second); string(m.Payload) != "ok" {
		t.Fatalf("late client got %q", m.Payload)
	}
}
