package broker_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// TestSysTopics: with SysInterval set, $SYS/broker/clients/connected is
// published (and retained) for v5 and 3.1.1 subscribers; subscribers to '#'
// or '+/...' never get $SYS topics [MQTT-4.7.2-1].
func TestSysTopics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.SysInterval = 50 * time.Millisecond })
	all5, _ := connectWire(t, tb.Addr, codec.V5, conn5("sys-all5", true, 0))
	all5.sub("#", 0)
	all3, _ := connectWire(t, tb.Addr, codec.V311, conn3("sys-all3", true))
	all3.sub("+/broker/#", 0)

	s5, _ := dialV5(t, tb.Addr, "sys-5", nil)
	s5.sub(t, paho.SubscribeOptions{Topic: "$SYS/broker/clients/connected"})
	s3 := dialV3(t, tb.Addr, "sys-3", nil)
	wait(t, s3.Subscribe("$SYS/broker/clients/+", 0, nil))

	// Wait for a value that counts all four clients.
	waitFor(t, 5*time.Second, "$SYS clients/connected to reach 4 (v5)", func() bool {
		select {
		case m := <-s5.msgs:
			n, err := strconv.Atoi(string(m.Payload))
			if err != nil || m.Topic != "$SYS/broker/clients/connected" {
				t.Fatalf("v5 got %q %q", m.Topic, m.Payload)
			}
			return n >= 4
		default:
			return false
		}
	})
	waitFor(t, 5*time.Second, "$SYS clients/connected on the 3.1.1 client", func() bool {
		select {
		case m := <-s3.msgs:
			if !strings.HasPrefix(m.Topic(), "$SYS/broker/clients/") {
				t.Fatalf("3.1.1 got %q", m.Topic())
			}
			if m.Topic() != "$SYS/broker/clients/connected" {
				return false
			}
			n, err := strconv.Atoi(string(m.Payload()))
			return err == nil && n >= 4
		default:
			return false
		}
	})

	// Several intervals have passed: the wildcard subscribers got nothing
	// from $SYS, but they do get ordinary topics.
	all5.publish(pubPacket("plain/topic", "x", 0, 0))
	for _, w := range []*wire{all5, all3} {
		for {
			pk := w.next(200 * time.Millisecond)
			if pk == nil {
				break
			}
			if pk.Type != codec.Publish || strings.HasPrefix(string(pk.Publish.Topic), "$") {
				t.Fatalf("wildcard subscriber got %s", pkString(pk))
			}
		}
	}
	all3.publish(pubPacket("x/broker/y", "y", 0, 0))
	if p := all3.expectPublish(5 * time.Second); string(p.Topic) != "x/broker/y" {
		t.Fatalf("got %q", p.Topic)
	}
}

// TestSysRetainedForLateSubscribers: $SYS values are retained on the node, so
// a subscriber arriving between updates gets the latest at once, with RETAIN
// set, even though they never reach the (possibly replicated) store.
func TestSysRetainedForLateSubscribers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.SysInterval = time.Hour }) // one update, at start
	w, _ := connectWire(t, tb.Addr, codec.V5, conn5("late-sys", true, 0))
	w.sub("$SYS/broker/version", 0)
	p := w.expectPublish(5 * time.Second)
	if string(p.Topic) != "$SYS/broker/version" || !p.Retain || !strings.HasPrefix(string(p.Payload), "flockmq ") {
		t.Fatalf("got %q retain=%v %q", p.Topic, p.Retain, p.Payload)
	}
	if n := tb.B.RetainedCount(); n != 0 {
		t.Fatalf("store holds %d retained messages; $SYS must stay out of it", n)
	}
}
