package broker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
)

// TestInspectUnderTraffic reads sessions and subscriptions while clients
// publish, connect and leave on two loops (for the race detector), then
// kicks one client and discards another's session.
func TestInspectUnderTraffic(t *testing.T) {
	tb := startBroker(t, nil)
	expiry := uint32(300)
	subs := make([]*v5Client, 6)
	for i := range subs {
		subs[i], _ = dialV5(t, tb.Addr, "insp-"+strconv.Itoa(i), &paho.Connect{CleanStart: true, KeepAlive: 30,
			Username: "u" + strconv.Itoa(i%2), UsernameFlag: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		subs[i].sub(t, paho.SubscribeOptions{Topic: "insp/#", QoS: 1}, paho.SubscribeOptions{Topic: "other/" + strconv.Itoa(i), QoS: 0})
	}
	pub, _ := dialV5(t, tb.Addr, "publisher", nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, _ = pub.Publish(ctx, &paho.Publish{Topic: "insp/x", QoS: 1, Payload: []byte("p")})
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			c, _, err := tryDialV5(tb.Addr, "churn-"+strconv.Itoa(i%4), nil)
			if err == nil {
				c.conn.Close()
			}
		}
	}()
	for range 50 {
		list, err := tb.B.Sessions("insp-")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 6 {
			t.Fatalf("%d sessions with prefix insp-, want 6", len(list))
		}
		for i, in := range list {
			if in.ClientID != "insp-"+strconv.Itoa(i) || !in.Connected || in.Subscriptions != 2 ||
				in.Username != "u"+strconv.Itoa(i%2) || in.Expiry != 300 || in.ProtocolVersion != 5 || in.ConnectedAt.IsZero() {
				t.Fatalf("session %d: %+v", i, in)
			}
		}
		sl, err := tb.B.SubscriptionsOf("insp-3", true)
		if err != nil || len(sl) != 2 || sl[0].Filter != "insp/#" || sl[0].QoS != 1 || sl[1].Filter != "other/3" {
			t.Fatalf("subscriptions of insp-3: %+v %v", sl, err)
		}
		if _, err := tb.B.Sessions(""); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()

	kicked, err := tb.B.Kick("insp-1")
	if err != nil || !kicked {
		t.Fatalf("kick: %v %v", kicked, err)
	}
	select {
	case d := <-subs[1].disconnected:
		if d.ReasonCode != 0x98 {
			t.Fatalf("kick: DISCONNECT 0x%02x, want 0x98", d.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DISCONNECT after kick")
	}
	waitFor(t, 5*time.Second, "insp-1 offline", func() bool {
		in, ok, err := tb.B.Session("insp-1")
		return err == nil && ok && !in.Connected && !in.DisconnectedAt.IsZero()
	})
	if again, _ := tb.B.Kick("insp-1"); again {
		t.Fatal("kicked an offline session")
	}
	found, err := tb.B.DiscardSession("insp-2")
	if err != nil || !found {
		t.Fatalf("discard: %v %v", found, err)
	}
	if _, ok, _ := tb.B.Session("insp-2"); ok {
		t.Fatal("discarded session still there")
	}
	// Its subscriptions left the index with it.
	before := tb.B.SubscriptionCount()
	if before != 2*5 {
		t.Fatalf("%d subscriptions indexed, want 10 (five sessions left)", before)
	}
	if n := tb.B.SessionCount(); n < 5 {
		t.Fatalf("SessionCount %d", n)
	}
	var seen []string
	tb.B.Retained("#", func(m *broker.Message) bool { seen = append(seen, string(m.Topic)); return true })
	if len(seen) != 0 {
		t.Fatalf("retained %v, want none", seen)
	}
}
