package broker_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/codec"
)

// TestQoSFlowsWire drives every acknowledgement flow by hand, for each pair
// of publisher and subscriber versions: QoS 1 PUBLISH/PUBACK [MQTT-4.3.2-2],
// QoS 2 PUBLISH/PUBREC/PUBREL/PUBCOMP in both directions [MQTT-4.3.3-8,
// MQTT-4.3.3-11] with the packet ids of the flow [MQTT-2.2.1-5], and the
// broker's PUBREL flags [MQTT-3.6.1-1].
func TestQoSFlowsWire(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, pv := range bothVersions {
		for _, sv := range bothVersions {
			for qos := byte(0); qos <= 2; qos++ {
				name := fmt.Sprintf("%s-to-%s-qos%d", pv.name, sv.name, qos)
				t.Run(name, func(t *testing.T) {
					topic := "flow/" + name
					sub, _ := connectWire(t, tb.Addr, sv.v, connV(sv.v, "s-"+name, true, 0))
					sub.sub(topic, 2)
					pub, _ := connectWire(t, tb.Addr, pv.v, connV(pv.v, "p-"+name, true, 0))
					id := uint16(0)
					if qos > 0 {
						id = 300 + uint16(qos)
					}
					pub.publish(pubPacket(topic, "payload", qos, id))
					switch qos {
					case 1:
						if a := pub.expect(codec.Puback, 5*time.Second); a.Ack.PacketID != id || a.Ack.Reason != codec.Success {
							t.Fatalf("publisher: %s", pkString(a))
						}
					case 2:
						if a := pub.expect(codec.Pubrec, 5*time.Second); a.Ack.PacketID != id || a.Ack.Reason != codec.Success {
							t.Fatalf("publisher: %s", pkString(a))
						}
						pub.ack(codec.Pubrel, id)
						if a := pub.expect(codec.Pubcomp, 5*time.Second); a.Ack.PacketID != id {
							t.Fatalf("publisher: %s", pkString(a))
						}
					}
					p := sub.expectPublish(5 * time.Second)
					if string(p.Topic) != topic || string(p.Payload) != "payload" || p.QoS != qos || p.Dup || p.Retain {
						t.Fatalf("subscriber: %s", pkString(&codec.Packet{Type: codec.Publish, Publish: *p}))
					}
					if (qos == 0) != (p.PacketID == 0) {
						t.Fatalf("packet id %d for QoS %d", p.PacketID, qos)
					}
					switch qos {
					case 1:
						sub.ack(codec.Puback, p.PacketID)
					case 2:
						sub.ack(codec.Pubrec, p.PacketID)
						if r := sub.expect(codec.Pubrel, 5*time.Second); r.Ack.PacketID != p.PacketID || r.Flags != 0x02 {
							t.Fatalf("subscriber: %s flags %#x", pkString(r), r.Flags)
						}
						sub.ack(codec.Pubcomp, p.PacketID)
					}
					// The flow is finished: nothing is resent, and the next
					// message goes out normally.
					sub.quiet(100 * time.Millisecond)
					pub.publish(pubPacket(topic, "next", 0, 0))
					if p := sub.expectPublish(5 * time.Second); string(p.Payload) != "next" {
						t.Fatalf("got %q", p.Payload)
					}
				})
			}
		}
	}
}

