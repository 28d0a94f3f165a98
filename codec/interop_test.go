package codec_test

// Interoperability with the encoders and decoders of two real client
// libraries: Eclipse Paho for Go, MQTT 5.0 (github.com/eclipse/paho.golang)
// and MQTT 3.1.1 (github.com/eclipse/paho.mqtt.golang). Every golden packet
// the library can represent goes both ways: the library encodes it and we
// decode it, and we encode it and the library decodes it, each time to the
// same field values.

import (
	"bytes"
	"io"
	"testing"

	pahov5 "github.com/eclipse/paho.golang/packets"
	pahov3 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/codec/codectest"
)

// paho5Cases are the golden 5.0 packets, narrowed to what paho.golang can
// represent: one subscription identifier per packet, and will properties that
// its CONNECT encoder writes (it packs them with the CONNECT property set,
// which leaves out the five message properties a will may carry).
func paho5Cases(t *testing.T, direction string) []codectest.Case {
	var cs []codectest.Case
	for _, c := range codectest.Golden() {
		if c.Version != codec.V5 && !(c.Packet.Type == codec.Connect && c.Packet.Connect.Version == codec.V5) {
			continue
		}
		pk := &c.Packet
		if pk.Type == codec.Publish && len(pk.Publish.Props.SubscriptionIDs) > 1 {
			t.Logf("%s: paho.golang keeps one subscription identifier; using the first only", c.Name)
			pk.Publish.Props.SubscriptionIDs = pk.Publish.Props.SubscriptionIDs[:1]
		}
		if pk.Type == codec.Connect && direction == "paho->codec" {
			w := &pk.Connect.WillProps
			for _, id := range []codec.PropID{codec.PropPayloadFormat, codec.PropMessageExpiry,
				codec.PropContentType, codec.PropResponseTopic, codec.PropCorrelationData} {
				w.Clear(id)
			}
		}
		cs = append(cs, c)
	}
	return cs
}

// TestPaho5EncodesCodecDecodes: paho.golang writes, we read.
func TestPaho5EncodesCodecDecodes(t *testing.T) {
	for _, c := range paho5Cases(t, "paho->codec") {
		t.Run(c.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := writePaho5(&buf, &c.Packet); err != nil {
				t.Fatalf("paho WriteTo: %v", err)
			}
			pk := mustDecode(t, buf.Bytes(), codec.V5)
			if got, want := describe(pk), describe(&c.Packet); got != want {
				t.Fatalf("paho bytes % x\n got %s\nwant %s", head(buf.Bytes()), got, want)
			}
		})
	}
}

