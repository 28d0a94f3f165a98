// Package codectest holds the golden MQTT packets shared by the tests of the
// codec and of the packages above it. Every byte was written by hand from the
// OASIS MQTT 3.1.1 and 5.0 specifications (section numbers in the comments),
// never produced by the codec, so that an encoder and a decoder that agree with
// each other but not with the specification still fail.
package codectest

import (
	"bytes"

	"github.com/flockmq/flockmq/codec"
)

// Case is one golden packet: its bytes on the wire, the protocol version of
// the connection it travels on, and the packet they decode to.
type Case struct {
	Name    string
	Version codec.Version // of the connection; CONNECT carries its own
	Bytes   []byte
	Packet  codec.Packet
	// DecodeOnly marks bytes that are valid but not the form the codec writes
	// (a longer optional form); encoding Packet gives other, equivalent bytes.
	DecodeOnly bool
}

// Golden returns the golden table, freshly built so that callers may modify it.
func Golden() []Case {
	var cs []Case
	cs = append(cs, connectCases()...)
	cs = append(cs, connackCases()...)
	cs = append(cs, publishCases()...)
	cs = append(cs, ackCases()...)
	cs = append(cs, subscribeCases()...)
	cs = append(cs, subackCases()...)
	cs = append(cs, unsubscribeCases()...)
	cs = append(cs, pingDisconnectAuthCases()...)
	return cs
}

// versions lists the three protocol levels in order.
var versions = [...]codec.Version{codec.V31, codec.V311, codec.V5}

func b(s string) []byte { return []byte(s) }

// cat joins byte slices; it is used only to add long payloads after a
// hand-written header.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func props(set func(p *codec.Properties)) codec.Properties {
	var p codec.Properties
	set(&p)
	return p
}

func user(kv ...string) []codec.UserProperty {
	var u []codec.UserProperty
	for i := 0; i+1 < len(kv); i += 2 {
		u = append(u, codec.UserProperty{Key: b(kv[i]), Value: b(kv[i+1])})
	}
	return u
}

