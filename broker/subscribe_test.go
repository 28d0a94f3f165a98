package broker_test

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// collectTopics reads PUBLISH packets until none arrives for quiet, and
// returns their topics sorted.
func (w *wire) collectTopics(quiet time.Duration) []string {
	w.t.Helper()
	var out []string
	for {
		pk := w.next(quiet)
		if pk == nil {
			sort.Strings(out)
			return out
		}
		if pk.Type != codec.Publish {
			w.t.Fatalf("wire: unexpected %s", pkString(pk))
		}
		out = append(out, string(pk.Publish.Topic))
	}
}

// TestWildcards: '+' matches exactly one level and '#' any number including
// the parent [MQTT-4.7.1-1, MQTT-4.7.1-2]; topics starting with '$' are not
// matched by filters starting with a wildcard [MQTT-4.7.2-1].
func TestWildcards(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	topics := []string{"w/a/c", "w/b/c", "w/a/b/c", "w/x", "w/x/y/z", "w", "$w/a", "$w/a/c", "other"}
	filters := map[string][]string{
		"w/+/c": {"w/a/c", "w/b/c"},
		"w/x/#": {"w/x", "w/x/y/z"},
		"w/#":   {"w", "w/a/b/c", "w/a/c", "w/b/c", "w/x", "w/x/y/z"},
		"+/+/c": {"w/a/c", "w/b/c"},
		"#":     {"other", "w", "w/a/b/c", "w/a/c", "w/b/c", "w/x", "w/x/y/z"},
		"+":     {"other", "w"},
		"$w/#":  {"$w/a", "$w/a/c"},
		"$w/+":  {"$w/a"},
		"+/a":   {},
	}
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			subs := map[string]*wire{}
			for f := range filters {
				w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "wc-"+vv.name+"-"+f, true, 0))
				w.sub(f, 0)
				subs[f] = w
			}
			pub, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "wc-pub-"+vv.name, true, 0))
			for _, tp := range topics {
				pub.publish(pubPacket(tp, "x", 1, 1))
				pub.expect(codec.Puback, 5*time.Second)
			}
			for f, want := range filters {
				got := subs[f].collectTopics(100 * time.Millisecond)
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("%q got %v, want %v", f, got, want)
				}
			}
		})
	}
}

// TestUnsubscribe: UNSUBSCRIBE stops delivery [MQTT-3.10.4-1] and is always
// answered [MQTT-3.10.4-4]; v5 reports 0x11 for a filter that had no
// subscription [MQTT-3.11.3-1].
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	pub, _ := connectWire(t, tb.Addr, codec.V5, conn5("unsub-pub", true, 0))
	for _, vv := range bothVersions {
		w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "unsub-"+vv.name, true, 0))
		w.sub("u/+", 1)
		up := codec.UnsubscribePacket{PacketID: 7, Filters: [][]byte{[]byte("u/+"), []byte("never/subscribed")}}
		w.send(codec.AppendUnsubscribe(nil, &up, vv.v))
		ack := w.expect(codec.Unsuback, 5*time.Second)
		if ack.Suback.PacketID != 7 {
			t.Fatalf("%s: UNSUBACK id %d", vv.name, ack.Suback.PacketID)
		}
		if vv.v == codec.V5 && !slices.Equal(ack.Suback.Reasons, []codec.ReasonCode{codec.Success, codec.NoSubscriptionExisted}) {
			t.Fatalf("v5 UNSUBACK reasons %v, want [0x00 0x11]", ack.Suback.Reasons)
		}
		pub.publish(pubPacket("u/x", "x", 1, 1))
		if a := pub.expect(codec.Puback, 5*time.Second); a.Ack.Reason != codec.NoMatchingSubscribers {
			t.Fatalf("%s: PUBACK %s after unsubscribe, want 0x10", vv.name, pkString(a))
		}
		w.quiet(200 * time.Millisecond)
	}
}

// TestInvalidFilter: a malformed filter is refused in its SUBACK slot, 0x8F
// in v5 and 0x80 in 3.1.1 [MQTT-3.9.3-1 (3.1.1: MQTT-3.9.3-2)], while the
// other filters of the packet are granted and the connection stays open.
func TestInvalidFilter(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	bad := []string{"a/#/b", "a+/b", "#/x", "$share/g+/x", "$share/g"}
	for _, vv := range bothVersions {
		fail := codec.TopicFilterInvalid
		if vv.v != codec.V5 {
			fail = codec.V3SubackFailure
		}
		w, _ := connectWire(t, tb.Addr, vv.v, connV(vv.v, "inv-"+vv.name, true, 0))
		subs := []codec.Subscription{{Filter: []byte("good/1"), QoS: 1}}
		want := []codec.ReasonCode{codec.GrantedQoS1}
		for _, f := range bad {
			subs = append(subs, codec.Subscription{Filter: []byte(f), QoS: 1})
			want = append(want, fail)
		}
		subs = append(subs, codec.Subscription{Filter: []byte("good/2"), QoS: 2})
		want = append(want, codec.GrantedQoS2)
		if rc := w.subscribe(3, nil, subs...); !slices.Equal(rc, want) {
			t.Fatalf("%s: SUBACK %v, want %v", vv.name, rc, want)
		}
		w.ping()
		w.publish(pubPacket("good/2", "still here", 0, 0))
		if p := w.expectPublish(5 * time.Second); string(p.Payload) != "still here" {
			t.Fatalf("%s: got %q", vv.name, p.Payload)
		}
	}
}
