package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// reconnect closes w's socket, waits until the broker has let go of the
// connection, and connects again with cp.
func reconnect(t *testing.T, tb *testBroker, w *wire, cp codec.ConnectPacket) (*wire, *codec.ConnackPacket) {
	t.Helper()
	before := tb.B.Stats().ClientsConnected.Load()
	w.Close()
	waitFor(t, 5*time.Second, "the broker to see the close", func() bool {
		return tb.B.Stats().ClientsConnected.Load() < before
	})
	return connectWire(t, tb.Addr, w.v, cp)
}

// TestSessionPresent: the session present flag is 0 for a clean start
// [MQTT-3.2.2-2], 1 when a stored session resumes [MQTT-3.2.2-3], and 0 when
// no session was kept (clean start discarded it [MQTT-3.1.2-4], the v5
// session expired at once) [MQTT-3.1.2-6].
func TestSessionPresent(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			id := "present-" + vv.name
			v5 := vv.v == codec.V5
			steps := []struct {
				clean   bool
				expiry  uint32
				present bool
			}{
				{false, 60, false}, // new persistent session
				{false, 60, true},  // resumed
				{true, 60, false},  // clean start discards it; v5 starts a new persistent one,
				{false, 60, v5},    // 3.1.1 a clean session that ended with its connection
				{true, 0, false},   // clean session / expiry 0: ends with the connection
				{false, 60, false}, // so nothing to resume
			}
			var w *wire
			for i, st := range steps {
				cp := connV(vv.v, id, st.clean, st.expiry)
				var ca *codec.ConnackPacket
				if w == nil {
					w, ca = connectWire(t, tb.Addr, vv.v, cp)
				} else {
					w, ca = reconnect(t, tb, w, cp)
				}
				if ca.SessionPresent != st.present {
					t.Fatalf("step %d (clean %v): session present %v, want %v", i, st.clean, ca.SessionPresent, st.present)
				}
			}
		})
	}
	// Taking over a live persistent session resumes it [MQTT-3.1.4-3]:
	// session present 1, for either version taking over either.
	for i, vv := range []codec.Version{codec.V5, codec.V311, codec.V5} {
		cp := connV(vv, "present-live", false, 60)
		_, ca := connectWire(t, tb.Addr, vv, cp)
		if ca.SessionPresent != (i > 0) {
			t.Fatalf("takeover %d (%v): session present %v", i, vv, ca.SessionPresent)
		}
	}
	// v5 expiry 0 with clean start 0: the session ends at disconnect.
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("present-exp0", false, 0))
	if _, ca := reconnect(t, tb, w, conn5("present-exp0", false, 0)); ca.SessionPresent {
		t.Fatal("v5 expiry 0: session present after reconnect")
	}
}

// TestCleanStartDiscardsSubscriptions: a persistent session keeps its
// subscriptions across connections [MQTT-3.1.2-5]; a clean start discards
// them [MQTT-3.1.2-4].
func TestCleanStartDiscardsSubscriptions(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub := dialV3(t, tb.Addr, "clean-pub", nil)
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			id, topic := "clean-"+vv.name, "clean/"+vv.name
			w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, id, false, 300))
			w.sub(topic, 1)
			w, _ = reconnect(t, tb, w, connV(vv.v, id, false, 300))
			wait(t, pub.Publish(topic, 1, false, "kept"))
			if p := w.expectPublish(5 * time.Second); string(p.Payload) != "kept" {
				t.Fatalf("got %q", p.Payload)
			}
			w, _ = reconnect(t, tb, w, connV(vv.v, id, true, 300))
			wait(t, pub.Publish(topic, 1, false, "gone"))
			w.quiet(300 * time.Millisecond)
		})
	}
}

// TestSessionExpiry: a v5 session lives for its Session Expiry Interval after
// the connection closes [MQTT-3.1.2-23]; once it
// expires a reconnect finds no session.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("exp-1s", false, 1))
	w.sub("exp/x", 1)
	w, ca := reconnect(t, tb, w, conn5("exp-1s", false, 1))
	if !ca.SessionPresent {
		t.Fatal("reconnect within the expiry: no session")
	}
	w.Close()
	waitFor(t, 5*time.Second, "the session to expire", func() bool {
		return tb.B.Stats().SessionsExpired.Load() == 1
	})
	w, ca = connectWire(t, tb.Addr, codec.V5, conn5("exp-1s", false, 60))
	if ca.SessionPresent {
		t.Fatal("session present after expiry")
	}
	// Its subscription went with it.
	p, _ := dialV5(t, tb.Addr, "exp-pub", nil)
	if r := p.pub(t, &paho.Publish{Topic: "exp/x", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(codec.NoMatchingSubscribers) {
		t.Fatalf("PUBACK %#x, want 0x10: the expired session's subscription remains", r.ReasonCode)
	}
	w.quiet(100 * time.Millisecond)
}

// TestSessionExpiryOnDisconnect: DISCONNECT may change the Session Expiry
// Interval (section 3.14.2.2.2), to 0 to end the session or to a longer
// time; setting it when CONNECT had 0 is a protocol error [MQTT-3.14.2-2].
func TestSessionExpiryOnDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	discWith := func(w *wire, expiry uint32) {
		d := codec.DisconnectPacket{Props: v5Props(codec.PropSessionExpiry)}
		d.Props.SessionExpiry = expiry
		w.disconnect(d)
		w.mustClose(5 * time.Second)
	}
	// 60 -> 0: the session ends now.
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("disc-end", false, 60))
	discWith(w, 0)
	if _, ca := connectWire(t, tb.Addr, codec.V5, conn5("disc-end", false, 60)); ca.SessionPresent {
		t.Fatal("session survived DISCONNECT with expiry 0")
	}

	// 1 -> 600: outlives a reference session that keeps 1 s and disconnects
	// after it.
	w, _ = connectWire(t, tb.Addr, codec.V5, conn5("disc-longer", false, 1))
	discWith(w, 600)
	ref, _ := connectWire(t, tb.Addr, codec.V5, conn5("disc-ref", false, 1))
	ref.disconnect(codec.DisconnectPacket{})
	ref.mustClose(5 * time.Second)
	waitFor(t, 5*time.Second, "the reference session to expire", func() bool {
		return tb.B.Stats().SessionsExpired.Load() >= 1
	})
	if _, ca := connectWire(t, tb.Addr, codec.V5, conn5("disc-longer", false, 1)); !ca.SessionPresent {
		t.Fatal("session with expiry raised on DISCONNECT has expired")
	}
	if n := tb.B.Stats().SessionsExpired.Load(); n != 1 {
		t.Fatalf("SessionsExpired = %d, want 1", n)
	}

	// 0 -> 10: protocol error, DISCONNECT 0x82.
	w, _ = connectWire(t, tb.Addr, codec.V5, conn5("disc-bad", false, 0))
	d := codec.DisconnectPacket{Props: v5Props(codec.PropSessionExpiry)}
	d.Props.SessionExpiry = 10
	w.disconnect(d)
	w.mustDisconnect(codec.ProtocolError, 5*time.Second)
}