// TestCodecEncodesPaho5Decodes: we write, paho.golang reads.
func TestCodecEncodesPaho5Decodes(t *testing.T) {
	for _, c := range paho5Cases(t, "codec->paho") {
		t.Run(c.Name, func(t *testing.T) {
			enc := codec.Append(nil, &c.Packet, codec.V5)
			if c.Packet.Type == codec.Disconnect && len(enc) == 2 {
				// paho.golang v0.23.0 reads the reason code unconditionally and
				// so fails on the two-byte normal DISCONNECT that section
				// 3.14.2.1 allows; it reads the long form, which we check.
				enc = []byte{0xE0, 2, 0, 0}
			}
			r := bytes.NewReader(enc)
			cp, err := pahov5.ReadPacket(r)
			if err != nil {
				t.Fatalf("paho ReadPacket(% x): %v", head(enc), err)
			}
			if r.Len() != 0 {
				t.Fatalf("paho left %d bytes unread", r.Len())
			}
			got := fromPaho5(cp)
			if g, w := describe(&got), describe(&c.Packet); g != w {
				t.Fatalf("\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestPaho5ShortDisconnect documents the paho.golang limitation worked around
// above, so that the workaround goes when paho is fixed.
func TestPaho5ShortDisconnect(t *testing.T) {
	if _, err := pahov5.ReadPacket(bytes.NewReader([]byte{0xE0, 0})); err == nil {
		t.Log("paho.golang now reads the two-byte DISCONNECT; drop the workaround in TestCodecEncodesPaho5Decodes")
	}
}

func ptr[T any](v T) *T { return &v }

func toPaho5Props(p *codec.Properties) *pahov5.Properties {
	pp := &pahov5.Properties{}
	if p.Has(codec.PropPayloadFormat) {
		pp.PayloadFormat = ptr(p.PayloadFormat)
	}
	if p.Has(codec.PropMessageExpiry) {
		pp.MessageExpiry = ptr(p.MessageExpiry)
	}
	pp.ContentType = string(p.ContentType)
	pp.ResponseTopic = string(p.ResponseTopic)
	pp.CorrelationData = p.CorrelationData
	if len(p.SubscriptionIDs) > 0 {
		pp.SubscriptionIdentifier = ptr(int(p.SubscriptionIDs[0]))
	}
	if p.Has(codec.PropSessionExpiry) {
		pp.SessionExpiryInterval = ptr(p.SessionExpiry)
	}
	pp.AssignedClientID = string(p.AssignedClientID)
	if p.Has(codec.PropServerKeepAlive) {
		pp.ServerKeepAlive = ptr(p.ServerKeepAlive)
	}
	pp.AuthMethod = string(p.AuthMethod)
	pp.AuthData = p.AuthData
	if p.Has(codec.PropRequestProblemInfo) {
		pp.RequestProblemInfo = ptr(p.RequestProblemInfo)
	}
	if p.Has(codec.PropWillDelay) {
		pp.WillDelayInterval = ptr(p.WillDelay)
	}
	if p.Has(codec.PropRequestResponseInfo) {
		pp.RequestResponseInfo = ptr(p.RequestResponseInfo)
	}
	pp.ResponseInfo = string(p.ResponseInfo)
	pp.ServerReference = string(p.ServerReference)
	pp.ReasonString = string(p.ReasonString)
	if p.Has(codec.PropReceiveMaximum) {
		pp.ReceiveMaximum = ptr(p.ReceiveMaximum)
	}
	if p.Has(codec.PropTopicAliasMaximum) {
		pp.TopicAliasMaximum = ptr(p.TopicAliasMaximum)
	}
	if p.Has(codec.PropTopicAlias) {
		pp.TopicAlias = ptr(p.TopicAlias)
	}
	if p.Has(codec.PropMaximumQoS) {
		pp.MaximumQOS = ptr(p.MaximumQoS)
	}
	if p.Has(codec.PropRetainAvailable) {
		pp.RetainAvailable = ptr(p.RetainAvailable)
	}
	for _, u := range p.User {
		pp.User = append(pp.User, pahov5.User{Key: string(u.Key), Value: string(u.Value)})
	}
	if p.Has(codec.PropMaximumPacketSize) {
		pp.MaximumPacketSize = ptr(p.MaximumPacketSize)
	}
	if p.Has(codec.PropWildcardSubAvailable) {
		pp.WildcardSubAvailable = ptr(p.WildcardSubAvailable)
	}
	if p.Has(codec.PropSubIDAvailable) {
		pp.SubIDAvailable = ptr(p.SubIDAvailable)
	}
	if p.Has(codec.PropSharedSubAvailable) {
		pp.SharedSubAvailable = ptr(p.SharedSubAvailable)
	}
	return pp
}

func fromPaho5Props(pp *pahov5.Properties) codec.Properties {
	var p codec.Properties
	if pp == nil {
		return p
	}
	setB := func(id codec.PropID, dst *byte, v *byte) {
		if v != nil {
			p.Set(id)
			*dst = *v
		}
	}
	setS := func(id codec.PropID, dst *[]byte, v string) {
		if v != "" {
			p.Set(id)
			*dst = []byte(v)
		}
	}
	setD := func(id codec.PropID, dst *[]byte, v []byte) {
		if v != nil {
			p.Set(id)
			*dst = v
		}
	}
	set16 := func(id codec.PropID, dst *uint16, v *uint16) {
		if v != nil {
			p.Set(id)
			*dst = *v
		}
	}
	set32 := func(id codec.PropID, dst *uint32, v *uint32) {
		if v != nil {
			p.Set(id)
			*dst = *v
		}
	}
	setB(codec.PropPayloadFormat, &p.PayloadFormat, pp.PayloadFormat)
	set32(codec.PropMessageExpiry, &p.MessageExpiry, pp.MessageExpiry)
	setS(codec.PropContentType, &p.ContentType, pp.ContentType)
	setS(codec.PropResponseTopic, &p.ResponseTopic, pp.ResponseTopic)
	setD(codec.PropCorrelationData, &p.CorrelationData, pp.CorrelationData)
	if pp.SubscriptionIdentifier != nil {
		p.SubscriptionIDs = []uint32{uint32(*pp.SubscriptionIdentifier)}
	}
	set32(codec.PropSessionExpiry, &p.SessionExpiry, pp.SessionExpiryInterval)
	setS(codec.PropAssignedClientID, &p.AssignedClientID, pp.AssignedClientID)
	set16(codec.PropServerKeepAlive, &p.ServerKeepAlive, pp.ServerKeepAlive)
	setS(codec.PropAuthMethod, &p.AuthMethod, pp.AuthMethod)
	setD(codec.PropAuthData, &p.AuthData, pp.AuthData)
	setB(codec.PropRequestProblemInfo, &p.RequestProblemInfo, pp.RequestProblemInfo)
	set32(codec.PropWillDelay, &p.WillDelay, pp.WillDelayInterval)
	setB(codec.PropRequestResponseInfo, &p.RequestResponseInfo, pp.RequestResponseInfo)
	setS(codec.PropResponseInfo, &p.ResponseInfo, pp.ResponseInfo)
	setS(codec.PropServerReference, &p.ServerReference, pp.ServerReference)
	setS(codec.PropReasonString, &p.ReasonString, pp.ReasonString)
	set16(codec.PropReceiveMaximum, &p.ReceiveMaximum, pp.ReceiveMaximum)
	set16(codec.PropTopicAliasMaximum, &p.TopicAliasMaximum, pp.TopicAliasMaximum)
	set16(codec.PropTopicAlias, &p.TopicAlias, pp.TopicAlias)
	setB(codec.PropMaximumQoS, &p.MaximumQoS, pp.MaximumQOS)
	setB(codec.PropRetainAvailable, &p.RetainAvailable, pp.RetainAvailable)
	for _, u := range pp.User {
		p.User = append(p.User, codec.UserProperty{Key: []byte(u.Key), Value: []byte(u.Value)})
	}
	set32(codec.PropMaximumPacketSize, &p.MaximumPacketSize, pp.MaximumPacketSize)
	setB(codec.PropWildcardSubAvailable, &p.WildcardSubAvailable, pp.WildcardSubAvailable)
	setB(codec.PropSubIDAvailable, &p.SubIDAvailable, pp.SubIDAvailable)
	setB(codec.PropSharedSubAvailable, &p.SharedSubAvailable, pp.SharedSubAvailable)
	return p
}

// writePaho5 has paho.golang encode pk; each packet type's own WriteTo
// writes its fixed header.
func writePaho5(w io.Writer, pk *codec.Packet) (int64, error) {
	switch pk.Type {
	case codec.Connect:
		c := &pk.Connect
		pc := &pahov5.Connect{
			ProtocolName: string(c.ProtocolName), ProtocolVersion: byte(c.Version),
			CleanStart: c.CleanStart, KeepAlive: c.KeepAlive, ClientID: string(c.ClientID),
			Properties: toPaho5Props(&c.Props),
			WillFlag:   c.WillFlag, WillQOS: c.WillQoS, WillRetain: c.WillRetain,
			UsernameFlag: c.UsernameFlag, Username: string(c.Username),
			PasswordFlag: c.PasswordFlag, Password: c.Password,
		}
		if c.WillFlag {
			pc.WillTopic, pc.WillMessage = string(c.WillTopic), c.WillPayload
			pc.WillProperties = toPaho5Props(&c.WillProps)
		}
		return pc.WriteTo(w)
	case codec.Connack:
		c := &pk.Connack
		return (&pahov5.Connack{SessionPresent: c.SessionPresent, ReasonCode: byte(c.Reason),
			Properties: toPaho5Props(&c.Props)}).WriteTo(w)
	case codec.Publish:
		q := &pk.Publish
		return (&pahov5.Publish{QoS: q.QoS, Duplicate: q.Dup, Retain: q.Retain, Topic: string(q.Topic),
			PacketID: q.PacketID, Properties: toPaho5Props(&q.Props), Payload: q.Payload}).WriteTo(w)
	case codec.Puback:
		a := &pk.Ack
		return (&pahov5.Puback{PacketID: a.PacketID, ReasonCode: byte(a.Reason), Properties: toPaho5Props(&a.Props)}).WriteTo(w)
	case codec.Pubrec:
		a := &pk.Ack
		return (&pahov5.Pubrec{PacketID: a.PacketID, ReasonCode: byte(a.Reason), Properties: toPaho5Props(&a.Props)}).WriteTo(w)
	case codec.Pubrel:
		a := &pk.Ack
		return (&pahov5.Pubrel{PacketID: a.PacketID, ReasonCode: byte(a.Reason), Properties: toPaho5Props(&a.Props)}).WriteTo(w)
	case codec.Pubcomp:
		a := &pk.Ack
		return (&pahov5.Pubcomp{PacketID: a.PacketID, ReasonCode: byte(a.Reason), Properties: toPaho5Props(&a.Props)}).WriteTo(w)
	case codec.Subscribe:
		s := &pk.Subscribe
		ps := &pahov5.Subscribe{PacketID: s.PacketID, Properties: toPaho5Props(&s.Props)}
		for _, sub := range s.Subscriptions {
			ps.Subscriptions = append(ps.Subscriptions, pahov5.SubOptions{Topic: string(sub.Filter), QoS: sub.QoS,
				RetainHandling: sub.RetainHandling, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished})
		}
		return ps.WriteTo(w)
	case codec.Suback:
		s := &pk.Suback
		return (&pahov5.Suback{PacketID: s.PacketID, Properties: toPaho5Props(&s.Props), Reasons: reasonBytes(s.Reasons)}).WriteTo(w)
	case codec.Unsubscribe:
		u := &pk.Unsubscribe
		pu := &pahov5.Unsubscribe{PacketID: u.PacketID, Properties: toPaho5Props(&u.Props)}
		for _, f := range u.Filters {
			pu.Topics = append(pu.Topics, string(f))
		}
		return pu.WriteTo(w)
	case codec.Unsuback:
		s := &pk.Suback
		return (&pahov5.Unsuback{PacketID: s.PacketID, Properties: toPaho5Props(&s.Props), Reasons: reasonBytes(s.Reasons)}).WriteTo(w)
	case codec.Pingreq:
		return (&pahov5.Pingreq{}).WriteTo(w)
	case codec.Pingresp:
		return (&pahov5.Pingresp{}).WriteTo(w)
	case codec.Disconnect:
		d := &pk.Disconnect
		return (&pahov5.Disconnect{ReasonCode: byte(d.Reason), Properties: toPaho5Props(&d.Props)}).WriteTo(w)
	case codec.Auth:
		a := &pk.Auth
		return (&pahov5.Auth{ReasonCode: byte(a.Reason), Properties: toPaho5Props(&a.Props)}).WriteTo(w)
	}
	panic("BUG: no paho.golang packet for " + pk.Type.String())
}

func reasons(b []byte) []codec.ReasonCode {
	var rs []codec.ReasonCode
	for _, c := range b {
		rs = append(rs, codec.ReasonCode(c))
	}
	return rs
}

// fromPaho5 converts what paho.golang decoded into a codec.Packet.
func fromPaho5(cp *pahov5.ControlPacket) codec.Packet {
	pk := codec.Packet{Type: codec.PacketType(cp.Type), Flags: cp.Flags}
	switch c := cp.Content.(type) {
	case *pahov5.Connect:
		pk.Connect = codec.ConnectPacket{ProtocolName: []byte(c.ProtocolName), Version: codec.Version(c.ProtocolVersion),
			CleanStart: c.CleanStart, KeepAlive: c.KeepAlive, Props: fromPaho5Props(c.Properties),
			ClientID: []byte(c.ClientID), WillFlag: c.WillFlag, WillQoS: c.WillQOS, WillRetain: c.WillRetain,
			UsernameFlag: c.UsernameFlag, Username: []byte(c.Username), PasswordFlag: c.PasswordFlag, Password: c.Password}
		if c.WillFlag {
			pk.Connect.WillProps = fromPaho5Props(c.WillProperties)
			pk.Connect.WillTopic, pk.Connect.WillPayload = []byte(c.WillTopic), c.WillMessage
		}
	case *pahov5.Connack:
		pk.Connack = codec.ConnackPacket{SessionPresent: c.SessionPresent, Reason: codec.ReasonCode(c.ReasonCode),
			Props: fromPaho5Props(c.Properties)}
	case *pahov5.Publish:
		pk.Publish = codec.PublishPacket{Dup: c.Duplicate, QoS: c.QoS, Retain: c.Retain, Topic: []byte(c.Topic),
			PacketID: c.PacketID, Props: fromPaho5Props(c.Properties), Payload: c.Payload}
	case *pahov5.Puback:
		pk.Ack = codec.AckPacket{PacketID: c.PacketID, Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Pubrec:
		pk.Ack = codec.AckPacket{PacketID: c.PacketID, Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Pubrel:
		pk.Ack = codec.AckPacket{PacketID: c.PacketID, Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Pubcomp:
		pk.Ack = codec.AckPacket{PacketID: c.PacketID, Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Subscribe:
		pk.Subscribe = codec.SubscribePacket{PacketID: c.PacketID, Props: fromPaho5Props(c.Properties)}
		for _, o := range c.Subscriptions {
			pk.Subscribe.Subscriptions = append(pk.Subscribe.Subscriptions, codec.Subscription{Filter: []byte(o.Topic),
				QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling})
		}
	case *pahov5.Suback:
		pk.Suback = codec.SubackPacket{PacketID: c.PacketID, Props: fromPaho5Props(c.Properties), Reasons: reasons(c.Reasons)}
	case *pahov5.Unsubscribe:
		pk.Unsubscribe = codec.UnsubscribePacket{PacketID: c.PacketID, Props: fromPaho5Props(c.Properties)}
		for _, f := range c.Topics {
			pk.Unsubscribe.Filters = append(pk.Unsubscribe.Filters, []byte(f))
		}
	case *pahov5.Unsuback:
		pk.Suback = codec.SubackPacket{PacketID: c.PacketID, Props: fromPaho5Props(c.Properties), Reasons: reasons(c.Reasons)}
	case *pahov5.Disconnect:
		pk.Disconnect = codec.DisconnectPacket{Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Auth:
		pk.Auth = codec.AuthPacket{Reason: codec.ReasonCode(c.ReasonCode), Props: fromPaho5Props(c.Properties)}
	case *pahov5.Pingreq, *pahov5.Pingresp:
	default:
		panic("BUG: unexpected paho.golang packet")
	}
	return pk
}

// paho3Cases are the golden 3.1 and 3.1.1 packets: paho.mqtt.golang speaks
// both (CONNECT names the level), and every field is representable.
func paho3Cases() []codectest.Case {
	var cs []codectest.Case
	for _, c := range codectest.Golden() {
		if c.Version == codec.V31 || c.Version == codec.V311 {
			cs = append(cs, c)
		}
	}
	return cs
}

// TestPaho3EncodesCodecDecodes: paho.mqtt.golang writes, we read.
func TestPaho3EncodesCodecDecodes(t *testing.T) {
	for _, c := range paho3Cases() {
		t.Run(c.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := toPaho3(&c.Packet).Write(&buf); err != nil {
				t.Fatalf("paho Write: %v", err)
			}
			if !c.DecodeOnly && !bytes.Equal(buf.Bytes(), c.Bytes) {
				t.Errorf("paho wrote % x, golden % x", head(buf.Bytes()), head(c.Bytes))
			}
			pk := mustDecode(t, buf.Bytes(), c.Version)
			if got, want := describe(pk), describe(&c.Packet); got != want {
				t.Fatalf("\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestCodecEncodesPaho3Decodes: we write, paho.mqtt.golang reads.
func TestCodecEncodesPaho3Decodes(t *testing.T) {
	for _, c := range paho3Cases() {
		t.Run(c.Name, func(t *testing.T) {
			enc := codec.Append(nil, &c.Packet, encodeVersion(&c.Packet, c.Version))
			r := bytes.NewReader(enc)
			cp, err := pahov3.ReadPacket(r)
			if err != nil {
				t.Fatalf("paho ReadPacket(% x): %v", head(enc), err)
			}
			if r.Len() != 0 {
				t.Fatalf("paho left %d bytes unread", r.Len())
			}
			got := fromPaho3(cp)
			if g, w := describe(&got), describe(&c.Packet); g != w {
				t.Fatalf("\n got %s\nwant %s", g, w)
			}
		})
	}
}

func toPaho3(pk *codec.Packet) pahov3.ControlPacket {
	cp := pahov3.NewControlPacket(byte(pk.Type))
	switch p := cp.(type) {
	case *pahov3.ConnectPacket:
		c := &pk.Connect
		p.ProtocolName, p.ProtocolVersion = string(c.ProtocolName), byte(c.Version)
		p.CleanSession, p.Keepalive, p.ClientIdentifier = c.CleanStart, c.KeepAlive, string(c.ClientID)
		p.WillFlag, p.WillQos, p.WillRetain = c.WillFlag, c.WillQoS, c.WillRetain
		p.WillTopic, p.WillMessage = string(c.WillTopic), c.WillPayload
		p.UsernameFlag, p.Username = c.UsernameFlag, string(c.Username)
		p.PasswordFlag, p.Password = c.PasswordFlag, c.Password
	case *pahov3.ConnackPacket:
		p.SessionPresent, p.ReturnCode = pk.Connack.SessionPresent, byte(pk.Connack.Reason)
	case *pahov3.PublishPacket:
		q := &pk.Publish
		p.Dup, p.Qos, p.Retain = q.Dup, q.QoS, q.Retain
		p.TopicName, p.MessageID, p.Payload = string(q.Topic), q.PacketID, q.Payload
	case *pahov3.PubackPacket:
		p.MessageID = pk.Ack.PacketID
	case *pahov3.PubrecPacket:
		p.MessageID = pk.Ack.PacketID
	case *pahov3.PubrelPacket:
		p.MessageID = pk.Ack.PacketID
	case *pahov3.PubcompPacket:
		p.MessageID = pk.Ack.PacketID
	case *pahov3.SubscribePacket:
		p.MessageID = pk.Subscribe.PacketID
		for _, s := range pk.Subscribe.Subscriptions {
			p.Topics, p.Qoss = append(p.Topics, string(s.Filter)), append(p.Qoss, s.QoS)
		}
	case *pahov3.SubackPacket:
		p.MessageID, p.ReturnCodes = pk.Suback.PacketID, reasonBytes(pk.Suback.Reasons)
	case *pahov3.UnsubscribePacket:
		p.MessageID = pk.Unsubscribe.PacketID
		for _, f := range pk.Unsubscribe.Filters {
			p.Topics = append(p.Topics, string(f))
		}
	case *pahov3.UnsubackPacket:
		p.MessageID = pk.Suback.PacketID
	case *pahov3.PingreqPacket, *pahov3.PingrespPacket, *pahov3.DisconnectPacket:
	default:
		panic("BUG: no paho.mqtt.golang packet for " + pk.Type.String())
	}
	return cp
}

func fromPaho3(cp pahov3.ControlPacket) codec.Packet {
	var pk codec.Packet
	switch p := cp.(type) {
	case *pahov3.ConnectPacket:
		pk.Type = codec.Connect
		pk.Connect = codec.ConnectPacket{ProtocolName: []byte(p.ProtocolName), Version: codec.Version(p.ProtocolVersion),
			CleanStart: p.CleanSession, KeepAlive: p.Keepalive, ClientID: []byte(p.ClientIdentifier),
			WillFlag: p.WillFlag, WillQoS: p.WillQos, WillRetain: p.WillRetain,
			UsernameFlag: p.UsernameFlag, Username: []byte(p.Username), PasswordFlag: p.PasswordFlag, Password: p.Password}
		if p.WillFlag {
			pk.Connect.WillTopic, pk.Connect.WillPayload = []byte(p.WillTopic), p.WillMessage
		}
	case *pahov3.ConnackPacket:
		pk.Type = codec.Connack
		pk.Connack = codec.ConnackPacket{SessionPresent: p.SessionPresent, Reason: codec.ReasonCode(p.ReturnCode)}
	case *pahov3.PublishPacket:
		pk.Type, pk.Flags = codec.Publish, boolBit(p.Dup, 0x08)|p.Qos<<1|boolBit(p.Retain, 0x01)
		pk.Publish = codec.PublishPacket{Dup: p.Dup, QoS: p.Qos, Retain: p.Retain, Topic: []byte(p.TopicName),
			PacketID: p.MessageID, Payload: p.Payload}
	case *pahov3.PubackPacket:
		pk.Type, pk.Ack.PacketID = codec.Puback, p.MessageID
	case *pahov3.PubrecPacket:
		pk.Type, pk.Ack.PacketID = codec.Pubrec, p.MessageID
	case *pahov3.PubrelPacket:
		pk.Type, pk.Flags, pk.Ack.PacketID = codec.Pubrel, p.Qos<<1, p.MessageID
	case *pahov3.PubcompPacket:
		pk.Type, pk.Ack.PacketID = codec.Pubcomp, p.MessageID
	case *pahov3.SubscribePacket:
		pk.Type, pk.Flags, pk.Subscribe.PacketID = codec.Subscribe, p.Qos<<1, p.MessageID
		for i, f := range p.Topics {
			pk.Subscribe.Subscriptions = append(pk.Subscribe.Subscriptions, codec.Subscription{Filter: []byte(f), QoS: p.Qoss[i]})
		}
	case *pahov3.SubackPacket:
		pk.Type, pk.Suback.PacketID, pk.Suback.Reasons = codec.Suback, p.MessageID, reasons(p.ReturnCodes)
	case *pahov3.UnsubscribePacket:
		pk.Type, pk.Flags, pk.Unsubscribe.PacketID = codec.Unsubscribe, p.Qos<<1, p.MessageID
		for _, f := range p.Topics {
			pk.Unsubscribe.Filters = append(pk.Unsubscribe.Filters, []byte(f))
		}
	case *pahov3.UnsubackPacket:
		pk.Type, pk.Suback.PacketID = codec.Unsuback, p.MessageID
	case *pahov3.PingreqPacket:
		pk.Type = codec.Pingreq
	case *pahov3.PingrespPacket:
		pk.Type = codec.Pingresp
	case *pahov3.DisconnectPacket:
		pk.Type = codec.Disconnect
	default:
		panic("BUG: unexpected paho.mqtt.golang packet")
	}
	return pk
}

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}
