package broker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// TestTopicAliasInbound: a v5 client may replace a topic by an alias it set
// earlier (section 3.3.2.3.4) [MQTT-3.3.2-12]; an alias above the broker's
// Topic Alias Maximum is DISCONNECT 0x94 [MQTT-3.3.2-9]
// (section 3.3.2.3.4).
func TestTopicAliasInbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.TopicAliasMaximum = 4 })
	sub, _ := connectWire(t, tb.Addr, codec.V311, conn3("tai-sub", true))
	sub.sub("tai/#", 0)
	w, ca := connectWire(t, tb.Addr, codec.V5, conn5("tai-pub", true, 0))
	if !ca.Props.Has(codec.PropTopicAliasMaximum) || ca.Props.TopicAliasMaximum != 4 {
		t.Fatalf("CONNACK Topic Alias Maximum %d, want 4", ca.Props.TopicAliasMaximum)
	}
	p := pubPacket("tai/one", "1", 0, 0)
	p.Props = v5Props(codec.PropTopicAlias)
	p.Props.TopicAlias = 4
	w.publish(p)
	p.Topic, p.Payload = nil, []byte("2")
	w.publish(p)
	p.Topic, p.Payload = []byte("tai/two"), []byte("3") // remap alias 4
	w.publish(p)
	p.Topic, p.Payload = nil, []byte("4")
	w.publish(p)
	for _, want := range []string{"tai/one 1", "tai/one 2", "tai/two 3", "tai/two 4"} {
		m := sub.expectPublish(5 * time.Second)
		if got := string(m.Topic) + " " + string(m.Payload); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	p.Props.TopicAlias = 5
	p.Topic = []byte("tai/x")
	w.publish(p)
	w.mustDisconnect(codec.TopicAliasInvalid, 5*time.Second)
	sub.quiet(100 * time.Millisecond)
}

// TestTopicAliasOutbound: when the client sets Topic Alias Maximum the
// broker may send an alias instead of a repeated topic [MQTT-3.3.2-10
// (client side: MQTT-3.1.2-26)]; clients that set none get no aliases
// [MQTT-3.1.2-27].
func TestTopicAliasOutbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	cp := conn5("tao-sub", true, 0)
	cp.Props = v5Props(codec.PropTopicAliasMaximum)
	cp.Props.TopicAliasMaximum = 5
	w, _ := connectWire(t, tb.Addr, codec.V5, cp)
	w.sub("tao/#", 0)
	plain, _ := connectWire(t, tb.Addr, codec.V5, conn5("tao-plain", true, 0))
	plain.sub("tao/#", 0)
	pub, _ := dialV5(t, tb.Addr, "tao-pub", nil)
	for i := 0; i < 3; i++ {
		pub.pub(t, &paho.Publish{Topic: "tao/t", Payload: []byte{'0' + byte(i)}})
	}
	first := w.expectPublish(5 * time.Second)
	if string(first.Topic) != "tao/t" || !first.Props.Has(codec.PropTopicAlias) {
		t.Fatalf("first: topic %q alias %v, want the topic and an alias", first.Topic, first.Props.Has(codec.PropTopicAlias))
	}
	alias := first.Props.TopicAlias
	if alias == 0 || alias > 5 {
		t.Fatalf("alias %d outside 1..5", alias)
	}
	for i := 1; i < 3; i++ {
		m := w.expectPublish(5 * time.Second)
		if len(m.Topic) != 0 || m.Props.TopicAlias != alias || m.Payload[0] != '0'+byte(i) {
			t.Fatalf("repeat %d: topic %q alias %d, want empty topic and alias %d", i, m.Topic, m.Props.TopicAlias, alias)
		}
	}
	for i := 0; i < 3; i++ {
		if m := plain.expectPublish(5 * time.Second); string(m.Topic) != "tao/t" || m.Props.Has(codec.PropTopicAlias) {
			t.Fatalf("client without Topic Alias Maximum got topic %q alias %d", m.Topic, m.Props.TopicAlias)
		}
	}
}

// TestReceiveMaximumInbound: a client with more unacknowledged QoS 2
// publishes than the broker's Receive Maximum is disconnected with 0x93
// [MQTT-3.3.4-7], section 3.3.4.
func TestReceiveMaximumInbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.ReceiveMaximum = 2 })
	w, ca := connectWire(t, tb.Addr, codec.V5, conn5("rmi", true, 0))
	if ca.Props.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK Receive Maximum %d, want 2", ca.Props.ReceiveMaximum)
	}
	for id := uint16(1); id <= 2; id++ {
		w.publish(pubPacket("rmi/t", "x", 2, id))
		w.expect(codec.Pubrec, 5*time.Second)
	}
	// Completing one frees a slot.
	w.ack(codec.Pubrel, 1)
	w.expect(codec.Pubcomp, 5*time.Second)
	w.publish(pubPacket("rmi/t", "x", 2, 3))
	w.expect(codec.Pubrec, 5*time.Second)
	w.publish(pubPacket("rmi/t", "x", 2, 4))
	w.mustDisconnect(codec.ReceiveMaximumExceeded, 5*time.Second)
}