// Section 3.1.
func connectCases() []Case {
	return []Case{
		{
			Name: "CONNECT 3.1 MQIsdp clean session", Version: codec.V31,
			Bytes: []byte{0x10, 16,
				0, 6, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name
				3,     // level
				0x02,  // clean session
				0, 60, // keep alive
				0, 2, 'c', '1'},
			Packet: codec.Packet{Type: codec.Connect, Connect: codec.ConnectPacket{
				ProtocolName: b("MQIsdp"), Version: codec.V31, CleanStart: true, KeepAlive: 60,
				ClientID: b("c1")}},
		},
		{
			Name: "CONNECT 3.1.1 empty client id", Version: codec.V311,
			Bytes: []byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 0},
			Packet: codec.Packet{Type: codec.Connect, Connect: codec.ConnectPacket{
				ProtocolName: b("MQTT"), Version: codec.V311, CleanStart: true, ClientID: b("")}},
		},
		{
			Name: "CONNECT 3.1.1 will QoS 1 retained, user name and password", Version: codec.V311,
			Bytes: []byte{0x10, 31,
				0, 4, 'M', 'Q', 'T', 'T', 4,
				0xEE,  // user, password, will retain, will QoS 1, will, clean
				0, 10, // keep alive
				0, 3, 'c', 'i', 'd',
				0, 3, 'w', '/', 't',
				0, 2, 'b', 'y',
				0, 1, 'u',
				0, 2, 0x01, 0x02},
			Packet: codec.Packet{Type: codec.Connect, Connect: codec.ConnectPacket{
				ProtocolName: b("MQTT"), Version: codec.V311, CleanStart: true, KeepAlive: 10,
				ClientID: b("cid"), WillFlag: true, WillQoS: 1, WillRetain: true,
				WillTopic: b("w/t"), WillPayload: b("by"),
				UsernameFlag: true, Username: b("u"), PasswordFlag: true, Password: []byte{1, 2}}},
		},
		{
			Name: "CONNECT 5.0 every property, will with every property", Version: codec.V5,
			Bytes: []byte{0x10, 105,
				0, 4, 'M', 'Q', 'T', 'T', 5,
				0xD6,  // user, password, will QoS 2, will, clean start
				0, 30, // keep alive
				38,                 // property length (section 3.1.2.11)
				0x11, 0, 0, 0, 120, // session expiry interval
				0x15, 0, 3, 't', 'o', 'k', // authentication method
				0x16, 0, 2, 0xDE, 0xAD, // authentication data
				0x17, 0, // request problem information
				0x19, 1, // request response information
				0x21, 0, 20, // receive maximum
				0x22, 0, 10, // topic alias maximum
				0x27, 0, 0, 0x10, 0, // maximum packet size 4096
				0x26, 0, 1, 'k', 0, 1, 'v', // user property
				0, 2, 'c', '5', // client id
				37,      // will property length (section 3.1.3.2)
				0x01, 1, // payload format indicator
				0x02, 0, 0, 0, 60, // message expiry interval
				0x03, 0, 4, 'j', 's', 'o', 'n', // content type
				0x08, 0, 3, 'r', '/', '1', // response topic
				0x09, 0, 2, 0x01, 0x02, // correlation data
				0x18, 0, 0, 0, 5, // will delay interval
				0x26, 0, 1, 'a', 0, 1, 'b', // user property
				0, 3, 'w', '/', '5', // will topic
				0, 0, // empty will payload
				0, 2, 'u', '5',
				0, 1, 'p'},
			Packet: codec.Packet{Type: codec.Connect, Connect: codec.ConnectPacket{
				ProtocolName: b("MQTT"), Version: codec.V5, CleanStart: true, KeepAlive: 30,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropSessionExpiry)
					p.SessionExpiry = 120
					p.Set(codec.PropAuthMethod)
					p.AuthMethod = b("tok")
					p.Set(codec.PropAuthData)
					p.AuthData = []byte{0xDE, 0xAD}
					p.Set(codec.PropRequestProblemInfo)
					p.RequestProblemInfo = 0
					p.Set(codec.PropRequestResponseInfo)
					p.RequestResponseInfo = 1
					p.Set(codec.PropReceiveMaximum)
					p.ReceiveMaximum = 20
					p.Set(codec.PropTopicAliasMaximum)
					p.TopicAliasMaximum = 10
					p.Set(codec.PropMaximumPacketSize)
					p.MaximumPacketSize = 4096
					p.User = user("k", "v")
				}),
				ClientID: b("c5"), WillFlag: true, WillQoS: 2,
				WillProps: props(func(p *codec.Properties) {
					p.Set(codec.PropPayloadFormat)
					p.PayloadFormat = 1
					p.Set(codec.PropMessageExpiry)
					p.MessageExpiry = 60
					p.Set(codec.PropContentType)
					p.ContentType = b("json")
					p.Set(codec.PropResponseTopic)
					p.ResponseTopic = b("r/1")
					p.Set(codec.PropCorrelationData)
					p.CorrelationData = []byte{1, 2}
					p.Set(codec.PropWillDelay)
					p.WillDelay = 5
					p.User = user("a", "b")
				}),
				WillTopic: b("w/5"), WillPayload: b(""),
				UsernameFlag: true, Username: b("u5"), PasswordFlag: true, Password: b("p")}},
		},
		{
			// 5.0 allows a password without a user name (section 3.1.2.9).
			Name: "CONNECT 5.0 password without user name", Version: codec.V5,
			Bytes: []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 0,
				0, // property length
				0, 1, 'x',
				0, 1, 'p'},
			Packet: codec.Packet{Type: codec.Connect, Connect: codec.ConnectPacket{
				ProtocolName: b("MQTT"), Version: codec.V5, CleanStart: true, ClientID: b("x"),
				PasswordFlag: true, Password: b("p")}},
		},
	}
}

