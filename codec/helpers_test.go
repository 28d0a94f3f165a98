package codec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/codec/codectest"
)

// describe renders the fields of pk that its type uses, in a canonical text
// form: two packets are equal for the tests when their descriptions are. Nil
// and empty byte slices describe alike, as they encode alike.
func describe(pk *codec.Packet) string {
	var w strings.Builder
	fmt.Fprintf(&w, "%v flags=%#x", pk.Type, pk.Flags)
	switch pk.Type {
	case codec.Connect:
		c := &pk.Connect
		fmt.Fprintf(&w, " name=%q v=%d clean=%t keepalive=%d id=%q props{%s}",
			c.ProtocolName, c.Version, c.CleanStart, c.KeepAlive, c.ClientID, describeProps(&c.Props))
		fmt.Fprintf(&w, " will=%t", c.WillFlag)
		if c.WillFlag {
			fmt.Fprintf(&w, " qos=%d retain=%t topic=%q payload=%q props{%s}",
				c.WillQoS, c.WillRetain, c.WillTopic, c.WillPayload, describeProps(&c.WillProps))
		}
		fmt.Fprintf(&w, " user=%t %q pass=%t %q", c.UsernameFlag, c.Username, c.PasswordFlag, c.Password)
	case codec.Connack:
		c := &pk.Connack
		fmt.Fprintf(&w, " sp=%t reason=%#x props{%s}", c.SessionPresent, byte(c.Reason), describeProps(&c.Props))
	case codec.Publish:
		p := &pk.Publish
		fmt.Fprintf(&w, " dup=%t qos=%d retain=%t topic=%q id=%d props{%s} payload=%s",
			p.Dup, p.QoS, p.Retain, p.Topic, p.PacketID, describeProps(&p.Props), short(p.Payload))
	case codec.Puback, codec.Pubrec, codec.Pubrel, codec.Pubcomp:
		a := &pk.Ack
		fmt.Fprintf(&w, " id=%d reason=%#x props{%s}", a.PacketID, byte(a.Reason), describeProps(&a.Props))
	case codec.Subscribe:
		s := &pk.Subscribe
		fmt.Fprintf(&w, " id=%d props{%s}", s.PacketID, describeProps(&s.Props))
		for _, sub := range s.Subscriptions {
			fmt.Fprintf(&w, " [%q qos=%d nl=%t rap=%t rh=%d]", sub.Filter, sub.QoS, sub.NoLocal,
				sub.RetainAsPublished, sub.RetainHandling)
		}
	case codec.Suback, codec.Unsuback:
		s := &pk.Suback
		fmt.Fprintf(&w, " id=%d props{%s} reasons=%x", s.PacketID, describeProps(&s.Props), reasonBytes(s.Reasons))
	case codec.Unsubscribe:
		u := &pk.Unsubscribe
		fmt.Fprintf(&w, " id=%d props{%s} filters=%q", u.PacketID, describeProps(&u.Props), u.Filters)
	case codec.Disconnect:
		fmt.Fprintf(&w, " reason=%#x props{%s}", byte(pk.Disconnect.Reason), describeProps(&pk.Disconnect.Props))
	case codec.Auth:
		fmt.Fprintf(&w, " reason=%#x props{%s}", byte(pk.Auth.Reason), describeProps(&pk.Auth.Props))
	}
	return w.String()
}

func reasonBytes(rs []codec.ReasonCode) []byte {
	b := make([]byte, len(rs))
	for i, r := range rs {
		b[i] = byte(r)
	}
	return b
}

// short quotes small payloads and summarises large ones.
func short(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	sum := 0
	for _, c := range b {
		sum = sum*31 + int(c)
	}
	return fmt.Sprintf("<%d bytes, sum %x>", len(b), sum)
}

// describeProps lists the present properties by identifier; user properties
// and subscription identifiers are listed in order whenever non-empty.
func describeProps(p *codec.Properties) string {
	var w strings.Builder
	for id := codec.PropID(1); id <= codec.PropSharedSubAvailable; id++ {
		if id == codec.PropUser || id == codec.PropSubscriptionID || !p.Has(id) {
			continue
		}
		fmt.Fprintf(&w, " %#x=%s", byte(id), propValue(p, id))
	}
	if len(p.SubscriptionIDs) > 0 {
		fmt.Fprintf(&w, " subids=%v", p.SubscriptionIDs)
	}
	for _, u := range p.User {
		fmt.Fprintf(&w, " user[%q=%q]", u.Key, u.Value)
	}
	return w.String()
}

