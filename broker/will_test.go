package broker_test

import (
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// withWill adds a will on topic to cp (QoS 1); delay is the v5 Will Delay
// Interval in seconds.
func withWill(cp codec.ConnectPacket, topic, payload string, delay uint32) codec.ConnectPacket {
	cp.WillFlag, cp.WillQoS = true, 1
	cp.WillTopic, cp.WillPayload = []byte(topic), []byte(payload)
	if delay > 0 {
		cp.WillProps.WillDelay = delay
		cp.WillProps.Set(codec.PropWillDelay)
	}
	return cp
}

// willWatcher is a raw v5 client subscribed to will/#: it decodes strictly,
// so a will carrying a property a PUBLISH may not have fails the test.
func willWatcher(t *testing.T, tb *testBroker, id string) *willWatch {
	t.Helper()
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5(id, true, 0))
	w.sub("will/#", 1)
	return &willWatch{w}
}

type willWatch struct{ w *wire }

// next returns the next will received.
func (ww *willWatch) next(t *testing.T, timeout time.Duration) *codec.PublishPacket {
	t.Helper()
	return ww.w.receiveAll(1, timeout)[0]
}

// none fails if a will arrives within d.
func (ww *willWatch) none(t *testing.T, d time.Duration) {
	t.Helper()
	ww.w.quiet(d)
}

// TestWillOnAbnormalClose: the will is published when the network
// connection closes without DISCONNECT [MQTT-3.1.2-8], once
// [MQTT-3.1.2-10], and not after a normal DISCONNECT [MQTT-3.1.2-10
// (3.1.1)], [MQTT-3.14.4-3].
func TestWillOnAbnormalClose(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	watch := willWatcher(t, tb, "will-watch")
	for _, vv := range bothVersions {
		w, _ := connectWire(t, tb.Addr, vv.v, withWill(connV(vv.v, "will-abn-"+vv.name, true, 0), "will/"+vv.name, "gone "+vv.name, 0))
		w.Close()
		m := watch.next(t, 5*time.Second)
		if string(m.Topic) != "will/"+vv.name || string(m.Payload) != "gone "+vv.name || m.QoS != 1 {
			t.Fatalf("%s: will %q %q QoS %d", vv.name, m.Topic, m.Payload, m.QoS)
		}

		w, _ = connectWire(t, tb.Addr, vv.v, withWill(connV(vv.v, "will-norm-"+vv.name, true, 0), "will/norm", "must not", 0))
		w.disconnect(codec.DisconnectPacket{})
		w.mustClose(5 * time.Second)
	}
	watch.none(t, 300*time.Millisecond)
	if n := tb.B.Stats().WillsPublished.Load(); n != 2 {
		t.Fatalf("WillsPublished = %d, want 2", n)
	}
}

// TestWillOnKeepAliveTimeout: a client that stops talking has its will
// published when the broker drops it [MQTT-3.1.2-8], [MQTT-3.1.2-22].
func TestWillOnKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	watch := willWatcher(t, tb, "will-ka-watch")
	for _, vv := range bothVersions {
		cp := withWill(kaConnect(vv.v, "will-ka-"+vv.name, 1), "will/ka/"+vv.name, "timed out", 0)
		connectWire(t, tb.Addr, vv.v, cp)
	}
	got := map[string]bool{}
	for range bothVersions {
		m := watch.next(t, 5*time.Second)
		got[string(m.Topic)] = true
	}
	if !got["will/ka/v5"] || !got["will/ka/v311"] {
		t.Fatalf("wills %v", got)
	}
	if n := tb.B.Stats().KeepaliveTimeouts.Load(); n != 2 {
		t.Fatalf("KeepaliveTimeouts = %d, want 2", n)
	}
}