// Section 3.2.
func connackCases() []Case {
	return []Case{
		{
			Name: "CONNACK 3.1 not authorized", Version: codec.V31,
			Bytes:  []byte{0x20, 2, 0, 5},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{Reason: codec.V3NotAuthorized}},
		},
		{
			Name: "CONNACK 3.1.1 session present", Version: codec.V311,
			Bytes:  []byte{0x20, 2, 1, 0},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{SessionPresent: true}},
		},
		{
			Name: "CONNACK 3.1.1 bad user name or password", Version: codec.V311,
			Bytes:  []byte{0x20, 2, 0, 4},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{Reason: codec.V3BadUsernameOrPassword}},
		},
		{
			Name: "CONNACK 5.0 every property", Version: codec.V5,
			Bytes: []byte{0x20, 73, 0, 0,
				70,                     // property length
				0x11, 0, 0, 0x0E, 0x10, // session expiry interval 3600
				0x12, 0, 3, 'i', 'd', '1', // assigned client identifier
				0x13, 0, 60, // server keep alive
				0x15, 0, 3, 't', 'o', 'k', // authentication method
				0x16, 0, 1, 0x07, // authentication data
				0x1A, 0, 4, 'r', 'e', 's', 'p', // response information
				0x1C, 0, 3, 's', 'r', 'v', // server reference
				0x1F, 0, 2, 'o', 'k', // reason string
				0x21, 0, 100, // receive maximum
				0x22, 0, 5, // topic alias maximum
				0x24, 1, // maximum QoS
				0x25, 0, // retain available
				0x27, 0, 1, 0, 0, // maximum packet size 65536
				0x28, 1, // wildcard subscription available
				0x29, 0, // subscription identifiers available
				0x2A, 1, // shared subscription available
				0x26, 0, 1, 'x', 0, 1, 'y'},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropSessionExpiry)
					p.SessionExpiry = 3600
					p.Set(codec.PropAssignedClientID)
					p.AssignedClientID = b("id1")
					p.Set(codec.PropServerKeepAlive)
					p.ServerKeepAlive = 60
					p.Set(codec.PropAuthMethod)
					p.AuthMethod = b("tok")
					p.Set(codec.PropAuthData)
					p.AuthData = []byte{7}
					p.Set(codec.PropResponseInfo)
					p.ResponseInfo = b("resp")
					p.Set(codec.PropServerReference)
					p.ServerReference = b("srv")
					p.Set(codec.PropReasonString)
					p.ReasonString = b("ok")
					p.Set(codec.PropReceiveMaximum)
					p.ReceiveMaximum = 100
					p.Set(codec.PropTopicAliasMaximum)
					p.TopicAliasMaximum = 5
					p.Set(codec.PropMaximumQoS)
					p.MaximumQoS = 1
					p.Set(codec.PropRetainAvailable)
					p.RetainAvailable = 0
					p.Set(codec.PropMaximumPacketSize)
					p.MaximumPacketSize = 65536
					p.Set(codec.PropWildcardSubAvailable)
					p.WildcardSubAvailable = 1
					p.Set(codec.PropSubIDAvailable)
					p.SubIDAvailable = 0
					p.Set(codec.PropSharedSubAvailable)
					p.SharedSubAvailable = 1
					p.User = user("x", "y")
				})}},
		},
		{
			Name: "CONNACK 5.0 bad user name or password", Version: codec.V5,
			Bytes:  []byte{0x20, 3, 0, 0x86, 0},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{Reason: codec.BadUserNameOrPassword}},
		},
		{
			Name: "CONNACK 5.0 without property length", Version: codec.V5, DecodeOnly: true,
			Bytes:  []byte{0x20, 2, 1, 0},
			Packet: codec.Packet{Type: codec.Connack, Connack: codec.ConnackPacket{SessionPresent: true}},
		},
	}
}

func pub(flags byte, p codec.PublishPacket) codec.Packet {
	return codec.Packet{Type: codec.Publish, Flags: flags, Publish: p}
}

