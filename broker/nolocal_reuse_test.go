package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestNoLocalAfterPersistentRound replays, with the same two client ids,
// what an outside interoperability suite does: a round with subscription
// identifiers on persistent sessions (session expiry > 0), disconnected,
// then a clean-start round where both subscribe with No Local and the first
// publishes. The second client must get the message, the first nothing: the
// offline sessions of the first round (their trie entries, their routing
// identities, discarded by the clean start on other loops) must not
// interfere with No Local [MQTT-3.8.3-3]. Repeated, since the failure
// reported was intermittent.
//
// Each SUBACK is awaited before the publish. The suite did not await the
// second client's (it waited on the first client's list of SUBACKs), so
// there the PUBLISH reached one event loop while the SUBSCRIBE, sent tens
// of microseconds earlier on another connection, was still unread on
// another: a race between two connections, which MQTT does not order.
func TestNoLocalAfterPersistentRound(t *testing.T) {
	tb := startBroker(t, nil)
	const topic = "TopicA"
	expiry := uint32(300)
	persistent := func() *paho.Connect {
		e := expiry
		return &paho.Connect{CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &e}}
	}
	subID := func(id int) *paho.SubscribeProperties { return &paho.SubscribeProperties{SubscriptionIdentifier: &id} }
	subscribe := func(c *v5Client, props *paho.SubscribeProperties, opts ...paho.SubscribeOptions) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Properties: props, Subscriptions: opts})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		for i, rc := range sa.Reasons {
			if rc >= 0x80 {
				t.Fatalf("subscribe %q refused: %#x", opts[i].Topic, rc)
			}
		}
	}
	bye := func(c *v5Client) {
		_ = c.Disconnect(&paho.Disconnect{})
		_ = c.conn.Close()
	}
	for round := 0; round < 30; round++ {
		// Round 1: subscription identifiers, persistent sessions.
		a, _ := dialV5(t, tb.Addr, "myclientid", persistent())
		subscribe(a, subID(456789), paho.SubscribeOptions{Topic: topic, QoS: 2})
		b, _ := dialV5(t, tb.Addr, "myclientid2", persistent())
		subscribe(b, subID(2), paho.SubscribeOptions{Topic: topic, QoS: 2})
		subscribe(b, subID(3), paho.SubscribeOptions{Topic: topic + "/#", QoS: 2})
		b.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("sub identifier test")})
		if p := a.next(t, 3*time.Second); p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 456789 {
			t.Fatalf("round %d: identifiers to the first client: %+v", round, p.Properties)
		}
		b.next(t, 3*time.Second)
		bye(a)
		bye(b)

		// Round 2: No Local, same client ids, clean start.
		a, _ = dialV5(t, tb.Addr, "myclientid", persistent())
		subscribe(a, nil, paho.SubscribeOptions{Topic: topic, QoS: 2, NoLocal: true})
		b, _ = dialV5(t, tb.Addr, "myclientid2", persistent())
		subscribe(b, nil, paho.SubscribeOptions{Topic: topic, QoS: 2, NoLocal: true})
		a.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("noLocal test")})
		select {
		case p := <-b.msgs:
			if string(p.Payload) != "noLocal test" {
				t.Fatalf("round %d: second client got %q", round, p.Payload)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("round %d: the second client got nothing", round)
		}
		a.none(t, 50*time.Millisecond)
		bye(a)
		bye(b)
	}
}
