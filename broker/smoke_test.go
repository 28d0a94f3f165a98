package broker_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func TestSmokeV5PubSub(t *testing.T) {
	tb := startBroker(t, nil)
	sub, _ := dialV5(t, tb.Addr, "sub", nil)
	sub.sub(t, paho.SubscribeOptions{Topic: "a/+", QoS: 1})
	pub, _ := dialV5(t, tb.Addr, "pub", nil)
	pub.pub(t, &paho.Publish{Topic: "a/b", QoS: 1, Payload: []byte("x")})
	m := sub.next(t, 5*time.Second)
	if m.Topic != "a/b" || string(m.Payload) != "x" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}