// Section 3.3.
func publishCases() []Case {
	cs := []Case{
		{
			Name: "PUBLISH 3.1.1 QoS 0", Version: codec.V311,
			Bytes:  []byte{0x30, 10, 0, 3, 'a', '/', 'b', 'h', 'e', 'l', 'l', 'o'},
			Packet: pub(0, codec.PublishPacket{Topic: b("a/b"), Payload: b("hello")}),
		},
		{
			Name: "PUBLISH 3.1.1 QoS 1 retain", Version: codec.V311,
			Bytes:  []byte{0x33, 8, 0, 3, 'a', '/', 'b', 0, 7, 'x'},
			Packet: pub(0x03, codec.PublishPacket{QoS: 1, Retain: true, Topic: b("a/b"), PacketID: 7, Payload: b("x")}),
		},
		{
			Name: "PUBLISH 3.1.1 QoS 2 dup empty payload", Version: codec.V311,
			Bytes:  []byte{0x3C, 7, 0, 3, 'a', '/', 'b', 0x12, 0x34},
			Packet: pub(0x0C, codec.PublishPacket{Dup: true, QoS: 2, Topic: b("a/b"), PacketID: 0x1234, Payload: b("")}),
		},
		{
			Name: "PUBLISH 3.1 QoS 1", Version: codec.V31,
			Bytes:  []byte{0x32, 9, 0, 3, 'x', '/', 'y', 0xFF, 0xFF, 'h', 'i'},
			Packet: pub(0x02, codec.PublishPacket{QoS: 1, Topic: b("x/y"), PacketID: 0xFFFF, Payload: b("hi")}),
		},
		{
			Name: "PUBLISH 3.1.1 retained empty payload", Version: codec.V311,
			Bytes:  []byte{0x31, 5, 0, 3, 'a', '/', 'b'},
			Packet: pub(0x01, codec.PublishPacket{Retain: true, Topic: b("a/b"), Payload: b("")}),
		},
		{
			// "ü/€/𝄞": two-, three- and four-byte UTF-8 sequences.
			Name: "PUBLISH 3.1.1 multibyte UTF-8 topic", Version: codec.V311,
			Bytes: []byte{0x30, 14, 0, 11,
				0xC3, 0xBC, '/', 0xE2, 0x82, 0xAC, '/', 0xF0, 0x9D, 0x84, 0x9E,
				'p'},
			Packet: pub(0, codec.PublishPacket{Topic: b("ü/€/𝄞"), Payload: b("p")}),
		},
		{
			Name: "PUBLISH 5.0 QoS 0 no properties", Version: codec.V5,
			Bytes:  []byte{0x30, 8, 0, 3, 'a', '/', 'b', 0, 'h', 'i'},
			Packet: pub(0, codec.PublishPacket{Topic: b("a/b"), Payload: b("hi")}),
		},
		{
			Name: "PUBLISH 5.0 QoS 0 empty payload", Version: codec.V5,
			Bytes:  []byte{0x30, 6, 0, 3, 'a', '/', 'b', 0},
			Packet: pub(0, codec.PublishPacket{Topic: b("a/b"), Payload: b("")}),
		},
		{
			Name: "PUBLISH 5.0 QoS 1 every property", Version: codec.V5,
			Bytes: []byte{0x32, 65, 0, 3, 'a', '/', 'b', 0, 10,
				52,      // property length
				0x01, 1, // payload format indicator
				0x02, 0, 0, 0x01, 0x2C, // message expiry interval 300
				0x03, 0, 4, 'j', 's', 'o', 'n', // content type
				0x08, 0, 5, 'r', 'e', 'p', '/', '1', // response topic
				0x09, 0, 3, 0x0A, 0x0B, 0x0C, // correlation data
				0x0B, 5, // subscription identifier 5
				0x0B, 0x80, 0x01, // subscription identifier 128
				0x23, 0, 7, // topic alias
				0x26, 0, 1, 'k', 0, 2, 'v', '1', // user property
				0x26, 0, 1, 'k', 0, 2, 'v', '2', // same key again, order kept
				'h', 'e', 'l', 'l', 'o'},
			Packet: pub(0x02, codec.PublishPacket{QoS: 1, Topic: b("a/b"), PacketID: 10, Payload: b("hello"),
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropPayloadFormat)
					p.PayloadFormat = 1
					p.Set(codec.PropMessageExpiry)
					p.MessageExpiry = 300
					p.Set(codec.PropContentType)
					p.ContentType = b("json")
					p.Set(codec.PropResponseTopic)
					p.ResponseTopic = b("rep/1")
					p.Set(codec.PropCorrelationData)
					p.CorrelationData = []byte{0x0A, 0x0B, 0x0C}
					p.SubscriptionIDs = []uint32{5, 128}
					p.Set(codec.PropTopicAlias)
					p.TopicAlias = 7
					p.User = user("k", "v1", "k", "v2")
				})}),
		},
		{
			// An empty topic name with a Topic Alias (section 3.3.2.3.4).
			Name: "PUBLISH 5.0 QoS 2 topic alias only", Version: codec.V5,
			Bytes: []byte{0x34, 9, 0, 0, 0, 1,
				3, 0x23, 0, 2,
				'z'},
			Packet: pub(0x04, codec.PublishPacket{QoS: 2, Topic: b(""), PacketID: 1, Payload: b("z"),
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropTopicAlias)
					p.TopicAlias = 2
				})}),
		},
	}
	// Remaining Length in two, three and four bytes (section 1.5.5): 128,
	// 16384 and 2097152, each with a one-byte topic "t".
	for _, l := range []struct {
		name string
		head []byte
		rem  int
	}{
		{"two", []byte{0x30, 0x80, 0x01}, 128},
		{"three", []byte{0x30, 0x80, 0x80, 0x01}, 16384},
		{"four", []byte{0x30, 0x80, 0x80, 0x80, 0x01}, 2097152},
	} {
		payload := bytes.Repeat([]byte{'x'}, l.rem-3)
		cs = append(cs, Case{
			Name: "PUBLISH 3.1.1 " + l.name + "-byte remaining length", Version: codec.V311,
			Bytes:  cat(l.head, []byte{0, 1, 't'}, payload),
			Packet: pub(0, codec.PublishPacket{Topic: b("t"), Payload: payload}),
		})
	}
	return cs
}

