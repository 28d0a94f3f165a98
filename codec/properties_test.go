package codec_test

import (
	"testing"

	"github.com/flockmq/flockmq/codec"
)

func TestPropertiesHasSetClear(t *testing.T) {
	var p codec.Properties
	if !p.Empty() {
		t.Fatal("zero Properties not empty")
	}
	p.Set(codec.PropTopicAlias)
	p.TopicAlias = 3
	if !p.Has(codec.PropTopicAlias) || p.Empty() {
		t.Fatal("Set did not mark the property present")
	}
	for _, id := range []codec.PropID{0, 0x04, 0x2B, 0xFF} {
		p.Set(id)
		if p.Has(id) {
			t.Errorf("unknown property %#x reported present", byte(id))
		}
	}
	p.Clear(codec.PropTopicAlias)
	if p.Has(codec.PropTopicAlias) || p.TopicAlias != 0 || !p.Empty() {
		t.Fatalf("Clear left %+v", p)
	}
	p.User = append(p.User, codec.UserProperty{Key: []byte("k"), Value: []byte("v")})
	if p.Empty() {
		t.Fatal("user properties alone are not empty")
	}
	p.Clear(codec.PropUser)
	p.SubscriptionIDs = append(p.SubscriptionIDs, 1)
	if p.Empty() {
		t.Fatal("subscription identifiers alone are not empty")
	}
	user, ids := cap(p.User), cap(p.SubscriptionIDs)
	p.Set(codec.PropReasonString)
	p.ReasonString = []byte("x")
	p.Reset()
	if !p.Empty() || p.ReasonString != nil || cap(p.User) != user || cap(p.SubscriptionIDs) != ids {
		t.Fatalf("Reset: %+v", p)
	}
}

// TestPropertiesClearEveryID clears each property of a decoded CONNACK and
// PUBLISH carrying all of theirs: the packet must then encode without it.
func TestPropertiesClearEveryID(t *testing.T) {
	for _, c := range golden(true) {
		if c.Version != codec.V5 || c.DecodeOnly {
			continue
		}
		for id := codec.PropID(1); id <= codec.PropSharedSubAvailable; id++ {
			pk := mustDecode(t, c.Bytes, c.Version)
			props := propsOf(pk)
			if props == nil || !props.Has(id) && !(id == codec.PropUser && len(props.User) > 0) &&
				!(id == codec.PropSubscriptionID && len(props.SubscriptionIDs) > 0) {
				continue
			}
			if id == codec.PropTopicAlias && pk.Type == codec.Publish && len(pk.Publish.Topic) == 0 {
				continue // the alias is all that names the topic
			}
			props.Clear(id)
			again := mustDecode(t, codec.Append(nil, pk, c.Version), c.Version)
			after := propsOf(again)
			if after.Has(id) || (id == codec.PropUser && len(after.User) > 0) ||
				(id == codec.PropSubscriptionID && len(after.SubscriptionIDs) > 0) {
				t.Errorf("%s: property %#x still encoded after Clear", c.Name, byte(id))
			}
			if got, want := describe(again), describe(pk); got != want {
				t.Errorf("%s: clearing %#x\n got %s\nwant %s", c.Name, byte(id), got, want)
			}
		}
	}
}

func propsOf(pk *codec.Packet) *codec.Properties {
	switch pk.Type {
	case codec.Connect:
		return &pk.Connect.Props
	case codec.Connack:
		return &pk.Connack.Props
	case codec.Publish:
		return &pk.Publish.Props
	case codec.Puback, codec.Pubrec, codec.Pubrel, codec.Pubcomp:
		return &pk.Ack.Props
	case codec.Subscribe:
		return &pk.Subscribe.Props
	case codec.Suback, codec.Unsuback:
		return &pk.Suback.Props
	case codec.Unsubscribe:
		return &pk.Unsubscribe.Props
	case codec.Disconnect:
		return &pk.Disconnect.Props
	case codec.Auth:
		return &pk.Auth.Props
	}
	return nil
}
