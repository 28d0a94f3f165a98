package codec

import "testing"

func TestQuickRoundTrip(t *testing.T) {
	var p PublishPacket
	p.Topic = []byte("a/b")
	p.QoS = 1
	p.PacketID = 7
	p.Payload = []byte("hello")
	p.Props.Set(PropMessageExpiry)
	p.Props.MessageExpiry = 30
	p.Props.User = append(p.Props.User, UserProperty{[]byte("k"), []byte("v")})
	for _, v := range []Version{V31, V311, V5} {
		b := AppendPublish(nil, &p, v)
		if len(b) != PublishSize(&p, v) {
			t.Fatalf("size %d vs %d", len(b), PublishSize(&p, v))
		}
		var pk Packet
		n, err := Decode(b, v, 0, &pk)
		if err != nil || n != len(b) {
			t.Fatalf("v%d: n=%d err=%v", v, n, err)
		}
		if string(pk.Publish.Topic) != "a/b" || string(pk.Publish.Payload) != "hello" || pk.Publish.PacketID != 7 {
			t.Fatalf("bad %+v", pk.Publish)
		}
		if v == V5 && (pk.Publish.Props.MessageExpiry != 30 || len(pk.Publish.Props.User) != 1) {
			t.Fatalf("props %+v", pk.Publish.Props)
		}
	}
}