// TestQoSPahoClients: real v5 and 3.1.1 clients exchange messages at every
// QoS in both directions on one broker [MQTT-4.3.1-1, MQTT-4.3.2-1,
// MQTT-4.3.3-1].
func TestQoSPahoClients(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	c5, _ := dialV5(t, tb.Addr, "paho-5", nil)
	c3 := dialV3(t, tb.Addr, "paho-3", nil)
	c5.sub(t, paho.SubscribeOptions{Topic: "to5/#", QoS: 2})
	wait(t, c3.Subscribe("to3/#", 2, nil))
	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf("q%d", qos)
		wait(t, c3.Publish("to5/x", qos, false, payload))
		m := c5.next(t, 5*time.Second)
		if m.Topic != "to5/x" || string(m.Payload) != payload || m.QoS != qos {
			t.Fatalf("v5 got %q %q QoS %d, want %q QoS %d", m.Topic, m.Payload, m.QoS, payload, qos)
		}
		c5.pub(t, &paho.Publish{Topic: "to3/y", QoS: qos, Payload: []byte(payload)})
		m3 := c3.next(t, 5*time.Second)
		if m3.Topic() != "to3/y" || string(m3.Payload()) != payload || m3.Qos() != qos {
			t.Fatalf("3.1.1 got %q %q QoS %d, want %q QoS %d", m3.Topic(), m3.Payload(), m3.Qos(), payload, qos)
		}
	}
}

// TestQoSDowngrade: a message is delivered at the lower of its QoS and the
// subscription's granted QoS [MQTT-3.8.4-6 (3.1.1: MQTT-3.8.4-6)].
func TestQoSDowngrade(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := connectWire(t, tb.Addr, codec.V5, conn5("dg-pub", true, 0))
	for _, vv := range bothVersions {
		for _, granted := range []byte{0, 1} {
			topic := fmt.Sprintf("dg/%s/%d", vv.name, granted)
			w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "dg-"+topic, true, 0))
			w.sub(topic, granted)
			for qos := byte(0); qos <= 2; qos++ {
				pub.publish(pubPacket(topic, "x", qos, uint16(qos)))
				if qos == 1 {
					pub.expect(codec.Puback, 5*time.Second)
				}
				if qos == 2 {
					pub.expect(codec.Pubrec, 5*time.Second)
					pub.ack(codec.Pubrel, 2)
					pub.expect(codec.Pubcomp, 5*time.Second)
				}
				got := w.receiveAll(1, 5*time.Second)[0]
				if want := min(qos, granted); got.QoS != want {
					t.Fatalf("%s: published QoS %d, granted %d: received QoS %d, want %d", vv.name, qos, granted, got.QoS, want)
				}
			}
		}
	}
}

// TestOverlappingSubscriptions: a client whose subscriptions overlap gets
// one copy at the highest granted QoS [MQTT-3.3.4-2 (3.1.1: MQTT-3.3.5-1)];
// a v5 copy carries every matching Subscription Identifier [MQTT-3.3.4-3,
// MQTT-3.3.4-5].
func TestOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "ov-pub", nil)

	w3, _ := connectWire(t, tb.Addr, codec.V311, conn3("ov-3", true))
	rc := w3.subscribe(1, nil, codec.Subscription{Filter: []byte("ov/+"), QoS: 0}, codec.Subscription{Filter: []byte("ov/#"), QoS: 2})
	if !slices.Equal(rc, []codec.ReasonCode{0, 2}) {
		t.Fatalf("SUBACK %v", rc)
	}

	w5, _ := connectWire(t, tb.Addr, codec.V5, conn5("ov-5", true, 0))
	for i, f := range []string{"ov/+", "ov/#", "ov/a"} {
		props := v5Props()
		props.SubscriptionIDs = []uint32{uint32(i + 1)}
		w5.subscribe(uint16(i+1), &props, codec.Subscription{Filter: []byte(f), QoS: byte(i % 2)})
	}

	pub.pub(t, &paho.Publish{Topic: "ov/a", QoS: 2, Payload: []byte("one")})
	p3 := w3.receiveAll(1, 5*time.Second)[0]
	if p3.QoS != 2 || string(p3.Payload) != "one" {
		t.Fatalf("3.1.1: QoS %d %q, want one copy at QoS 2", p3.QoS, p3.Payload)
	}
	p5 := w5.receiveAll(1, 5*time.Second)[0]
	ids := slices.Clone(p5.Props.SubscriptionIDs)
	slices.Sort(ids)
	if p5.QoS != 1 || !slices.Equal(ids, []uint32{1, 2, 3}) {
		t.Fatalf("v5: QoS %d ids %v, want QoS 1 ids [1 2 3]", p5.QoS, p5.Props.SubscriptionIDs)
	}
	w3.quiet(300 * time.Millisecond)
	w5.quiet(10 * time.Millisecond)

	// Only the matching ones: ov/b matches ov/+ and ov/#.
	pub.pub(t, &paho.Publish{Topic: "ov/b", QoS: 1, Payload: []byte("two")})
	p5 = w5.receiveAll(1, 5*time.Second)[0]
	ids = slices.Clone(p5.Props.SubscriptionIDs)
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{1, 2}) {
		t.Fatalf("v5: ids %v, want [1 2]", ids)
	}
}