// TestReceiveMaximumOutbound: the broker sends no more unacknowledged QoS 1
// and 2 messages than the client's Receive Maximum [MQTT-3.3.4-9].
func TestReceiveMaximumOutbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	cp := conn5("rmo", true, 0)
	cp.Props = v5Props(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = 2
	w, _ := connectWire(t, tb.Addr, codec.V5, cp)
	w.sub("rmo/t", 2)
	pub, _ := dialV5(t, tb.Addr, "rmo-pub", nil)
	for i := 0; i < 5; i++ {
		pub.pub(t, &paho.Publish{Topic: "rmo/t", QoS: byte(1 + i%2), Payload: []byte{'0' + byte(i)}})
	}
	a, b := w.expectPublish(5*time.Second), w.expectPublish(5*time.Second)
	w.quiet(300 * time.Millisecond)
	w.ack(codec.Puback, a.PacketID) // message 0 is QoS 1
	c := w.expectPublish(5 * time.Second)
	if c.Payload[0] != '2' {
		t.Fatalf("third message %q, want 2", c.Payload)
	}
	w.quiet(200 * time.Millisecond)
	// Message 1 is QoS 2: PUBREC alone does not free its slot; PUBCOMP does.
	w.ack(codec.Pubrec, b.PacketID)
	w.expect(codec.Pubrel, 5*time.Second)
	w.quiet(200 * time.Millisecond)
	w.ack(codec.Pubcomp, b.PacketID)
	d := w.expectPublish(5 * time.Second)
	if d.Payload[0] != '3' {
		t.Fatalf("fourth message %q, want 3", d.Payload)
	}
}

// TestMaximumPacketSize: a message larger than the client's Maximum Packet
// Size is not sent to it, as if delivered [MQTT-3.1.2-24, MQTT-3.1.2-25];
// the next one that fits is, also when topic aliases are in use.
func TestMaximumPacketSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	cp := conn5("mps", true, 0)
	cp.Props = v5Props(codec.PropMaximumPacketSize, codec.PropTopicAliasMaximum)
	cp.Props.MaximumPacketSize = 100
	cp.Props.TopicAliasMaximum = 10
	w, _ := connectWire(t, tb.Addr, codec.V5, cp)
	w.sub("mps/#", 1)
	pub, _ := dialV5(t, tb.Addr, "mps-pub", nil)
	big := []byte(strings.Repeat("x", 200))
	pub.pub(t, &paho.Publish{Topic: "mps/a", QoS: 1, Payload: big})
	pub.pub(t, &paho.Publish{Topic: "mps/a", QoS: 1, Payload: []byte("small")})
	pub.pub(t, &paho.Publish{Topic: "mps/b", QoS: 0, Payload: big})
	pub.pub(t, &paho.Publish{Topic: "mps/b", QoS: 0, Payload: []byte("small b")})
	got := w.receiveAll(2, 5*time.Second)
	// The first message that reaches the client on a topic carries the
	// topic: an alias set up on a dropped packet would be unknown to it.
	if string(got[0].Topic) != "mps/a" || string(got[0].Payload) != "small" {
		t.Fatalf("got topic %q payload %q, want mps/a small", got[0].Topic, got[0].Payload)
	}
	if string(got[1].Topic) != "mps/b" || string(got[1].Payload) != "small b" {
		t.Fatalf("got topic %q payload %q, want mps/b small b", got[1].Topic, got[1].Payload)
	}
	w.quiet(200 * time.Millisecond)
	if n := tb.B.Stats().DroppedTooLarge.Load(); n != 2 {
		t.Fatalf("DroppedTooLarge = %d, want 2", n)
	}
}