// TestWillDisconnectWithWill: v5 DISCONNECT 0x04 closes normally but
// publishes the will (section 3.14.2.1); 0x00 discards it [MQTT-3.1.2-10].
func TestWillDisconnectWithWill(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	watch := willWatcher(t, tb, "will-04-watch")
	w, _ := connectWire(t, tb.Addr, codec.V5, withWill(conn5("will-04", true, 0), "will/04", "asked for", 0))
	w.disconnect(codec.DisconnectPacket{Reason: codec.DisconnectWithWill})
	w.mustClose(5 * time.Second)
	if m := watch.next(t, 5*time.Second); string(m.Topic) != "will/04" || string(m.Payload) != "asked for" {
		t.Fatalf("will %q %q", m.Topic, m.Payload)
	}
	// A protocol error in the DISCONNECT (session expiry set after CONNECT
	// had 0 [MQTT-3.14.2-2]) is not a normal disconnection: the will goes out.
	w, _ = connectWire(t, tb.Addr, codec.V5, withWill(conn5("will-perr", true, 0), "will/perr", "protocol error", 0))
	d := codec.DisconnectPacket{Props: v5Props(codec.PropSessionExpiry)}
	d.Props.SessionExpiry = 30
	w.disconnect(d)
	w.mustDisconnect(codec.ProtocolError, 5*time.Second)
	if m := watch.next(t, 5*time.Second); string(m.Topic) != "will/perr" {
		t.Fatalf("will %q", m.Topic)
	}
	watch.none(t, 300*time.Millisecond)
}

// TestWillDelay: with a Will Delay Interval the will waits; a reconnect
// before it passes cancels it, otherwise it is published when it passes
// [MQTT-3.1.3-9]; a session that ends first publishes it then
// [MQTT-3.1.2-8].
func TestWillDelay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	watch := willWatcher(t, tb, "wd-watch")

	// Cancelled: disconnect, reconnect within the 1 s delay.
	cancelled := withWill(conn5("wd-cancel", false, 60), "will/delay/cancelled", "x", 1)
	w, _ := connectWire(t, tb.Addr, codec.V5, cancelled)
	w.Close()
	// Reference: disconnects after the cancelled one with the same delay.
	ref, _ := connectWire(t, tb.Addr, codec.V5, withWill(conn5("wd-ref", false, 60), "will/delay/ref", "y", 1))
	start := time.Now()
	ref.Close()
	w, ca := connectWire(t, tb.Addr, codec.V5, conn5("wd-cancel", false, 60))
	if !ca.SessionPresent {
		t.Fatal("no session")
	}
	m := watch.next(t, 5*time.Second)
	if string(m.Topic) != "will/delay/ref" || m.Props.Has(codec.PropWillDelay) {
		t.Fatalf("first will is %q, want the reference's: the reconnect did not cancel the delayed will", m.Topic)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("delayed will published after %v, before its 1 s delay", el)
	}
	watch.none(t, 300*time.Millisecond)
	w.ping()

	// Session expiry (1 s) shorter than the will delay (60 s): the will goes
	// out when the session ends.
	w, _ = connectWire(t, tb.Addr, codec.V5, withWill(conn5("wd-exp", false, 1), "will/delay/expired", "z", 60))
	start = time.Now()
	w.Close()
	m = watch.next(t, 5*time.Second)
	if el := time.Since(start); string(m.Topic) != "will/delay/expired" || el < 900*time.Millisecond {
		t.Fatalf("will %q after %v, want will/delay/expired after about 1 s", m.Topic, el)
	}

	// Session expiry 0: the session ends with the connection, the will is
	// published at once despite the delay.
	w, _ = connectWire(t, tb.Addr, codec.V5, withWill(conn5("wd-now", true, 0), "will/delay/now", "n", 60))
	w.Close()
	if m := watch.next(t, 900*time.Millisecond); string(m.Topic) != "will/delay/now" {
		t.Fatalf("will %q", m.Topic)
	}
}

// TestWillRetained: a will with RETAIN set is stored as a retained message
// [MQTT-3.1.2-17 (3.1.1)], [MQTT-3.1.2-15].
func TestWillRetained(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for i, vv := range bothVersions {
		cp := withWill(connV(vv.v, "wr-"+vv.name, true, 0), "will/ret/"+vv.name, "retained will", 0)
		cp.WillRetain = true
		w, _ := connectWire(t, tb.Addr, vv.v, cp)
		w.Close()
		// A checker that subscribed before the will went out would get it
		// live, with RETAIN cleared for 3.1.1 [MQTT-3.3.1-9]: wait for it.
		waitFor(t, 5*time.Second, "the will published", func() bool {
			return tb.B.Stats().WillsPublished.Load() >= uint64(i+1)
		})
		var got []string
		waitFor(t, 5*time.Second, "the retained will", func() bool {
			got = retainedOn(t, tb, vv.v, "wr-check-"+vv.name, "will/ret/"+vv.name, 50*time.Millisecond)
			return len(got) == 1
		})
		if got[0] != "retained will" {
			t.Fatalf("%s: %q", vv.name, got[0])
		}
	}
}