// TestRedeliveryOnResume: unacknowledged QoS 1 messages are resent with DUP
// set and the same packet id when the session resumes, and a QoS 2 message
// already PUBREC'd gets its PUBREL resent [MQTT-4.4.0-1, MQTT-3.3.1-1].
func TestRedeliveryOnResume(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "rd-pub", nil)
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			id := "rd-" + vv.name
			cp := connV(vv.v, id, false, 300)
			w, _ := connectWire(t, tb.Addr, vv.v, cp)
			w.sub("rd/"+vv.name+"/#", 2)

			// QoS 1: received, not acknowledged.
			pub.pub(t, &paho.Publish{Topic: "rd/" + vv.name + "/1", QoS: 1, Payload: []byte("q1")})
			first := w.expectPublish(5 * time.Second)
			if first.Dup || first.QoS != 1 {
				t.Fatalf("first delivery: %s", pkString(&codec.Packet{Type: codec.Publish, Publish: *first}))
			}
			w, ca := reconnect(t, tb, w, cp)
			if !ca.SessionPresent {
				t.Fatal("no session")
			}
			again := w.expectPublish(5 * time.Second)
			if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "q1" || again.QoS != 1 {
				t.Fatalf("resent: %s, want DUP id %d", pkString(&codec.Packet{Type: codec.Publish, Publish: *again}), first.PacketID)
			}
			w.ack(codec.Puback, again.PacketID)

			// QoS 2: PUBREC sent, PUBREL not answered.
			pub.pub(t, &paho.Publish{Topic: "rd/" + vv.name + "/2", QoS: 2, Payload: []byte("q2")})
			p2 := w.expectPublish(5 * time.Second)
			w.ack(codec.Pubrec, p2.PacketID)
			w.expect(codec.Pubrel, 5*time.Second)
			w, _ = reconnect(t, tb, w, cp)
			rel := w.expect(codec.Pubrel, 5*time.Second)
			if rel.Ack.PacketID != p2.PacketID {
				t.Fatalf("PUBREL for %d, want %d", rel.Ack.PacketID, p2.PacketID)
			}
			w.ack(codec.Pubcomp, p2.PacketID)

			// Everything acknowledged: a further resume resends nothing.
			w, _ = reconnect(t, tb, w, cp)
			w.quiet(300 * time.Millisecond)
		})
	}
}

// TestInboundQoS2Duplicate: a PUBLISH resent with DUP while the broker
// awaits PUBREL is acknowledged again but not delivered twice
// [MQTT-4.3.3-9 (3.1.1: MQTT-4.3.3-2)].
func TestInboundQoS2Duplicate(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, vv := range bothVersions {
		sub, _ := dialV5(t, tb.Addr, "dup2-sub-"+vv.name, nil)
		sub.sub(t, paho.SubscribeOptions{Topic: "dup2/" + vv.name, QoS: 2})
		w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "dup2-"+vv.name, true, 0))
		p := pubPacket("dup2/"+vv.name, "once", 2, 9)
		w.publish(p)
		w.expect(codec.Pubrec, 5*time.Second)
		p.Dup = true
		w.publish(p)
		if a := w.expect(codec.Pubrec, 5*time.Second); a.Ack.PacketID != 9 {
			t.Fatalf("%s: %s", vv.name, pkString(a))
		}
		w.ack(codec.Pubrel, 9)
		w.expect(codec.Pubcomp, 5*time.Second)
		if m := sub.next(t, 5*time.Second); string(m.Payload) != "once" {
			t.Fatalf("got %q", m.Payload)
		}
		sub.none(t, 300*time.Millisecond)
	}
}

