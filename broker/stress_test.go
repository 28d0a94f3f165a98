//go:build linux

package broker_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// testRandomSessions sends random sequences of valid packets, split at random
// points, from many clients at once to a child broker, and ends each
// connection at random: a DISCONNECT, a close, a reset, or a takeover by the
// next client with the same id. The broker must never die nor recover a
// panic, and must go on serving a bystander.
func testRandomSessions(t *testing.T, bin string) {
	const workers, conns = 8, 400
	ch := startChild(t, bin)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 0x5eed))
			for i := range conns / workers {
				if err := randomSession(ch.Addr, rng, fmt.Sprintf("rnd-%d", rng.IntN(12))); err != nil {
					errs <- fmt.Errorf("worker %d, connection %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case <-ch.Done:
		t.Fatalf("the broker died: %v\n%s", ch.Err, ch.Log.String())
	default:
	}
	// A bystander pair still works.
	sub := dialRaw(t, ch.Addr, codec.V5)
	sub.connect("after-sub")
	sub.send(codec.AppendSubscribe(nil, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("after/#"), QoS: 1}}}, codec.V5))
	if pk := sub.read(5 * time.Second); pk == nil || pk.Type != codec.Suback {
		t.Fatalf("bystander SUBACK: %+v", pk)
	}
	pub := dialRaw(t, ch.Addr, codec.V311)
	pub.connect("after-pub")
	pub.send(codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("after/x"), QoS: 1, PacketID: 1, Payload: []byte("ok")}, codec.V311))
	if pk := sub.read(5 * time.Second); pk == nil || pk.Type != codec.Publish || string(pk.Publish.Payload) != "ok" {
		t.Fatalf("bystander delivery: %+v", pk)
	}
	if log := ch.Log.String(); strings.Contains(log, "panic") {
		t.Fatalf("the broker logged a panic:\n%s", log)
	}
}

// randomSession runs one connection of random valid packets. Errors are
// the test's own (a dial that fails); what the broker answers, or a close
// it chooses, is fine.
func randomSession(addr string, rng *rand.Rand, id string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	v := codec.V311
	if rng.IntN(2) == 0 {
		v = codec.V5
	}
	cp := codec.ConnectPacket{Version: v, CleanStart: rng.IntN(2) == 0, ClientID: []byte(id), KeepAlive: 30}
	if v == codec.V5 && rng.IntN(2) == 0 {
		cp.Props.SessionExpiry = 60
		cp.Props.Set(codec.PropSessionExpiry)
	}
	if rng.IntN(4) == 0 {
		cp.WillFlag, cp.WillTopic, cp.WillPayload, cp.WillQoS = true, []byte("rnd/will"), []byte("w"), byte(rng.IntN(3))
	}
	out := codec.AppendConnect(nil, &cp)
	topics := []string{"rnd/a", "rnd/b", "rnd/a/b", "other"}
	filters := []string{"rnd/#", "rnd/+", "#", "$share/g/rnd/#", "other"}
	for range rng.IntN(40) {
		id := uint16(1 + rng.IntN(20))
		switch k := rng.IntN(10); {
		case k < 4:
			p := codec.PublishPacket{Topic: []byte(topics[rng.IntN(len(topics))]), QoS: byte(rng.IntN(3)),
				Retain: rng.IntN(8) == 0, Payload: make([]byte, rng.IntN(2000))}
			if p.QoS > 0 {
				p.PacketID = id
			}
			out = codec.AppendPublish(out, &p, v)
		case k < 6:
			out = codec.AppendSubscribe(out, &codec.SubscribePacket{PacketID: id,
				Subscriptions: []codec.Subscription{{Filter: []byte(filters[rng.IntN(len(filters))]), QoS: byte(rng.IntN(3))}}}, v)
		case k < 7:
			out = codec.AppendUnsubscribe(out, &codec.UnsubscribePacket{PacketID: id,
				Filters: [][]byte{[]byte(filters[rng.IntN(len(filters))])}}, v)
		case k < 9:
			t := []codec.PacketType{codec.Puback, codec.Pubrec, codec.Pubrel, codec.Pubcomp}[rng.IntN(4)]
			out = codec.AppendAck(out, t, &codec.AckPacket{PacketID: id}, v)
		default:
			out = append(out, byte(codec.Pingreq)<<4, 0)
		}
	}
	end := rng.IntN(4)
	if end == 0 {
		out = codec.AppendDisconnect(out, &codec.DisconnectPacket{}, v)
	}
	// Write in random pieces, reading back whatever the broker sends.
	buf := make([]byte, 64<<10)
	for len(out) > 0 {
		n := 1 + rng.IntN(len(out))
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(out[:n]); err != nil {
			break // the broker closed it: an answer like any other
		}
		out = out[n:]
		_ = c.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(3)) * time.Millisecond))
		_, _ = c.Read(buf)
	}
	switch end {
	case 1:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset
		}
	case 2:
		return nil // left open: the next client with this id takes it over
	}
	return c.Close()
}
