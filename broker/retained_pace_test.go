package broker_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// TestRetainedPacedNotDropped: the retained messages matching a new
// subscription are all delivered, however far past the outbound high-water
// mark they go (1,000 messages of 10 KB against 4 MiB): they wait for the
// socket to drain, where live QoS 0 traffic would be dropped. For 3.1.1 and
// 5, at QoS 0 (paced by the connection's retained backlog) and QoS 1
// (through the inflight window and the session queue, which never dropped
// them: that variant checks it stays so).
func TestRetainedPacedNotDropped(t *testing.T) {
	const n, size = 1000, 10 << 10
	tb := startBroker(t, nil)
	pub, _ := connectWire(t, tb.Addr, codec.V311, conn3("ret-pub", true))
	var burst []byte
	payload := make([]byte, size)
	for i := range n {
		p := codec.PublishPacket{Topic: []byte("ret/" + strconv.Itoa(i)), Payload: payload, QoS: 1, PacketID: uint16(i + 1), Retain: true}
		burst = codec.AppendPublish(burst, &p, codec.V311)
	}
	pub.send(burst)
	waitFor(t, 10*time.Second, "1,000 retained messages stored", func() bool { return tb.B.RetainedCount() == n })

	for _, v := range bothVersions {
		for _, qos := range []byte{0, 1} {
			t.Run(v.name+"/qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
				id := "ret-sub-" + v.name + "-" + strconv.Itoa(int(qos))
				dropped := tb.B.Stats().DroppedQoS0.Load()
				w, _ := connectWire(t, tb.Addr, v.v, connV(v.v, id, true, 0))
				w.sub("ret/#", qos)
				topics := map[string]bool{}
				for len(topics) < n {
					pk := w.next(3 * time.Second)
					if pk == nil {
						t.Fatalf("%d of %d retained messages received, then nothing for 3 s (QoS 0 dropped: %d)",
							len(topics), n, tb.B.Stats().DroppedQoS0.Load()-dropped)
					}
					if pk.Type != codec.Publish {
						t.Fatalf("unexpected %s", pkString(pk))
					}
					p := &pk.Publish
					if !p.Retain || p.QoS != qos || len(p.Payload) != size {
						t.Fatalf("retained message %q: retain %v, QoS %d, %d bytes", p.Topic, p.Retain, p.QoS, len(p.Payload))
					}
					if qos == 1 {
						w.ack(codec.Puback, p.PacketID)
					}
					topics[string(p.Topic)] = true
				}
				w.ping() // nothing else was queued behind them
				if d := tb.B.Stats().DroppedQoS0.Load() - dropped; d != 0 {
					t.Fatalf("%d QoS 0 messages dropped", d)
				}
			})
		}
	}
}