func ack(t codec.PacketType, a codec.AckPacket) codec.Packet {
	pk := codec.Packet{Type: t, Ack: a}
	if t == codec.Pubrel {
		pk.Flags = 0x02
	}
	return pk
}

// Sections 3.4 to 3.7.
func ackCases() []Case {
	var cs []Case
	for _, v := range versions[:2] {
		name := " " + v.String()
		cs = append(cs,
			Case{Name: "PUBACK" + name, Version: v, Bytes: []byte{0x40, 2, 0, 1},
				Packet: ack(codec.Puback, codec.AckPacket{PacketID: 1})},
			Case{Name: "PUBREC" + name, Version: v, Bytes: []byte{0x50, 2, 0x12, 0x34},
				Packet: ack(codec.Pubrec, codec.AckPacket{PacketID: 0x1234})},
			Case{Name: "PUBREL" + name, Version: v, Bytes: []byte{0x62, 2, 0x12, 0x34},
				Packet: ack(codec.Pubrel, codec.AckPacket{PacketID: 0x1234})},
			Case{Name: "PUBCOMP" + name, Version: v, Bytes: []byte{0x70, 2, 0x12, 0x34},
				Packet: ack(codec.Pubcomp, codec.AckPacket{PacketID: 0x1234})},
		)
	}
	return append(cs,
		// Section 3.4.2.1: reason 0x00 and no properties may be left out.
		Case{Name: "PUBACK 5.0 short form", Version: codec.V5, Bytes: []byte{0x40, 2, 0, 1},
			Packet: ack(codec.Puback, codec.AckPacket{PacketID: 1})},
		Case{Name: "PUBACK 5.0 reason only", Version: codec.V5, Bytes: []byte{0x40, 3, 0, 1, 0x10},
			Packet: ack(codec.Puback, codec.AckPacket{PacketID: 1, Reason: codec.NoMatchingSubscribers})},
		Case{Name: "PUBACK 5.0 every property", Version: codec.V5,
			Bytes: []byte{0x40, 18, 0, 1, 0x87,
				14,
				0x1F, 0, 4, 'd', 'e', 'n', 'y',
				0x26, 0, 1, 'k', 0, 1, 'v'},
			Packet: ack(codec.Puback, codec.AckPacket{PacketID: 1, Reason: codec.NotAuthorized,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropReasonString)
					p.ReasonString = b("deny")
					p.User = user("k", "v")
				})})},
		Case{Name: "PUBACK 5.0 success with empty property length", Version: codec.V5, DecodeOnly: true,
			Bytes:  []byte{0x40, 4, 0, 1, 0, 0},
			Packet: ack(codec.Puback, codec.AckPacket{PacketID: 1})},
		Case{Name: "PUBREC 5.0 unspecified error with reason string", Version: codec.V5,
			Bytes: []byte{0x50, 10, 0, 2, 0x80,
				6, 0x1F, 0, 3, 'b', 'a', 'd'},
			Packet: ack(codec.Pubrec, codec.AckPacket{PacketID: 2, Reason: codec.UnspecifiedError,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropReasonString)
					p.ReasonString = b("bad")
				})})},
		Case{Name: "PUBREL 5.0 short form", Version: codec.V5, Bytes: []byte{0x62, 2, 0, 9},
			Packet: ack(codec.Pubrel, codec.AckPacket{PacketID: 9})},
		Case{Name: "PUBREL 5.0 packet identifier not found", Version: codec.V5, Bytes: []byte{0x62, 3, 0, 3, 0x92},
			Packet: ack(codec.Pubrel, codec.AckPacket{PacketID: 3, Reason: codec.PacketIdentifierNotFound})},
		Case{Name: "PUBCOMP 5.0 success with reason string", Version: codec.V5,
			Bytes: []byte{0x70, 9, 0, 4, 0,
				5, 0x1F, 0, 2, 'o', 'k'},
			Packet: ack(codec.Pubcomp, codec.AckPacket{PacketID: 4,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropReasonString)
					p.ReasonString = b("ok")
				})})},
	)
}

