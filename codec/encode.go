package codec

// Encoders append one whole packet to dst and return the extended slice. They
// compute the remaining length first and write in one pass, so a dst with
// enough spare capacity is never reallocated. Inputs are trusted: strings and
// binary fields must be at most 65535 bytes, as every decoded field is.

// Append encodes pk, of type pk.Type, for protocol version v.
func Append(dst []byte, pk *Packet, v Version) []byte {
	switch pk.Type {
	case Connect:
		return AppendConnect(dst, &pk.Connect)
	case Connack:
		return AppendConnack(dst, &pk.Connack, v)
	case Publish:
		return AppendPublish(dst, &pk.Publish, v)
	case Puback, Pubrec, Pubrel, Pubcomp:
		return AppendAck(dst, pk.Type, &pk.Ack, v)
	case Subscribe:
		return AppendSubscribe(dst, &pk.Subscribe, v)
	case Suback:
		return AppendSuback(dst, &pk.Suback, v)
	case Unsubscribe:
		return AppendUnsubscribe(dst, &pk.Unsubscribe, v)
	case Unsuback:
		return AppendUnsuback(dst, &pk.Suback, v)
	case Pingreq:
		return append(dst, byte(Pingreq)<<4, 0)
	case Pingresp:
		return append(dst, byte(Pingresp)<<4, 0)
	case Disconnect:
		return AppendDisconnect(dst, &pk.Disconnect, v)
	case Auth:
		return AppendAuth(dst, &pk.Auth)
	}
	return dst
}

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}

// propsField is the encoded length of a property block including its length
// prefix, and the block's own size.
func propsField(p *Properties) (total, size int) {
	size = p.size()
	return varintLen(size) + size, size
}

func protocolName(v Version) string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// AppendConnect appends a CONNECT for c.Version (3, 4 or 5).
func AppendConnect(dst []byte, c *ConnectPacket) []byte {
	v := c.Version
	name := protocolName(v)
	rem := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	var ps, wps int
	if v == V5 {
		var t int
		t, ps = propsField(&c.Props)
		rem += t
	}
	if c.WillFlag {
		if v == V5 {
			var t int
			t, wps = propsField(&c.WillProps)
			rem += t
		}
		rem += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
	}
	if c.UsernameFlag {
		rem += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		rem += 2 + len(c.Password)
	}
	dst = appendFixedHeader(dst, byte(Connect)<<4, rem)
	dst = append(dst, 0, byte(len(name)))
	dst = append(dst, name...)
	flags := boolBit(c.CleanStart, 0x02) | boolBit(c.WillFlag, 0x04) | (c.WillQoS&3)<<3 |
		boolBit(c.WillRetain, 0x20) | boolBit(c.PasswordFlag, 0x40) | boolBit(c.UsernameFlag, 0x80)
	dst = append(dst, byte(v), flags)
	dst = appendUint16(dst, c.KeepAlive)
	if v == V5 {
		dst = appendProperties(dst, &c.Props, ps)
	}
	dst = appendBytes(dst, c.ClientID)
	if c.WillFlag {
		if v == V5 {
			dst = appendProperties(dst, &c.WillProps, wps)
		}
		dst = appendBytes(dst, c.WillTopic)
		dst = appendBytes(dst, c.WillPayload)
	}
	if c.UsernameFlag {
		dst = appendBytes(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBytes(dst, c.Password)
	}
	return dst
}

// AppendConnack appends a CONNACK. For 3.1 and 3.1.1, Reason is the return code
// and properties are not written; 3.1 has no session present flag.
func AppendConnack(dst []byte, c *ConnackPacket, v Version) []byte {
	flags := boolBit(c.SessionPresent && v != V31, 0x01)
	if v != V5 {
		return append(dst, byte(Connack)<<4, 2, flags, byte(c.Reason))
	}
	t, ps := propsField(&c.Props)
	dst = appendFixedHeader(dst, byte(Connack)<<4, 2+t)
	dst = append(dst, flags, byte(c.Reason))
	return appendProperties(dst, &c.Props, ps)
}

// publishFirstByte is the PUBLISH fixed header's first byte.
func publishFirstByte(p *PublishPacket) byte {
	return byte(Publish)<<4 | boolBit(p.Dup, 0x08) | (p.QoS&3)<<1 | boolBit(p.Retain, 0x01)
}

// publishRemaining is the remaining length of p and its property block size.
func publishRemaining(p *PublishPacket, v Version) (rem, ps int) {
	rem = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		rem += 2
	}
	if v == V5 {
		var t int
		t, ps = propsField(&p.Props)
		rem += t
	}
	return rem, ps
}

// PublishSize is the length of p encoded for v, fixed header included: the
// figure compared with a Maximum Packet Size.
func PublishSize(p *PublishPacket, v Version) int {
	rem, _ := publishRemaining(p, v)
	return 1 + varintLen(rem) + rem
}

// AppendPublish appends a PUBLISH. PacketID is written only for QoS 1 and 2;
// properties only for v5.
func AppendPublish(dst []byte, p *PublishPacket, v Version) []byte {
	dst = appendPublishHeader(dst, p, v)
	return append(dst, p.Payload...)
}

