package codec

import (
	"errors"
	"testing"
)

func TestMessagePropertiesRoundTrip(t *testing.T) {
	var p Properties
	p.PayloadFormat = 1
	p.Set(PropPayloadFormat)
	p.MessageExpiry = 60
	p.Set(PropMessageExpiry)
	p.ContentType = []byte("text/plain")
	p.Set(PropContentType)
	p.ResponseTopic = []byte("reply/here")
	p.Set(PropResponseTopic)
	p.CorrelationData = []byte{1, 2, 3}
	p.Set(PropCorrelationData)
	p.User = []UserProperty{{[]byte("a"), []byte("1")}, {[]byte("a"), []byte("2")}}
	b := AppendMessageProperties(nil, &p)
	var q Properties
	n, err := DecodeMessageProperties(b, &q)
	if err != nil || n != len(b) {
		t.Fatalf("decode: n=%d/%d err=%v", n, len(b), err)
	}
	if q.PayloadFormat != 1 || q.MessageExpiry != 60 || string(q.ContentType) != "text/plain" ||
		string(q.ResponseTopic) != "reply/here" || string(q.CorrelationData) != "\x01\x02\x03" ||
		len(q.User) != 2 || string(q.User[1].Value) != "2" {
		t.Fatalf("round trip lost something: %+v", q)
	}
	// Empty input is an empty block; a CONNACK-only property is refused.
	if n, err := DecodeMessageProperties(nil, &q); n != 0 || err != nil || !q.Empty() {
		t.Fatalf("empty: %d %v %+v", n, err, q)
	}
	if _, err := DecodeMessageProperties([]byte{2, byte(PropMaximumQoS), 1}, &q); !errors.Is(err, MalformedPacket) {
		t.Fatalf("CONNACK property in a message block: %v", err)
	}
}