// TestInboundQoS2AcrossReconnect: the broker keeps the packet ids of
// inbound QoS 2 messages awaiting PUBREL in a persistent session, so a
// publisher resuming it completes the flow without a second delivery
// [MQTT-4.3.3-9, MQTT-4.4.0-1].
func TestInboundQoS2AcrossReconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	sub, _ := dialV5(t, tb.Addr, "q2r-sub", nil)
	sub.sub(t, paho.SubscribeOptions{Topic: "q2r/#", QoS: 2})
	for _, vv := range bothVersions {
		cp := connV(vv.v, "q2r-"+vv.name, false, 300)
		w, _ := connectWire(t, tb.Addr, vv.v, cp)
		p := pubPacket("q2r/"+vv.name, "once", 2, 77)
		w.publish(p)
		w.expect(codec.Pubrec, 5*time.Second)
		w, _ = reconnect(t, tb, w, cp)
		p.Dup = true
		w.publish(p)
		w.expect(codec.Pubrec, 5*time.Second)
		w.ack(codec.Pubrel, 77)
		if a := w.expect(codec.Pubcomp, 5*time.Second); a.Ack.Reason != codec.Success {
			t.Fatalf("%s: %s", vv.name, pkString(a))
		}
		if m := sub.next(t, 5*time.Second); string(m.Payload) != "once" {
			t.Fatalf("got %q", m.Payload)
		}
		sub.none(t, 300*time.Millisecond)
	}
}

// TestMQTT31Client: a 3.1 client (protocol name MQIsdp, level 3) connects,
// subscribes and exchanges QoS 0, 1 and 2 messages with a v5 client; 3.1
// CONNACK has no session present flag (3.1 section 3.2).
func TestMQTT31Client(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	cp := conn3("mqtt31", false)
	cp.Version = codec.V31
	w, ca := connectWire(t, tb.Addr, codec.V31, cp)
	if ca.SessionPresent {
		t.Fatal("3.1 CONNACK with session present")
	}
	w, ca = reconnect(t, tb, w, cp)
	if ca.SessionPresent {
		t.Fatal("3.1 CONNACK with session present on resume")
	}
	w.sub("v31/in", 2)
	c5, _ := dialV5(t, tb.Addr, "mqtt31-peer", nil)
	c5.sub(t, paho.SubscribeOptions{Topic: "v31/out", QoS: 2})
	for qos := byte(0); qos <= 2; qos++ {
		c5.pub(t, &paho.Publish{Topic: "v31/in", QoS: qos, Payload: []byte{'0' + qos}})
		if m := w.receiveAll(1, 5*time.Second)[0]; m.QoS != qos || m.Payload[0] != '0'+qos {
			t.Fatalf("3.1 got QoS %d %q", m.QoS, m.Payload)
		}
		w.publish(pubPacket("v31/out", string(rune('a'+qos)), qos, uint16(qos)))
		switch qos {
		case 1:
			w.expect(codec.Puback, 5*time.Second)
		case 2:
			w.expect(codec.Pubrec, 5*time.Second)
			w.ack(codec.Pubrel, 2)
			w.expect(codec.Pubcomp, 5*time.Second)
		}
		if m := c5.next(t, 5*time.Second); m.QoS != qos || m.Payload[0] != 'a'+qos {
			t.Fatalf("v5 got QoS %d %q", m.QoS, m.Payload)
		}
	}
}