// AppendPublishHeader appends everything of a PUBLISH but its payload, with a
// remaining length that counts the payload, so that a shared payload can be
// written after it (with writev) without being copied.
func AppendPublishHeader(dst []byte, p *PublishPacket, v Version) []byte {
	return appendPublishHeader(dst, p, v)
}

func appendPublishHeader(dst []byte, p *PublishPacket, v Version) []byte {
	rem, ps := publishRemaining(p, v)
	dst = appendFixedHeader(dst, publishFirstByte(p), rem)
	dst = appendBytes(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = appendProperties(dst, &p.Props, ps)
	}
	return dst
}

// AppendAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP (t). For v5, a success
// with no properties is written in the two-byte short form.
func AppendAck(dst []byte, t PacketType, a *AckPacket, v Version) []byte {
	first := byte(t) << 4
	if t == Pubrel {
		first |= 0x02 // [MQTT-3.6.1-1]
	}
	if v != V5 || (a.Reason == Success && a.Props.Empty()) {
		return append(dst, first, 2, byte(a.PacketID>>8), byte(a.PacketID))
	}
	if a.Props.Empty() {
		return append(dst, first, 3, byte(a.PacketID>>8), byte(a.PacketID), byte(a.Reason))
	}
	t2, ps := propsField(&a.Props)
	dst = appendFixedHeader(dst, first, 3+t2)
	dst = append(dst, byte(a.PacketID>>8), byte(a.PacketID), byte(a.Reason))
	return appendProperties(dst, &a.Props, ps)
}

// AppendSubscribe appends a SUBSCRIBE.
func AppendSubscribe(dst []byte, s *SubscribePacket, v Version) []byte {
	rem := 2
	var ps int
	if v == V5 {
		var t int
		t, ps = propsField(&s.Props)
		rem += t
	}
	for i := range s.Subscriptions {
		rem += 2 + len(s.Subscriptions[i].Filter) + 1
	}
	dst = appendFixedHeader(dst, byte(Subscribe)<<4|0x02, rem) // [MQTT-3.8.1-1]
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		dst = appendProperties(dst, &s.Props, ps)
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		dst = appendBytes(dst, sub.Filter)
		o := sub.QoS & 3
		if v == V5 {
			o |= boolBit(sub.NoLocal, 0x04) | boolBit(sub.RetainAsPublished, 0x08) | (sub.RetainHandling&3)<<4
		}
		dst = append(dst, o)
	}
	return dst
}

// AppendSuback appends a SUBACK.
func AppendSuback(dst []byte, s *SubackPacket, v Version) []byte {
	return appendAckList(dst, byte(Suback)<<4, s, v, true)
}

// AppendUnsuback appends an UNSUBACK. Before v5 it carries only the packet id.
func AppendUnsuback(dst []byte, s *SubackPacket, v Version) []byte {
	return appendAckList(dst, byte(Unsuback)<<4, s, v, v == V5)
}

func appendAckList(dst []byte, first byte, s *SubackPacket, v Version, withReasons bool) []byte {
	rem := 2
	var ps int
	if v == V5 {
		var t int
		t, ps = propsField(&s.Props)
		rem += t
	}
	if withReasons {
		rem += len(s.Reasons)
	}
	dst = appendFixedHeader(dst, first, rem)
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		dst = appendProperties(dst, &s.Props, ps)
	}
	if withReasons {
		for _, r := range s.Reasons {
			dst = append(dst, byte(r))
		}
	}
	return dst
}

// AppendUnsubscribe appends an UNSUBSCRIBE.
func AppendUnsubscribe(dst []byte, u *UnsubscribePacket, v Version) []byte {
	rem := 2
	var ps int
	if v == V5 {
		var t int
		t, ps = propsField(&u.Props)
		rem += t
	}
	for _, f := range u.Filters {
		rem += 2 + len(f)
	}
	dst = appendFixedHeader(dst, byte(Unsubscribe)<<4|0x02, rem) // [MQTT-3.10.1-1]
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		dst = appendProperties(dst, &u.Props, ps)
	}
	for _, f := range u.Filters {
		dst = appendBytes(dst, f)
	}
	return dst
}

// AppendDisconnect appends a DISCONNECT; before v5 it has no body.
func AppendDisconnect(dst []byte, d *DisconnectPacket, v Version) []byte {
	if v != V5 {
		return append(dst, byte(Disconnect)<<4, 0)
	}
	return appendReasonProps(dst, byte(Disconnect)<<4, d.Reason, &d.Props)
}

// AppendAuth appends an AUTH (v5 only).
func AppendAuth(dst []byte, a *AuthPacket) []byte {
	return appendReasonProps(dst, byte(Auth)<<4, a.Reason, &a.Props)
}

// appendReasonProps writes a body of an optional reason code and properties,
// in the shortest form the specification allows.
func appendReasonProps(dst []byte, first byte, r ReasonCode, p *Properties) []byte {
	if p.Empty() {
		if r == Success {
			return append(dst, first, 0)
		}
		return append(dst, first, 1, byte(r))
	}
	t, ps := propsField(p)
	dst = appendFixedHeader(dst, first, 1+t)
	dst = append(dst, byte(r))
	return appendProperties(dst, p, ps)
}