// TestMessageExpiry: the Message Expiry Interval is forwarded with the time
// left [MQTT-3.3.2-6], and a queued message that expires is not sent
// [MQTT-3.3.2-5].
func TestMessageExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "mexp-pub", nil)
	live, _ := connectWire(t, tb.Addr, codec.V5, conn5("mexp-live", true, 0))
	live.sub("mexp/#", 1)
	queued, _ := connectWire(t, tb.Addr, codec.V5, conn5("mexp-q", false, 60))
	queued.sub("mexp/#", 1)
	queued.Close()
	waitFor(t, 5*time.Second, "the queued subscriber to go offline", func() bool {
		return tb.B.Stats().ClientsConnected.Load() == 2
	})
	five, one := uint32(5), uint32(1)
	pub.pub(t, &paho.Publish{Topic: "mexp/five", QoS: 1, Payload: []byte("5"), Properties: &paho.PublishProperties{MessageExpiry: &five}})
	pub.pub(t, &paho.Publish{Topic: "mexp/one", QoS: 1, Payload: []byte("1"), Properties: &paho.PublishProperties{MessageExpiry: &one}})
	pub.pub(t, &paho.Publish{Topic: "mexp/none", QoS: 1, Payload: []byte("-")})
	got := live.receiveAll(3, 5*time.Second)
	if got[0].Props.MessageExpiry != 5 || got[1].Props.MessageExpiry != 1 || got[2].Props.Has(codec.PropMessageExpiry) {
		t.Fatalf("live expiries %d %d %v, want 5 1 absent", got[0].Props.MessageExpiry, got[1].Props.MessageExpiry, got[2].Props.Has(codec.PropMessageExpiry))
	}
	// Time must pass while the messages are queued: that is the point.
	time.Sleep(1200 * time.Millisecond)
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("mexp-q", false, 60))
	got = w.receiveAll(2, 5*time.Second)
	if string(got[0].Topic) != "mexp/five" || got[0].Props.MessageExpiry > 4 || got[0].Props.MessageExpiry < 3 {
		t.Fatalf("queued: %q with expiry %d, want mexp/five with 3 or 4 left", got[0].Topic, got[0].Props.MessageExpiry)
	}
	if string(got[1].Topic) != "mexp/none" {
		t.Fatalf("queued: got %q, want mexp/none (mexp/one expired)", got[1].Topic)
	}
	w.quiet(200 * time.Millisecond)
	if n := tb.B.Stats().DroppedExpired.Load(); n != 1 {
		t.Fatalf("DroppedExpired = %d, want 1", n)
	}
}

// TestSubscriptionIdentifiers: a subscription's identifier comes back on
// the messages it matches [MQTT-3.3.4-3]; re-subscribing replaces it
// [MQTT-3.8.4-3]; subscriptions without one add none; 3.1.1 clients never
// see them.
func TestSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("sid", true, 0))
	sid := func(id uint32) *codec.Properties {
		p := v5Props()
		p.SubscriptionIDs = []uint32{id}
		return &p
	}
	w.subscribe(1, sid(7), codec.Subscription{Filter: []byte("sid/#"), QoS: 1})
	w.subscribe(2, nil, codec.Subscription{Filter: []byte("plain/#"), QoS: 1})
	w3, _ := connectWire(t, tb.Addr, codec.V311, conn3("sid-3", true))
	w3.sub("sid/#", 1)
	pub, _ := dialV5(t, tb.Addr, "sid-pub", nil)
	pub.pub(t, &paho.Publish{Topic: "sid/a", QoS: 1, Payload: []byte("a")})
	if m := w.receiveAll(1, 5*time.Second)[0]; !slices.Equal(m.Props.SubscriptionIDs, []uint32{7}) {
		t.Fatalf("ids %v, want [7]", m.Props.SubscriptionIDs)
	}
	if m := w3.receiveAll(1, 5*time.Second)[0]; string(m.Payload) != "a" {
		t.Fatalf("3.1.1 got %q", m.Payload)
	}
	w.subscribe(3, sid(268435455), codec.Subscription{Filter: []byte("sid/#"), QoS: 1})
	pub.pub(t, &paho.Publish{Topic: "sid/b", QoS: 1, Payload: []byte("b")})
	if m := w.receiveAll(1, 5*time.Second)[0]; !slices.Equal(m.Props.SubscriptionIDs, []uint32{268435455}) {
		t.Fatalf("after re-subscribe: ids %v, want [268435455]", m.Props.SubscriptionIDs)
	}
	pub.pub(t, &paho.Publish{Topic: "plain/c", QoS: 1, Payload: []byte("c")})
	if m := w.receiveAll(1, 5*time.Second)[0]; len(m.Props.SubscriptionIDs) != 0 {
		t.Fatalf("subscription without identifier: ids %v", m.Props.SubscriptionIDs)
	}
	// A client may not send a Subscription Identifier in PUBLISH [MQTT-3.3.4-6].
	p := pubPacket("sid/x", "x", 0, 0)
	p.Props.SubscriptionIDs = []uint32{1}
	w.publish(p)
	w.mustDisconnect(codec.ProtocolError, 5*time.Second)
}

