package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// denyTopic refuses publishes to one topic and allows everything else.
type denyTopic struct {
	broker.AllowAll
	topic string
}

func (d denyTopic) CanPublish(_ string, _ []byte, topic []byte) bool { return string(topic) != d.topic }

// TestMaxTopicLevels: a topic name past the limit ends the v5 connection with
// 0x90; a filter past it gets SUBACK 0x8F (0x80 for 3.1.1) and the connection
// stays usable.
func TestMaxTopicLevels(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.MaxTopicLevels = 3 })
	deep := strings.Repeat("a/", 3) + "a" // four levels
	for _, bv := range bothVersions {
		w, _ := connectWire(t, tb.Addr, bv.v, connV(bv.v, "levels-"+bv.name, true, 0))
		rcs := w.subscribe(1, nil, codec.Subscription{Filter: []byte(deep)}, codec.Subscription{Filter: []byte("a/b/c")})
		want := codec.TopicFilterInvalid
		if bv.v != codec.V5 {
			want = codec.V3SubackFailure
		}
		if len(rcs) != 2 || rcs[0] != want || rcs[1] != codec.Success {
			t.Fatalf("%s: SUBACK %v, want [%v granted QoS 0]", bv.name, rcs, want)
		}
		w.ping()
		w.publish(pubPacket(deep, "x", 0, 0))
		if bv.v == codec.V5 {
			w.mustDisconnect(codec.TopicNameInvalid, 5*time.Second)
		} else {
			w.mustClose(5 * time.Second)
		}
	}
}

// TestMaxRetainedSize: a retained publish above the limit is refused (v5
// PUBACK 0x97) and not stored; one at the limit is stored.
func TestMaxRetainedSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.MaxRetainedSize = 8 })
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("retained-limit", true, 0))
	big := pubPacket("r/big", "123456789", 1, 1)
	big.Retain = true
	w.publish(big)
	ack := w.expect(codec.Puback, 5*time.Second)
	if ack.Ack.Reason != codec.QuotaExceeded {
		t.Fatalf("PUBACK %v, want quota exceeded", ack.Ack.Reason)
	}
	ok := pubPacket("r/ok", "12345678", 1, 2)
	ok.Retain = true
	w.publish(ok)
	if a := w.expect(codec.Puback, 5*time.Second); a.Ack.Reason.IsError() {
		t.Fatalf("PUBACK %v for a retained message at the limit", a.Ack.Reason)
	}
	waitFor(t, 5*time.Second, "one retained message", func() bool { return tb.B.RetainedCount() == 1 })
	sub, _ := connectWire(t, tb.Addr, codec.V5, conn5("retained-limit-sub", true, 0))
	sub.sub("r/#", 0)
	if p := sub.expectPublish(5 * time.Second); string(p.Topic) != "r/ok" {
		t.Fatalf("retained %q, want r/ok only", p.Topic)
	}
	sub.quiet(300 * time.Millisecond)
}

// TestWillPassesACL: a will to a topic the ACL refuses is not published; one
// to an allowed topic is.
func TestWillPassesACL(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil, broker.WithAuthorizer(denyTopic{topic: "wills/denied"}))
	watcher, _ := connectWire(t, tb.Addr, codec.V5, conn5("will-watcher", true, 0))
	watcher.sub("wills/#", 0)
	for _, topic := range []string{"wills/denied", "wills/allowed"} {
		cp := conn5("will-"+topic, true, 0)
		cp.WillFlag, cp.WillTopic, cp.WillPayload = true, []byte(topic), []byte("gone")
		w, _ := connectWire(t, tb.Addr, codec.V5, cp)
		w.Close() // abnormal: the will is due
	}
	p := watcher.expectPublish(5 * time.Second)
	if string(p.Topic) != "wills/allowed" {
		t.Fatalf("will on %q, want only wills/allowed", p.Topic)
	}
	watcher.quiet(300 * time.Millisecond)
}