// Section 3.8.
func subscribeCases() []Case {
	return []Case{
		{
			Name: "SUBSCRIBE 3.1 one filter", Version: codec.V31,
			Bytes: []byte{0x82, 6, 0, 1, 0, 1, '#', 0},
			Packet: codec.Packet{Type: codec.Subscribe, Flags: 0x02, Subscribe: codec.SubscribePacket{
				PacketID: 1, Subscriptions: []codec.Subscription{{Filter: b("#")}}}},
		},
		{
			Name: "SUBSCRIBE 3.1.1 two filters", Version: codec.V311,
			Bytes: []byte{0x82, 14, 0, 10,
				0, 3, 'a', '/', 'b', 1,
				0, 3, 'c', '/', '#', 2},
			Packet: codec.Packet{Type: codec.Subscribe, Flags: 0x02, Subscribe: codec.SubscribePacket{
				PacketID: 10, Subscriptions: []codec.Subscription{
					{Filter: b("a/b"), QoS: 1}, {Filter: b("c/#"), QoS: 2}}}},
		},
		{
			Name: "SUBSCRIBE 5.0 no properties", Version: codec.V5,
			Bytes: []byte{0x82, 7, 0, 1, 0, 0, 1, '#', 0},
			Packet: codec.Packet{Type: codec.Subscribe, Flags: 0x02, Subscribe: codec.SubscribePacket{
				PacketID: 1, Subscriptions: []codec.Subscription{{Filter: b("#")}}}},
		},
		{
			Name: "SUBSCRIBE 5.0 every property and option", Version: codec.V5,
			Bytes: []byte{0x82, 35, 0, 11,
				11,
				0x0B, 0x80, 0x80, 0x01, // subscription identifier 16384
				0x26, 0, 1, 'k', 0, 1, 'v',
				0, 3, 'a', '/', '+', 0x2D, // QoS 1, no local, retain as published, retain handling 2
				0, 12, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x', '/', '#', 0x12}, // QoS 2, retain handling 1
			Packet: codec.Packet{Type: codec.Subscribe, Flags: 0x02, Subscribe: codec.SubscribePacket{
				PacketID: 11,
				Props: props(func(p *codec.Properties) {
					p.SubscriptionIDs = []uint32{16384}
					p.User = user("k", "v")
				}),
				Subscriptions: []codec.Subscription{
					{Filter: b("a/+"), QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
					{Filter: b("$share/g/x/#"), QoS: 2, RetainHandling: 1}}}},
		},
	}
}

func suback(t codec.PacketType, s codec.SubackPacket) codec.Packet {
	return codec.Packet{Type: t, Suback: s}
}

// Sections 3.9 and 3.11.
func subackCases() []Case {
	return []Case{
		{Name: "SUBACK 3.1", Version: codec.V31, Bytes: []byte{0x90, 3, 0, 1, 0},
			Packet: suback(codec.Suback, codec.SubackPacket{PacketID: 1, Reasons: []codec.ReasonCode{0}})},
		{Name: "SUBACK 3.1.1 granted and failure", Version: codec.V311, Bytes: []byte{0x90, 5, 0, 10, 1, 2, 0x80},
			Packet: suback(codec.Suback, codec.SubackPacket{PacketID: 10,
				Reasons: []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS2, codec.V3SubackFailure}})},
		{Name: "SUBACK 5.0 no properties", Version: codec.V5, Bytes: []byte{0x90, 4, 0, 1, 0, 0},
			Packet: suback(codec.Suback, codec.SubackPacket{PacketID: 1, Reasons: []codec.ReasonCode{codec.Success}})},
		{Name: "SUBACK 5.0 every property", Version: codec.V5,
			Bytes: []byte{0x90, 18, 0, 11,
				12,
				0x1F, 0, 2, 'o', 'k',
				0x26, 0, 1, 'k', 0, 1, 'v',
				0x01, 0x8F, 0xA2},
			Packet: suback(codec.Suback, codec.SubackPacket{PacketID: 11,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropReasonString)
					p.ReasonString = b("ok")
					p.User = user("k", "v")
				}),
				Reasons: []codec.ReasonCode{codec.GrantedQoS1, codec.TopicFilterInvalid, codec.WildcardSubscriptionsNotSupported}})},
		{Name: "UNSUBACK 3.1", Version: codec.V31, Bytes: []byte{0xB0, 2, 0, 1},
			Packet: suback(codec.Unsuback, codec.SubackPacket{PacketID: 1})},
		{Name: "UNSUBACK 3.1.1", Version: codec.V311, Bytes: []byte{0xB0, 2, 0, 12},
			Packet: suback(codec.Unsuback, codec.SubackPacket{PacketID: 12})},
		{Name: "UNSUBACK 5.0 no properties", Version: codec.V5, Bytes: []byte{0xB0, 4, 0, 13, 0, 0x11},
			Packet: suback(codec.Unsuback, codec.SubackPacket{PacketID: 13, Reasons: []codec.ReasonCode{codec.NoSubscriptionExisted}})},
		{Name: "UNSUBACK 5.0 every property", Version: codec.V5,
			Bytes: []byte{0xB0, 17, 0, 13,
				12,
				0x1F, 0, 2, 'o', 'k',
				0x26, 0, 1, 'k', 0, 1, 'v',
				0x00, 0x11},
			Packet: suback(codec.Unsuback, codec.SubackPacket{PacketID: 13,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropReasonString)
					p.ReasonString = b("ok")
					p.User = user("k", "v")
				}),
				Reasons: []codec.ReasonCode{codec.Success, codec.NoSubscriptionExisted}})},
	}
}