// TestNoLocal: with No Local a client's own messages are not sent back to it
// [MQTT-3.8.3-3]; other clients' messages are, and without No Local so are
// its own.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	nl, _ := connectWire(t, tb.Addr, codec.V5, conn5("nl", true, 0))
	nl.subscribe(1, nil, codec.Subscription{Filter: []byte("nl/#"), QoS: 1, NoLocal: true})
	echo, _ := connectWire(t, tb.Addr, codec.V5, conn5("nl-echo", true, 0))
	echo.sub("nl/#", 1)

	nl.publish(pubPacket("nl/own", "own", 1, 1))
	if a := nl.expect(codec.Puback, 5*time.Second); a.Ack.Reason != codec.Success {
		t.Fatalf("PUBACK %s: the echo subscriber matched", pkString(a))
	}
	if m := echo.receiveAll(1, 5*time.Second)[0]; string(m.Payload) != "own" {
		t.Fatalf("echo got %q", m.Payload)
	}
	echo.publish(pubPacket("nl/other", "other", 1, 1))
	// echo has no No Local: its own message comes back, with its PUBACK.
	got := echo.receiveAllSkipping(1, codec.Puback)
	if string(got[0].Payload) != "other" {
		t.Fatalf("echo got %q", got[0].Payload)
	}
	if m := nl.receiveAll(1, 5*time.Second)[0]; string(m.Payload) != "other" {
		t.Fatalf("nl got %q, want the other client's message", m.Payload)
	}
	nl.quiet(200 * time.Millisecond)

	// Only No Local matching subscribers: PUBACK says nobody matched.
	solo, _ := connectWire(t, tb.Addr, codec.V5, conn5("nl-solo", true, 0))
	solo.subscribe(1, nil, codec.Subscription{Filter: []byte("solo/t"), QoS: 1, NoLocal: true})
	solo.publish(pubPacket("solo/t", "x", 1, 2))
	if a := solo.expect(codec.Puback, 5*time.Second); a.Ack.Reason != codec.NoMatchingSubscribers {
		t.Fatalf("PUBACK %s, want 0x10", pkString(a))
	}
}

// receiveAllSkipping is receiveAll that also tolerates packets of type skip
// (acknowledgements of the client's own publishes) in between.
func (w *wire) receiveAllSkipping(n int, skip codec.PacketType) []*codec.PublishPacket {
	w.t.Helper()
	var got []*codec.PublishPacket
	for len(got) < n {
		pk := w.next(5 * time.Second)
		switch {
		case pk == nil:
			w.t.Fatalf("wire: got %d of %d messages", len(got), n)
		case pk.Type == skip:
		case pk.Type == codec.Publish:
			if pk.Publish.QoS == 1 {
				w.ack(codec.Puback, pk.Publish.PacketID)
			}
			got = append(got, &pk.Publish)
		default:
			w.t.Fatalf("wire: unexpected %s", pkString(pk))
		}
	}
	return got
}

// TestPropertiesPassthrough: Payload Format Indicator [MQTT-3.3.2-4],
// Content Type, Response Topic [MQTT-3.3.2-15], Correlation Data
// [MQTT-3.3.2-16] and User Properties in their order [MQTT-3.3.2-17,
// MQTT-3.3.2-18] reach v5 subscribers unchanged; 3.1.1 subscribers get the
// payload.
func TestPropertiesPassthrough(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	sub, _ := dialV5(t, tb.Addr, "pp-sub", nil)
	sub.sub(t, paho.SubscribeOptions{Topic: "pp/#", QoS: 1})
	sub3 := dialV3(t, tb.Addr, "pp-sub3", nil)
	wait(t, sub3.Subscribe("pp/#", 1, nil))
	pub, _ := dialV5(t, tb.Addr, "pp-pub", nil)
	one := byte(1)
	user := paho.UserProperties{{Key: "k", Value: "1"}, {Key: "a", Value: "z"}, {Key: "k", Value: "2"}}
	pub.pub(t, &paho.Publish{Topic: "pp/x", QoS: 1, Payload: []byte("héllo"), Properties: &paho.PublishProperties{
		PayloadFormat: &one, ContentType: "text/plain; charset=utf-8",
		ResponseTopic: "pp/reply/42", CorrelationData: []byte{0, 1, 2, 0xff},
		User: user,
	}})
	m := sub.next(t, 5*time.Second)
	pr := m.Properties
	switch {
	case pr == nil:
		t.Fatal("no properties")
	case pr.PayloadFormat == nil || *pr.PayloadFormat != 1:
		t.Fatalf("payload format %v", pr.PayloadFormat)
	case pr.ContentType != "text/plain; charset=utf-8":
		t.Fatalf("content type %q", pr.ContentType)
	case pr.ResponseTopic != "pp/reply/42":
		t.Fatalf("response topic %q", pr.ResponseTopic)
	case string(pr.CorrelationData) != "\x00\x01\x02\xff":
		t.Fatalf("correlation data %x", pr.CorrelationData)
	case fmt.Sprint(pr.User) != fmt.Sprint(user):
		t.Fatalf("user properties %v, want %v in that order", pr.User, user)
	}
	if m3 := sub3.next(t, 5*time.Second); string(m3.Payload()) != "héllo" {
		t.Fatalf("3.1.1 got %q", m3.Payload())
	}
}
