package broker_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/codec"
)

// retainedOn subscribes a fresh client of version v to filter and returns
// the payloads of the retained messages it gets within quiet, checking that
// each carries the RETAIN flag [MQTT-3.3.1-8 (3.1.1)], [MQTT-3.3.1-9].
func retainedOn(t *testing.T, tb *testBroker, v codec.Version, id, filter string, quiet time.Duration) []string {
	t.Helper()
	w, _ := connectWire(t, tb.Addr, v, connV(v, id, true, 0))
	w.sub(filter, 1)
	var out []string
	for {
		pk := w.next(quiet)
		if pk == nil {
			break
		}
		if pk.Type != codec.Publish || !pk.Publish.Retain {
			t.Fatalf("%s: want a retained PUBLISH, got %s", id, pkString(pk))
		}
		if pk.Publish.QoS == 1 {
			w.ack(codec.Puback, pk.Publish.PacketID)
		}
		out = append(out, string(pk.Publish.Payload))
	}
	w.Close()
	return out
}

// TestRetained: a retained message is stored and sent to new subscribers
// with RETAIN set [MQTT-3.3.1-5, MQTT-3.3.1-9]; a newer one replaces it; an
// empty payload deletes it [MQTT-3.3.1-6, MQTT-3.3.1-7 (3.1.1: MQTT-3.3.1-10,
// MQTT-3.3.1-11)]; live deliveries to existing 3.1.1 subscribers have RETAIN
// cleared [MQTT-3.3.1-9 (3.1.1)].
func TestRetained(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, pv := range bothVersions {
		t.Run("from-"+pv.name, func(t *testing.T) {
			topic := "ret/" + pv.name
			live, _ := connectWire(t, tb.Addr, codec.V311, conn3("ret-live-"+pv.name, true))
			live.sub(topic+"/#", 1)
			pub, _ := connectWire(t, tb.Addr, pv.v, connV(pv.v, "ret-pub-"+pv.name, true, 0))
			send := func(sub, payload string) {
				p := pubPacket(topic+sub, payload, 1, 1)
				p.Retain = true
				pub.publish(p)
				pub.expect(codec.Puback, 5*time.Second)
			}
			send("/a", "1")
			send("/b", "b")
			if p := live.receiveAll(2, 5*time.Second); p[0].Retain || p[1].Retain {
				t.Fatal("live delivery to 3.1.1 has RETAIN set")
			}
			for _, sv := range bothVersions {
				got := retainedOn(t, tb, sv.v, "ret-new1-"+pv.name+sv.name, topic+"/a", 200*time.Millisecond)
				if len(got) != 1 || got[0] != "1" {
					t.Fatalf("%s subscriber: %v, want [1]", sv.name, got)
				}
			}
			send("/a", "2")
			if got := retainedOn(t, tb, codec.V5, "ret-new2-"+pv.name, topic+"/+", 200*time.Millisecond); len(got) != 2 || !(got[0] == "2" && got[1] == "b" || got[0] == "b" && got[1] == "2") {
				t.Fatalf("after replace: %v, want [2 b]", got)
			}
			send("/a", "")
			send("/b", "")
			for _, sv := range bothVersions {
				if got := retainedOn(t, tb, sv.v, "ret-new3-"+pv.name+sv.name, topic+"/#", 200*time.Millisecond); len(got) != 0 {
					t.Fatalf("%s after delete: %v, want none", sv.name, got)
				}
			}
			// The deletions themselves reach live subscribers as messages.
			live.receiveAll(3, 5*time.Second)
		})
	}
	if n := tb.B.RetainedCount(); n != 0 {
		t.Fatalf("RetainedCount = %d, want 0", n)
	}
}

