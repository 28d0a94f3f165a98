package broker_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/codec"
)

// countAll reads messages from each client until none arrives for quiet and
// returns how many each got and every payload seen.
func countAll(t *testing.T, ws []*wire, quiet time.Duration) ([]int, []string) {
	t.Helper()
	counts := make([]int, len(ws))
	var payloads []string
	for i, w := range ws {
		for {
			pk := w.next(quiet)
			if pk == nil {
				break
			}
			if pk.Type != codec.Publish {
				t.Fatalf("member %d: %s", i, pkString(pk))
			}
			if pk.Publish.QoS == 1 {
				w.ack(codec.Puback, pk.Publish.PacketID)
			}
			counts[i]++
			payloads = append(payloads, string(pk.Publish.Payload))
		}
	}
	sort.Strings(payloads)
	return counts, payloads
}

func publishN(t *testing.T, pub *v5Client, topic string, n int) []string {
	t.Helper()
	var want []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("m%02d", i)
		pub.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(p)})
		want = append(want, p)
	}
	return want
}

// TestSharedRoundRobin: each message to a shared subscription goes to one
// member of the group [MQTT-4.8.2-3 (v5 section 4.8.2)]; round-robin spreads
// 30 messages about evenly over three members of mixed versions, for both
// $share/{group}/ and the $queue/ alias.
func TestSharedRoundRobin(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "rr-pub", nil)
	for _, filter := range []string{"$share/g/rr/+", "$queue/rr/+"} {
		t.Run(filter[:6], func(t *testing.T) {
			var ws []*wire
			for i, v := range []codec.Version{codec.V5, codec.V311, codec.V5} {
				w, _ := connectWire(t, tb.Addr, v, connV(v, fmt.Sprintf("rr-%s-%d", filter[:6], i), true, 0))
				w.sub(filter, 1)
				ws = append(ws, w)
			}
			want := publishN(t, pub, "rr/x", 30)
			counts, got := countAll(t, ws, 200*time.Millisecond)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("payloads %v, want each of %v once", got, want)
			}
			for i, n := range counts {
				if n < 7 || n > 13 {
					t.Fatalf("member %d got %d of 30 (counts %v), want about 10", i, n, counts)
				}
			}
			for _, w := range ws {
				w.disconnect(codec.DisconnectPacket{})
			}
		})
	}
}

// TestSharedGroups: every group gets its own copy, and non-shared
// subscriptions theirs [MQTT-4.8.2-4 (v5 section 4.8.2)]; a client in two
// groups gets a copy per group.
func TestSharedGroups(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "sg-pub", nil)
	g1a, _ := connectWire(t, tb.Addr, codec.V5, conn5("sg-1a", true, 0))
	g1a.sub("$share/one/sg/#", 1)
	g1b, _ := connectWire(t, tb.Addr, codec.V311, conn3("sg-1b", true))
	g1b.sub("$share/one/sg/#", 1)
	g2, _ := connectWire(t, tb.Addr, codec.V311, conn3("sg-2", true))
	g2.sub("$share/two/sg/+", 1)
	plain, _ := connectWire(t, tb.Addr, codec.V5, conn5("sg-plain", true, 0))
	plain.sub("sg/+", 1)

	want := publishN(t, pub, "sg/t", 10)
	counts, got := countAll(t, []*wire{g1a, g1b}, 200*time.Millisecond)
	if fmt.Sprint(got) != fmt.Sprint(want) || counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("group one: counts %v payloads %v", counts, got)
	}
	for name, w := range map[string]*wire{"group two": g2, "plain": plain} {
		if _, got := countAll(t, []*wire{w}, 100*time.Millisecond); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %v, want all 10", name, got)
		}
	}

	// One client in both groups: two copies of each message.
	both, _ := connectWire(t, tb.Addr, codec.V5, conn5("sg-both", true, 0))
	both.sub("$share/three/both/x", 1)
	both.sub("$share/four/both/x", 1)
	pub.pub(t, &paho.Publish{Topic: "both/x", QoS: 1, Payload: []byte("b")})
	if counts, _ := countAll(t, []*wire{both}, 200*time.Millisecond); counts[0] != 2 {
		t.Fatalf("client in two groups got %d copies, want 2", counts[0])
	}
}

// TestSharedRedelivery: QoS 1 messages a member received but did not
// acknowledge go to another member when its session ends (v5 section 4.8.2:
// "...the Server MAY send it to another Subscriber").
func TestSharedRedelivery(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := dialV5(t, tb.Addr, "sr-pub", nil)
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			filter := "$share/sr" + vv.name + "/sr/" + vv.name
			lazy, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "sr-lazy-"+vv.name, true, 0))
			lazy.sub(filter, 1)
			good, _ := dialV5(t, tb.Addr, "sr-good-"+vv.name, nil)
			good.sub(t, paho.SubscribeOptions{Topic: filter, QoS: 1})

			want := publishN(t, pub, "sr/"+vv.name, 6)
			// The lazy member reads its share and acknowledges none.
			var held []string
			for {
				pk := lazy.next(300 * time.Millisecond)
				if pk == nil {
					break
				}
				held = append(held, string(pk.Publish.Payload))
			}
			if len(held) == 0 || len(held) == 6 {
				t.Fatalf("lazy member got %d of 6: no round-robin", len(held))
			}
			lazy.Close()
			var got []string
			for len(got) < 6 {
				got = append(got, string(good.next(t, 5*time.Second).Payload))
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("good member got %v, want %v", got, want)
			}
			good.none(t, 200*time.Millisecond)
		})
	}
	if n := tb.B.Stats().SharedRedelivered.Load(); n < 2 {
		t.Fatalf("SharedRedelivered = %d", n)
	}
}