// Section 3.10.
func unsubscribeCases() []Case {
	return []Case{
		{Name: "UNSUBSCRIBE 3.1", Version: codec.V31, Bytes: []byte{0xA2, 5, 0, 2, 0, 1, 'x'},
			Packet: codec.Packet{Type: codec.Unsubscribe, Flags: 0x02, Unsubscribe: codec.UnsubscribePacket{
				PacketID: 2, Filters: [][]byte{b("x")}}}},
		{Name: "UNSUBSCRIBE 3.1.1 two filters", Version: codec.V311,
			Bytes: []byte{0xA2, 10, 0, 12, 0, 3, 'a', '/', 'b', 0, 1, '#'},
			Packet: codec.Packet{Type: codec.Unsubscribe, Flags: 0x02, Unsubscribe: codec.UnsubscribePacket{
				PacketID: 12, Filters: [][]byte{b("a/b"), b("#")}}}},
		{Name: "UNSUBSCRIBE 5.0 user property", Version: codec.V5,
			Bytes: []byte{0xA2, 15, 0, 13,
				7, 0x26, 0, 1, 'k', 0, 1, 'v',
				0, 3, 'a', '/', 'b'},
			Packet: codec.Packet{Type: codec.Unsubscribe, Flags: 0x02, Unsubscribe: codec.UnsubscribePacket{
				PacketID: 13,
				Props:    props(func(p *codec.Properties) { p.User = user("k", "v") }),
				Filters:  [][]byte{b("a/b")}}}},
	}
}