// TestRetainHandling: v5 Retain Handling 0 sends retained messages on every
// subscribe [MQTT-3.3.1-9], 1 only when the subscription is new
// [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "rh-pub", nil)
	pub.pub(t, &paho.Publish{Topic: "rh/t", QoS: 1, Retain: true, Payload: []byte("kept")})
	for rh, want := range [][2]int{{1, 1}, {1, 0}, {0, 0}} {
		w, _ := connectWire(t, tb.Addr, codec.V5, conn5("rh-"+string(rune('0'+rh)), true, 0))
		for round := 0; round < 2; round++ {
			w.subscribe(uint16(round+1), nil, codec.Subscription{Filter: []byte("rh/t"), QoS: 1, RetainHandling: byte(rh)})
			n := 0
			for pk := w.next(200 * time.Millisecond); pk != nil; pk = w.next(200 * time.Millisecond) {
				if pk.Type != codec.Publish || !pk.Publish.Retain || string(pk.Publish.Payload) != "kept" {
					t.Fatalf("RH %d: got %s", rh, pkString(pk))
				}
				w.ack(codec.Puback, pk.Publish.PacketID)
				n++
			}
			if n != want[round] {
				t.Fatalf("Retain Handling %d, subscribe #%d: %d retained messages, want %d", rh, round+1, n, want[round])
			}
		}
	}
}

// TestRetainAsPublished: a live delivery keeps the RETAIN flag only for a v5
// subscription with Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13].
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	on, _ := connectWire(t, tb.Addr, codec.V5, conn5("rap-on", true, 0))
	on.subscribe(1, nil, codec.Subscription{Filter: []byte("rap/#"), QoS: 1, RetainAsPublished: true})
	off, _ := connectWire(t, tb.Addr, codec.V5, conn5("rap-off", true, 0))
	off.subscribe(1, nil, codec.Subscription{Filter: []byte("rap/#"), QoS: 1})
	pub, _ := dialV5(t, tb.Addr, "rap-pub", nil)
	pub.pub(t, &paho.Publish{Topic: "rap/x", QoS: 1, Retain: true, Payload: []byte("r")})
	pub.pub(t, &paho.Publish{Topic: "rap/y", QoS: 1, Payload: []byte("n")})
	got := on.receiveAll(2, 5*time.Second)
	if !got[0].Retain || got[1].Retain {
		t.Fatalf("Retain As Published: retain flags %v %v, want true false", got[0].Retain, got[1].Retain)
	}
	got = off.receiveAll(2, 5*time.Second)
	if got[0].Retain || got[1].Retain {
		t.Fatalf("without Retain As Published: retain flags %v %v, want false false", got[0].Retain, got[1].Retain)
	}
}

// TestRetainedExpiry: a retained message is sent with its remaining Message
// Expiry Interval [MQTT-3.3.2-6] and is gone once it expires
// [MQTT-3.3.2-5].
func TestRetainedExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "rexp-pub", nil)
	one := uint32(1)
	pub.pub(t, &paho.Publish{Topic: "rexp/t", QoS: 1, Retain: true, Payload: []byte("soon gone"),
		Properties: &paho.PublishProperties{MessageExpiry: &one}})
	pub.pub(t, &paho.Publish{Topic: "rexp/keep", QoS: 1, Retain: true, Payload: []byte("stays")})

	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("rexp-first", true, 0))
	w.sub("rexp/t", 1)
	p := w.receiveAll(1, 5*time.Second)[0]
	if !p.Retain || !p.Props.Has(codec.PropMessageExpiry) || p.Props.MessageExpiry != 1 {
		t.Fatalf("first subscriber: retain %v expiry %v/%d, want retained with expiry 1", p.Retain, p.Props.Has(codec.PropMessageExpiry), p.Props.MessageExpiry)
	}
	if got := retainedOn(t, tb, codec.V311, "rexp-v3", "rexp/t", 100*time.Millisecond); len(got) > 1 {
		t.Fatalf("3.1.1 subscriber: %v", got)
	}
	n := 0
	waitFor(t, 5*time.Second, "the retained message to expire", func() bool {
		n++
		return len(retainedOn(t, tb, codec.V5, "rexp-poll", "rexp/t", 50*time.Millisecond)) == 0
	})
	if n < 2 {
		t.Fatal("expired at once: the expiry was not 1 s")
	}
	if got := retainedOn(t, tb, codec.V5, "rexp-keep", "rexp/#", 200*time.Millisecond); len(got) != 1 || got[0] != "stays" {
		t.Fatalf("after expiry: %v, want [stays]", got)
	}
}