func propValue(p *codec.Properties, id codec.PropID) string {
	switch id {
	case codec.PropPayloadFormat:
		return fmt.Sprint(p.PayloadFormat)
	case codec.PropMessageExpiry:
		return fmt.Sprint(p.MessageExpiry)
	case codec.PropContentType:
		return fmt.Sprintf("%q", p.ContentType)
	case codec.PropResponseTopic:
		return fmt.Sprintf("%q", p.ResponseTopic)
	case codec.PropCorrelationData:
		return fmt.Sprintf("%q", p.CorrelationData)
	case codec.PropSessionExpiry:
		return fmt.Sprint(p.SessionExpiry)
	case codec.PropAssignedClientID:
		return fmt.Sprintf("%q", p.AssignedClientID)
	case codec.PropServerKeepAlive:
		return fmt.Sprint(p.ServerKeepAlive)
	case codec.PropAuthMethod:
		return fmt.Sprintf("%q", p.AuthMethod)
	case codec.PropAuthData:
		return fmt.Sprintf("%q", p.AuthData)
	case codec.PropRequestProblemInfo:
		return fmt.Sprint(p.RequestProblemInfo)
	case codec.PropWillDelay:
		return fmt.Sprint(p.WillDelay)
	case codec.PropRequestResponseInfo:
		return fmt.Sprint(p.RequestResponseInfo)
	case codec.PropResponseInfo:
		return fmt.Sprintf("%q", p.ResponseInfo)
	case codec.PropServerReference:
		return fmt.Sprintf("%q", p.ServerReference)
	case codec.PropReasonString:
		return fmt.Sprintf("%q", p.ReasonString)
	case codec.PropReceiveMaximum:
		return fmt.Sprint(p.ReceiveMaximum)
	case codec.PropTopicAliasMaximum:
		return fmt.Sprint(p.TopicAliasMaximum)
	case codec.PropTopicAlias:
		return fmt.Sprint(p.TopicAlias)
	case codec.PropMaximumQoS:
		return fmt.Sprint(p.MaximumQoS)
	case codec.PropRetainAvailable:
		return fmt.Sprint(p.RetainAvailable)
	case codec.PropMaximumPacketSize:
		return fmt.Sprint(p.MaximumPacketSize)
	case codec.PropWildcardSubAvailable:
		return fmt.Sprint(p.WildcardSubAvailable)
	case codec.PropSubIDAvailable:
		return fmt.Sprint(p.SubIDAvailable)
	case codec.PropSharedSubAvailable:
		return fmt.Sprint(p.SharedSubAvailable)
	}
	return "?"
}

// encodeVersion is the version to encode pk with on a connection of version v:
// a CONNECT carries its own.
func encodeVersion(pk *codec.Packet, v codec.Version) codec.Version {
	if pk.Type == codec.Connect {
		return pk.Connect.Version
	}
	return v
}

// mustDecode decodes exactly one whole packet from b.
func mustDecode(t testing.TB, b []byte, v codec.Version) *codec.Packet {
	t.Helper()
	pk := new(codec.Packet)
	n, err := codec.Decode(b, v, 0, pk)
	if err != nil {
		t.Fatalf("Decode(% x): %v", head(b), err)
	}
	if n != len(b) {
		t.Fatalf("Decode consumed %d of %d bytes", n, len(b))
	}
	return pk
}

// head is the first bytes of b, for messages.
func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

// golden returns the golden cases, with the large ones left out when small is
// set (fuzz seeds, allocation loops).
func golden(small bool) []codectest.Case {
	var cs []codectest.Case
	for _, c := range codectest.Golden() {
		if small && len(c.Bytes) > 1<<16 {
			continue
		}
		cs = append(cs, c)
	}
	return cs
}

// wantErr checks that err is the sentinel want and carries want's reason code.
func wantErr(t testing.TB, err error, want *codec.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if !errors.Is(err, want.Code) {
		t.Fatalf("errors.Is(%v, %v) is false", err, want.Code)
	}
	if codec.Code(err) != want.Code {
		t.Fatalf("Code(%v) = %v, want %v", err, codec.Code(err), want.Code)
	}
}