// Sections 3.12 to 3.15.
func pingDisconnectAuthCases() []Case {
	var cs []Case
	for _, v := range versions {
		cs = append(cs,
			Case{Name: "PINGREQ " + v.String(), Version: v, Bytes: []byte{0xC0, 0}, Packet: codec.Packet{Type: codec.Pingreq}},
			Case{Name: "PINGRESP " + v.String(), Version: v, Bytes: []byte{0xD0, 0}, Packet: codec.Packet{Type: codec.Pingresp}},
			Case{Name: "DISCONNECT " + v.String(), Version: v, Bytes: []byte{0xE0, 0}, Packet: codec.Packet{Type: codec.Disconnect}},
		)
	}
	return append(cs,
		Case{Name: "DISCONNECT 5.0 reason only", Version: codec.V5, Bytes: []byte{0xE0, 1, 0x04},
			Packet: codec.Packet{Type: codec.Disconnect, Disconnect: codec.DisconnectPacket{Reason: codec.DisconnectWithWill}}},
		Case{Name: "DISCONNECT 5.0 every property", Version: codec.V5,
			Bytes: []byte{0xE0, 26, 0x8B,
				24,
				0x11, 0, 0, 0, 10, // session expiry interval
				0x1C, 0, 3, 's', 'r', 'v', // server reference
				0x1F, 0, 3, 'b', 'y', 'e', // reason string
				0x26, 0, 1, 'k', 0, 1, 'v'},
			Packet: codec.Packet{Type: codec.Disconnect, Disconnect: codec.DisconnectPacket{Reason: codec.ServerShuttingDown,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropSessionExpiry)
					p.SessionExpiry = 10
					p.Set(codec.PropServerReference)
					p.ServerReference = b("srv")
					p.Set(codec.PropReasonString)
					p.ReasonString = b("bye")
					p.User = user("k", "v")
				})}}},
		Case{Name: "DISCONNECT 5.0 normal with empty property length", Version: codec.V5, DecodeOnly: true,
			Bytes: []byte{0xE0, 2, 0, 0}, Packet: codec.Packet{Type: codec.Disconnect}},
		Case{Name: "AUTH 5.0 short form", Version: codec.V5, Bytes: []byte{0xF0, 0}, Packet: codec.Packet{Type: codec.Auth}},
		Case{Name: "AUTH 5.0 re-authenticate", Version: codec.V5, Bytes: []byte{0xF0, 1, 0x19},
			Packet: codec.Packet{Type: codec.Auth, Auth: codec.AuthPacket{Reason: codec.ReAuthenticate}}},
		Case{Name: "AUTH 5.0 every property", Version: codec.V5,
			Bytes: []byte{0xF0, 27, 0x18,
				25,
				0x15, 0, 3, 't', 'o', 'k',
				0x16, 0, 2, 1, 2,
				0x1F, 0, 4, 'm', 'o', 'r', 'e',
				0x26, 0, 1, 'k', 0, 1, 'v'},
			Packet: codec.Packet{Type: codec.Auth, Auth: codec.AuthPacket{Reason: codec.ContinueAuthentication,
				Props: props(func(p *codec.Properties) {
					p.Set(codec.PropAuthMethod)
					p.AuthMethod = b("tok")
					p.Set(codec.PropAuthData)
					p.AuthData = []byte{1, 2}
					p.Set(codec.PropReasonString)
					p.ReasonString = b("more")
					p.User = user("k", "v")
				})}}},
	)
}