// TestOfflineQueue: a persistent session queues QoS 1 and 2 messages while
// offline [MQTT-3.1.2-5] up to MaxQueuedMessages, the overflow dropped and
// counted; QoS 0 is queued only with QueueQoS0. Queued messages arrive in
// order on reconnect [MQTT-4.6.0-6].
func TestOfflineQueue(t *testing.T) {
	t.Parallel()
	for _, q0 := range []bool{false, true} {
		t.Run(fmt.Sprintf("QueueQoS0=%v", q0), func(t *testing.T) {
			tb := startBroker(t, func(c *broker.Config) { c.MaxQueuedMessages = 5; c.QueueQoS0 = q0 })
			pub, _ := dialV5(t, tb.Addr, "oq-pub", nil)
			for _, vv := range bothVersions {
				id, topic := "oq-"+vv.name, "oq/"+vv.name
				w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, id, false, 300))
				w.sub(topic, 2)
				w.Close()
				waitFor(t, 5*time.Second, "the subscriber to go offline", func() bool {
					return tb.B.Stats().ClientsConnected.Load() == 1
				})
				dropped := tb.B.Stats().DroppedQueueFull.Load() + tb.B.Stats().DroppedQoS0.Load()
				// QoS 0, 1, 2, 0, 1, 2, ...: 11 messages ending with QoS 1; the
				// first 5 eligible ones fit, the rest (the last message among
				// them) are dropped and counted.
				var want []string
				eligible := 0
				for i := 0; i < 11; i++ {
					qos := byte(i % 3)
					payload := fmt.Sprintf("m%d", i)
					pub.pub(t, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
					if qos > 0 || q0 {
						eligible++
						if len(want) < 5 {
							want = append(want, payload)
						}
					}
				}
				wantDropped := uint64(eligible - 5)
				waitFor(t, 5*time.Second, "the overflow to be counted", func() bool {
					d := tb.B.Stats().DroppedQueueFull.Load() + tb.B.Stats().DroppedQoS0.Load()
					return d-dropped == wantDropped
				})
				w, ca := connectWire(t, tb.Addr, vv.v, connV(vv.v, id, false, 300))
				if !ca.SessionPresent {
					t.Fatalf("%s: no session", vv.name)
				}
				got := w.receiveAll(len(want), 5*time.Second)
				for i, p := range want {
					if string(got[i].Payload) != p {
						t.Fatalf("%s: message %d is %q, want %q", vv.name, i, got[i].Payload, p)
					}
				}
				w.quiet(300 * time.Millisecond)
				w.disconnect(codec.DisconnectPacket{})
				w.mustClose(5 * time.Second)
				waitFor(t, 5*time.Second, "the subscriber to go offline", func() bool {
					return tb.B.Stats().ClientsConnected.Load() == 1
				})
			}
		})
	}
}

// TestCleanSessionNoQueue: a clean (non-persistent) session keeps nothing
// after its connection closes [MQTT-3.1.2-6 (3.1.1)], [MQTT-3.1.2-4].
func TestCleanSessionNoQueue(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "cnq-pub", nil)
	for _, vv := range bothVersions {
		id, topic := "cnq-"+vv.name, "cnq/"+vv.name
		w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, id, true, 0))
		w.sub(topic, 1)
		w.Close()
		waitFor(t, 5*time.Second, "the session to end", func() bool { return tb.B.SubscriptionCount() == 0 })
		if r := pub.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(codec.NoMatchingSubscribers) {
			t.Fatalf("%s: PUBACK %#x, want 0x10", vv.name, r.ReasonCode)
		}
		w, ca := connectWire(t, tb.Addr, vv.v, connV(vv.v, id, false, 60))
		if ca.SessionPresent {
			t.Fatalf("%s: session present", vv.name)
		}
		w.quiet(200 * time.Millisecond)
	}
}
